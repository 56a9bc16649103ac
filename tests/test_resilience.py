"""The daemon under stress: kill -9 under load, SIGTERM during streams, hot reload, a ledger that cannot write."""

from __future__ import annotations

import asyncio
import signal
import sqlite3

import aiohttp
import pytest
from daemon_process import DaemonProcesses

from noor_daemon.state import LEDGER, LIMITER
from tests.conftest import SIMULATOR_CONFIG

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
async def processes(tmp_path):
    started = DaemonProcesses(tmp_path / "proc")
    yield started
    await started.close()


def simulator_config(latency_scale: float, extra: str = "") -> str:
    return SIMULATOR_CONFIG.replace("latency_scale = 0", f"latency_scale = {latency_scale}") + extra


def open_ledger(path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    return db


async def test_kill_9_under_load_loses_no_completed_call_and_doubles_none(processes, tmp_path):
    data = tmp_path / "data"
    daemon = await processes.start(simulator_config(0.05), data_dir=data)
    keys = [await daemon.create_key(f"worker{i}@example.com") for i in range(50)]
    per_key = 4  # 200 calls in flight at once
    completed = dict.fromkeys(keys, 0)
    sent = dict.fromkeys(keys, 0)

    async def worker(session: aiohttp.ClientSession, key: str, stream: bool) -> None:
        body = {"model": "sim-gpt", "messages": MESSAGES, "stream": stream}
        while True:
            sent[key] += 1
            try:
                async with session.post(
                    f"{daemon.base_url}/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
                ) as response:
                    payload = await response.read()
                    if response.status == 200 and (not stream or payload.rstrip().endswith(b"data: [DONE]")):
                        completed[key] += 1
            except aiohttp.ClientError:
                return

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        workers = [
            asyncio.create_task(worker(session, key, (i + j) % 2 == 0)) for i, key in enumerate(keys) for j in range(per_key)
        ]
        while sum(completed.values()) < 600:
            await asyncio.sleep(0.02)
        daemon.kill9()
        await asyncio.wait_for(asyncio.gather(*workers), 10)
    assert await daemon.wait() == -9

    db = open_ledger(data / "ledger.sqlite3")
    try:
        key_ids = dict(db.execute("SELECT key_hash, id FROM api_keys"))
        import hashlib

        rows = dict(db.execute("SELECT key_id, count(*) FROM usage_events WHERE status = 200 GROUP BY key_id"))
    finally:
        db.close()
    for key in keys:
        in_ledger = rows.get(key_ids[hashlib.sha256(key.encode()).hexdigest()], 0)
        # Every call its clients saw complete is there; at most the ones in flight besides.
        assert completed[key] <= in_ledger <= completed[key] + per_key, (completed[key], in_ledger)
        assert in_ledger <= sent[key]

    restarted = await processes.start(simulator_config(0), data_dir=data)
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{restarted.base_url}/chat/completions", json={"model": "sim-gpt", "messages": MESSAGES},
            headers={"Authorization": f"Bearer {keys[0]}"},
        ) as response:
            assert response.status == 200


async def test_sigterm_lets_running_streams_finish_and_exits_0(processes, tmp_path):
    daemon = await processes.start(simulator_config(1.0), data_dir=tmp_path / "data")
    key = await daemon.create_key("graceful@example.com")
    started = asyncio.Event()
    bodies: list[bytes] = []

    async def stream(session: aiohttp.ClientSession) -> None:
        async with session.post(
            f"{daemon.base_url}/chat/completions",
            json={"model": "sim-gpt", "messages": MESSAGES, "stream": True},
            headers={"Authorization": f"Bearer {key}"},
        ) as response:
            chunks = []
            async for chunk in response.content.iter_any():
                chunks.append(chunk)
                started.set()
            bodies.append(b"".join(chunks))

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(stream(session)) for _ in range(8)]
        await started.wait()
        daemon.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
    assert await daemon.wait(20) == 0
    assert len(bodies) == 8 and all(b.rstrip().endswith(b"data: [DONE]") for b in bodies)
    db = open_ledger(daemon.database)
    try:
        statuses = [r[0] for r in db.execute("SELECT status FROM usage_events")]
    finally:
        db.close()
    assert statuses == [200] * 8


