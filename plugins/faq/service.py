"""FAQ storage: aiogram-free functions taking an AsyncSession first (no commits: callers own the
transaction). Every change bumps the chat's revision in ``faq_chats`` so every process rebuilds its
automaton (``qunbot faq import`` runs in another process than the bot)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import upsert
from plugins.faq.matcher import REGEX, EntryData, FaqError
from plugins.faq.models import FaqChat, FaqEntry, FaqGap, FaqKeyword
from plugins.faq.parsing import PreparedEntry


@dataclass
class SaveResult:
    entry_id: int
    created: bool
    keywords: list[str]  # every keyword of the entry after the save


@dataclass
class EntrySummary:
    id: int
    mode: str
    keywords: list[str]
    reply_html: str
    buttons: list[Any]
    media_type: str | None
    media_file_id: str | None
    hits: int
    last_hit_at: datetime | None


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    removed: int = 0
    ids: list[int] = field(default_factory=list)


# ---- revisions -----------------------------------------------------------------------------------
async def bump_revision(session: AsyncSession, chat_id: int, now: datetime) -> None:
    await upsert(session, FaqChat, [{"chat_id": chat_id, "revision": 1, "updated_at": now}], ["chat_id"],
                 ["updated_at"], increment=["revision"])


async def revisions(session: AsyncSession) -> dict[int, int]:
    rows = await session.execute(sa.select(FaqChat.chat_id, FaqChat.revision))
    return {int(c): int(r) for c, r in rows}


# ---- loading -------------------------------------------------------------------------------------
def _buttons_tuple(raw: Any) -> tuple[tuple[tuple[str, str], ...], ...]:
    rows = []
    for row in raw or ():
        rows.append(tuple((str(b["text"]), str(b["url"])) for b in row if isinstance(b, dict)))
    return tuple(r for r in rows if r)


async def load_chat(session: AsyncSession, chat_id: int) -> tuple[list[EntryData], int]:
    """Every entry of a chat with its keywords, and the chat's revision (read together)."""
    revision = await session.scalar(sa.select(FaqChat.revision).where(FaqChat.chat_id == chat_id))
    entries = (await session.execute(sa.select(FaqEntry).where(FaqEntry.chat_id == chat_id))).scalars().all()
    kw_rows = await session.execute(
        sa.select(FaqKeyword.entry_id, FaqKeyword.keyword, FaqKeyword.norm)
        .where(FaqKeyword.chat_id == chat_id)
        .order_by(FaqKeyword.entry_id, FaqKeyword.position, FaqKeyword.id)
    )
    by_entry: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for entry_id, keyword, norm in kw_rows:
        by_entry[entry_id].append((keyword, norm))
    out = []
    for e in entries:
        kws = by_entry.get(e.id)
        if not kws:
            continue
        out.append(EntryData(
            id=e.id, mode=e.mode, keywords=tuple(k for k, _ in kws), norms=tuple(n for _, n in kws),
            reply_html=e.reply_html, buttons=_buttons_tuple(e.buttons), media_type=e.media_type,
            media_file_id=e.media_file_id,
        ))
    return out, int(revision or 0)


async def any_word_entries(session: AsyncSession) -> bool:
    return bool(await session.scalar(sa.select(sa.exists().where(FaqEntry.mode == "word"))))


