"""A thin async SQL interface with two engines.

Queries are written once, PostgreSQL-style (`$1`, `$2`, …); SQLite understands the same
numbered parameters spelled `?1`, so the SQLite engine rewrites the sigil and nothing else.
Values crossing the boundary are plain ints, floats, strings and None (JSON is stored as
text, booleans as 0/1, times as epoch milliseconds) so both engines see the same types.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from loopai.errors import ConfigurationError

Row = tuple[Any, ...]

_PLACEHOLDER = re.compile(r"\$(\d+)")
_ONE_ROW_INSERT = re.compile(r"(INSERT INTO .+? VALUES )\((\$\d+(?:, \$\d+)*)\)(.*)", re.S)
MULTI_ROW = 100
"""Rows in one multi-row INSERT: always this many, so the statement stays prepared (a new
size each batch was prepared each time and cost more than it saved); the rest of a batch
goes row by row."""
_SQLITE_MAX_VARIABLES = 32_766 if sqlite3.sqlite_version_info >= (3, 32) else 999
"""Bound parameters SQLite takes in one statement (SQLITE_MAX_VARIABLE_NUMBER's default)."""
# Set inside a SQLite transaction so its own statements skip the connection lock.
_IN_SQLITE_TX: contextvars.ContextVar[bool] = contextvars.ContextVar("in_sqlite_tx", default=False)


@functools.cache
def _multi_row(sql: str) -> tuple[str, int, str] | None:
    """(`INSERT INTO t (…) VALUES `, n, the rest) when `sql` inserts one row of `$1` … `$n`
    in order, so rows can be sent n values apiece with `?`; None for anything else."""
    match = _ONE_ROW_INSERT.fullmatch(sql)
    if match is None:
        return None
    params = [int(p.strip()[1:]) for p in match[2].split(",")]
    if params != list(range(1, len(params) + 1)) or "$" in match[3]:
        return None
    return match[1], len(params), match[3]


class DatabaseUnavailable(Exception):
    """The database could not be reached; routes answer 503."""


class Database(Protocol):
    dialect: str

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def execute(self, sql: str, *args: Any) -> int:
        """Runs one statement; returns the number of rows it changed."""
        ...
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...
    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...
    def transaction(self) -> contextlib.AbstractAsyncContextManager[Database]:
        """Statements on the yielded handle run in one transaction."""
        ...
    async def ping(self) -> None: ...


class SqliteDatabase:
    """aiosqlite on one connection (SQLite serialises writers anyway); WAL for readers.

    A lock keeps a transaction's statements from interleaving with other callers'.
    """

    dialect = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: Any = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        import aiosqlite

        self._conn = await aiosqlite.connect(self.path, isolation_level=None)
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.execute("PRAGMA synchronous=NORMAL")
        await self._conn.execute("PRAGMA foreign_keys=ON")
        await self._conn.execute("PRAGMA busy_timeout=5000")

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    def _c(self) -> Any:
        if self._conn is None:
            raise DatabaseUnavailable("database is closed")
        return self._conn

    @staticmethod
    def _sql(sql: str) -> str:
        return _PLACEHOLDER.sub(r"?\1", sql)

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[Any]:
        if _IN_SQLITE_TX.get():
            yield self._c()
            return
        async with self._lock:
            yield self._c()

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._guard() as conn:
            cursor = await conn.execute(self._sql(sql), args)
            count = int(cursor.rowcount)
            await cursor.close()
            return count

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """An `INSERT … VALUES ($1, …, $n)` of many rows goes as multi-row statements of
        `MULTI_ROW` rows (`_multi_row`): one statement step a hundred rows instead of one a
        row (`loadtests/store_cost.py` has the writer thread's CPU per record both ways)."""
        async with self._guard() as conn:
            if _IN_SQLITE_TX.get():
                await self._many(conn, sql, rows)
                return
            await conn.execute("BEGIN")
            try:
                await self._many(conn, sql, rows)
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            await conn.execute("COMMIT")

    async def _many(self, conn: Any, sql_one: str, rows: Sequence[Sequence[Any]]) -> None:
        split = _multi_row(sql_one)
        if split is None or len(rows) < MULTI_ROW:
            await conn.executemany(self._sql(sql_one), rows)
            return
        head, width, tail = split
        per = max(1, min(MULTI_ROW, _SQLITE_MAX_VARIABLES // width))
        one = "(" + ", ".join("?" * width) + ")"
        sql = f"{head}{', '.join([one] * per)}{tail}"  # one size: SQLite keeps it prepared
        whole = len(rows) - len(rows) % per
        for start in range(0, whole, per):
            await conn.execute(sql, [value for row in rows[start:start + per] for value in row])
        if whole < len(rows):
            await conn.executemany(self._sql(sql_one), rows[whole:])

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        # One trip to aiosqlite's thread (execute, fetch and close there), not three: a
        # trip costs tens of µs of CPU in handing over between the threads.
        async with self._guard() as conn:
            return [tuple(r) for r in await conn.execute_fetchall(self._sql(sql), args)]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        async with self._lock:
            conn = self._c()
            await conn.execute("BEGIN IMMEDIATE")
            token = _IN_SQLITE_TX.set(True)
            try:
                yield self
            except BaseException:
                await conn.execute("ROLLBACK")
                raise
            else:
                await conn.execute("COMMIT")
            finally:
                _IN_SQLITE_TX.reset(token)

    async def ping(self) -> None:
        await self.fetchrow("SELECT 1")


class _PgHandle:
    """One pooled asyncpg connection, seen through the Database interface."""

    dialect = "postgresql"

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def execute(self, sql: str, *args: Any) -> int:
        status: str = await self._conn.execute(sql, *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return [tuple(r) for r in await self._conn.fetch(sql, *args)]

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row = await self._conn.fetchrow(sql, *args)
        return tuple(row) if row is not None else None

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        async with self._conn.transaction():
            yield self

    async def ping(self) -> None:
        await self._conn.fetchval("SELECT 1")


class PostgresDatabase:
    """asyncpg with a small pool; every call borrows a connection for its duration."""

    dialect = "postgresql"

    def __init__(self, url: str, min_size: int = 1, max_size: int = 10) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max_size
        self._pool: Any = None

    async def start(self) -> None:
        import asyncpg

        self._pool = await asyncpg.create_pool(
            self.url, min_size=self.min_size, max_size=self.max_size, command_timeout=30
        )

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _p(self) -> Any:
        if self._pool is None:
            raise DatabaseUnavailable("database is closed")
        return self._pool

    @contextlib.asynccontextmanager
    async def _acquire(self) -> AsyncIterator[Any]:
        """A pooled connection; failing to get one (server down, database gone, auth
        refused) is DatabaseUnavailable, which the API answers with 503."""
        try:
            conn = await self._p().acquire(timeout=10)
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            raise DatabaseUnavailable(f"{type(exc).__name__}: {exc}") from exc
        try:
            yield conn
        finally:
            await self._p().release(conn)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._acquire() as conn:
            return await _PgHandle(conn).execute(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._acquire() as conn, conn.transaction():
            await conn.executemany(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._acquire() as conn:
            return await _PgHandle(conn).fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._acquire() as conn:
            return await _PgHandle(conn).fetchrow(sql, *args)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Database]:
        async with self._acquire() as conn:
            handle = _PgHandle(conn)
            async with handle.transaction() as tx:
                yield tx

    async def ping(self) -> None:
        async with self._acquire() as conn:
            await conn.fetchval("SELECT 1")


def connect_database(url: str) -> Database:
    """`sqlite:///relative.db`, `sqlite:////abs/path.db`, `sqlite://:memory:` or postgresql://…"""
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        path = url[len("sqlite://"):]
        if path.startswith("/"):
            path = path[1:]
        return SqliteDatabase(path or ":memory:")
    if scheme in ("postgresql", "postgres"):
        return PostgresDatabase(url)
    raise ConfigurationError(
        f"unsupported database URL scheme {scheme!r}: use sqlite:///file.db or postgresql://…"
    )
