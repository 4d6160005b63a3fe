"""Collection: the observer and event subscribers only add to in-memory counters; ``flush`` writes them.

Hot path (every group message): a cached local (day, hour) slot, two dict increments and, for replies,
mentions and one message in ``sentiment_every``, a little more (figures: README, "Cost"). No I/O, no
allocation beyond the first counter row of a (chat, member, day).

Exactness: ``flush`` runs inside the core's batch transaction, which also records the processed update
ids; Telegram is told only after that commit. A crash before it loses the unflushed counters *and* the
update ids, so the batch is redelivered and counted once; a crash after it redelivers updates that the
core skips. If the batch transaction rolls back (a locked SQLite retried by the core), the snapshot is put
back into the buffers, so the retry writes it again. Counters fed by events whose emitters commit on their
own and do not emit again on redelivery (joins, leaves, check-ins) are repaired from core data by the
hourly maintenance job (``service.repair_days``).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiogram.types import Message
from sqlalchemy import and_, func, or_, select
from sqlalchemy import event as sa_event

from bot.db import retry_locked, upsert
from bot.models import User
from bot.services.events import (
    ActivityHistogramRequested,
    CheckedIn,
    CrisisChanged,
    FaqAnswered,
    MemberJoined,
    MemberLeft,
    QuestionUnanswered,
)
from plugins.analytics.models import (
    MEMBER_COUNTERS,
    ChatDay,
    ChatHour,
    FaqDay,
    Incident,
    MemberDay,
    QuestionDay,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.app import App
    from bot.context import Ctx
    from plugins.analytics.config import AnalyticsConfig

log = logging.getLogger(__name__)

NAME = "analytics"

# Indexes into a member's counter row (same order as MEMBER_COUNTERS).
MESSAGES, CHARS, REPLIES_SENT, REPLIES_RECEIVED, MENTIONS, THANKS, CHECKINS, FAQ_HITS, JOINS, LEAVES = range(10)
N_MEMBER = len(MEMBER_COUNTERS)
# Indexes into a chat's extra row: messages without a member (anonymous admins, channels), unanswered
# questions, and the sentiment sample.
X_MESSAGES, X_CHARS, X_UNANSWERED, X_SENT_N, X_SENT_SUM = range(5)
SENTIMENT_CHARS = 200  # a sampled message is scored on its first 200 characters

MemberKey = tuple[int, int, date]  # chat, user, day
ChatKey = tuple[int, date]


def utc_minute(at: datetime) -> int:
    """Minutes since 0001-01-01 of a UTC datetime: ~0.1 µs, where ``datetime.timestamp()`` on the
    pydantic-parsed ``Message.date`` costs ~1 µs."""
    return at.toordinal() * 1440 + at.hour * 60 + at.minute


def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def question_key(text: str) -> tuple[str, str]:
    """(key, sample) of an unanswered question: case, spaces and punctuation do not matter."""
    norm = "".join(ch for ch in text.lower() if ch.isalnum())[:120]
    return hashlib.sha1(norm.encode()).hexdigest()[:16], " ".join(text.split())[:200]


@dataclass
class Buffers:
    members: dict[MemberKey, list[int]] = field(default_factory=dict)
    extra: dict[ChatKey, list[float]] = field(default_factory=dict)
    hours: dict[tuple[int, date, int], int] = field(default_factory=dict)
    faq: dict[tuple[int, date, int], int] = field(default_factory=dict)
    questions: dict[tuple[int, date, str], list[Any]] = field(default_factory=dict)
    # (chat, day, @username as typed, sender): resolved to user ids at flush time.
    mentions: dict[tuple[int, date, str, int], int] = field(default_factory=dict)

    def empty(self) -> bool:
        return not (self.members or self.extra or self.hours or self.faq or self.questions or self.mentions)

    def merge(self, other: Buffers) -> None:
        """Add ``other`` into these buffers (a snapshot put back after a rolled-back flush)."""
        for key, row in other.members.items():
            mine = self.members.get(key)
            if mine is None:
                self.members[key] = list(row)
            else:
                for i, v in enumerate(row):
                    mine[i] += v
        for ckey, xrow in other.extra.items():
            xmine = self.extra.get(ckey)
            if xmine is None:
                self.extra[ckey] = list(xrow)
            else:
                for i, v in enumerate(xrow):
                    xmine[i] += v
        for simple, theirs in ((self.hours, other.hours), (self.faq, other.faq), (self.mentions, other.mentions)):
            for k, n in theirs.items():  # type: ignore[attr-defined]
                simple[k] = simple.get(k, 0) + n  # type: ignore[index,attr-defined]
        for qk, (count, text) in other.questions.items():
            q = self.questions.get(qk)
            if q is None:
                self.questions[qk] = [count, text]
            else:
                q[0] += count


class AnalyticsRuntime:
    """Per-App state: the counter buffers and the local-time slot cache."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.buf = Buffers()
        # timezone name -> (first UTC minute, end UTC minute, local day, local hour) of the last local hour seen
        self.slots: dict[str, tuple[int, int, date, int]] = {}
        # id(thanks_words) -> (that list, its compiled pattern)
        self.thanks: dict[int, tuple[list[str], re.Pattern[str] | None]] = {}
        self.last_maintenance: float = 0.0
        # (chat, local day) -> members whose message of that day is committed: their later messages need
        # no DAU lookup at flush. Only the last two days are kept.
        self.active: dict[ChatKey, set[int]] = {}

    # ---- hot-path helpers ------------------------------------------------------------------------
    def slot(self, tzname: str, at: datetime) -> tuple[int, int, date, int]:
        """The local hour containing ``at`` as a range of UTC minute numbers (see ``utc_minute``)."""
        local = at.astimezone(ZoneInfo(tzname))
        start = utc_minute(local.replace(minute=0, second=0, microsecond=0).astimezone(UTC))
        slot = (start, start + 60, local.date(), local.hour)
        self.slots[tzname] = slot
        return slot

    def thanks_pattern(self, words: list[str]) -> re.Pattern[str] | None:
        cached = self.thanks.get(id(words))
        if cached is None or cached[0] is not words:
            pattern = re.compile("|".join(re.escape(w.lower()) for w in words if w)) if any(words) else None
            if len(self.thanks) > 64:
                self.thanks.clear()
            cached = self.thanks[id(words)] = (words, pattern)
        return cached[1]

    def member(self, chat_id: int, user_id: int, day: date) -> list[int]:
        key = (chat_id, user_id, day)
        row = self.buf.members.get(key)
        if row is None:
            row = self.buf.members[key] = [0] * N_MEMBER
        return row

    def extra(self, chat_id: int, day: date) -> list[float]:
        key = (chat_id, day)
        row = self.buf.extra.get(key)
        if row is None:
            row = self.buf.extra[key] = [0, 0, 0, 0, 0.0]
        return row

    # ---- flush support ---------------------------------------------------------------------------
    def take(self) -> Buffers:
        snap, self.buf = self.buf, Buffers()
        return snap

    def put_back(self, snap: Buffers) -> None:
        snap.merge(self.buf)
        self.buf = snap

    def known_active(self, keys: list[MemberKey]) -> set[MemberKey]:
        return {k for k in keys if k[1] in self.active.get((k[0], k[2]), ())}

    def remember_active(self, keys: list[MemberKey]) -> None:
        for c, u, d in keys:
            self.active.setdefault((c, d), set()).add(u)
        if keys:
            latest = max(d for _c, _u, d in keys)
            for key in [k for k in self.active if (latest - k[1]).days > 1]:
                del self.active[key]

    def pending_hours(self, chat_id: int, since: date) -> dict[int, int]:
        out: dict[int, int] = {}
        for (c, d, h), n in self.buf.hours.items():
            if c == chat_id and d >= since:
                out[h] = out.get(h, 0) + n
        return out