# ---- writing -------------------------------------------------------------------------------------
async def save_entry(
    session: AsyncSession,
    chat_id: int,
    entry: PreparedEntry,
    *,
    by: int | None,
    now: datetime,
    max_entries: int,
    max_regex: int,
    bump: bool = True,
) -> SaveResult:
    """Create an entry, or update the entry that already owns one of its keywords (the first one,
    in the given order). Keywords owned by other entries move to it; entries left without keywords
    are deleted."""
    rows = (await session.execute(
        sa.select(FaqKeyword).where(FaqKeyword.chat_id == chat_id, FaqKeyword.norm.in_(entry.norms))
    )).scalars().all()
    owned = {r.norm: r for r in rows}
    target_id = next((owned[n].entry_id for n in entry.norms if n in owned), None)
    created = target_id is None
    if created:
        count = await session.scalar(sa.select(sa.func.count()).select_from(FaqEntry)
                                     .where(FaqEntry.chat_id == chat_id)) or 0
        if count >= max_entries:
            raise FaqError("本群的自动回复已达上限：", str(max_entries))
    target = None if created else await session.get(FaqEntry, target_id)
    if entry.mode == REGEX and (target is None or target.mode != REGEX):
        regexes = await session.scalar(sa.select(sa.func.count()).select_from(FaqEntry)
                                       .where(FaqEntry.chat_id == chat_id, FaqEntry.mode == REGEX)) or 0
        if regexes >= max_regex:
            raise FaqError("本群的正则自动回复已达上限：", str(max_regex))
    if target is None:
        target = FaqEntry(chat_id=chat_id, mode=entry.mode, reply_html=entry.reply_html, buttons=entry.buttons,
                          media_type=entry.media_type, media_file_id=entry.media_file_id, hits=0,
                          created_by=by, created_at=now, updated_at=now)
        session.add(target)
        await session.flush()
    else:
        target.mode = entry.mode
        target.reply_html = entry.reply_html
        target.buttons = entry.buttons
        target.media_type = entry.media_type
        target.media_file_id = entry.media_file_id
        target.updated_at = now
    # Keywords: move the ones other entries own, add the new ones.
    others: set[int] = set()
    position = await session.scalar(sa.select(sa.func.coalesce(sa.func.max(FaqKeyword.position), -1))
                                    .where(FaqKeyword.entry_id == target.id)) if not created else -1
    position = int(position if position is not None else -1)
    for kw, norm in zip(entry.keywords, entry.norms, strict=True):
        row = owned.get(norm)
        if row is None:
            position += 1
            session.add(FaqKeyword(entry_id=target.id, chat_id=chat_id, keyword=kw, norm=norm, position=position))
        else:
            row.keyword = kw
            if row.entry_id != target.id:
                others.add(row.entry_id)
                position += 1
                row.entry_id = target.id
                row.position = position
    await session.flush()
    if others:
        await _delete_empty(session, others)
    if bump:
        await bump_revision(session, chat_id, now)
    keywords = (await session.execute(
        sa.select(FaqKeyword.keyword).where(FaqKeyword.entry_id == target.id)
        .order_by(FaqKeyword.position, FaqKeyword.id)
    )).scalars().all()
    return SaveResult(target.id, created, list(keywords))


async def _delete_empty(session: AsyncSession, entry_ids: set[int]) -> None:
    still = set((await session.execute(
        sa.select(FaqKeyword.entry_id).where(FaqKeyword.entry_id.in_(entry_ids)).distinct()
    )).scalars().all())
    empty = entry_ids - still
    if empty:
        await session.execute(sa.delete(FaqEntry).where(FaqEntry.id.in_(empty)))


@dataclass
class StopResult:
    keyword: str
    removed: bool
    # Keywords the entry still has (the answer stays for them); empty when the entry is gone.
    remaining: list[str] = field(default_factory=list)


async def remove_keywords(
    session: AsyncSession, chat_id: int, candidates: Sequence[tuple[str, Sequence[str]]], now: datetime
) -> list[StopResult]:
    """``candidates``: (keyword as typed, norms it may have). Removes each keyword found."""
    results: list[StopResult] = []
    touched: set[int] = set()
    for typed, norms in candidates:
        row = (await session.execute(
            sa.select(FaqKeyword).where(
                FaqKeyword.chat_id == chat_id,
                sa.or_(FaqKeyword.norm.in_(list(norms)), FaqKeyword.keyword == typed),
            ).order_by(FaqKeyword.id).limit(1)
        )).scalars().first()
        if row is None:
            results.append(StopResult(typed, False))
            continue
        touched.add(row.entry_id)
        await session.delete(row)
        await session.flush()
        remaining = (await session.execute(
            sa.select(FaqKeyword.keyword).where(FaqKeyword.entry_id == row.entry_id)
            .order_by(FaqKeyword.position, FaqKeyword.id)
        )).scalars().all()
        results.append(StopResult(row.keyword, True, list(remaining)))
    if touched:
        await _delete_empty(session, touched)
        await session.execute(sa.update(FaqEntry).where(FaqEntry.id.in_(touched)).values(updated_at=now))
        await bump_revision(session, chat_id, now)
    return results


