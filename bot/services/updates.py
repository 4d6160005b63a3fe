"""Processed update ids: a redelivered update is recognised and skipped.

Ids are noted in memory as updates finish and written in the batch flush, in the same transaction as
every plugin's buffered data; the polling loop confirms the offset to Telegram only after that
commit. So a crash before the commit redelivers the batch with none of its buffered effects kept,
and a crash after it redelivers updates that are then skipped.
"""

from __future__ import annotations

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

    def abandon(self, update_id: int) -> None:
        self._in_flight.discard(update_id)

    @property
    def unflushed(self) -> int:
        return len(self._unflushed)

    async def flush(self, session: AsyncSession) -> None:
        ids, self._unflushed = self._unflushed, []
        now = self._clock.now()
        await upsert(session, ProcessedUpdate, [{"update_id": i, "processed_at": now} for i in ids], ["update_id"])

    async def prune(self, older_than: timedelta = timedelta(days=3)) -> None:
        async with self._db() as s, s.begin():
            cutoff = self._clock.now() - older_than
            await s.execute(delete(ProcessedUpdate).where(ProcessedUpdate.processed_at < cutoff))