def make_runtime(app: App) -> AnalyticsRuntime:
    return AnalyticsRuntime(app)


# ---- the observer (hot path) -----------------------------------------------------------------------
async def observe(message: Message, ctx: Ctx) -> None:
    rt: AnalyticsRuntime = ctx.app.runtime(NAME)
    chat_id = message.chat.id
    at = message.date  # UTC (Telegram sends unix time)
    minute = at.toordinal() * 1440 + at.hour * 60 + at.minute
    tzname = ctx.chat.timezone
    slot = rt.slots.get(tzname)
    if slot is None or not slot[0] <= minute < slot[1]:
        slot = rt.slot(tzname, at)
    day = slot[2]
    buf = rt.buf
    hkey = (chat_id, day, slot[3])
    buf.hours[hkey] = buf.hours.get(hkey, 0) + 1
    text = message.text or message.caption or ""
    user = message.from_user
    if user is None or user.is_bot or message.sender_chat is not None:
        # An anonymous admin or a channel: counted in the chat's totals only.
        xrow = rt.extra(chat_id, day)
        xrow[X_MESSAGES] += 1
        xrow[X_CHARS] += len(text)
        return
    key = (chat_id, user.id, day)
    row = buf.members.get(key)
    if row is None:
        row = buf.members[key] = [0] * N_MEMBER
    row[MESSAGES] += 1
    row[CHARS] += len(text)
    cfg: AnalyticsConfig = ctx.cfg  # type: ignore[assignment]
    reply = message.reply_to_message
    if reply is not None:
        _reply(rt, cfg, chat_id, user.id, day, row, reply, text)
    if message.entities or message.caption_entities:
        _mentions(rt, chat_id, user.id, day, message, text)
    every = cfg.sentiment_every
    if every and len(text) > 1 and message.message_id % every == 0 and text[0] != "/":
        xrow = rt.extra(chat_id, day)
        xrow[X_SENT_N] += 1
        xrow[X_SENT_SUM] += ctx.app.nlp.sentiment(text[:SENTIMENT_CHARS])


