"""Database side of the contests (aiogram-free): every function takes an AsyncSession first.

Writes that must happen once (closing a contest, claiming a quiz) are conditional UPDATEs on
``status``, so two workers, a redelivered update or a timer firing twice cannot double them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import upsert
from plugins.polls.models import CLOSED, OPEN, Argument, Contest, Entry


async def create_contest(
    s: AsyncSession,
    *,
    chat_id: int,
    kind: str,
    creator_id: int | None,
    title: str,
    options: Sequence[str],
    data: dict[str, Any],
    now: datetime,
    closes_at: datetime,
    source_chat_id: int | None,
    source_message_id: int | None,
) -> tuple[Contest, bool]:
    """The new contest, or (when the same command message was seen before) the existing one."""
    if source_chat_id is not None and source_message_id is not None:
        existing = await s.scalar(
            select(Contest).where(
                Contest.source_chat_id == source_chat_id, Contest.source_message_id == source_message_id
            )
        )
        if existing is not None:
            return existing, False
    contest = Contest(
        chat_id=chat_id, kind=kind, status=OPEN, creator_id=creator_id, title=title, options=list(options),
        data=dict(data), created_at=now, closes_at=closes_at, source_chat_id=source_chat_id,
        source_message_id=source_message_id,
    )
    s.add(contest)
    await s.flush()
    return contest, True


async def get(s: AsyncSession, contest_id: int) -> Contest | None:
    return await s.get(Contest, contest_id)


async def by_source(s: AsyncSession, source_chat_id: int, source_message_id: int) -> Contest | None:
    return await s.scalar(
        select(Contest).where(Contest.source_chat_id == source_chat_id, Contest.source_message_id == source_message_id)
    )


async def count_open(s: AsyncSession, chat_id: int) -> int:
    return int(
        await s.scalar(
            select(func.count()).select_from(Contest).where(Contest.chat_id == chat_id, Contest.status == OPEN)
        )
        or 0
    )


async def open_contests(s: AsyncSession, chat_id: int | None = None) -> list[Contest]:
    stmt = select(Contest).where(Contest.status == OPEN)
    if chat_id is not None:
        stmt = stmt.where(Contest.chat_id == chat_id)
    return list(await s.scalars(stmt.order_by(Contest.closes_at, Contest.id)))


async def set_message(s: AsyncSession, contest_id: int, message_id: int, poll_id: str | None = None) -> None:
    await s.execute(update(Contest).where(Contest.id == contest_id).values(message_id=message_id, poll_id=poll_id))


async def close(s: AsyncSession, contest_id: int, result: dict[str, Any], now: datetime, status: str = CLOSED) -> bool:
    """open -> closed (or cancelled) with the result; False when it was no longer open."""
    res = await s.execute(
        update(Contest)
        .where(Contest.id == contest_id, Contest.status == OPEN)
        .values(status=status, result=result, closed_at=now)
    )
    return res.rowcount == 1  # type: ignore[attr-defined]


async def mark_announced(s: AsyncSession, contest_id: int, now: datetime) -> None:
    await s.execute(
        update(Contest).where(Contest.id == contest_id, Contest.announced_at.is_(None)).values(announced_at=now)
    )


# ------------------------------------------------------------------------------------------ PK
Outcome = Literal["new", "switched", "same"]


@dataclass(frozen=True)
class VoteResult:
    outcome: Outcome
    previous: int | None


async def pk_vote(s: AsyncSession, contest_id: int, user_id: int, side: int, now: datetime) -> VoteResult | None:
    """Record or switch a vote; None when the contest is no longer open."""
    status = await s.scalar(select(Contest.status).where(Contest.id == contest_id))
    if status != OPEN:
        return None
    entry = await s.get(Entry, (contest_id, user_id))
    if entry is None:
        s.add(Entry(contest_id=contest_id, user_id=user_id, choice=side, source="button", created_at=now,
                    updated_at=now))
        await s.flush()
        return VoteResult("new", None)
    if entry.choice == side:
        return VoteResult("same", side)
    previous = entry.choice
    entry.choice = side
    entry.updated_at = now
    return VoteResult("switched", previous)


async def side_counts(s: AsyncSession, contest_id: int, sides: int = 2) -> list[int]:
    rows = await s.execute(
        select(Entry.choice, func.count()).where(Entry.contest_id == contest_id).group_by(Entry.choice)
    )
    counts = [0] * sides
    for choice, n in rows.all():
        if choice is not None and 0 <= choice < sides:
            counts[choice] = int(n)
    return counts


async def voters(s: AsyncSession, contest_id: int) -> list[tuple[int, int | None]]:
    """(user_id, choice) of every entry, by user id."""
    rows = await s.execute(
        select(Entry.user_id, Entry.choice).where(Entry.contest_id == contest_id).order_by(Entry.user_id)
    )
    return [(int(u), c) for u, c in rows.all()]


async def top_arguments(s: AsyncSession, contest_id: int) -> dict[int, Argument]:
    """The most-replied tagged argument of each side (ties: the earliest)."""
    rows = await s.scalars(
        select(Argument)
        .where(Argument.contest_id == contest_id)
        .order_by(Argument.side, Argument.replies.desc(), Argument.created_at, Argument.message_id)
    )
    best: dict[int, Argument] = {}
    for arg in rows:
        best.setdefault(arg.side, arg)
    return best


async def arguments_of(s: AsyncSession, contest_ids: Iterable[int]) -> list[Argument]:
    ids = list(contest_ids)
    if not ids:
        return []
    return list(await s.scalars(select(Argument).where(Argument.contest_id.in_(ids))))


# ------------------------------------------------------------------------------------------ lottery / polls
async def enter(s: AsyncSession, contest_id: int, user_id: int, source: str, now: datetime) -> bool | None:
    """A lottery entry written at once (several workers): True new, False already in, None not open.

    The caller holds the contest's lock, so the status read here cannot change before the commit."""
    status = await s.scalar(select(Contest.status).where(Contest.id == contest_id))
    if status != OPEN:
        return None
    if await s.get(Entry, (contest_id, user_id)) is not None:
        return False
    s.add(Entry(contest_id=contest_id, user_id=user_id, source=source, created_at=now, updated_at=now))
    await s.flush()
    return True


