"""Malformed HTTP requests carrying a canary: no log line, no file of the data dir and no answer holds it.

aiohttp's protocol layer answers these before any handler runs; `noor_daemon/server.py` makes those
answers JSON in the API's error shape and logs the error's type only. Real `noor daemon` processes, raw
sockets (an SDK cannot send a broken request), at the default log level and at debug with NOOR_DEBUG=1.
"""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest
from conftest import SIMULATOR_CONFIG
from daemon_process import DaemonProcesses
from test_privacy_canary import files_under

pytestmark = pytest.mark.engine_independent


def _canary() -> str:
    return "CANARY" + secrets.token_hex(8)


async def _exchange(url: str, raw: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    return answer


def _malformed(canary: str, key: str) -> dict[str, bytes]:
    prompt = json.dumps({"model": "sim-gpt", "messages": [{"role": "user", "content": canary}]}).encode()
    return {
        "broken chunked body": (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode()
            + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"zz" + prompt + b"\r\n" + prompt + b"\r\n0\r\n\r\n"
        ),
        "bad header line": (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Prompt " + canary.encode() + b" no colon\r\n"
            + b"Content-Length: " + str(len(prompt)).encode() + b"\r\n\r\n" + prompt
        ),
        "request line with a query": (
            b"GET /v1/mo dels?q=" + canary.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        ),
        "oversized header": (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Big: " + (canary * 6000).encode()[:100_000]
            + b"\r\nContent-Length: " + str(len(prompt)).encode() + b"\r\n\r\n" + prompt
        ),
        "control byte in a header value": (
            b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nanthropic-version: 2023-06-01\r\nX-C: a\x01" + canary.encode()
            + b"\r\nContent-Length: 2\r\n\r\n{}"
        ),
    }


@pytest.mark.parametrize("debug", [False, True], ids=["default level", "debug and NOOR_DEBUG"])
async def test_malformed_requests_leave_no_canary_anywhere(tmp_path, monkeypatch, debug: bool) -> None:
    if debug:
        monkeypatch.setenv("NOOR_DEBUG", "1")
    processes = DaemonProcesses(tmp_path)
    try:
        daemon = await processes.start(SIMULATOR_CONFIG, log_level="debug" if debug else "info")
        key = await daemon.create_key("http-layer@example.com")
        canary = _canary()
        answers = {}
        for name, raw in _malformed(canary, key).items():
            answers[name] = await _exchange(daemon.url, raw)
        assert await daemon.stop() == 0
    finally:
        for started in processes.started:
            if started.process.returncode is None:
                started.kill9()
    for name, answer in answers.items():
        head, _, body = answer.partition(b"\r\n\r\n")
        assert canary.encode() not in answer, f"the answer to a {name} echoes the request"
        status = int(head.split()[1])
        assert status in (400, 413, 431), (name, head)
        assert b"application/json" in head.lower(), (name, head)
        document = json.loads(body)
        assert "error" in document and document["error"]["message"], (name, document)
    assert int(answers["oversized header"].split()[1]) == 431
    stderr = daemon.stderr()
    assert b"refused an HTTP request" in stderr  # the capture works: the refusals were logged, by type
    assert canary.encode() not in stderr, "a log line holds the request's bytes"
    for file in files_under(daemon.data_dir):
        assert canary.encode() not in file.read_bytes(), f"{file} holds the request's bytes"