def _reply(rt: AnalyticsRuntime, cfg: AnalyticsConfig, chat_id: int, user_id: int, day: date, row: list[int],
           reply: Message, text: str) -> None:
    if reply.forum_topic_created is not None:  # a plain message in a forum topic, not a reply
        return
    author = reply.from_user
    if author is None or author.is_bot or author.id == user_id or reply.sender_chat is not None:
        return
    row[REPLIES_SENT] += 1
    target = rt.member(chat_id, author.id, day)
    target[REPLIES_RECEIVED] += 1
    if text and len(text) <= cfg.thanks_max_chars:
        pattern = rt.thanks_pattern(cfg.thanks_words)
        if pattern is not None and pattern.search(text.lower()):
            target[THANKS] += 1


def _mentions(rt: AnalyticsRuntime, chat_id: int, user_id: int, day: date, message: Message, text: str) -> None:
    seen: set[Any] = set()
    for entity in message.entities or message.caption_entities or ():
        if entity.type == "text_mention" and entity.user is not None:
            target = entity.user
            if target.is_bot or target.id == user_id or target.id in seen:
                continue
            seen.add(target.id)
            rt.member(chat_id, target.id, day)[MENTIONS] += 1
        elif entity.type == "mention":
            name = entity.extract_from(text)[1:]
            if not name or name.lower() in seen:
                continue
            seen.add(name.lower())
            mkey = (chat_id, day, name, user_id)
            rt.buf.mentions[mkey] = rt.buf.mentions.get(mkey, 0) + 1


# ---- event subscribers -----------------------------------------------------------------------------
async def _day(app: App, chat_id: int, at: datetime) -> date:
    return local_day(at, (await app.chat_config.chat(chat_id)).tz)


def _rt(app: App) -> AnalyticsRuntime:
    rt: AnalyticsRuntime = app.runtime(NAME)
    return rt


async def on_joined(app: App, event: MemberJoined) -> None:
    if event.chat_id is None or event.is_bot:
        return
    _rt(app).member(event.chat_id, event.user_id, await _day(app, event.chat_id, event.at))[JOINS] += 1


async def on_left(app: App, event: MemberLeft) -> None:
    if event.chat_id is None:
        return
    _rt(app).member(event.chat_id, event.user_id, await _day(app, event.chat_id, event.at))[LEAVES] += 1


async def on_checked_in(app: App, event: CheckedIn) -> None:
    if event.chat_id is None or event.redelivered:
        return
    _rt(app).member(event.chat_id, event.user_id, await _day(app, event.chat_id, event.at))[CHECKINS] += 1


async def on_faq_answered(app: App, event: FaqAnswered) -> None:
    if event.chat_id is None:
        return
    rt = _rt(app)
    day = await _day(app, event.chat_id, event.at)
    if event.user_id > 0:
        rt.member(event.chat_id, event.user_id, day)[FAQ_HITS] += 1
    key = (event.chat_id, day, int(event.entry_id))
    rt.buf.faq[key] = rt.buf.faq.get(key, 0) + 1


async def on_unanswered(app: App, event: QuestionUnanswered) -> None:
    if event.chat_id is None or not event.text.strip():
        return
    rt = _rt(app)
    day = await _day(app, event.chat_id, event.at)
    rt.extra(event.chat_id, day)[X_UNANSWERED] += 1
    qkey, sample = question_key(event.text)
    entry = rt.buf.questions.get((event.chat_id, day, qkey))
    if entry is None:
        rt.buf.questions[(event.chat_id, day, qkey)] = [1, sample]
    else:
        entry[0] += 1


