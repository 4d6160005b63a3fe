"""Database plumbing: declarative base, engine with SQLite tuned for WAL, session factory."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Table, event, make_url
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from bot.sqlite_inline import inline_creator

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

T = TypeVar("T")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# Telegram ids exceed 32 bits; SQLite needs plain INTEGER for autoincrement primary keys.
TgId = BigInteger
AutoId = BigInteger().with_variant(Integer(), "sqlite")


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, echo: bool = False, sqlite_inline: bool = True) -> AsyncEngine:
    """The engine for ``url``; SQLite runs in the event loop's thread unless ``sqlite_inline`` is off
    (bot/sqlite_inline.py says why and what that changes)."""
    kwargs: dict[str, Any] = {"echo": echo}
    inline = False
    if is_sqlite(url):
        path = make_url(url).database or ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        inline = sqlite_inline and bool(path) and path != ":memory:"
        if inline:
            kwargs["async_creator"] = inline_creator(path)
        else:
            kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if inline:
        # Read back by session_factory (execution options carry arbitrary keys).
        engine = engine.execution_options(qunbot_sqlite_inline=True)
    if is_sqlite(url):

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL + NORMAL: ~1 ms per commit instead of ~4 ms, and readers never block the writer.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            if not inline:  # the inline driver waits for locks itself, without blocking the loop
                cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

    return engine


class WriteGate:
    """Serializes explicit write transactions (``async with session.begin()``) on SQLite.

    SQLite has one writer at a time; when two transactions of concurrently processed chats collide,
    its busy handler sleeps in steps of up to 100 ms and a read transaction that upgrades to a write
    after another commit fails outright. Queuing writers here instead (FIFO, no sleeping) keeps
    latency flat. Re-entrant per task (a nested ``begin`` in the same task passes), and a waiter
    gives up after ``timeout`` and proceeds on SQLite's own locking, so a mistake can slow things
    down but never deadlock.
    """

    def __init__(self, timeout: float = 5.0) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0
        self._timeout = timeout

    async def acquire(self) -> bool:
        task = asyncio.current_task()
        if task is not None and self._owner is task:
            self._depth += 1
            return True
        try:
            if self._lock.locked():
                await asyncio.wait_for(self._lock.acquire(), timeout=self._timeout)
            else:
                # Free: take it without wait_for's extra task, i.e. without yielding to other chats'
                # updates in the middle of this one (that wait made the slowest updates' latency).
                await self._lock.acquire()
        except TimeoutError:
            log.warning("write gate busy for %.0fs; continuing on SQLite's own locking", self._timeout)
            return False
        self._owner, self._depth = task, 1
        return True

    def release(self, held: bool) -> None:
        if not held:
            return
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


class _GatedTransaction:
    def __init__(self, gate: WriteGate, tx: Any) -> None:
        self._gate = gate
        self._tx = tx
        self._held = False

    async def __aenter__(self) -> Any:
        self._held = await self._gate.acquire()
        try:
            return await self._tx.__aenter__()
        except BaseException:
            self._gate.release(self._held)
            raise

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self._tx.__aexit__(*exc)
        finally:
            self._gate.release(self._held)

    def __await__(self) -> Any:
        return self._tx.__await__()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    if engine.dialect.name != "sqlite":
        return async_sessionmaker(engine, expire_on_commit=False)
    gate = WriteGate()
    inline = bool(engine.get_execution_options().get("qunbot_sqlite_inline"))

    class GatedSession(AsyncSession):
        def begin(self) -> Any:  # type: ignore[override]
            return _GatedTransaction(gate, super().begin())

        async def __aexit__(self, *exc: Any) -> None:
            if not inline:
                return await super().__aexit__(*exc)
            # SQLAlchemy closes in a task of its own so a cancellation cannot abandon the close half
            # way; with the inline driver close() never yields, so nothing can interrupt it, and the
            # task (three turns of the event loop per session, letting other chats' updates run in
            # the middle of this one) is pure cost.
            await self.close()
            return None

    return async_sessionmaker(engine, class_=GatedSession, expire_on_commit=False)


def _is_locked(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "locked" in str(exc).lower()


async def retry_locked(
    fn: Callable[[], Awaitable[T]], *, attempts: int = 5, base_delay: float = 0.05
) -> T:
    """Run a transaction, retrying a bounded number of times on SQLite's "database is locked"."""
    for attempt in range(attempts):
        try:
            return await fn()
        except OperationalError as exc:
            if not _is_locked(exc) or attempt == attempts - 1:
                raise
            log.warning("database is locked, retry %d/%d", attempt + 1, attempts)
            await asyncio.sleep(base_delay * (2**attempt))
    raise AssertionError("unreachable")


async def upsert(
    session: AsyncSession,
    table: Any,
    rows: list[dict[str, Any]],
    keys: list[str],
    update_cols: list[str] | None = None,
    *,
    increment: list[str] | None = None,
) -> None:
    """INSERT ... ON CONFLICT DO UPDATE for SQLite and PostgreSQL in one executemany.

    ``update_cols`` are overwritten with the new value; ``increment`` columns are added to.
    """
    if not rows:
        return
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    stmt = _upsert_statement(dialect, getattr(table, "__table__", table), tuple(keys), tuple(update_cols or ()),
                             tuple(increment or ()))
    await session.execute(stmt, rows)


@functools.lru_cache(maxsize=512)
def _upsert_statement(dialect: str, tbl: Table, keys: tuple[str, ...], update_cols: tuple[str, ...],
                      increment: tuple[str, ...]) -> Any:
    """The upsert of ``upsert``, built once per shape: the same statement object keeps SQLAlchemy's
    cache key memoized, so a flush skips building and hashing it again (a memo of a pure function)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    stmt = dialect_insert(tbl)
    values: dict[str, Any] = {c: stmt.excluded[c] for c in update_cols}
    for c in increment:
        values[c] = tbl.c[c] + stmt.excluded[c]
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=values) if values else (
        stmt.on_conflict_do_nothing(index_elements=list(keys))
    )
