"""Activity points, MEE6-style: a few points per message, at most once per cooldown, for messages
long enough to count, written in batches.

The observer runs on every group message: it only looks at dicts in the runtime (no I/O) and
appends a ``Credit`` to a buffer; ``flush`` writes the buffer with the core ``credit_many`` inside
the core's batch transaction (two statements for the whole batch; the earned totals for level-ups
come back from the balance upsert). The reference is ``activity:{chat}:{user}:{message unix time}``: a
redelivered message (same date) can never pay twice, even after a restart that lost the cooldowns.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

from aiogram.types import Message
from sqlalchemy import event

from bot.services.points import Credit
from plugins.checkin.levels import local_day
from plugins.checkin.service import R_ACTIVITY, clamp_earned, level_up

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.app import App
    from bot.context import Ctx
    from plugins.checkin.config import CheckinConfig

PRUNE_EVERY = 600.0  # seconds between prunes of the cooldown maps


@dataclass
class _Seen:
    at: float  # unix time of the last awarded message
    digest: int  # hash of its text: the same text again earns nothing
    day: date  # local day of ``earned_today``
    earned_today: int


@dataclass
class CheckinRuntime:
    """Per-App state of the plugin: activity cooldowns and the award buffer, shop sync marks."""

    app: App
    seen: dict[tuple[int, int], _Seen] = field(default_factory=dict)
    pending: list[Credit] = field(default_factory=list)
    # chat_id -> fingerprint of the config items last synced into the chat's shop table.
    synced_items: dict[int, str] = field(default_factory=dict)
    # Chats whose messages were seen since start (the weekly award visits them).
    active_chats: set[int] = field(default_factory=set)
    last_prune: float = 0.0

    def note_message(self, chat_id: int, user_id: int, text: str, at: float, day: date, cfg: CheckinConfig) -> bool:
        """Buffer an activity award for this message if it earns one (no I/O). True when buffered."""
        points = cfg.activity_points
        if points <= 0:
            return False
        squeezed = "".join(text.split())
        if len(squeezed) < cfg.activity_min_length:
            return False
        key = (chat_id, user_id)
        digest = hash(squeezed)
        prev = self.seen.get(key)
        if prev is not None:
            if at - prev.at < cfg.activity_cooldown or prev.digest == digest:
                return False
            earned_today = prev.earned_today if prev.day == day else 0
        else:
            earned_today = 0
        if cfg.activity_daily_cap:
            points = min(points, cfg.activity_daily_cap - earned_today)
            if points <= 0:
                return False
        self.seen[key] = _Seen(at, digest, day, earned_today + points)
        self.pending.append(Credit(chat_id, user_id, points, R_ACTIVITY, f"activity:{chat_id}:{user_id}:{int(at)}"))
        return True

    def prune(self, now: float, keep: float = 2 * 86_400) -> None:
        if now - self.last_prune < PRUNE_EVERY:
            return
        self.last_prune = now
        self.seen = {k: v for k, v in self.seen.items() if now - v.at < keep}


def make_runtime(app: App) -> CheckinRuntime:
    return CheckinRuntime(app)


async def observe(message: Message, ctx: Ctx) -> None:
    user = message.from_user
    if user is None or user.is_bot or message.sender_chat is not None or ctx.chat_id is None:
        return
    text = message.text or message.caption
    if not text or text.startswith("/"):
        return
    cfg: CheckinConfig = ctx.cfg  # type: ignore[assignment]
    at = message.date.timestamp()
    runtime: CheckinRuntime = ctx.runtime
    runtime.active_chats.add(ctx.chat_id)
    if cfg.activity_points <= 0:
        return
    prev = runtime.seen.get((ctx.chat_id, user.id))
    if prev is not None and at - prev.at < cfg.activity_cooldown:
        return  # within the cooldown: nothing to pay (skips the text and calendar work below)
    runtime.note_message(ctx.chat_id, user.id, text, at, local_day(message.date, ctx.tz), cfg)


async def flush(app: App, session: AsyncSession) -> None:
    """Write the buffered awards in the core's batch transaction.

    If that transaction rolls back (another writer failed, the database was locked), the batch goes
    back into the buffer for the next flush (the references make a second write harmless), and
    level-up announcements are only sent once the transaction has committed.
    """
    runtime: CheckinRuntime = app.runtime("checkin")
    runtime.prune(app.clock.time())
    if not runtime.pending:
        return
    batch, runtime.pending = runtime.pending, []

    def requeue(_session: object) -> None:
        runtime.pending[:0] = batch

    event.listen(session.sync_session, "after_rollback", requeue, once=True)
    applied, totals = await app.points.credit_many_earned(session, batch)
    gained: dict[int, dict[int, int]] = {}
    for c in applied:
        gained.setdefault(c.chat_id, {}).setdefault(c.user_id, 0)
        gained[c.chat_id][c.user_id] += c.delta
    notices: list[tuple[int, str]] = []
    for chat_id, users in gained.items():
        cfg: CheckinConfig = await app.chat_config.get(chat_id, "checkin")  # type: ignore[assignment]
        if not cfg.level_up_announce:
            continue
        pool = app.points.pool_for(chat_id)
        for user_id, delta in users.items():
            # The earned total after the batch (returned by the balance upsert: no query here).
            after = clamp_earned(totals[(pool, user_id)])
            new = level_up(cfg, after - delta, after)
            if new is not None:
                notices.append((chat_id, await level_text(app, chat_id, user_id, new.level.name)))
    if notices:

        def announce(_session: object) -> None:
            for chat_id, text in notices:
                app.send_text(chat_id, text)

        event.listen(session.sync_session, "after_commit", announce, once=True)


async def level_text(app: App, chat_id: int, user_id: int, level_name: str) -> str:
    chat = await app.chat_config.chat(chat_id)
    return app.i18n.gettext(chat.language, "🎉 恭喜 {name} 升级为「{level}」！").format(
        name=await app.members.mention(user_id), level=html.escape(level_name))


async def announce_level(app: App, chat_id: int, user_id: int, level_name: str) -> None:
    app.send_text(chat_id, await level_text(app, chat_id, user_id, level_name))