async def on_crisis(app: App, event: CrisisChanged) -> None:
    """Rare: written at once, keyed by incident, so a repeated event changes nothing."""
    chat_id = event.chat_id
    if chat_id is None:
        return
    day = await _day(app, chat_id, event.at)

    async def tx() -> None:
        async with app.db() as s, s.begin():
            row = await s.get(Incident, (chat_id, event.incident_id))
            if row is None:
                s.add(Incident(chat_id=chat_id, incident_id=event.incident_id, day=day, opened_at=event.at,
                               peak_level=event.level or event.old_level or 3,
                               closed_at=event.at if event.level is None else None))
                return
            if event.level is not None:
                row.peak_level = min(row.peak_level, event.level)
                row.closed_at = None
            elif row.closed_at is None:
                row.closed_at = event.at

    await retry_locked(tx)


async def on_histogram(app: App, event: ActivityHistogramRequested) -> None:
    """Answer content_calendar's question: messages per local hour of day over the last ``days`` days."""
    if event.chat_id is None:
        return
    from plugins.analytics import service

    tz = (await app.chat_config.chat(event.chat_id)).tz
    today = local_day(app.clock.now(), tz)
    since = today - timedelta(days=max(1, event.days) - 1)
    async with app.db() as s:
        hours = await service.hour_histogram(s, event.chat_id, since, today)
    for hour, n in _rt(app).pending_hours(event.chat_id, since).items():
        hours[hour] = hours.get(hour, 0) + n
    for hour, n in hours.items():
        if n:
            event.hours[hour] = event.hours.get(hour, 0) + n


# ---- flush -----------------------------------------------------------------------------------------
async def flush(app: App, session: AsyncSession) -> None:
    rt = _rt(app)
    if rt.buf.empty():
        return
    snap = rt.take()
    speaking = [k for k, row in snap.members.items() if row[MESSAGES] > 0]
    _put_back_on_rollback(session, lambda: rt.put_back(snap), lambda: rt.remember_active(speaking))
    await write(session, snap, rt.known_active(speaking))


def _put_back_on_rollback(session: AsyncSession, restore: Callable[[], None],
                          on_commit: Callable[[], None] | None = None) -> None:
    state = {"done": False}
    sync = session.sync_session

    def committed(_s: Any) -> None:
        state["done"] = True
        if on_commit is not None:
            on_commit()

    def rolled_back(_s: Any) -> None:
        if not state["done"]:
            state["done"] = True
            restore()

    sa_event.listen(sync, "after_commit", committed, once=True)
    sa_event.listen(sync, "after_rollback", rolled_back, once=True)


