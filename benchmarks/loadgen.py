"""A closed-loop load generator: fixed concurrency, fixed duration, warm-up excluded.

It speaks raw HTTP/1.1 over keep-alive connections (an asyncio Protocol per connection, one
pre-built request, a minimal response parser for Content-Length and chunked bodies), so that
it costs a few tens of microseconds per request and is not what limits the figures. It runs
in its own process (`LoadGenerator` starts `python -m benchmarks.loadgen --serve` and sends it
one JSON job per line), with uvloop when it is installed.

A request counts when it completes inside the measurement window (after the warm-up);
throughput is those requests over the window's length. The CPU time of the processes under
test is read from /proc exactly at the window's edges, so CPU per request is CPU in the
window over requests completed in the window.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

# Percentiles kept for the table and the chart (the raw samples stay in the load process).
QUANTILES = (0, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100)
GRACE_SECONDS = 20.0
"""How long after the window a request may still be waiting before its connection is cut."""
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def percentile(values: list[float], q: float, *, presorted: bool = False) -> float | None:
    """Nearest-rank percentile of `values`."""
    if not values:
        return None
    ordered = values if presorted else sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


# -- CPU and memory of other processes (Linux /proc) -------------------------------------


def process_tree(pid: int) -> list[int]:
    """`pid` and every descendant (LiteLLM or a worker manager may fork)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
                todo.extend(int(c) for c in children)
        except OSError:
            continue
    return found


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads) and its live descendants."""
    total, seen = 0.0, False
    for each in process_tree(pid):
        try:
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seen = True
        total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
    return total if seen else None


def cpu_split(pid: int) -> dict[str, float] | None:
    """CPU seconds of the process itself (no descendants): user, system, and its main thread's user + system (the
    event loop's, for the daemon and the proxies)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        thread = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return {"user": int(fields[11]) / _CLK_TCK, "system": int(fields[12]) / _CLK_TCK,
            "main_thread": (int(thread[11]) + int(thread[12])) / _CLK_TCK}


def rss_mb(pid: int, field_name: str = "VmRSS") -> float | None:
    """Resident memory of a process and its descendants, in MB (VmHWM: the peak)."""
    total, seen = 0.0, False
    for each in process_tree(pid):
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith(field_name + ":"):
                    total += int(line.split()[1]) / 1024
                    seen = True
        except OSError:
            continue
    return total if seen else None


# -- the HTTP/1.1 client ---------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection: send a request, parse its response, resolve a future.

    `result` is (status, seconds to the first body byte or None).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = asyncio.get_running_loop().create_future()
        self._reset()

    def _reset(self) -> None:
        self.state = 0  # 0 headers, 1 content-length body, 2 chunk size line, 3 chunk data, 4 chunk trailer, 5 until close
        self.status = 0
        self.remaining = 0
        self.first_byte: float | None = None
        self.keep_alive = True

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if self.waiter is not None and not self.waiter.done():
            if self.state == 5:
                self.waiter.set_result((self.status, self.first_byte, False))
            else:
                self.waiter.set_exception(ConnectionError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    def request(self, data: bytes) -> asyncio.Future:
        self._reset()
        self.buf.clear()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return self.waiter

    def _body(self, size: int) -> None:
        if size and self.first_byte is None:
            self.first_byte = time.perf_counter()

    def _done(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.status, self.first_byte, self.keep_alive))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        while True:
            state = self.state
            if state == 0:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    break
                head = bytes(buf[pos:end]).lower()
                pos = end + 4
                self.status = int(head[9:12])
                chunked = b"transfer-encoding: chunked" in head
                self.keep_alive = b"connection: close" not in head
                if chunked:
                    self.state = 2
                else:
                    at = head.find(b"content-length:")
                    if at >= 0:
                        line_end = head.find(b"\r\n", at)
                        self.remaining = int(head[at + 15 : line_end if line_end >= 0 else None])
                        self.state = 1
                        if self.remaining == 0:
                            self._done()
                            break
                    else:
                        self.state = 5
                        self.keep_alive = False
            elif state == 1:
                take = min(self.remaining, len(buf) - pos)
                if take <= 0:
                    break
                self._body(take)
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self._done()
                    break
            elif state == 2:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                size = int(bytes(buf[pos:end]).split(b";", 1)[0], 16)
                pos = end + 2
                if size == 0:
                    self.state = 4
                else:
                    self.remaining = size + 2  # the data and its CRLF
                    self.state = 3
            elif state == 3:
                take = min(self.remaining, len(buf) - pos)
                if take <= 0:
                    break
                self._body(take)
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self.state = 2
            elif state == 4:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                empty = end == pos
                pos = end + 2
                if empty:  # the blank line after the last chunk; anything else is a trailer
                    self._done()
                    break
            else:  # 5: delimited by close
                if len(buf) > pos:
                    self._body(len(buf) - pos)
                pos = len(buf)
                break
        del buf[:pos]


