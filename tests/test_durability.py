"""A call the client saw complete survives `kill -9` of the daemon right after it.

The daemon runs as a real subprocess (`noor daemon`); the test kills it with SIGKILL the
moment the SDK returns, then opens the SQLite file itself.
"""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from daemon_process import DaemonProcesses
from gateway_helpers import anthropic_client, openai_client
from standin_upstream import reply_text, standin_config


@pytest.fixture
async def processes(tmp_path):
    started = DaemonProcesses(tmp_path / "proc")
    yield started
    await started.close()


def ledger_rows(database) -> list[dict]:
    db = sqlite3.connect(database)
    try:
        db.row_factory = sqlite3.Row
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return [dict(r) for r in db.execute("SELECT * FROM usage_events ORDER BY id")]
    finally:
        db.close()


async def test_kill_9_right_after_a_response_keeps_its_row(standin, processes, tmp_path):
    config = standin_config(standin)
    data = tmp_path / "durable-data"

    # 1. A non-streaming call, then SIGKILL the instant the SDK has the answer.
    daemon = await processes.start(config, data_dir=data)
    key = await daemon.create_key("durable@example.com")
    async with openai_client(daemon, key) as client:
        reply = await client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "keep me"}])
        daemon.kill9()
    assert reply.choices[0].message.content == reply_text("keep me")
    assert await daemon.wait() == -9
    non_stream_usage = standin.last.usage

    rows = ledger_rows(data / "ledger.sqlite3")
    assert [(r["endpoint"], r["status"], r["stream"]) for r in rows] == [("chat/completions", 200, 0)]
    assert (rows[0]["prompt_tokens"], rows[0]["completion_tokens"]) == non_stream_usage

    # 2. The same data dir after the crash: the key still works; a streamed call, read to its end, then SIGKILL.
    daemon = await processes.start(config, data_dir=data)
    async with openai_client(daemon, key) as client:
        stream = await client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "stream and keep me"}], stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        daemon.kill9()
    assert text == reply_text("stream and keep me")
    await daemon.wait()
    stream_usage = standin.last.usage

    # 3. And an Anthropic stream, the same way.
    daemon = await processes.start(config, data_dir=data)
    async with anthropic_client(daemon, key) as client:
        async with client.messages.stream(
            model="claude-test", max_tokens=64, messages=[{"role": "user", "content": "anthropic keep me"}]
        ) as s:
            final = await s.get_final_message()
        daemon.kill9()
    await daemon.wait()
    assert final.content[0].text == reply_text("anthropic keep me")

    rows = ledger_rows(data / "ledger.sqlite3")
    assert [(r["endpoint"], r["status"], r["stream"]) for r in rows] == [
        ("chat/completions", 200, 0),
        ("chat/completions", 200, 1),
        ("messages", 200, 1),
    ]
    assert (rows[1]["prompt_tokens"], rows[1]["completion_tokens"]) == stream_usage
    assert (rows[2]["prompt_tokens"], rows[2]["completion_tokens"]) == standin.last.usage
    assert all(r["estimated"] == 0 and r["key_id"] for r in rows)


async def test_a_slow_commit_holds_back_the_end_of_the_response(standin, processes, tmp_path):
    """The final bytes wait for the commit: with the ledger's write lock held by someone else,
    the client cannot finish reading until it is released, and a kill -9 right after still finds the row."""
    config = standin_config(standin)
    data = tmp_path / "slow-disk"
    for streamed in (False, True):
        daemon = await processes.start(config, data_dir=data)
        key = await daemon.create_key("slow-disk@example.com")
        blocker = sqlite3.connect(data / "ledger.sqlite3", isolation_level=None, timeout=5)
        blocker.execute("BEGIN IMMEDIATE")  # the daemon's next commit must wait for this
        released = asyncio.Event()

        async def release_later(blocker=blocker):
            await asyncio.sleep(0.4)
            blocker.execute("COMMIT")
            blocker.close()
            released.set()

        releaser = asyncio.create_task(release_later())
        async with openai_client(daemon, key) as client:
            messages = [{"role": "user", "content": f"slow disk {streamed}"}]
            if streamed:
                stream = await client.chat.completions.create(model="gpt-test", messages=messages, stream=True)
                async for _ in stream:
                    pass
            else:
                await client.chat.completions.create(model="gpt-test", messages=messages)
            finished_after_release = released.is_set()
            daemon.kill9()
        await daemon.wait()
        await releaser
        assert finished_after_release, "the response ended before its usage row could be committed"
        rows = ledger_rows(data / "ledger.sqlite3")
        assert (rows[-1]["stream"], rows[-1]["status"]) == (int(streamed), 200)
        assert (rows[-1]["prompt_tokens"], rows[-1]["completion_tokens"]) == standin.last.usage