async def write(session: AsyncSession, snap: Buffers, known_active: set[MemberKey] | None = None) -> None:
    """Write a snapshot of the buffers (one executemany per table; no commit). ``known_active``: members
    already known to have a stored message that day (not looked up again)."""
    members = dict(snap.members)
    if snap.mentions:
        await _resolve_mentions(session, snap.mentions, members)

    # DAU: members whose first message of that day is in this batch.
    speaking = [k for k, row in members.items() if row[MESSAGES] > 0]
    known = known_active or set()
    already = known | await _already_active(session, [k for k in speaking if k not in known])
    new_active: dict[ChatKey, int] = {}
    for c, u, d in speaking:
        if (c, u, d) not in already:
            new_active[(c, d)] = new_active.get((c, d), 0) + 1

    chat_rows: dict[ChatKey, dict[str, Any]] = {}

    def chat_row(c: int, d: date) -> dict[str, Any]:
        r = chat_rows.get((c, d))
        if r is None:
            r = chat_rows[(c, d)] = {
                "chat_id": c, "day": d, "messages": 0, "chars": 0, "active_members": 0, "replies": 0, "mentions": 0,
                "thanks": 0, "checkins": 0, "faq_hits": 0, "unanswered": 0, "joins": 0, "leaves": 0,
                "sentiment_sum": 0.0, "sentiment_n": 0,
            }
        return r

    member_rows = []
    for (c, u, d), row in members.items():
        member_rows.append({"chat_id": c, "user_id": u, "day": d, **dict(zip(MEMBER_COUNTERS, row, strict=True))})
        r = chat_row(c, d)
        r["messages"] += row[MESSAGES]
        r["chars"] += row[CHARS]
        r["replies"] += row[REPLIES_SENT]
        r["mentions"] += row[MENTIONS]
        r["thanks"] += row[THANKS]
        r["checkins"] += row[CHECKINS]
        r["faq_hits"] += row[FAQ_HITS]
        r["joins"] += row[JOINS]
        r["leaves"] += row[LEAVES]
    for (c, d), x in snap.extra.items():
        r = chat_row(c, d)
        r["messages"] += int(x[X_MESSAGES])
        r["chars"] += int(x[X_CHARS])
        r["unanswered"] += int(x[X_UNANSWERED])
        r["sentiment_n"] += int(x[X_SENT_N])
        r["sentiment_sum"] += float(x[X_SENT_SUM])
    for (c, d), n in new_active.items():
        chat_row(c, d)["active_members"] += n
    for (c, d, _h) in snap.hours:
        chat_row(c, d)

    await upsert(session, MemberDay, member_rows, ["chat_id", "user_id", "day"], increment=list(MEMBER_COUNTERS))
    chat_cols = [k for k in next(iter(chat_rows.values()), {}) if k not in ("chat_id", "day")]
    await upsert(session, ChatDay, list(chat_rows.values()), ["chat_id", "day"], increment=chat_cols)
    await upsert(session, ChatHour, [{"chat_id": c, "day": d, "hour": h, "messages": n}
                                     for (c, d, h), n in snap.hours.items()],
                 ["chat_id", "day", "hour"], increment=["messages"])
    await upsert(session, FaqDay, [{"chat_id": c, "day": d, "entry_id": e, "hits": n}
                                   for (c, d, e), n in snap.faq.items()],
                 ["chat_id", "day", "entry_id"], increment=["hits"])
    await upsert(session, QuestionDay, [{"chat_id": c, "day": d, "qkey": q, "count": v[0], "text": v[1]}
                                        for (c, d, q), v in snap.questions.items()],
                 ["chat_id", "day", "qkey"], ["text"], increment=["count"])


async def _already_active(session: AsyncSession, keys: list[MemberKey]) -> set[MemberKey]:
    """Which of these (chat, user, day) already have a stored message that day."""
    if not keys:
        return set()
    groups: dict[ChatKey, list[int]] = {}
    for c, u, d in keys:
        groups.setdefault((c, d), []).append(u)
    found: set[MemberKey] = set()
    conds = []
    for (c, d), users in groups.items():
        for i in range(0, len(users), 400):
            conds.append(and_(MemberDay.chat_id == c, MemberDay.day == d, MemberDay.user_id.in_(users[i:i + 400])))
    for i in range(0, len(conds), 20):
        rows = await session.execute(
            select(MemberDay.chat_id, MemberDay.user_id, MemberDay.day).where(or_(*conds[i:i + 20]),
                                                                            MemberDay.messages > 0)
        )
        found.update((int(c), int(u), d) for c, u, d in rows)
    return found


async def _resolve_mentions(session: AsyncSession, mentions: dict[tuple[int, date, str, int], int],
                            members: dict[MemberKey, list[int]]) -> None:
    """Turn @username mentions into mentions received by user id (bots and self-mentions dropped).

    Names are looked up as typed first (the username index), then case-insensitively for the rest."""
    typed = sorted({m[2] for m in mentions})
    ids: dict[str, tuple[int, bool]] = {}
    for i in range(0, len(typed), 400):
        rows = await session.execute(
            select(User.user_id, User.username, User.is_bot).where(User.username.in_(typed[i:i + 400]))
        )
        for uid, uname, is_bot in rows:
            ids[uname.lower()] = (int(uid), bool(is_bot))
    rest = sorted({n.lower() for n in typed} - set(ids))
    for i in range(0, len(rest), 400):
        rows = await session.execute(
            select(User.user_id, User.username, User.is_bot).where(func.lower(User.username).in_(rest[i:i + 400]))
        )
        for uid, uname, is_bot in rows:
            ids[uname.lower()] = (int(uid), bool(is_bot))
    for (c, d, name, sender), n in mentions.items():
        hit = ids.get(name.lower())
        if hit is None or hit[1] or hit[0] == sender:
            continue
        key = (c, hit[0], d)
        old = members.get(key)
        new = list(old) if old is not None else [0] * N_MEMBER
        new[MENTIONS] += n
        members[key] = new
