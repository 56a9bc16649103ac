"""`python -m benchmarks.nometer daemon …`: `noor daemon` with metering stubbed out, for benchmarks only.

The daemon has no switch to turn metering off, and should not have one (an unmetered call
breaks a promise). To price metering, this wrapper runs the real daemon with the ledger's
two request-path entry points replaced before the app starts: `Ledger.record` returns at
once and `Ledger.enqueue` hands back a resolved future, so no usage row is queued, no batch
is committed, no rollup is written and no commit listener (quotas, live view, metrics) runs.
Everything else — auth, limits, routing, the upstream call, SSE splitting and usage
extraction — is the shipped code. Admin writes (accounts, keys) still reach SQLite.

With `NOOR_BENCH_STUB=insert` only the lone call's SQLite INSERT is left out (`SqliteLedger._commit_alone`
keeps its bookkeeping, the listeners hear of the call, the fold and the checkpoints run): what the one
transaction a call at concurrency 1 commits costs it, apart from the rest of metering.
"""

from __future__ import annotations

import asyncio
import os
import sys


def patch() -> None:
    from noor_daemon.ledger.database import Ledger

    missing = [name for name in ("record", "enqueue") if not hasattr(Ledger, name)]
    if missing:
        sys.exit(f"benchmarks.nometer: Ledger has no {', '.join(missing)}; this benchmark needs updating")

    async def record(self, event) -> None:
        return None

    def enqueue(self, event) -> asyncio.Future[None]:
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    Ledger.record = record
    Ledger.enqueue = enqueue


def patch_insert() -> None:
    from noor_daemon.ledger.sqlite import SqliteLedger

    if not hasattr(SqliteLedger, "_commit_alone") or not hasattr(SqliteLedger, "_committed_inline"):
        sys.exit("benchmarks.nometer: SqliteLedger has no _commit_alone/_committed_inline; this benchmark needs updating")

    def _commit_alone(self, event) -> bool:
        if self._lock.locked():
            return False
        self._committed_inline([event], [])
        return True

    SqliteLedger._commit_alone = _commit_alone


if __name__ == "__main__":
    patch_insert() if os.environ.get("NOOR_BENCH_STUB") == "insert" else patch()
    from noor_daemon.cli import main

    sys.argv[0] = "noor"
    main()
