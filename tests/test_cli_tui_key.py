"""`noor tui --me` takes the API key from NOOR_API_KEY, stdin or a hidden prompt; never from argv (`ps`, shell
history). The dashboard itself is replaced by a recorder: what is tested is how the key reaches it."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from noor_daemon.cli import cli

pytestmark = pytest.mark.engine_independent

KEY = "sk-noor-" + "A" * 43 + "B" * 6


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, url: str, **options):
        self.calls.append({"url": url, **options})
        return self

    def run(self) -> None:
        pass


@pytest.fixture
def recorder(monkeypatch) -> _Recorder:
    import noor_tui.app

    found = _Recorder()
    monkeypatch.setattr(noor_tui.app, "make_app", found)
    return found


def test_the_key_comes_from_stdin(recorder) -> None:
    result = CliRunner().invoke(cli, ["tui", "--me"], input=KEY + "\n")
    assert result.exit_code == 0, result.output
    assert recorder.calls[0]["api_key"] == KEY and recorder.calls[0]["token"] is None


def test_the_key_comes_from_the_environment(recorder, monkeypatch) -> None:
    monkeypatch.setenv("NOOR_API_KEY", KEY)
    result = CliRunner().invoke(cli, ["tui"])
    assert result.exit_code == 0, result.output
    assert recorder.calls[0]["api_key"] == KEY


def test_a_key_on_the_command_line_is_not_accepted(recorder) -> None:
    result = CliRunner().invoke(cli, ["tui", "--key", KEY])
    assert result.exit_code == 2 and not recorder.calls
    assert KEY not in result.output


def test_something_that_is_not_a_key_is_refused(recorder) -> None:
    result = CliRunner().invoke(cli, ["tui", "--me"], input="hunter2\n")
    assert result.exit_code == 2 and "sk-noor-" in result.output and not recorder.calls
