"""Processed update ids: a redelivered update is recognised and skipped.

Ids are noted in memory as updates finish and written in the batch flush, in the same transaction as
every plugin's buffered data; the polling loop confirms the offset to Telegram only after that
commit. So a crash before the commit redelivers the batch with none of its buffered effects kept,
and a crash after it redelivers updates that are then skipped.
"""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db import upsert
from bot.models import ProcessedUpdate

MEMORY = 20_000


class UpdateLedger:
    def __init__(self, db: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._seen: set[int] = set()
        self._order: deque[int] = deque()
        self._unflushed: list[int] = []
        self._in_flight: set[int] = set()
        # Webhook mode answers an update only once its id is committed: ids handed to a flush that has
        # not committed yet, and the futures requests wait on.
        self._flushing: list[int] = []
        self._uncommitted: set[int] = set()
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self.failures: dict[int, BaseException] = {}
        self.keep_failures = False  # webhook mode: remember why an update was abandoned
        self._checks: dict[int, asyncio.Future[bool]] = {}
        self._checker: asyncio.Task[None] | None = None

    async def load(self) -> None:
        async with self._db() as s:
            ids = (
                await s.scalars(select(ProcessedUpdate.update_id).order_by(ProcessedUpdate.update_id.desc())
                                .limit(MEMORY))
            ).all()
        for uid in reversed(ids):
            self._remember(uid)

    def _remember(self, update_id: int) -> None:
        if update_id in self._seen:
            return
        self._seen.add(update_id)
        self._order.append(update_id)
        if len(self._order) > MEMORY:
            self._seen.discard(self._order.popleft())

    def begin(self, update_id: int) -> bool:
        """False when the update was processed already or is being processed right now."""
        if update_id in self._seen or update_id in self._in_flight:
            return False
        self._in_flight.add(update_id)
        return True

    def done(self, update_id: int) -> None:
        self._in_flight.discard(update_id)
        self._remember(update_id)
        self._unflushed.append(update_id)
        self._uncommitted.add(update_id)

    def abandon(self, update_id: int, exc: BaseException | None = None) -> None:
        self._in_flight.discard(update_id)
        if exc is not None and self.keep_failures:
            # The webhook asks Telegram to redeliver an update that failed on a database outage.
            self.failures[update_id] = exc
            while len(self.failures) > 1000:
                self.failures.pop(next(iter(self.failures)))

    @property
    def unflushed(self) -> int:
        return len(self._unflushed)

    def snapshot(self) -> None:
        """A flush starts: the ids finished so far belong to it (and fail with it)."""
        self._flushing.extend(self._unflushed)
        self._unflushed = []

    async def flush(self, session: AsyncSession) -> None:
        # Ids of an earlier attempt that did not commit (a retried transaction) are written again.
        self._flushing.extend(self._unflushed)
        self._unflushed = []
        now = self._clock.now()
        await upsert(session, ProcessedUpdate, [{"update_id": i, "processed_at": now} for i in self._flushing],
                     ["update_id"])

    def committed(self) -> None:
        """The flush transaction committed: its ids are final."""
        ids, self._flushing = self._flushing, []
        for uid in ids:
            self._uncommitted.discard(uid)
            waiter = self._waiters.pop(uid, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def commit_failed(self, exc: BaseException) -> None:
        """The flush transaction failed: its ids are forgotten, so a redelivery processes them again."""
        ids, self._flushing = self._flushing, []
        for uid in ids:
            self._uncommitted.discard(uid)
            self._seen.discard(uid)
            waiter = self._waiters.pop(uid, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)

    def commit_future(self, update_id: int) -> asyncio.Future[None] | None:
        """A future resolved when ``update_id``'s record commits (raising if that commit failed); None
        when there is nothing to wait for (committed already, or never processed here)."""
        if update_id not in self._uncommitted:
            return None
        waiter = self._waiters.get(update_id)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters[update_id] = waiter
        return waiter

    def seen(self, update_id: int) -> bool:
        return update_id in self._seen

    async def is_committed(self, update_id: int) -> bool:
        """Whether the shared database holds ``update_id`` (several workers: another one processed it).

        Concurrent questions share one ``SELECT ... WHERE update_id IN (...)``: one query per batch, not
        per update, and one pooled connection instead of one per request in flight."""
        if update_id in self._seen and update_id not in self._uncommitted:
            return True
        waiter = self._checks.get(update_id)
        if waiter is None:
            waiter = asyncio.get_running_loop().create_future()
            self._checks[update_id] = waiter
        if self._checker is None or self._checker.done():
            self._checker = asyncio.create_task(self._check_batches(), name="processed-check")
        return await asyncio.shield(waiter)

    async def _check_batches(self) -> None:
        while self._checks:
            batch, self._checks = self._checks, {}
            try:
                async with self._db() as s:
                    found = set(
                        (await s.scalars(select(ProcessedUpdate.update_id)
                                         .where(ProcessedUpdate.update_id.in_(list(batch))))).all()
                    )
            except Exception as exc:
                for waiter in batch.values():
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for uid, waiter in batch.items():
                if uid in found:
                    self._remember(uid)
                if not waiter.done():
                    waiter.set_result(uid in found)

    async def prune(self, older_than: timedelta = timedelta(days=3)) -> None:
        async with self._db() as s, s.begin():
            cutoff = self._clock.now() - older_than
            await s.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < cutoff))