async def entrant_ids(s: AsyncSession, contest_id: int) -> list[int]:
    rows = await s.scalars(select(Entry.user_id).where(Entry.contest_id == contest_id).order_by(Entry.user_id))
    return [int(u) for u in rows]


async def entrants_of(s: AsyncSession, contest_ids: Iterable[int]) -> dict[int, set[int]]:
    ids = list(contest_ids)
    out: dict[int, set[int]] = {i: set() for i in ids}
    if not ids:
        return out
    rows = await s.execute(select(Entry.contest_id, Entry.user_id).where(Entry.contest_id.in_(ids)))
    for cid, uid in rows.all():
        out[int(cid)].add(int(uid))
    return out


async def poll_answers(s: AsyncSession, contest_id: int) -> list[tuple[int, list[int]]]:
    rows = await s.execute(
        select(Entry.user_id, Entry.choices).where(Entry.contest_id == contest_id).order_by(Entry.user_id)
    )
    return [(int(u), list(c or [])) for u, c in rows.all()]


# ------------------------------------------------------------------------------------------ quiz
async def claim_quiz(
    s: AsyncSession, contest_id: int, user_id: int, message_id: int | None, now: datetime
) -> bool:
    """The first correct answer wins: one conditional UPDATE decides."""
    return await close(s, contest_id, {"winner": user_id, "message_id": message_id}, now)


# ------------------------------------------------------------------------------------------ buffers
async def write_buffers(
    s: AsyncSession,
    *,
    joins: list[dict[str, Any]],
    answers: list[dict[str, Any]],
    arguments: list[dict[str, Any]],
    replies: list[dict[str, Any]],
    poll_counts: list[dict[str, Any]],
) -> None:
    """One executemany per kind of buffered row (no commit: the caller owns the transaction)."""
    await upsert(s, Entry, joins, ["contest_id", "user_id"])
    await upsert(s, Entry, answers, ["contest_id", "user_id"], ["choice", "choices", "updated_at"])
    await upsert(s, Argument, arguments, ["contest_id", "message_id"])
    if replies:
        await s.execute(
            update(Argument.__table__)  # type: ignore[arg-type]
            .where(
                Argument.__table__.c.contest_id == bindparam("b_contest"),
                Argument.__table__.c.message_id == bindparam("b_message"),
            )
            .values(replies=Argument.__table__.c.replies + bindparam("b_n")),
            replies,
        )
    for row in poll_counts:
        await s.execute(
            update(Contest)
            .where(Contest.id == row["contest_id"], Contest.status == OPEN)
            .values(result={"counts": row["counts"], "total": row["total"]})
        )
