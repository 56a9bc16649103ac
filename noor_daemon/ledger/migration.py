"""Moving a SQLite ledger into PostgreSQL (`noor migrate`): every table, every row, or nothing.

The source is brought up to the current schema by `SqliteLedger` (the same migrations a daemon
runs), then read through one read-only snapshot. The target gets its schema from the PostgreSQL
migrations, and everything (schema, rows, identity sequences, the checks) happens in one
transaction: a failure, or a source that changed while it was read, leaves the target as it was.
Tables are found in `sqlite_master`, so tables added by later migrations move without a change here.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from noor_daemon.ledger import schema

if TYPE_CHECKING:
    import asyncpg

CHUNK_ROWS = 20_000
LOCK_TIMEOUT = "10s"
"""How long to wait for the target's tables: longer means something (a daemon) is using them."""
CHECKSUMS: dict[str, tuple[str, ...]] = {
    "usage_events": ("prompt_tokens", "completion_tokens"),
    "usage_hourly": ("requests", "errors", "prompt_tokens", "completion_tokens"),
    "usage_daily": ("requests", "errors", "prompt_tokens", "completion_tokens"),
    "route_hourly": ("requests", "errors", "prompt_tokens", "completion_tokens"),
}
"""Sums compared on both sides on top of the row counts (exact: integer columns only)."""

Progress = Callable[[int, int], None]
"""(rows copied so far, rows to copy)."""


class MigrationError(Exception):
    """The move did not happen (or was rolled back); the message says why and what to do."""


@dataclass(frozen=True)
class TableCopy:
    table: str
    rows: int


@dataclass
class MigrationReport:
    source: Path
    target: str
    """The target URL without its password."""
    dry_run: bool
    tables: list[TableCopy] = field(default_factory=list)
    seconds: float = 0.0
    schema_version: int = schema.SCHEMA_VERSION
    source_upgraded_from: int | None = None
    """The source's schema version when it was older than this NoorAPI's (upgraded first), else None."""
    identities: dict[str, int] = field(default_factory=dict)
    """`table.column` → the last id copied: the target numbers new rows after it."""
    checksums: dict[str, int] = field(default_factory=dict)
    """`table.column` → the sum found equal on both sides."""

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_json(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "target": self.target,
            "dry_run": self.dry_run,
            "schema_version": self.schema_version,
            "source_upgraded_from": self.source_upgraded_from,
            "tables": [{"table": t.table, "rows": t.rows} for t in self.tables],
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "identities": self.identities,
            "checksums": self.checksums,
        }


def redact(url: str) -> str:
    """`url` without its password (in the authority or `?password=`): reports and errors get pasted into tickets."""
    url = re.sub(r"^([a-z]+://[^:/@?#]*):[^@/?#]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- the source -----------------------------------------------------------------------


@dataclass
class _Table:
    name: str
    columns: list[str]
    rows: int = 0


def _check_source(path: Path) -> int:
    """The file's schema version; refuses what is not an existing SQLite ledger (SqliteLedger would create one)."""
    if not path.is_file():
        raise MigrationError(f"no SQLite ledger at {path} (the daemon keeps it at DATA_DIR/ledger.sqlite3)")
    try:
        with path.open("rb") as f:
            magic = f.read(16)
    except OSError as exc:
        raise MigrationError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from exc
    if magic != b"SQLite format 3\x00":
        raise MigrationError(f"{path} is not a SQLite database")
    db = _read_only(path)
    try:
        (version,) = db.execute("PRAGMA user_version").fetchone()
    except sqlite3.Error as exc:
        raise MigrationError(f"cannot read {path} ({type(exc).__name__}: {exc})") from exc
    finally:
        db.close()
    if version > schema.SCHEMA_VERSION:
        raise MigrationError(
            f"{path} has schema version {version}, newer than this NoorAPI understands ({schema.SCHEMA_VERSION}); upgrade NoorAPI first"
        )
    return int(version)


def _read_only(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA busy_timeout = 5000")
    return db


async def _upgrade_source(path: Path) -> None:
    """Open and close it as a daemon would: an older file gets the current schema (and the tables it adds),
    and a WAL left by a daemon that died is folded into the file."""
    from noor_daemon.ledger.sqlite import SqliteLedger

    ledger = SqliteLedger(path)
    try:
        await ledger.open()
    except sqlite3.Error as exc:
        raise MigrationError(f"cannot open {path} as a ledger ({type(exc).__name__}: {exc})") from exc
    await ledger.close()


ENGINE_ONLY = frozenset({"rollup_watermark"})
"""SQLite's own bookkeeping (how far its rollups have folded the facts; all of them once the source was opened
and closed): PostgreSQL writes a batch's rollups with it and keeps its own rows of it, so it is not moved."""


def _source_tables(db: sqlite3.Connection) -> list[_Table]:
    """Every table but SQLite's own, parents before children (accounts before api_keys)."""
    names = [
        row[0]
        for row in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        )
        if row[0] not in ENGINE_ONLY
    ]
    parents = {
        name: {row[2] for row in db.execute(f"PRAGMA foreign_key_list({_quote(name)})")} & set(names) - {name}
        for name in names
    }
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] <= set(ordered)]
        ordered += ready or [n for n in names if n not in ordered]  # a cycle: PostgreSQL will say so
    tables = []
    for name in ordered:
        columns = [row[1] for row in db.execute(f"PRAGMA table_info({_quote(name)})")]
        (count,) = db.execute(f"SELECT count(*) FROM {_quote(name)}").fetchone()
        tables.append(_Table(name, columns, count))
    return tables