async def test_sighup_and_admin_reload_swap_the_config_and_refuse_a_bad_one(processes, tmp_path):
    daemon = await processes.start(simulator_config(0), data_dir=tmp_path / "data", name="hot")
    config_file = tmp_path / "proc" / "hot.toml"
    key = await daemon.create_key("reload@example.com")

    async def models(session: aiohttp.ClientSession) -> set[str]:
        async with session.get(f"{daemon.base_url}/models", headers={"Authorization": f"Bearer {key}"}) as r:
            return {m["id"] for m in (await r.json())["data"]}

    async with aiohttp.ClientSession() as session:
        assert "sim-new" not in await models(session)
        config_file.write_text(
            simulator_config(0, '\n[[models]]\nname = "sim-new"\nroutes = [{ provider = "simulator" }]\n')
        )
        daemon.process.send_signal(signal.SIGHUP)
        for _ in range(100):
            if "sim-new" in await models(session):
                break
            await asyncio.sleep(0.05)
        assert "sim-new" in await models(session)

        config_file.write_text(simulator_config(0, "\n[[models]]\nname = 5\n"))
        daemon.process.send_signal(signal.SIGHUP)
        async with session.post(f"{daemon.url}/admin/v1/config/reload", headers=daemon.admin_headers) as r:
            refused = await r.json()
            assert r.status == 400 and refused["error"]["code"] == "config_invalid"
            assert "hot.toml:" in refused["error"]["message"]  # file and line, for a person
        assert "sim-new" in await models(session)  # the old config keeps serving

        config_file.write_text(simulator_config(0))
        async with session.post(f"{daemon.url}/admin/v1/config/reload", headers=daemon.admin_headers) as r:
            assert r.status == 200 and (await r.json())["reloaded"] is True
        assert "sim-new" not in await models(session)
    assert b"config reload refused" in daemon.stderr()


async def _writer_pragma(daemon, pragma: str) -> None:
    """Limit the ledger's writer connections: the way to make SQLite itself refuse a write."""
    await daemon.app[LEDGER].pragma(pragma)


async def _chat_status(session: aiohttp.ClientSession, daemon, key: str) -> int:
    async with session.post(
        f"{daemon.base_url}/chat/completions", json={"model": "sim-gpt", "messages": MESSAGES},
        headers={"Authorization": f"Bearer {key}"},
    ) as response:
        await response.read()
        return response.status


async def _fill_the_disk(daemon) -> None:
    ledger = daemon.app[LEDGER]
    (pages,) = await ledger.fetchone("PRAGMA page_count")
    await _writer_pragma(daemon, f"PRAGMA max_page_count = {pages}")


async def _wait_healthy(session, daemon) -> None:
    for _ in range(200):
        async with session.get(f"{daemon.url}/healthz") as response:
            if response.status == 200:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("the ledger did not recover")


@pytest.mark.sqlite_file
async def test_a_full_disk_answers_503_then_recovers_by_itself(start_daemon):
    daemon = await start_daemon()
    key = await daemon.create_key()
    async with aiohttp.ClientSession() as session:
        assert await _chat_status(session, daemon, key) == 200
        await _fill_the_disk(daemon)
        statuses = []
        while 503 not in statuses and len(statuses) < 2000:  # the last free page fills up
            statuses.append(await _chat_status(session, daemon, key))
        assert statuses[-1] == 503
        statuses += [await _chat_status(session, daemon, key) for _ in range(3)]
        assert statuses[-3:] == [503] * 3  # refused up front now: no unmetered call is served
        async with session.get(f"{daemon.url}/healthz") as response:
            assert response.status == 503 and (await response.json())["ledger"] == "unwritable"
        await _writer_pragma(daemon, "PRAGMA max_page_count = 1073741823")  # room again
        await _wait_healthy(session, daemon)
        assert await _chat_status(session, daemon, key) == 200
    rows = await daemon.usage_rows()
    assert len(rows) == 1 + len([s for s in statuses if s in (200, 503)]) + 1
    assert all(r["status"] in (200, 503) for r in rows)