async def remove_all(session: AsyncSession, chat_id: int, now: datetime) -> int:
    count = await session.scalar(sa.select(sa.func.count()).select_from(FaqEntry)
                                 .where(FaqEntry.chat_id == chat_id)) or 0
    if count:
        await session.execute(sa.delete(FaqKeyword).where(FaqKeyword.chat_id == chat_id))
        await session.execute(sa.delete(FaqEntry).where(FaqEntry.chat_id == chat_id))
        await bump_revision(session, chat_id, now)
    return int(count)


# ---- reading ---------------------------------------------------------------------------------------
async def list_entries(session: AsyncSession, chat_id: int) -> list[EntrySummary]:
    entries = (await session.execute(
        sa.select(FaqEntry).where(FaqEntry.chat_id == chat_id).order_by(FaqEntry.id)
    )).scalars().all()
    kw_rows = await session.execute(
        sa.select(FaqKeyword.entry_id, FaqKeyword.keyword).where(FaqKeyword.chat_id == chat_id)
        .order_by(FaqKeyword.entry_id, FaqKeyword.position, FaqKeyword.id)
    )
    by_entry: dict[int, list[str]] = defaultdict(list)
    for entry_id, keyword in kw_rows:
        by_entry[entry_id].append(keyword)
    return [
        EntrySummary(e.id, e.mode, by_entry.get(e.id, []), e.reply_html, list(e.buttons or []), e.media_type,
                     e.media_file_id, int(e.hits or 0), e.last_hit_at)
        for e in entries if by_entry.get(e.id)
    ]


# ---- buffered counters -------------------------------------------------------------------------------
async def flush_hits(session: AsyncSession, hits: Mapping[int, tuple[int, datetime]]) -> None:
    """Add buffered hit counts (one executemany; entries deleted meanwhile are skipped)."""
    if not hits:
        return
    tbl = FaqEntry.__table__
    stmt = (
        sa.update(tbl)
        .where(tbl.c.id == sa.bindparam("b_id"))
        .values(hits=tbl.c.hits + sa.bindparam("b_n"), last_hit_at=sa.bindparam("b_at"))
    )
    rows = [{"b_id": eid, "b_n": n, "b_at": at} for eid, (n, at) in hits.items()]
    await session.execute(stmt, rows)


async def flush_gaps(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """rows: chat_id, question, sample, count, first_at, last_at (count is added to the stored one)."""
    await upsert(session, FaqGap, rows, ["chat_id", "question"], ["sample", "last_at"], increment=["count"])


async def top_gaps(session: AsyncSession, chat_id: int, since: datetime, limit: int) -> list[tuple[str, int, str]]:
    rows = await session.execute(
        sa.select(FaqGap.question, FaqGap.count, FaqGap.sample)
        .where(FaqGap.chat_id == chat_id, FaqGap.last_at >= since)
        .order_by(FaqGap.count.desc(), FaqGap.last_at.desc())
        .limit(limit)
    )
    return [(q, int(c), s) for q, c, s in rows]


async def clear_gaps(session: AsyncSession, chat_id: int) -> int:
    result = await session.execute(sa.delete(FaqGap).where(FaqGap.chat_id == chat_id))
    return int(getattr(result, "rowcount", 0) or 0)


# ---- import / export ---------------------------------------------------------------------------------
async def import_entries(
    session: AsyncSession,
    chat_id: int,
    entries: Sequence[PreparedEntry],
    *,
    replace: bool,
    by: int | None,
    now: datetime,
    max_entries: int,
    max_regex: int,
) -> ImportResult:
    result = ImportResult()
    if replace:
        result.removed = await remove_all(session, chat_id, now)
    for entry in entries:
        saved = await save_entry(session, chat_id, entry, by=by, now=now, max_entries=max_entries,
                                 max_regex=max_regex, bump=False)
        if saved.created:
            result.created += 1
        else:
            result.updated += 1
        result.ids.append(saved.entry_id)
    await bump_revision(session, chat_id, now)
    return result


def export_rows(entries: Sequence[EntrySummary]) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        row: dict[str, Any] = {"keywords": list(e.keywords), "mode": e.mode, "reply": e.reply_html}
        if e.buttons:
            row["buttons"] = e.buttons
        if e.media_type:
            row["media_type"] = e.media_type
            row["media_file_id"] = e.media_file_id
        out.append(row)
    return out