def _source_sums(db: sqlite3.Connection, tables: list[_Table]) -> dict[str, int]:
    sums: dict[str, int] = {}
    for table in tables:
        columns = [c for c in CHECKSUMS.get(table.name, ()) if c in table.columns]
        if columns:
            row = db.execute(f"SELECT {', '.join(f'coalesce(sum({_quote(c)}), 0)' for c in columns)} FROM {_quote(table.name)}").fetchone()
            sums.update({f"{table.name}.{c}": int(v) for c, v in zip(columns, row, strict=True)})
    return sums


# -- values as the target's column types want them ------------------------------------------

# Binary COPY takes Python values of the column's exact type, and would truncate a float put in a
# BIGINT without a word: these are the types each target kind takes as they come from SQLite.
_NONE = type(None)
_NATIVE: dict[str, frozenset[type]] = {
    "int": frozenset({int, bool, _NONE}),
    "float": frozenset({float, int, _NONE}),
    "text": frozenset({str, _NONE}),
    "bytes": frozenset({bytes, _NONE}),
}
_KINDS = {
    "bigint": "int", "integer": "int", "smallint": "int",
    "double precision": "float", "real": "float",
    "text": "text", "character varying": "text", "character": "text",
    "bytea": "bytes",
}  # fmt: skip


def _to_int(v: Any) -> Any:
    if isinstance(v, float):
        if not v.is_integer():
            raise ValueError("not a whole number")
        return int(v)
    if isinstance(v, str):
        return int(v.strip())
    raise TypeError(type(v).__name__)


def _to_float(v: Any) -> Any:
    if isinstance(v, str):
        return float(v)
    raise TypeError(type(v).__name__)


