"""Redaction: nothing shaped like an API key survives a log record (message, args, traceback,
stack); and a key and a canary in forced error paths never reach the logs at all."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import time
from pathlib import Path

import aiohttp
import openai
import pytest
from daemon_process import start_daemon_process
from gateway_helpers import openai_client
from standin_upstream import standin_config

from noor_daemon.gateway import proxy as proxy_module
from noor_daemon.redaction import REDACTED, RedactingFilter, install, redact
from noor_daemon.state import PROXY

pytestmark = pytest.mark.engine_independent

NOOR_KEY = "sk-noor-AbC123" + "x" * 37 + "Zz9Yy8"
SHAPES = {
    NOOR_KEY: "sk-noor-AbC123" + REDACTED,
    "sk-proj-AbCdEf0123456789_ghIJkl-mnopQRstuv": "sk-proj-" + REDACTED,
    "sk-svcacct-AbCdEf0123456789ghIJkl": "sk-svcacct-" + REDACTED,
    "sk-AbCdEf0123456789ghIJklmnopQRstuvWXyz0123456789ab": "sk-" + REDACTED,
    "sk-ant-api03-AbCdEf0123456789_ghIJkl-mnopQRstuv-AA": "sk-ant-" + REDACTED,
    "sk_live_51HxAbCdEf0123456789ghIJkl": "sk_live_" + REDACTED,
    "sk_test_51HxAbCdEf0123456789ghIJkl": "sk_test_" + REDACTED,
    "rk_live_51HxAbCdEf0123456789ghIJkl": "rk_live_" + REDACTED,
    "whsec_AbCdEf0123456789ghIJklMNop+/=": "whsec_" + REDACTED,
    "noor-admin-AbCdEf0123456789_ghIJkl-mnop": "noor-admin-" + REDACTED,
}
CANARY = "CANARY-7f3a-never-in-a-log"


@pytest.mark.parametrize("secret", list(SHAPES))
def test_every_key_shape_is_redacted(secret: str) -> None:
    line = f"upstream said: Incorrect API key provided: {secret}. (header Bearer {secret})"
    redacted = redact(line)
    assert secret not in redacted
    assert redacted.count(SHAPES[secret]) == 2
    assert redact(redacted) == redacted, "idempotent"


def test_ordinary_text_is_left_alone() -> None:
    for text in (
        "task-manager-restarted-after-a-long-while",
        "disk_live_migration_completed_in_time",
        f"key {NOOR_KEY[:14]} revoked",  # a display prefix is meant to be shown
        "sk-short",
        "model gpt-4o-mini answered 200 in 312 ms",
    ):
        assert redact(text) == text


def _logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"noor_daemon.redaction_test.{name}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    install(logger)
    return logger, stream


def test_the_filter_covers_message_args_traceback_and_stack() -> None:
    logger, stream = _logger("all")
    openai_key = "sk-proj-AbCdEf0123456789_ghIJkl-mnopQRstuv"
    logger.info("calling with %s", openai_key)
    logger.info("headers %(auth)s", {"auth": f"Bearer {NOOR_KEY}"})
    logger.warning(f"inline {NOOR_KEY}")
    try:
        raise ValueError(f"bad key {openai_key} for whsec_AbCdEf0123456789ghIJklMNop")
    except ValueError:
        logger.exception("failed with %r", {"key": NOOR_KEY})
    logger.info("stack for %s", NOOR_KEY, stack_info=True)
    logger.info("100%% of %s", "nothing secret")
    out = stream.getvalue()
    assert openai_key not in out and NOOR_KEY not in out and "whsec_AbCdEf" not in out
    assert "ValueError: bad key sk-proj-[REDACTED] for whsec_[REDACTED]" in out
    assert "Traceback (most recent call last)" in out, "the traceback itself is kept"
    assert "100% of nothing secret" in out
    assert out.count(REDACTED) >= 7


def test_a_broken_format_string_is_still_redacted() -> None:
    logger, stream = _logger("broken")
    logger.error("two %s %s", NOOR_KEY)  # one argument short
    assert NOOR_KEY not in stream.getvalue()


def test_configure_logging_installs_the_filter_on_the_root_handlers() -> None:
    from noor_daemon.redaction import configure_logging

    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        configure_logging("info")  # root already has handlers: basicConfig adds none, install() filters them
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)
    finally:
        root.removeHandler(handler)


# -- forced error paths in the daemon ------------------------------------------------------------


@pytest.fixture
def redacted_caplog(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    caplog.handler.addFilter(RedactingFilter())
    return caplog


def _all_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        parts += [record.getMessage(), record.exc_text or "", record.stack_info or ""]
    return caplog.text + "\n".join(parts)


async def test_a_fault_before_and_during_a_stream_logs_neither_key_nor_canary(
    standin, start_daemon, monkeypatch, redacted_caplog
) -> None:
    daemon = await start_daemon(standin_config(standin))
    key = await daemon.create_key("redaction@example.com")
    messages = [{"role": "user", "content": f"please keep {CANARY} and {NOOR_KEY} secret"}]

    def fault_quoting_the_request(*_args, **_kwargs):
        raise KeyError(f"{CANARY} {key} Bearer {key}")

    # Before anything is sent: a shaped 500.
    monkeypatch.setattr(daemon.app[PROXY], "may_use", fault_quoting_the_request)
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="gpt-test", messages=messages)
    monkeypatch.undo()

    # Mid-stream, after the first event: the answer is cut off and aiohttp logs a traceback.
    monkeypatch.setattr(proxy_module, "stream_usage", fault_quoting_the_request)
    async with openai_client(daemon, key) as client:
        with pytest.raises(openai.APIError):
            stream = await client.chat.completions.create(model="gpt-test", messages=messages, stream=True)
            async for _chunk in stream:
                pass
    await asyncio.sleep(0.1)

    text = _all_text(redacted_caplog)
    assert "KeyError" in text, "the fault is logged by its type"
    assert "refused an HTTP request: RuntimeError (500)" in text, "the cut-off stream is logged by its type"
    assert CANARY not in text
    assert key not in text and NOOR_KEY not in text
    assert key[14:30] not in text, "no part of the key's secret body either"


async def test_noor_daemon_logs_no_key_and_no_canary_at_debug(tmp_path: Path) -> None:
    """A real `noor daemon --log-level debug`: failing upstream, forged, revoked and foreign keys."""
    closed_port = _closed_port()
    config = f"""
