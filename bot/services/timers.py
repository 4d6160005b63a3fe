"""Durable one-off timers: captcha deadlines, contest closes, scheduled posts, notice deletion.

A timer is a row in ``core_timers`` with a unique key, so scheduling the same thing twice (a
redelivered update) is a no-op. ``run_due`` claims due rows with a conditional UPDATE, so a timer fires
once even with several workers; a claim that is not finished (a crash) expires and is retried.
Handlers must be idempotent: a timer is fired at least once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db import retry_locked
from bot.models import Timer

if TYPE_CHECKING:
    from bot.app import App
    from bot.plugin import TimerHandler

log = logging.getLogger(__name__)

CLAIM_SECONDS = 120
MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class TimerFire:
    key: str
    chat_id: int | None
    payload: Mapping[str, Any]
    due_at: datetime
    attempt: int


def _schedule_sql(dialect_insert: Any) -> dict[str, Any]:
    table = Timer.__table__
    ins = dialect_insert(table)
    rearm = ("due_at", "payload", "status", "attempts", "claimed_until", "handler", "chat_id")
    return {
        "create": ins.on_conflict_do_nothing(index_elements=["key"]).returning(table.c.id),
        "replace": ins.on_conflict_do_update(index_elements=["key"], set_={c: ins.excluded[c] for c in rearm})
        .returning(table.c.id),
    }


_SCHEDULE_SQL = MappingProxyType({"sqlite": _schedule_sql(sqlite_insert), "postgresql": _schedule_sql(pg_insert)})


class TimerService:
    def __init__(self, db: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._handlers: dict[str, TimerHandler] = {}
        self._wake = asyncio.Event()

    def register(self, name: str, handler: TimerHandler) -> None:
        self._handlers[name] = handler

    async def schedule(
        self,
        key: str,
        handler: str,
        due_at: datetime,
        *,
        chat_id: int | None = None,
        payload: Mapping[str, Any] | None = None,
        replace: bool = False,
        session: AsyncSession | None = None,
    ) -> bool:
        """Create a timer; False when ``key`` already exists (unless ``replace`` re-arms it)."""
        if handler not in self._handlers:
            raise KeyError(f"no timer handler named {handler!r}")

        row = {"key": key, "handler": handler, "chat_id": chat_id, "due_at": due_at, "payload": dict(payload or {}),
               "status": "pending", "attempts": 0, "claimed_until": None, "created_at": self._clock.now()}

        async def write(s: AsyncSession) -> bool:
            # One statement (auto-deleted notices and captchas schedule on hot paths): insert, or on an
            # existing key nothing, or (replace) re-arm it; RETURNING says whether a row was written.
            sql = _SCHEDULE_SQL["postgresql" if s.bind is not None and s.bind.dialect.name == "postgresql"
                                else "sqlite"]["replace" if replace else "create"]
            return (await s.execute(sql, row)).first() is not None

        if session is not None:
            created = await write(session)
        else:

            async def tx() -> bool:
                try:
                    async with self._db() as s, s.begin():
                        return await write(s)
                except IntegrityError:
                    return False

            created = await retry_locked(tx)
        self._wake.set()
        return created

    async def cancel(self, key: str, *, session: AsyncSession | None = None) -> bool:
        stmt = (
            update(Timer)
            .where(Timer.key == key, Timer.status == "pending")
            .values(status="cancelled", done_at=self._clock.now())
        )
        if session is not None:
            return bool((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]
        async with self._db() as s, s.begin():
            return bool((await s.execute(stmt)).rowcount)  # type: ignore[attr-defined]

    async def cancel_prefix(self, prefix: str) -> int:
        async with self._db() as s, s.begin():
            res = await s.execute(
                update(Timer)
                .where(Timer.key.startswith(prefix, autoescape=True), Timer.status == "pending")
                .values(status="cancelled", done_at=self._clock.now())
            )
            return int(res.rowcount)  # type: ignore[attr-defined]

    async def get(self, key: str) -> Timer | None:
        async with self._db() as s:
            return await s.scalar(select(Timer).where(Timer.key == key))

    async def pending(self, prefix: str = "") -> list[Timer]:
        async with self._db() as s:
            rows = await s.scalars(
                select(Timer)
                .where(Timer.status == "pending", Timer.key.startswith(prefix, autoescape=True))
                .order_by(Timer.due_at)
            )
            return list(rows)

    async def next_due(self) -> datetime | None:
        async with self._db() as s:
            return await s.scalar(
                select(Timer.due_at).where(Timer.status.in_(("pending", "running"))).order_by(Timer.due_at).limit(1)
            )

    async def _claim(self, timer_id: int, now: datetime) -> bool:
        async with self._db() as s, s.begin():
            res = await s.execute(
                update(Timer)
                .where(
                    Timer.id == timer_id,
                    or_(
                        Timer.status == "pending",
                        and_(Timer.status == "running", Timer.claimed_until < now),
                    ),
                )
                .values(
                    status="running",
                    claimed_until=now + timedelta(seconds=CLAIM_SECONDS),
                    attempts=Timer.attempts + 1,
                )
            )
            return res.rowcount == 1  # type: ignore[attr-defined]

    async def _finish(
        self, timer_id: int, status: str, error: str | None = None, retry_at: datetime | None = None
    ) -> None:
        async with self._db() as s, s.begin():
            values: dict[str, Any] = {"status": status, "last_error": error, "claimed_until": None}
            if status in ("done", "failed"):
                values["done_at"] = self._clock.now()
            if retry_at is not None:
                values["due_at"] = retry_at
            await s.execute(update(Timer).where(Timer.id == timer_id).values(**values))

    async def run_due(self, app: App, *, limit: int = 200) -> int:
        """Fire every due timer once; returns how many fired."""
        now = self._clock.now()
        async with self._db() as s:
            rows = (
                await s.execute(
                    select(Timer.id, Timer.key, Timer.handler, Timer.chat_id, Timer.payload, Timer.due_at,
                           Timer.attempts)
                    .where(
                        Timer.due_at <= now,
                        or_(
                            Timer.status == "pending",
                            and_(Timer.status == "running", Timer.claimed_until < now),
                        ),
                    )
                    .order_by(Timer.due_at, Timer.id)
                    .limit(limit)
                )
            ).all()
        fired = 0
        for timer_id, key, handler_name, chat_id, payload, due_at, attempts in rows:
            if not await self._claim(timer_id, now):
                continue
            handler = self._handlers.get(handler_name)
            if handler is None:
                await self._finish(timer_id, "failed", f"no handler {handler_name!r}")
                continue
            fire = TimerFire(key=key, chat_id=chat_id, payload=payload or {}, due_at=due_at, attempt=attempts + 1)
            try:
                await handler(app, fire)
            except Exception as exc:
                log.exception("timer %s (%s) failed", key, handler_name)
                if attempts + 1 >= MAX_ATTEMPTS:
                    await self._finish(timer_id, "failed", repr(exc)[:500])
                else:
                    backoff = timedelta(seconds=min(300, 5 * 2**attempts))
                    await self._finish(timer_id, "pending", repr(exc)[:500], retry_at=now + backoff)
                continue
            await self._finish(timer_id, "done")
            fired += 1
        return fired

    async def prune(self, older_than: timedelta = timedelta(days=30)) -> int:
        cutoff = self._clock.now() - older_than
        async with self._db() as s, s.begin():
            res = await s.execute(
                delete(Timer).where(Timer.status.in_(("done", "cancelled", "failed")), Timer.done_at < cutoff)
            )
            return int(res.rowcount)  # type: ignore[attr-defined]

    async def loop(self, app: App, stop: asyncio.Event, poll_seconds: float = 1.0) -> None:
        while not stop.is_set():
            try:
                await self.run_due(app)
            except Exception:
                log.exception("timer loop iteration failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)