@dataclass
class Job:
    url: str
    body: bytes
    headers: dict[str, str]
    concurrency: int
    duration: float
    warmup: float
    max_requests: int | None = None
    cpu_pids: list[int] = field(default_factory=list)
    spread: list[str] = field(default_factory=list)
    """More servers of the same kind: connection i goes to server i mod n, as behind a load balancer."""


def build_request(job: Job, url: str | None = None) -> tuple[str, int, bytes]:
    parts = urlsplit(url or job.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"Host": f"{host}:{port}", "Content-Type": "application/json", "Content-Length": str(len(job.body)), **job.headers}
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return host, port, head.encode("latin-1") + job.body


async def run_job(job: Job) -> dict:
    loop = asyncio.get_running_loop()
    targets = [build_request(job, url) for url in (job.url, *job.spread)]
    latencies: list[float] = []
    ttfts: list[float] = []
    statuses: dict[int, int] = {}
    counters = {"completed": 0, "errors": 0, "total": 0, "started": 0, "connect_errors": 0}
    cpu_marks: dict[str, dict[int, float | None]] = {}
    split_marks: dict[str, dict[int, dict[str, float] | None]] = {}
    own_cpu: dict[str, float] = {}

    connections: set[_Connection] = set()

    async def connect(target: int) -> _Connection:
        host, port, _ = targets[target]
        async with asyncio.timeout(10):
            _, proto = await loop.create_connection(_Connection, host, port)
        connections.add(proto)
        proto.closed.add_done_callback(lambda _f: connections.discard(proto))
        return proto

    async def first_connection(target: int) -> _Connection | None:
        for _ in range(50):
            try:
                return await connect(target)
            except (OSError, TimeoutError):
                counters["connect_errors"] += 1
                await asyncio.sleep(0.02)
        return None

    # Every connection is open before the clock starts: a burst of connects (SYN retries when a
    # server's accept backlog overflows) belongs to neither the warm-up nor the window.
    ready = list(await asyncio.gather(*(first_connection(i % len(targets)) for i in range(job.concurrency))))

    started = time.perf_counter()
    measure_from = started + job.warmup
    stop_at = measure_from + job.duration

    def mark(name: str) -> None:
        own_cpu[name] = time.process_time()
        cpu_marks[name] = {pid: cpu_seconds(pid) for pid in job.cpu_pids}
        split_marks[name] = {pid: cpu_split(pid) for pid in job.cpu_pids}

    loop.call_later(job.warmup, mark, "start")
    end_handle = loop.call_later(job.warmup + job.duration, mark, "end")

    def abort() -> None:
        # A request still unanswered long after the window: the server hangs. Cut every
        # connection so the waiting workers fail (counted as errors) and the job ends.
        counters["aborted"] = sum(1 for c in connections if c.waiter is not None and not c.waiter.done())
        for conn in list(connections):
            if conn.transport is not None:
                conn.transport.abort()

    loop.call_later(job.warmup + job.duration + GRACE_SECONDS, abort)

    async def worker(conn: _Connection | None, target: int) -> None:
        request = targets[target][2]
        try:
            while True:
                begin = time.perf_counter()
                if begin >= stop_at:
                    return
                if job.max_requests is not None:
                    if counters["started"] >= job.max_requests:
                        return
                    counters["started"] += 1
                ok, status, first = False, 0, None
                try:
                    if conn is None or conn.transport is None or conn.transport.is_closing():
                        conn = await connect(target)
                    status, first, keep = await conn.request(request)
                    ok = status == 200
                    if not keep:
                        conn.transport.close()
                        conn = None
                except (ConnectionError, OSError, ValueError, TimeoutError):
                    if conn is not None and conn.transport is not None:
                        conn.transport.close()
                    conn = None
                    counters["connect_errors"] += 1
                    if time.perf_counter() < stop_at:
                        await asyncio.sleep(0.01)
                end = time.perf_counter()
                counters["total"] += 1
                if not ok:
                    counters["errors_total"] = counters.get("errors_total", 0) + 1
                if measure_from <= end <= stop_at or job.max_requests is not None:
                    # Throughput counts what completed in the window; latency, what also began in it.
                    counters["completed"] += 1
                    statuses[status] = statuses.get(status, 0) + 1
                    if not ok:
                        counters["errors"] += 1
                    elif begin >= measure_from:
                        latencies.append((end - begin) * 1000)
                        if first is not None:
                            ttfts.append((first - begin) * 1000)
        finally:
            if conn is not None and conn.transport is not None:
                conn.transport.close()

    await asyncio.gather(*(worker(conn, i % len(targets)) for i, conn in enumerate(ready)))
    finished = time.perf_counter()
    if "end" not in cpu_marks:  # max_requests ended it before the window did
        end_handle.cancel()
        mark("end")
        seconds = finished - measure_from
    else:
        seconds = job.duration
    if "start" not in cpu_marks:
        mark("start")
    latencies.sort()
    ttfts.sort()
    cpu = {}
    for pid in job.cpu_pids:
        a, b = cpu_marks["start"].get(pid), cpu_marks["end"].get(pid)
        cpu[str(pid)] = (b - a) if a is not None and b is not None else None
    split = {}
    for pid in job.cpu_pids:
        a, b = split_marks["start"].get(pid), split_marks["end"].get(pid)
        split[str(pid)] = {k: b[k] - a[k] for k in a} if a is not None and b is not None else None
    return {
        "requests": counters["completed"],
        "errors": counters["errors"] + counters.get("aborted", 0),  # a request cut off unanswered failed
        "errors_total": counters.get("errors_total", 0),
        "connect_errors": counters["connect_errors"],
        "aborted": counters.get("aborted", 0),
        "total": counters["total"],
        "seconds": seconds,
        "statuses": {str(k): v for k, v in statuses.items()},
        "latency_ms": {str(q): percentile(latencies, q, presorted=True) for q in QUANTILES},
        "ttft_ms": {str(q): percentile(ttfts, q, presorted=True) for q in QUANTILES} if ttfts else None,
        "mean_ms": sum(latencies) / len(latencies) if latencies else None,
        "cpu_s": cpu,
        "cpu_split_s": split,
        "loadgen_cpu_s": own_cpu["end"] - own_cpu["start"],
    }