def _to_text(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode("utf-8")
    return str(v)


def _to_bytes(v: Any) -> Any:
    return (v if isinstance(v, str) else str(v)).encode("utf-8")


_CONVERT: dict[str, Callable[[Any], Any]] = {"int": _to_int, "float": _to_float, "text": _to_text, "bytes": _to_bytes}


class _Coercer:
    """Makes each chunk's values what their target columns take. SQLite lets any column hold any
    type; the ledger's own writes never mix them, so the usual chunk is checked (one set of type
    signatures, in the reader thread) and passed through untouched."""

    def __init__(self, table: str, columns: list[str], kinds: list[str | None]) -> None:
        self.table, self.columns, self.kinds = table, columns, kinds
        self._verdicts: dict[tuple[type, ...], frozenset[int]] = {}

    def _wrong(self, signature: tuple[type, ...]) -> frozenset[int]:
        """Indexes of the columns whose value in a row of this signature needs converting."""
        if signature not in self._verdicts:
            self._verdicts[signature] = frozenset(
                i for i, (t, kind) in enumerate(zip(signature, self.kinds, strict=True)) if kind and t not in _NATIVE[kind]
            )
        return self._verdicts[signature]

    def chunk(self, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        wrong: set[int] = set()
        for signature in {tuple(map(type, row)) for row in rows}:
            wrong |= self._wrong(signature)
        if not wrong:
            return rows
        return [self._convert(row, wrong) for row in rows]

    def _convert(self, row: tuple[Any, ...], wrong: set[int]) -> tuple[Any, ...]:
        values = list(row)
        for i in wrong:
            kind = self.kinds[i]
            if kind is None or type(values[i]) in _NATIVE[kind]:
                continue
            try:
                values[i] = _CONVERT[kind](values[i])
            except (TypeError, ValueError) as exc:  # never the value itself: it may be an email
                raise MigrationError(
                    f"{self.table}.{self.columns[i]} holds a {type(values[i]).__name__} value that cannot be stored as "
                    f"{kind} ({type(exc).__name__}); fix that row in the SQLite file and run again"
                ) from None
        return tuple(values)


# -- the move ---------------------------------------------------------------------------


async def migrate_sqlite_to_postgres(
    source: Path,
    target: str,
    *,
    dry_run: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    progress: Progress | None = None,
) -> MigrationReport:
    """Copy every table of the SQLite ledger `source` into the empty PostgreSQL database `target`.

    Refuses a target whose ledger tables hold rows. `dry_run` counts what would be copied and checks
    the target without writing to either side (an older source is not upgraded either).
    """
    started = time.monotonic()
    report = MigrationReport(source=source, target=redact(target), dry_run=dry_run)
    version = _check_source(source)
    if version < schema.SCHEMA_VERSION:
        report.source_upgraded_from = version
    if not dry_run:
        await _upgrade_source(source)
    try:
        import asyncpg
    except ImportError as exc:  # pragma: no cover - the scale extra
        raise MigrationError("PostgreSQL needs asyncpg: pip install 'noorapi[scale]'") from exc

    db = _read_only(source)
    watch = _read_only(source)
    (seen,) = watch.execute("PRAGMA data_version").fetchone()
    try:
        db.execute("BEGIN")  # one snapshot for the counts, the rows and the sums
        tables = _source_tables(db)
        report.tables = [TableCopy(t.name, t.rows) for t in tables]
        try:
            conn = await asyncpg.connect(target, timeout=10)
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise MigrationError(f"cannot reach PostgreSQL at {redact(target)}: {exc}") from exc
        try:
            if dry_run:
                await _refuse_unless_empty(conn, [t.name for t in tables], existing_only=True)
            else:
                async with conn.transaction():
                    await _copy_all(conn, db, tables, report, chunk_rows, progress)
                    (now,) = watch.execute("PRAGMA data_version").fetchone()
                    if now != seen:
                        raise MigrationError(
                            f"{source} changed while it was copied (is the daemon still running?); nothing was "
                            "written to PostgreSQL. Stop the daemon and run again"
                        )
        except asyncpg.PostgresError as exc:
            raise MigrationError(f"PostgreSQL refused ({type(exc).__name__}: {exc}); nothing was written") from exc
        finally:
            await conn.close()
    finally:
        db.close()
        watch.close()
    report.seconds = time.monotonic() - started
    return report


async def _refuse_unless_empty(conn: asyncpg.Connection, tables: Iterable[str], *, existing_only: bool = False) -> None:
    """The move never merges: rows already in the target (another installation, a daemon started on it)
    would collide with the copied ids, or mix two ledgers."""
    full = []
    for name in tables:
        if existing_only and await conn.fetchval("SELECT to_regclass($1)", _quote(name)) is None:
            continue
        if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {_quote(name)})"):
            full.append(name)
    if full:
        raise MigrationError(
            f"the target already holds rows ({', '.join(full)}); nothing was copied. Point --to at an empty "
            "database (createdb noor) — the move never merges two ledgers"
        )


async def _copy_all(
    conn: asyncpg.Connection,
    db: sqlite3.Connection,
    tables: list[_Table],
    report: MigrationReport,
    chunk_rows: int,
    progress: Progress | None,
) -> None:
    """Inside the caller's transaction: schema, rows, identity sequences, then the checks."""
    import asyncpg

    from noor_daemon.ledger.postgres import migrate

    await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    try:
        await migrate(conn)  # the same translated migrations a daemon runs (a savepoint of this transaction)
    except RuntimeError as exc:  # the target's schema is newer than this NoorAPI
        raise MigrationError(str(exc)) from exc
    except asyncpg.LockNotAvailableError as exc:
        raise MigrationError("a daemon is migrating the target right now; stop it, then run again") from exc
    names = [t.name for t in tables]
    types: dict[str, dict[str, str]] = {}
    for row in await conn.fetch(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema()"
    ):
        types.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
    for table in tables:
        missing = [c for c in table.columns if c not in types.get(table.name, {})]
        if missing:
            what = f"table {table.name}" if table.name not in types else f"{table.name} columns {', '.join(missing)}"
            raise MigrationError(f"the PostgreSQL schema has no {what} (a table not made by NoorAPI's migrations?)")
    try:
        await conn.execute(f"LOCK TABLE {', '.join(_quote(n) for n in names)} IN EXCLUSIVE MODE")
    except asyncpg.LockNotAvailableError as exc:
        raise MigrationError("the target's tables are in use (is a daemon running on it?); nothing was copied") from exc
    await _refuse_unless_empty(conn, names)

    total, done = sum(t.rows for t in tables), 0
    if progress:
        progress(0, total)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="migrate-read") as reader:
        for table in tables:
            if not table.rows:
                continue
            coercer = _Coercer(table.name, table.columns, [_KINDS.get(types[table.name][c]) for c in table.columns])
            copied = 0

            def advance(n: int) -> None:
                nonlocal done, copied
                done, copied = done + n, copied + n
                if progress:
                    progress(done, total)

            rows = _stream(db, table, chunk_rows, reader, coercer, advance)
            try:
                await conn.copy_records_to_table(table.name, records=rows, columns=table.columns)
            except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise MigrationError(f"copying {table.name} failed ({type(exc).__name__}: {exc}); nothing was written") from exc
            if copied != table.rows:
                raise MigrationError(f"{table.name}: read {copied} rows, counted {table.rows}; nothing was written")

    report.identities = await _advance_identities(conn, names)
    await _verify(conn, db, tables, report)


