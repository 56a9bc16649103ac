"""Downloading an account's export (admin or self-service) into a file only its owner can read.

The bytes land in a private 0600 temporary file beside the target, which replaces the target
only once the export is whole: a failed export leaves nothing behind, and no one else ever
had a chance to read it.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

import aiohttp

from .http import DaemonUnreachable, _int_or_none, _reason
from .models import ExportResult

EXPORT_EVENTS_HEADER = "X-Noor-Export-Events"

ExportFormat = Literal["json", "csv"]
ExportProgress = Callable[[int, "int | None"], None]
"""Called as `progress(events_received, total_events)`; total is None when the daemon did not say."""


async def _download_export(
    http: aiohttp.ClientSession,
    base_url: str,
    url: str,
    target: Path,
    format: str,
    progress: ExportProgress | None,
    error_from: Callable[[aiohttp.ClientResponse], Awaitable[Exception]],
) -> ExportResult:
    """Stream an export into `target` through a private temporary file (see `AdminClient.export_account`)."""
    partial = _private_temp_file(target)
    try:
        try:
            async with http.get(url, params={"format": format}) as response:
                if response.status >= 400:
                    raise await error_from(response)
                total = _int_or_none(response.headers.get(EXPORT_EVENTS_HEADER))
                written = await _write_counting(response, partial, format, total, progress)
        except aiohttp.ClientConnectionError as exc:
            raise DaemonUnreachable(base_url, _reason(exc)) from None
        except asyncio.TimeoutError:
            raise DaemonUnreachable(base_url, "timed out") from None
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return ExportResult(str(target), format, total, written)


def _private_temp_file(target: Path) -> Path:
    """An empty 0600 file beside `target`, created with os.open so it is never readable by others."""
    directory = target.parent if str(target.parent) else Path(".")
    for _ in range(100):
        candidate = directory / f".{target.name}.{os.urandom(4).hex()}.partial"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"could not create a temporary file in {directory}")


# Lines before the first event: JSON puts its header and `[` on the first line; CSV has a header row.
_LINES_BEFORE_EVENTS = {"json": 0, "csv": 1}


async def _write_counting(
    response: aiohttp.ClientResponse, partial: Path, format: str, total: int | None, progress: ExportProgress | None
) -> int:
    """Write the body to `partial`; report events as their lines arrive (one event per line)."""
    written = newlines = reported = 0
    skip = _LINES_BEFORE_EVENTS.get(format, 0)
    fd = os.open(partial, os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        async for chunk in response.content.iter_chunked(64 * 1024):
            handle.write(chunk)
            written += len(chunk)
            newlines += chunk.count(b"\n")
            done = max(0, newlines - skip)
            if total is not None:
                done = min(done, total)
            if progress is not None and done != reported:
                progress(done, total)
                reported = done
        handle.flush()
        os.fsync(handle.fileno())
    if progress is not None and total is not None and reported != total:
        progress(total, total)
    return written