# -- the separate process and its client ---------------------------------------------------


def die_with_parent() -> None:
    """Run in a child between fork and exec: SIGTERM it when its parent dies (Linux)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _serve() -> None:
    try:
        import uvloop

        uvloop.install()
        loop_name = "uvloop"
    except ImportError:
        loop_name = "asyncio"
    sys.stdout.write(json.dumps({"ready": True, "loop": loop_name}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        spec = json.loads(line)
        spec["body"] = spec["body"].encode("latin-1")
        try:
            result = asyncio.run(run_job(Job(**spec)))
        except Exception as exc:  # reported to the caller, which fails the run
            result = {"failed": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


class LoadGenerator:
    """The load process, kept for the whole run (one start, many jobs)."""

    def __init__(self) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.loadgen", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
            preexec_fn=die_with_parent if sys.platform == "linux" else None,
        )
        hello = json.loads(self.popen.stdout.readline() or "{}")
        if not hello.get("ready"):
            raise RuntimeError("the load generator did not start")
        self.loop = hello["loop"]

    def run(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        *,
        concurrency: int,
        duration: float,
        warmup: float,
        max_requests: int | None = None,
        cpu_pids: list[int] = (),
        spread: list[str] = (),
    ) -> dict:
        spec = {
            "url": url, "body": body.decode("latin-1"), "headers": headers, "concurrency": concurrency,
            "duration": duration, "warmup": warmup, "max_requests": max_requests, "cpu_pids": list(cpu_pids),
            "spread": list(spread),
        }
        self.popen.stdin.write(json.dumps(spec) + "\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError("the load generator exited")
        result = json.loads(line)
        if "failed" in result:
            raise RuntimeError(f"the load generator failed: {result['failed']}")
        result["loadgen_pid"] = self.popen.pid
        return result

    def close(self) -> None:
        if self.popen.poll() is None:
            try:
                self.popen.stdin.close()
                self.popen.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.popen.kill()
                self.popen.wait()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        _serve()
    else:
        sys.exit("usage: python -m benchmarks.loadgen --serve (driven by python -m benchmarks)")
