"""An aiosqlite connection that runs SQLite in the event loop's own thread.

aiosqlite hands every call (execute, fetch, commit) to a private thread and wakes the loop when it is
done: measured here ≈ 170 µs per statement, of which SQLite itself needs 3-30 µs; through SQLAlchemy
that was ≈ 0.5 ms a statement, the largest single cost of the bot's hot path (bench/NOTES.md). A bot
statement touches a few rows of a local WAL file, so running it right away is cheaper than any hop.

What the thread gave for free is handled here instead:

* **Waiting for the write lock** (another process writing, e.g. a CLI import; two of our own
  connections when an ungated write meets a transaction that awaits the network): the connection has
  ``busy_timeout = 0`` and a busy statement is retried after ``asyncio.sleep`` with backoff, so the
  loop keeps serving (and the other transaction can finish) while this one waits; after
  ``busy_budget`` seconds the "database is locked" error goes up as before (``retry_locked``).
  ``SQLITE_BUSY_SNAPSHOT`` (a read transaction that can no longer upgrade) is not retried: only a new
  transaction helps, which is what callers do.
* **Long statements** (a report over a large table) hold the loop for their duration; the bot's are
  bounded by indexes and pages, and PostgreSQL is the choice for deployments whose reports are big.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Generator
from typing import Any

from aiosqlite.core import Connection

# sqlite3 error codes (Python 3.11+ exposes them on the exception as ``sqlite_errorcode``).
SQLITE_BUSY = 5
SQLITE_BUSY_RECOVERY = 261
RETRYABLE = frozenset({SQLITE_BUSY, SQLITE_BUSY_RECOVERY})


class _RunAtOnce:
    """Stands in for aiosqlite's queue to its thread: runs the queued call right away."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # handed to the awaiting caller, as the thread would
            if future is not None and not future.done():
                future.set_exception(exc)
            return
        if future is not None and not future.done():
            future.set_result(result)


class InlineConnection(Connection):
    """aiosqlite's API without its thread: every call runs at once in the calling thread."""

    def __init__(self, connector: Callable[[], sqlite3.Connection], *, busy_budget: float = 10.0) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._busy_budget = busy_budget
        # SQLAlchemy's adapter sets isolation_level by queueing a call for the thread directly.
        self._tx = _RunAtOnce()  # type: ignore[assignment]

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        deadline: float | None = None
        delay = 0.001
        while True:
            try:
                return fn(*args, **kwargs)
            except sqlite3.OperationalError as exc:
                if getattr(exc, "sqlite_errorcode", None) not in RETRYABLE:
                    raise
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self._busy_budget
                if now >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _connect(self) -> InlineConnection:
        if self._connection is None:
            self._connection = self._connector()
        return self

    def __await__(self) -> Generator[Any, None, InlineConnection]:
        return self._connect().__await__()

    def stop(self) -> None:
        self._running = False
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def close(self) -> None:
        self.stop()


def inline_creator(path: str, *, timeout: float = 10.0) -> Callable[[], InlineConnection]:
    """An ``async_creator`` for ``create_async_engine("sqlite+aiosqlite://...")``."""

    def connector() -> sqlite3.Connection:
        # check_same_thread off: SQLAlchemy may close a pooled connection from the GC in another thread.
        conn = sqlite3.connect(path, check_same_thread=False, timeout=0)
        conn.execute("PRAGMA busy_timeout=0")
        return conn

    return lambda: InlineConnection(connector, busy_budget=timeout)