async def _stream(
    db: sqlite3.Connection,
    table: _Table,
    chunk_rows: int,
    reader: ThreadPoolExecutor,
    coercer: _Coercer,
    advance: Callable[[int], None],
) -> AsyncIterator[tuple[Any, ...]]:
    """The table's rows, read and checked `chunk_rows` at a time in a thread while the previous chunk goes to COPY."""
    loop = asyncio.get_running_loop()
    cursor = db.execute(f"SELECT {', '.join(_quote(c) for c in table.columns)} FROM {_quote(table.name)}")

    def read() -> list[tuple[Any, ...]]:
        return coercer.chunk(cursor.fetchmany(chunk_rows))

    # (A read still under way when COPY fails is waited for by the executor's shutdown, before the file closes.)
    pending = loop.run_in_executor(reader, read)
    while rows := await pending:
        pending = loop.run_in_executor(reader, read)
        for row in rows:
            yield row
        advance(len(rows))


async def _advance_identities(conn: asyncpg.Connection, tables: list[str]) -> dict[str, int]:
    """Move each identity sequence past the copied ids, so the next row the target numbers does not collide."""
    found = await conn.fetch(
        """SELECT table_name, column_name FROM information_schema.columns
           WHERE table_schema = current_schema() AND is_identity = 'YES' AND table_name = ANY($1::text[])
           ORDER BY table_name""",
        tables,
    )
    last: dict[str, int] = {}
    for row in found:
        table, column = row["table_name"], row["column_name"]
        value = await conn.fetchval(
            f"SELECT setval(pg_get_serial_sequence($1, $2), max({_quote(column)})) FROM {_quote(table)}",
            _quote(table),
            column,
        )
        if value is not None:  # an empty table keeps its sequence at the start
            last[f"{table}.{column}"] = int(value)
    return last


async def _verify(conn: asyncpg.Connection, db: sqlite3.Connection, tables: list[_Table], report: MigrationReport) -> None:
    """Row counts and sums, both sides, before the commit: a difference rolls everything back."""
    for table in tables:
        count = await conn.fetchval(f"SELECT count(*) FROM {_quote(table.name)}")
        if count != table.rows:
            raise MigrationError(f"{table.name}: {count} rows in PostgreSQL, {table.rows} in SQLite; nothing was written")
    expected = _source_sums(db, tables)
    for key, value in expected.items():
        name, column = key.split(".", 1)
        got = await conn.fetchval(f"SELECT coalesce(sum({_quote(column)}), 0)::text FROM {_quote(name)}")
        if int(got) != value:
            raise MigrationError(f"sum of {key}: {got} in PostgreSQL, {value} in SQLite; nothing was written")
    report.checksums = expected
