"""A closed-loop load generator: fixed concurrency, fixed duration, warm-up excluded."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import aiohttp


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def run_load(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    concurrency: int,
    duration: float,
    warmup: float,
    stream: bool = False,
) -> LoadResult:
    result = LoadResult()
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, headers={"Content-Type": "application/json", **headers}) as session:
        started = time.perf_counter()
        measure_from = started + warmup
        stop_at = measure_from + duration

        async def worker() -> None:
            while True:
                begin = time.perf_counter()
                if begin >= stop_at:
                    return
                ttft = None
                ok = False
                try:
                    async with session.post(url, data=body) as response:
                        if stream:
                            async for _ in response.content.iter_any():
                                if ttft is None:
                                    ttft = time.perf_counter() - begin
                        else:
                            await response.read()
                        ok = response.status == 200
                except aiohttp.ClientError:
                    ok = False
                end = time.perf_counter()
                if begin >= measure_from and end <= stop_at:
                    result.requests += 1
                    if not ok:
                        result.errors += 1
                    result.latencies.append((end - begin) * 1000)
                    if ttft is not None:
                        result.ttfts.append(ttft * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = duration
    return result