[[providers]]
name = "down"
kind = "openai"
base_url = "http://127.0.0.1:{closed_port}/v1"
api_key = "env:NOOR_TEST_UPSTREAM_KEY"

[[models]]
name = "gpt-down"
routes = [{{ provider = "down" }}]
"""
    upstream_secret = "sk-proj-upstream-secret-0123456789abcdefXYZ"
    os.environ["NOOR_TEST_UPSTREAM_KEY"] = upstream_secret
    try:
        daemon = await start_daemon_process(tmp_path, config, log_level="debug")
    finally:
        del os.environ["NOOR_TEST_UPSTREAM_KEY"]
    try:
        key = await daemon.create_key("subprocess-redaction@example.com")
        body = {"model": "gpt-down", "messages": [{"role": "user", "content": CANARY}]}
        async with aiohttp.ClientSession() as http:
            for bearer in (key, NOOR_KEY, "sk-proj-AbCdEf0123456789_ghIJkl-mnopQRstuv", f"{key}x"):
                async with http.post(f"{daemon.base_url}/chat/completions", json=body,
                                     headers={"Authorization": f"Bearer {bearer}"}) as r:
                    assert r.status in (401, 502), r.status
            async with http.post(f"{daemon.base_url}/chat/completions", data=b'{"model": "gpt-down", "messages": [' + CANARY.encode(),
                                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}) as r:
                assert r.status == 400
    finally:
        await daemon.stop()
    time.sleep(0.1)
    log = daemon.stderr().decode(errors="replace")
    for secret in (key, NOOR_KEY, CANARY, upstream_secret, "sk-proj-AbCdEf0123456789", daemon.admin_token):
        assert secret not in log, f"{secret[:12]}… reached the daemon's log"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_librarys_records_keep_their_template_and_lose_their_arguments_and_exception_text() -> None:
    """aiohttp's, asyncio's or any library's arguments are request lines, header values and bytes it could not
    parse: only the fixed template, numbers and the exception's type and frames reach a handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logger = logging.getLogger("aiohttp.server.redaction_test")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    install(logger)
    canary = "CANARY-library-" + "x" * 12
    logger.debug("Error handling request from %s: %r (%d bytes)", "10.0.0.7", {"prompt": canary}, 512)
    try:
        raise ValueError(f"Invalid header value char: b'{canary}'")
    except ValueError:
        logger.exception("Error handling request %s", canary)
    logger.warning(ValueError(canary))  # a record whose msg is an object
    out = stream.getvalue()
    assert canary not in out and "10.0.0.7" not in out
    assert "Error handling request from <withheld>: '<withheld>' (512 bytes)" in out
    assert "Traceback (most recent call last)" in out and "ValueError: <withheld>" in out


@pytest.mark.parametrize(
    "template",
    ["Authorization: Bearer%20{key}", "x{key}", "7{key}", "url?key={encoded}", "{encoded}", "GET /v1?k=sk%2Dnoor%2D{tail}"],
)
def test_a_key_is_redacted_whatever_precedes_it_and_however_it_is_encoded(template: str) -> None:
    from urllib.parse import quote

    logger, stream = _logger("encoded")
    key = NOOR_KEY
    logger.warning(template.format(key=key, encoded=quote(key, safe=""), tail=key[len("sk-noor-"):]))
    out = stream.getvalue()
    assert key not in out and key[14:40] not in out, out


def test_the_configured_provider_secrets_are_redacted_by_value(monkeypatch) -> None:
    """A provider's key of no known shape (a local vLLM's token) is redacted once the daemon resolved it."""
    from noor_daemon.secret_store import resolve

    secret = "vllm-local-token-Zq81x"
    monkeypatch.setenv("NOOR_TEST_VLLM_TOKEN", secret)
    assert resolve("env:NOOR_TEST_VLLM_TOKEN", what="provider 'vllm' api_key") == secret
    logger, stream = _logger("literal")
    logger.error("upstream said: bad token %s (or %s)", secret, secret.replace("-", "%2D"))
    out = stream.getvalue()
    assert secret not in out and "Zq81x" not in out, out
