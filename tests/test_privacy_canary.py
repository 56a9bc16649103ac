"""Message content is never logged or stored: a canary proves it.

A unique canary travels in prompts, comes back in completions (the stand-in echoes it),
and sits in an upstream error body. After a run through every endpoint and every error
path, it must be nowhere under the data dir (every file, read as bytes, -wal and -shm
included), in no log record at any level, and on no output stream. The plaintext API
key must be nowhere at rest either, while its SHA-256 is in the database.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import uuid
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest
from daemon_process import DaemonProcesses
from gateway_helpers import anthropic_client, openai_client, wait_for_rows
from standin_upstream import standin_config

from noor_daemon.state import LEDGER

CLIENT_LOGGERS = ("openai", "anthropic", "httpx", "httpcore")


def new_canary() -> str:
    return f"CANARY{uuid.uuid4().hex}"


def needles(canary: str) -> list[bytes]:
    """The canary and pieces of it, in the encodings a careless writer might use."""
    core = canary.removeprefix("CANARY")
    return [canary.encode(), core.encode(), core[-16:].encode(), canary.encode("utf-16-le")]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def assert_absent(where: str, blob: bytes, canary: str) -> None:
    for needle in needles(canary):
        assert needle not in blob, f"the canary was found in {where}"


async def drive_everything(daemon, standin, key: str, canary: str) -> None:
    """Every endpoint and every error path, each carrying the canary in its content."""
    prompt = f"my secret is {canary} keep it"
    messages = [{"role": "system", "content": f"system {canary}"}, {"role": "user", "content": prompt}]
    async with openai_client(daemon, key) as client:
        reply = await client.chat.completions.create(model="gpt-test", messages=messages)
        assert canary in reply.choices[0].message.content  # the canary really travelled both ways
        for options in ({}, {"stream_options": {"include_usage": True}}):
            stream = await client.chat.completions.create(model="gpt-test", messages=messages, stream=True, **options)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            assert canary in text
        await client.completions.create(model="gpt-test", prompt=prompt)
        stream = await client.completions.create(model="gpt-test", prompt=prompt, stream=True)
        async for _ in stream:
            pass
        await client.embeddings.create(model="embed-test", input=[prompt, canary])
        result = await client.responses.create(model="gpt-test", input=prompt, instructions=canary)
        assert canary in result.output_text
        stream = await client.responses.create(model="gpt-test", input=prompt, stream=True)
        async for _ in stream:
            pass
        # Error paths with the canary in the request or in the upstream's error body.
        standin.fail(500, f"upstream exploded while reading {canary}")
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="gpt-test", messages=messages)
        assert canary in caught.value.body["message"]  # passed to the client...
        standin.fail(429, f"slow down {canary}")
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="gpt-test", messages=messages, stream=True)
        standin.close_mid_stream(after=4)
        stream = await client.chat.completions.create(model="gpt-test", messages=messages, stream=True)
        with pytest.raises(openai.APIError):
            async for _ in stream:
                pass
        standin.no_usage()
        await client.chat.completions.create(model="gpt-test", messages=messages)
        standin.reset()
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="no-such-model", messages=messages)
        with pytest.raises(openai.BadRequestError):
            await client.chat.completions.create(model="gpt-test", messages=messages, extra_body={"stream": canary})
        with pytest.raises(openai.BadRequestError):
            await client.post("/chat/completions", body={"messages": messages}, cast_to=object)
        # A client that walks away mid-stream.
        standin.stream_delay = 0.02
        stream = await client.chat.completions.create(model="gpt-test", messages=messages, stream=True)
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                break
        await stream.close()
        standin.reset()
    async with openai_client(daemon, key + "x") as client:  # a bad key carrying content
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="gpt-test", messages=messages)

    async with anthropic_client(daemon, key) as client:
        a_messages = [{"role": "user", "content": prompt}]
        message = await client.messages.create(model="claude-test", max_tokens=64, system=canary, messages=a_messages)
        assert canary in message.content[0].text
        async with client.messages.stream(model="claude-test", max_tokens=64, messages=a_messages) as s:
            assert canary in "".join([t async for t in s.text_stream])
        await client.messages.count_tokens(model="claude-test", messages=a_messages)
        standin.fail(529, f"overloaded by {canary}")
        with pytest.raises(anthropic.APIStatusError) as caught_a:
            await client.messages.create(model="claude-test", max_tokens=64, messages=a_messages, stream=True)
        assert canary in caught_a.value.body["error"]["message"]
        standin.close_mid_stream(after=4)
        stream = await client.messages.create(model="claude-test", max_tokens=64, messages=a_messages, stream=True)
        with pytest.raises(anthropic.APIStatusError):
            async for _ in stream:
                pass
        standin.reset()

    async with aiohttp.ClientSession() as http:  # malformed JSON with the canary in it
        for path in ("/v1/chat/completions", "/v1/messages"):
            async with http.post(
                daemon.url + path,
                data=b'{"model": "gpt-test", "messages": [{"content": "' + canary.encode(),
                headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            ) as r:
                assert r.status == 400
                assert canary.encode() not in await r.read()

    assert any(canary.encode() in r.raw for r in standin.requests), "the canary never reached the upstream"


def check_data_dir(data_dir: Path, canary: str, key: str, *, ledger_inside: bool = True) -> list[Path]:
    files = files_under(data_dir)
    names = {f.name for f in files}
    assert ("ledger.sqlite3" in names) is ledger_inside, names
    found_prefix = False
    for file in files:
        blob = file.read_bytes()
        check_blob(str(file), blob, canary, key)
        found_prefix |= key[:14].encode() in blob
    assert found_prefix or not ledger_inside, "the scan should find the key's display prefix, which is stored on purpose"
    return files


def check_blob(where: str, blob: bytes, canary: str, key: str) -> None:
    assert_absent(where, blob, canary)
    assert key.encode() not in blob, f"the plaintext API key is stored in {where}"
    assert key[8:].encode() not in blob, f"the API key's secret part is stored in {where}"


async def postgres_dump(ledger) -> bytes:
    """Every row of every table of a PostgreSQL ledger, as `COPY … TO STDOUT` writes it (a dump's content)."""
    chunks: list[bytes] = []

    async def keep(chunk: bytes) -> None:
        chunks.append(chunk)

    async with ledger.pool.acquire() as conn:
        for (table,) in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'"):
            await conn.copy_from_query(f'SELECT * FROM "{table}"', output=keep)
    return b"".join(chunks)


def assert_hash_stored(database: Path, key: str) -> None:
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        hashes = [row[0] for row in db.execute("SELECT key_hash FROM api_keys")]
    finally:
        db.close()
    assert hashlib.sha256(key.encode()).hexdigest() in hashes


async def test_canary_is_nowhere_in_process(standin, start_daemon, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    canary = new_canary()
    data = tmp_path / "canary-data"
    daemon = await start_daemon(standin_config(standin), data_dir=data)
    key = await daemon.create_key("canary@example.com")

    await drive_everything(daemon, standin, key, canary)
    rows = await wait_for_rows(daemon, 24)
    assert len(rows) == 24 and {r["status"] for r in rows} == {200, 400, 401, 404, 429, 499, 500, 502, 529}

    ledger = daemon.app[LEDGER]
    if ledger.engine == "postgresql":  # the rows live in the server: every table's content, as a dump holds it
        dump = await postgres_dump(ledger)
        check_blob("the PostgreSQL ledger", dump, canary, key)
        assert key[:14].encode() in dump and hashlib.sha256(key.encode()).hexdigest().encode() in dump
        await daemon.runner.cleanup()
        check_data_dir(data, canary, key, ledger_inside=False)
    else:
        check_data_dir(data, canary, key)
        assert (data / "ledger.sqlite3-wal").exists(), "the WAL is part of what must be clean"
        assert_hash_stored(data / "ledger.sqlite3", key)

        await daemon.runner.cleanup()  # a clean shutdown checkpoints the WAL: look again
        check_data_dir(data, canary, key)
        assert_hash_stored(data / "ledger.sqlite3", key)

    # The test's own SDK clients log their requests at DEBUG; they are the caller, not the daemon.
    daemon_records = [r for r in caplog.records if not r.name.startswith(CLIENT_LOGGERS)]
    for record in daemon_records:
        text = f"{record.name} {record.getMessage()} {record.exc_text or ''} {record.args!r}"
        assert_absent(f"log record {record.name}:{record.levelname}", text.encode(), canary)
        assert key not in text
        assert "canary@example.com" not in text, f"an account's email is in the log ({record.name})"
    out, err = capfd.readouterr()
    assert_absent("stdout/stderr", (out + err).encode(), canary)
    assert key not in out + err


@pytest.fixture
async def processes(tmp_path):
    started = DaemonProcesses(tmp_path / "proc")
    yield started
    await started.close()


async def test_canary_is_nowhere_with_a_debug_logging_daemon_process(standin, processes, tmp_path, monkeypatch):
    """`noor daemon --log-level debug` as a real process: its whole stderr, data dir and temp dir stay clean."""
    canary = new_canary()
    temp = tmp_path / "daemon-tmp"
    temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(temp))
    data = tmp_path / "proc-data"
    daemon = await processes.start(standin_config(standin), data_dir=data, log_level="debug")
    key = await daemon.create_key("canary-proc@example.com")

    await drive_everything(daemon, standin, key, canary)
    assert await daemon.stop() == 0

    stderr = daemon.stderr()
    assert b"listening on" in stderr  # the capture works
    assert_absent("the daemon's stderr", stderr, canary)
    assert key.encode() not in stderr
    assert b"canary-proc@example.com" not in stderr, "an account's email is in the debug log"
    check_data_dir(data, canary, key)
    assert_hash_stored(data / "ledger.sqlite3", key)
    for file in files_under(temp):
        assert_absent(f"temp file {file}", file.read_bytes(), canary)
    assert os.stat(data).st_mode & 0o077 == 0, "the data dir is private to its owner"
