"""The admin API client against an in-process daemon: typed answers, one error class, 0600 exports."""

from __future__ import annotations

import ast
import json
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import noor_daemon.client
from noor_daemon.client import (
    Account,
    AdminApiError,
    AdminClient,
    DaemonUnreachable,
    IssuedKey,
    KeyInfo,
    UsageSummary,
)

pytestmark = pytest.mark.engine_independent


def test_client_imports_nothing_else_from_noor_daemon() -> None:
    """The dashboard may import the client alone; it must not drag the daemon in.

    Every module of the package is read: absolute imports may not name noor_daemon (or noor_tui)
    at all, relative ones may not climb out of the package (`from ..keys import …`).
    """
    package = Path(noor_daemon.client.__file__).parent
    modules = sorted(package.rglob("*.py"))
    assert {m.name for m in modules} >= {"__init__.py", "admin.py", "me.py", "http.py", "models.py"}
    offenders = {}
    for module in modules:
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        imported |= {
            node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 0
        }
        bad = [name for name in imported if name.startswith("noor")]
        depth = len(module.relative_to(package).parts)  # 1 for a module directly in the package
        bad += [
            "." * node.level + (node.module or "")
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level > depth
        ]
        if bad:
            offenders[module.name] = sorted(bad)
    assert offenders == {}


def test_importing_the_client_loads_no_other_daemon_module() -> None:
    """At run time too: the package's own modules, and nothing else of noor_daemon."""
    code = (
        "import sys, noor_daemon.client; "
        "print(sorted(m for m in sys.modules if m.startswith('noor') and m != 'noor_daemon' "
        "and m != 'noor_daemon.client' and not m.startswith('noor_daemon.client.')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


async def test_accounts_and_keys_are_typed(daemon) -> None:
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        assert (await admin.healthz()).status == "ok"
        account = await admin.create_account("typed@example.com")
        assert isinstance(account, Account) and account.plan == "free"
        assert await admin.get_account("typed@example.com") == account
        changed = await admin.update_account(account.id, email="renamed@example.com")
        assert changed.email == "renamed@example.com"
        assert [a.id for a in await admin.list_accounts()] == [account.id]

        issued = await admin.create_key(account.id, name="ci", models=["sim-gpt"], expires_in=3600)
        assert isinstance(issued, IssuedKey) and issued.key.startswith("sk-noor-")
        assert issued.key not in repr(issued)
        assert issued.key in json.dumps(issued.to_json())
        listed = await admin.list_keys(account="renamed@example.com")
        assert [type(k) for k in listed] == [KeyInfo] and listed[0].models == ["sim-gpt"]
        assert (await admin.get_key(issued.id)).masked == issued.masked

        revoked = await admin.revoke_key(issued.id)
        assert revoked.state == "revoked"
        with pytest.raises(AdminApiError) as caught:
            await admin.rotate_key(issued.id)
        assert caught.value.status == 409 and caught.value.code == "conflict"

        assert await admin.delete_account(account.id) == account.id
        with pytest.raises(AdminApiError) as caught:
            await admin.get_account(account.id)
        assert (caught.value.status, caught.value.code) == (404, "not_found")


async def test_wrong_token_is_an_admin_api_error(daemon) -> None:
    async with AdminClient(daemon.url, "not-the-token") as admin:
        with pytest.raises(AdminApiError) as caught:
            await admin.list_accounts()
    assert caught.value.status == 401 and caught.value.message


async def test_email_with_a_slash_stays_one_path_segment(daemon) -> None:
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        with pytest.raises(AdminApiError) as caught:
            await admin.get_account("../keys")
    assert caught.value.status == 404


async def test_unreachable_daemon() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AdminClient(f"http://127.0.0.1:{port}", "x") as admin:
        with pytest.raises(DaemonUnreachable):
            await admin.healthz()


async def test_export_streams_to_a_private_file_with_progress(daemon, tmp_path: Path) -> None:
    key = await daemon.create_key("dev@example.com")
    from gateway_helpers import openai_client

    client = openai_client(daemon, key)
    for _ in range(4):
        await client.embeddings.create(model="sim-embed", input="x")
    seen: list[tuple[int, int | None]] = []
    out = tmp_path / "export.csv"
    async with AdminClient(daemon.url, daemon.admin_token) as admin:
        result = await admin.export_account("dev@example.com", out, format="csv", progress=lambda d, t: seen.append((d, t)))
        summary = await admin.usage_summary(hours=1, account="dev@example.com")
        with pytest.raises(FileExistsError):
            await admin.export_account("dev@example.com", out)
    assert result.events == 4 and result.bytes == out.stat().st_size
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert seen[-1] == (4, 4) and all(t == 4 for _, t in seen)
    assert isinstance(summary, UsageSummary) and summary.totals.requests == 4
    assert [m.model for m in summary.models] == ["sim-embed"]