@pytest.mark.sqlite_file
async def test_a_locked_database_answers_503_and_recovers(start_daemon):
    daemon = await start_daemon()
    key = await daemon.create_key()
    await _writer_pragma(daemon, "PRAGMA busy_timeout = 100")
    # Another process's lock, taken off the event loop so the daemon's own transactions can end.
    locker = sqlite3.connect(daemon.data_dir / "ledger.sqlite3", timeout=10, check_same_thread=False)
    async with aiohttp.ClientSession() as session:
        await asyncio.to_thread(locker.execute, "BEGIN EXCLUSIVE")
        try:
            statuses = [await _chat_status(session, daemon, key) for _ in range(5)]
        finally:
            locker.rollback()
            locker.close()
        assert statuses[0] == 503 and set(statuses) == {503}
        await _wait_healthy(session, daemon)
        assert await _chat_status(session, daemon, key) == 200


@pytest.mark.sqlite_file
async def test_fail_open_serves_during_a_ledger_outage_and_writes_the_rows_later(start_daemon):
    daemon = await start_daemon(SIMULATOR_CONFIG + "\n[ledger]\nfail_open = true\n")
    key = await daemon.create_key()
    async with aiohttp.ClientSession() as session:
        await _fill_the_disk(daemon)
        statuses = []
        while daemon.app[LEDGER].healthy and len(statuses) < 2000:
            statuses.append(await _chat_status(session, daemon, key))
        statuses += [await _chat_status(session, daemon, key) for _ in range(10)]
        assert not daemon.app[LEDGER].healthy
        assert set(statuses) == {200}
        await _writer_pragma(daemon, "PRAGMA max_page_count = 1073741823")
        await _wait_healthy(session, daemon)
    rows = await daemon.usage_rows()
    assert [r["status"] for r in rows] == [200] * len(statuses)


async def test_oversized_headers_are_refused_before_any_work(start_daemon):
    daemon = await start_daemon(SIMULATOR_CONFIG + "\n[server]\nmax_header_bytes = 2048\n")
    key = await daemon.create_key()
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{daemon.base_url}/chat/completions",
            json={"model": "sim-gpt", "messages": MESSAGES},
            headers={"Authorization": f"Bearer {key}", "X-Padding": "p" * 4096},
        ) as response:
            assert response.status in (400, 431)
        assert await _chat_status(session, daemon, key) == 200
    assert len(await daemon.usage_rows()) == 1  # the refused request never reached the proxy


async def test_a_client_that_stops_reading_is_cut_off_and_frees_its_slot(start_daemon, monkeypatch):
    """Backpressure: the stream waits for a slow reader; one that reads nothing is dropped."""
    from aiohttp import web

    event = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"x" * 8000 + b'"}}]}\n\n'

    async def endless(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for _ in range(5000):  # 40 MB if anyone read it all
            await response.write(event)
        return response

    upstream = web.Application()
    upstream.router.add_post("/v1/chat/completions", endless)
    runner = web.AppRunner(upstream)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    monkeypatch.setenv("FLOOD_KEY", "x")
    config = f"""
[server]
client_write_timeout = 0.5
[[providers]]
name = "flood"
kind = "openai"
base_url = "http://127.0.0.1:{port}/v1"
api_key = "env:FLOOD_KEY"
[[models]]
name = "flood"
routes = [{{ provider = "flood", model = "flood" }}]
[plans.free]
concurrent_requests = 5
"""
    try:
        daemon = await start_daemon(config)
        key = await daemon.create_key()
        body = b'{"model": "flood", "messages": [], "stream": true}'
        reader, writer = await asyncio.open_connection("127.0.0.1", int(daemon.url.rsplit(":", 1)[1]))
        writer.transport.set_write_buffer_limits(0)
        sock = writer.get_extra_info("socket")
        import socket as socket_module

        sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        reader._transport.pause_reading()  # type: ignore[attr-defined]  # read nothing more, keep the socket open
        for _ in range(200):
            rows = await daemon.usage_rows()
            if rows:
                break
            await asyncio.sleep(0.05)
        assert rows and rows[0]["status"] == 499
        account_id = rows[0]["account_id"]
        assert daemon.app[LIMITER].in_flight("account", account_id) == 0
        writer.transport.abort()
    finally:
        await runner.cleanup()
