"""Moderation storage and the ladder: aiogram-free functions taking a session first.

Everything that counts a member's penalties lives here (``add_warn`` + ``ladder_step``), so manual
warns, banned words, floods, spam waves and report buttons all climb the same ladder.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Chat, Member
from plugins.moderation.models import ActionLog, Approved, BannedWord, GlobalBan, RaidState, Report, Warn
from plugins.moderation.parsing import Action

# ---- the ladder (pure) ---------------------------------------------------------------------------


def ladder_step(ladder: Sequence[Action], count: int) -> Action:
    """The step for the ``count``-th active warn (1-based); beyond the end the last step repeats."""
    if count <= 0 or not ladder:
        return Action("notice")
    return ladder[min(count, len(ladder)) - 1]


def stronger(a: Action, b: Action) -> Action:
    return b if b.rank > a.rank else a


# ---- warns ---------------------------------------------------------------------------------------


def _active(chat_id: int, user_id: int, now: datetime) -> list[object]:
    return [
        Warn.chat_id == chat_id,
        Warn.user_id == user_id,
        Warn.revoked_at.is_(None),
        or_(Warn.expires_at.is_(None), Warn.expires_at > now),
    ]


async def add_warn(
    session: AsyncSession, *, chat_id: int, user_id: int, source: str, rule: str, reason: str | None,
    actor_id: int | None, now: datetime, expire_days: int,
) -> Warn | None:
    """Insert a warn; None when this source already warned (a redelivered update)."""
    exists = await session.scalar(select(Warn.id).where(Warn.chat_id == chat_id, Warn.source == source))
    if exists is not None:
        return None
    warn = Warn(
        chat_id=chat_id, user_id=user_id, source=source[:128], rule=rule[:32], reason=reason, actor_id=actor_id,
        created_at=now, expires_at=now + timedelta(days=expire_days) if expire_days else None,
    )
    try:
        async with session.begin_nested():
            session.add(warn)
    except IntegrityError:
        return None
    return warn


async def active_warns(session: AsyncSession, chat_id: int, user_id: int, now: datetime) -> list[Warn]:
    rows = await session.scalars(select(Warn).where(*_active(chat_id, user_id, now)).order_by(Warn.id))
    return list(rows)


async def count_active(session: AsyncSession, chat_id: int, user_id: int, now: datetime) -> int:
    return int(await session.scalar(select(func.count()).select_from(Warn).where(*_active(chat_id, user_id, now)))
               or 0)


async def revoke_latest(
    session: AsyncSession, chat_id: int, user_id: int, by: int | None, now: datetime
) -> Warn | None:
    warn = await session.scalar(
        select(Warn).where(*_active(chat_id, user_id, now)).order_by(Warn.id.desc()).limit(1)
    )
    if warn is not None:
        warn.revoked_at = now
        warn.revoked_by = by
    return warn


async def revoke_all(session: AsyncSession, chat_id: int, user_id: int, by: int | None, now: datetime) -> int:
    result = await session.execute(
        update(Warn).where(*_active(chat_id, user_id, now)).values(revoked_at=now, revoked_by=by)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def revoke_warn(session: AsyncSession, warn_id: int, by: int | None, now: datetime) -> bool:
    result = await session.execute(
        update(Warn).where(Warn.id == warn_id, Warn.revoked_at.is_(None)).values(revoked_at=now, revoked_by=by)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ---- the action journal --------------------------------------------------------------------------


async def record_action(session: AsyncSession, row: ActionLog) -> ActionLog | None:
    """Add a journal row; None when the same (chat, source) was already recorded."""
    exists = await session.scalar(
        select(ActionLog.id).where(ActionLog.chat_id == row.chat_id, ActionLog.source == row.source)
    )
    if exists is not None:
        return None
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return row


async def claim_undo(session: AsyncSession, log_id: int, by: int, now: datetime) -> bool:
    """Mark a journal row undone; False when it was undone already (a second press)."""
    result = await session.execute(
        update(ActionLog).where(ActionLog.id == log_id, ActionLog.undone_at.is_(None))
        .values(undone_at=now, undone_by=by).execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ---- banned words --------------------------------------------------------------------------------


@dataclass(frozen=True)
class WordChange:
    added: list[str]
    existing: list[str]
    over_limit: list[str]


async def list_words(session: AsyncSession, chat_id: int) -> list[BannedWord]:
    return list(await session.scalars(select(BannedWord).where(BannedWord.chat_id == chat_id).order_by(BannedWord.id)))


async def word_pairs(session: AsyncSession, chat_id: int) -> list[tuple[str, str]]:
    """(word, action) of a chat, oldest first: plain rows, no ORM objects (10,000 words load fast)."""
    rows = await session.execute(
        select(BannedWord.word, BannedWord.action).where(BannedWord.chat_id == chat_id).order_by(BannedWord.id)
    )
    return [(w, a) for w, a in rows]


async def word_keys(session: AsyncSession, chat_id: int, keys: Iterable[str]) -> set[str]:
    keys = list(keys)
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        found |= set(await session.scalars(
            select(BannedWord.key).where(BannedWord.chat_id == chat_id, BannedWord.key.in_(keys[i : i + 500]))
        ))
    return found


async def add_words(
    session: AsyncSession, chat_id: int, words: Iterable[tuple[str, str]], action: str, by: int | None,
    now: datetime, limit: int,
) -> WordChange:
    """``words``: (word, key) pairs. Existing keys get the new action (and are reported as existing)."""
    words = list(words)
    present = await word_keys(session, chat_id, [k for _w, k in words])
    total = int(await session.scalar(select(func.count()).select_from(BannedWord)
                                     .where(BannedWord.chat_id == chat_id)) or 0)
    added: list[str] = []
    existing: list[str] = []
    over: list[str] = []
    for word, key in words:
        if key in present:
            existing.append(word)
            continue
        if total >= limit:
            over.append(word)
            continue
        session.add(BannedWord(chat_id=chat_id, word=word[:255], key=key[:255], action=action, added_by=by,
                               added_at=now))
        present.add(key)
        total += 1
        added.append(word)
    if existing:
        await session.execute(
            update(BannedWord).where(BannedWord.chat_id == chat_id,
                                     BannedWord.key.in_([k for w, k in words if w in set(existing)]))
            .values(action=action).execution_options(synchronize_session=False)
        )
    return WordChange(added, existing, over)


async def remove_words(session: AsyncSession, chat_id: int, keys: Iterable[str]) -> int:
    keys = list(keys)
    if not keys:
        return 0
    result = await session.execute(
        delete(BannedWord).where(BannedWord.chat_id == chat_id, BannedWord.key.in_(keys))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# ---- approvals -----------------------------------------------------------------------------------


async def approved_ids(session: AsyncSession, chat_id: int) -> set[int]:
    return set(await session.scalars(select(Approved.user_id).where(Approved.chat_id == chat_id)))


async def approve(session: AsyncSession, chat_id: int, user_id: int, by: int | None, now: datetime) -> bool:
    if await session.get(Approved, (chat_id, user_id)) is not None:
        return False
    session.add(Approved(chat_id=chat_id, user_id=user_id, approved_by=by, approved_at=now))
    return True


async def unapprove(session: AsyncSession, chat_id: int, user_id: int) -> bool:
    row = await session.get(Approved, (chat_id, user_id))
    if row is None:
        return False
    await session.delete(row)
    return True


# ---- reports -------------------------------------------------------------------------------------


async def find_report(session: AsyncSession, chat_id: int, message_id: int, reporter_id: int) -> Report | None:
    return await session.scalar(
        select(Report).where(Report.chat_id == chat_id, Report.message_id == message_id,
                             Report.reporter_id == reporter_id)
    )


async def reports_since(session: AsyncSession, chat_id: int, reporter_id: int, since: datetime) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Report).where(
                Report.chat_id == chat_id, Report.reporter_id == reporter_id, Report.created_at > since
            )
        ) or 0
    )


async def claim_report(session: AsyncSession, report_id: int, status: str, by: int, now: datetime) -> bool:
    """Atomically take an open report; False when someone handled it already."""
    result = await session.execute(
        update(Report).where(Report.id == report_id, Report.status == "open")
        .values(status=status, handled_by=by, handled_at=now).execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


# ---- network bans --------------------------------------------------------------------------------


async def gban_ids(session: AsyncSession) -> set[int]:
    return set(await session.scalars(select(GlobalBan.user_id)))


async def add_gban(session: AsyncSession, user_id: int, reason: str | None, by: int | None, now: datetime) -> bool:
    row = await session.get(GlobalBan, user_id)
    if row is not None:
        return False
    session.add(GlobalBan(user_id=user_id, reason=reason, actor_id=by, created_at=now))
    return True


async def remove_gban(session: AsyncSession, user_id: int) -> bool:
    row = await session.get(GlobalBan, user_id)
    if row is None:
        return False
    await session.delete(row)
    return True


async def managed_chats(session: AsyncSession, extra: Iterable[int] = ()) -> list[int]:
    """Every group the bot knows: core_chats, chats with members on record, configured chats."""
    chats: set[int] = {c for c in extra if c < 0}
    chats |= set(await session.scalars(select(Chat.chat_id).where(Chat.chat_id < 0)))
    chats |= set(await session.scalars(select(Member.chat_id).where(Member.chat_id < 0).distinct()))
    return sorted(chats)


# ---- raid mode -----------------------------------------------------------------------------------


async def set_raid(session: AsyncSession, chat_id: int, now: datetime, until: datetime, by: int | None) -> None:
    row = await session.get(RaidState, chat_id)
    if row is None:
        session.add(RaidState(chat_id=chat_id, started_at=now, until=until, started_by=by))
    else:
        row.started_at, row.until, row.started_by = now, until, by


async def clear_raid(session: AsyncSession, chat_id: int) -> None:
    await session.execute(delete(RaidState).where(RaidState.chat_id == chat_id))
