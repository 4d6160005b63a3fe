"""Database side of the content calendar (aiogram-free; every function takes a session first)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import upsert
from plugins.content_calendar.models import CalendarEntry, CrisisState, Occurrence, Pause, Streak

FINAL = frozenset({"sent", "failed", "skipped", "dropped"})


# ---- entries ----------------------------------------------------------------------------------------
async def sync_file_entries(
    s: AsyncSession, specs: Sequence[tuple[str, dict[str, Any]]], now: datetime
) -> tuple[list[str], list[str], list[str]]:
    """Make the file entries in the DB equal ``specs`` (key, spec); returns (added, changed, removed) keys."""
    rows = {r.key: r for r in (await s.scalars(select(CalendarEntry).where(CalendarEntry.source == "file"))).all()}
    added, changed, removed = [], [], []
    wanted = dict(specs)
    for key, spec in wanted.items():
        row = rows.get(key)
        if row is None:
            clash = await s.scalar(select(CalendarEntry).where(CalendarEntry.key == key))
            if clash is not None:  # an entry added in a chat cannot have a file id (they start with chat-)
                continue
            s.add(CalendarEntry(key=key, source="file", spec=spec, active=True, created_at=now, updated_at=now))
            added.append(key)
        elif row.spec != spec or not row.active:
            row.spec = spec
            row.active = True
            row.updated_at = now
            changed.append(key)
    for key, row in rows.items():
        if key not in wanted and row.active:
            row.active = False
            row.updated_at = now
            removed.append(key)
    await s.flush()
    return added, changed, removed


async def active_entries(s: AsyncSession) -> list[CalendarEntry]:
    return list((await s.scalars(select(CalendarEntry).where(CalendarEntry.active.is_(True))
                                 .order_by(CalendarEntry.id))).all())


async def entry_row(s: AsyncSession, key: str) -> CalendarEntry | None:
    return await s.scalar(select(CalendarEntry).where(CalendarEntry.key == key))


async def entry_by_id(s: AsyncSession, entry_id: int) -> CalendarEntry | None:
    return await s.get(CalendarEntry, entry_id)


async def add_chat_entry(
    s: AsyncSession, key: str, chat_id: int, spec: dict[str, Any], by: int | None, now: datetime
) -> tuple[CalendarEntry, bool]:
    """Insert an entry added in a chat; (row, False) when this key exists already (a redelivered command)."""
    existing = await entry_row(s, key)
    if existing is not None:
        return existing, False
    row = CalendarEntry(key=key, source="chat", owner_chat_id=chat_id, spec=spec, active=True, created_by=by,
                        created_at=now, updated_at=now)
    s.add(row)
    await s.flush()
    return row, True


async def deactivate(s: AsyncSession, key: str, now: datetime) -> bool:
    res = await s.execute(
        update(CalendarEntry).where(CalendarEntry.key == key, CalendarEntry.active.is_(True))
        .values(active=False, updated_at=now)
    )
    return bool(res.rowcount)  # type: ignore[attr-defined]


# ---- pauses -----------------------------------------------------------------------------------------
async def pause(s: AsyncSession, key: str, chat_id: int, by: int | None, now: datetime) -> bool:
    if await s.get(Pause, (key, chat_id)) is not None:
        return False
    s.add(Pause(entry_key=key, chat_id=chat_id, paused_by=by, paused_at=now))
    await s.flush()
    return True


async def resume(s: AsyncSession, key: str, chat_id: int) -> bool:
    res = await s.execute(delete(Pause).where(Pause.entry_key == key, Pause.chat_id == chat_id))
    return bool(res.rowcount)  # type: ignore[attr-defined]


async def is_paused(s: AsyncSession, key: str, chat_id: int) -> bool:
    return await s.get(Pause, (key, chat_id)) is not None


async def all_pauses(s: AsyncSession) -> set[tuple[str, int]]:
    return {(k, c) for k, c in (await s.execute(select(Pause.entry_key, Pause.chat_id))).all()}


async def paused_keys(s: AsyncSession, chat_id: int) -> set[str]:
    return set((await s.scalars(select(Pause.entry_key).where(Pause.chat_id == chat_id))).all())


# ---- occurrences ------------------------------------------------------------------------------------
async def occurrence(s: AsyncSession, key: str, chat_id: int, slot: str) -> Occurrence | None:
    return await s.scalar(
        select(Occurrence).where(Occurrence.entry_key == key, Occurrence.chat_id == chat_id, Occurrence.slot == slot)
    )


async def existing_slots(s: AsyncSession, key: str, chat_id: int, slots: Iterable[str]) -> set[str]:
    wanted = list(slots)
    if not wanted:
        return set()
    rows = await s.scalars(
        select(Occurrence.slot).where(Occurrence.entry_key == key, Occurrence.chat_id == chat_id,
                                      Occurrence.slot.in_(wanted))
    )
    return set(rows.all())


async def insert_occurrence(
    s: AsyncSession, *, key: str, chat_id: int, slot: str, due_at: datetime, status: str, series: str | None,
    now: datetime, error: str | None = None, attempts: int = 0,
) -> Occurrence | None:
    """Insert the occurrence with its unique key; None when it exists (another run got there first)."""
    row = Occurrence(entry_key=key, chat_id=chat_id, slot=slot, due_at=due_at, status=status, series=series,
                     attempts=attempts, error=error, created_at=now, pinned=False)
    try:
        async with s.begin_nested():
            s.add(row)
            await s.flush()
    except IntegrityError:
        return None
    return row


async def transition(s: AsyncSession, occ_id: int, old: str, new: str, **values: Any) -> bool:
    """Move an occurrence from ``old`` to ``new`` status if it is still in ``old`` (one process wins)."""
    stmt = update(Occurrence).where(Occurrence.id == occ_id, Occurrence.status == old).values(status=new, **values)
    res = await s.execute(stmt.execution_options(synchronize_session=False))
    return res.rowcount == 1  # type: ignore[attr-defined]


async def set_fields(s: AsyncSession, occ_id: int, **values: Any) -> None:
    await s.execute(update(Occurrence).where(Occurrence.id == occ_id).values(**values)
                    .execution_options(synchronize_session=False))


async def held(s: AsyncSession, chat_id: int) -> list[Occurrence]:
    return list((await s.scalars(
        select(Occurrence).where(Occurrence.chat_id == chat_id, Occurrence.status == "held").order_by(Occurrence.due_at)
    )).all())


async def pinned_in_series(s: AsyncSession, chat_id: int, series: str, exclude_id: int) -> list[Occurrence]:
    return list((await s.scalars(
        select(Occurrence).where(Occurrence.chat_id == chat_id, Occurrence.series == series,
                                 Occurrence.pinned.is_(True), Occurrence.id != exclude_id)
    )).all())


async def recent(s: AsyncSession, chat_id: int, limit: int = 10) -> list[Occurrence]:
    return list((await s.scalars(
        select(Occurrence).where(Occurrence.chat_id == chat_id).order_by(Occurrence.due_at.desc()).limit(limit)
    )).all())


async def last_sent(s: AsyncSession, chat_id: int, keys: Iterable[str]) -> dict[str, datetime]:
    rows = await s.execute(
        select(Occurrence.entry_key, func.max(Occurrence.sent_at))
        .where(Occurrence.chat_id == chat_id, Occurrence.entry_key.in_(list(keys)), Occurrence.status == "sent")
        .group_by(Occurrence.entry_key)
    )
    return {k: v for k, v in rows.all() if v is not None}


# ---- crisis -----------------------------------------------------------------------------------------
async def set_crisis(s: AsyncSession, chat_id: int, incident_id: int, level: int | None, now: datetime) -> None:
    if level is None:
        await s.execute(delete(CrisisState).where(CrisisState.chat_id == chat_id,
                                                  CrisisState.incident_id == incident_id))
        return
    await upsert(s, CrisisState, [{"chat_id": chat_id, "incident_id": incident_id, "level": level, "updated_at": now}],
                 ["chat_id", "incident_id"], ["level", "updated_at"])


async def crisis_levels(s: AsyncSession, chat_id: int) -> list[int]:
    return list((await s.scalars(select(CrisisState.level).where(CrisisState.chat_id == chat_id))).all())


# ---- streaks ----------------------------------------------------------------------------------------
# (chat_id, user_id) -> (streak, checked_in_at): check-ins not yet written by the batch flush.
PendingStreaks = dict[tuple[int, int], tuple[int, datetime]]


async def write_streaks(s: AsyncSession, pending: PendingStreaks) -> None:
    await upsert(s, Streak, [{"chat_id": chat_id, "user_id": user_id, "streak": streak, "checked_in_at": at}
                             for (chat_id, user_id), (streak, at) in pending.items()],
                 ["chat_id", "user_id"], ["streak", "checked_in_at"])


async def streak_leaders(s: AsyncSession, chat_id: int, since: datetime, limit: int,
                         pending: PendingStreaks | None = None) -> list[tuple[int, int]]:
    """Members whose streak is still alive (checked in since ``since``), longest first.

    ``pending`` (check-ins the batch flush has not written yet) overrides the stored rows.
    """
    mine = {user_id: (streak, at) for (chat, user_id), (streak, at) in (pending or {}).items() if chat == chat_id}
    rows = await s.execute(
        select(Streak.user_id, Streak.streak)
        .where(Streak.chat_id == chat_id, Streak.checked_in_at >= since, Streak.streak > 0)
        .order_by(Streak.streak.desc(), Streak.user_id).limit(limit + len(mine))
    )
    alive = {int(u): int(n) for u, n in rows.all() if int(u) not in mine}
    alive.update({u: streak for u, (streak, at) in mine.items() if at >= since and streak > 0})
    return sorted(alive.items(), key=lambda un: (-un[1], un[0]))[:limit]
