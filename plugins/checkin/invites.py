"""Invite rewards (裂变): personal invite links, join attribution, the delayed and guarded reward.

A join through a member's link (``MemberJoined.invite_link``) is recorded once per (chat, invitee),
ever, and a durable timer fires after ``invite_hold_hours``. The timer pays the inviter only if the
invitee is still in the chat and verified (the welcome captcha passed: ``MemberVerified`` or the core
``verified_at``; a chat without the welcome plugin needs no verification). No reward for bots, for
one's own link, for accounts that were members before, or for invitees who left or were banned.
"""

from __future__ import annotations

import html
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from aiogram.exceptions import TelegramAPIError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from bot.db import retry_locked
from bot.models import Member
from bot.services.events import MemberJoined, MemberLeft, MemberVerified
from bot.services.members import PRESENT
from plugins.checkin.config import CheckinConfig
from plugins.checkin.models import I_PENDING, I_REJECTED, I_REWARDED, Invite, InviteLink
from plugins.checkin.service import R_INVITE, badge_label, clamp_earned, grant_badge, level_up

if TYPE_CHECKING:
    from bot.app import App
    from bot.services.timers import TimerFire

log = logging.getLogger(__name__)

TIMER = "checkin.invite"
ATTRIB_TIMER = "checkin.attrib"
# How long after a join without a link to look for the link again in core_members.
LATE_LINK_DELAY = timedelta(seconds=60)
# A core member row first seen this long before the join belonged to an earlier membership.
SEEN_BEFORE = timedelta(seconds=5)


def timer_key(chat_id: int, invitee_id: int) -> str:
    return f"checkin.invite:{chat_id}:{invitee_id}"


async def link_for(app: App, chat_id: int, user_id: int, name: str) -> str | None:
    """The member's personal link for the chat, created on first use; None if the bot may not create it."""
    async with app.db() as s:
        row = await s.get(InviteLink, (chat_id, user_id))
        if row is not None:
            return row.link
    link_name = name.strip()[:26] or str(user_id)
    try:
        created = await app.bot.create_chat_invite_link(chat_id=chat_id, name=f"{link_name} 的邀请"[:32])
    except TelegramAPIError as exc:
        log.warning("createChatInviteLink failed in %s: %s", chat_id, exc)
        return None
    try:
        async with app.db() as s, s.begin():
            s.add(InviteLink(chat_id=chat_id, user_id=user_id, link=created.invite_link, name=link_name[:64],
                             created_at=app.clock.now()))
    except IntegrityError:  # created concurrently (a redelivered /invite): keep the first
        async with app.db() as s:
            row = await s.get(InviteLink, (chat_id, user_id))
            return row.link if row else created.invite_link
    return created.invite_link


async def _needs_verification(app: App, chat_id: int) -> bool:
    """Only the welcome plugin verifies members; where it is off, a join counts as verified."""
    return "welcome" in app.plugins and await app.chat_config.enabled(chat_id, "welcome")


async def on_joined(app: App, event: MemberJoined) -> None:
    if event.chat_id is None:
        return
    if event.invite_link:
        await attribute(app, event.chat_id, event.user_id, event.invite_link, event.at, is_bot=event.is_bot,
                        rejoined=event.rejoined)
        return
    # Telegram sends a join twice (a chat_member update with the invite link and a new_chat_members
    # message without it), in either order; the core emits MemberJoined for the first. When the
    # message came first, the link only reaches core_members: look there again shortly.
    if event.is_bot:
        return
    async with app.db() as s:
        has_links = await s.scalar(select(InviteLink.user_id).where(InviteLink.chat_id == event.chat_id).limit(1))
    if has_links is None:
        return
    await app.timers.schedule(
        f"checkin.attrib:{event.chat_id}:{event.user_id}:{int(event.at.timestamp())}", ATTRIB_TIMER,
        event.at + LATE_LINK_DELAY, chat_id=event.chat_id,
        payload={"invitee": event.user_id, "at": event.at.timestamp(), "rejoined": event.rejoined},
    )


async def on_attrib_timer(app: App, fire: TimerFire) -> None:
    """The late look at core_members.invite_link for a join whose event carried no link."""
    if fire.chat_id is None:
        return
    invitee = int(fire.payload["invitee"])
    at = datetime.fromtimestamp(float(fire.payload["at"]), UTC)
    core = await app.members.get(fire.chat_id, invitee)
    if core is None or not core.invite_link or core.joined_at is None or abs(core.joined_at - at) > LATE_LINK_DELAY:
        return
    await attribute(app, fire.chat_id, invitee, core.invite_link, at, is_bot=False,
                    rejoined=bool(fire.payload.get("rejoined")))


async def attribute(
    app: App, chat_id: int, invitee_id: int, link_url: str, at: datetime, *, is_bot: bool, rejoined: bool
) -> Invite | None:
    """Record a join through a member's link (once per chat and account, ever) and arm the reward timer."""
    cfg: CheckinConfig = await app.chat_config.get(chat_id, "checkin")  # type: ignore[assignment]
    needs_verification = await _needs_verification(app, chat_id)

    async def tx() -> Invite | None:
        async with app.db() as s, s.begin():
            link = await s.scalar(
                select(InviteLink).where(InviteLink.chat_id == chat_id, InviteLink.link == link_url)
            )
            if link is None or await s.get(Invite, (chat_id, invitee_id)) is not None:
                return None  # not a member's link, or this account was attributed before (a re-join)
            reason = None
            if is_bot:
                reason = "bot"
            elif link.user_id == invitee_id:
                reason = "self"
            elif rejoined:
                reason = "rejoined"
            else:
                core = await s.get(Member, (chat_id, invitee_id))
                if core is not None and (core.first_seen_at < at - SEEN_BEFORE or core.join_count > 1):
                    reason = "member_before"
            invite = Invite(chat_id=chat_id, invitee_id=invitee_id, inviter_id=link.user_id, link=link.link,
                            joined_at=at, verified_at=None if needs_verification else at,
                            status=I_REJECTED if reason else I_PENDING, reason=reason,
                            settled_at=at if reason else None)
            s.add(invite)
            return invite

    try:
        invite = await retry_locked(tx)
    except IntegrityError:
        return None  # recorded concurrently
    if invite is None or invite.status != I_PENDING:
        return invite
    due = at + timedelta(hours=cfg.invite_hold_hours)
    await app.timers.schedule(timer_key(chat_id, invitee_id), TIMER, due, chat_id=chat_id,
                              payload={"invitee": invitee_id})
    return invite


async def on_verified(app: App, event: MemberVerified) -> None:
    if event.chat_id is None:
        return
    async with app.db() as s, s.begin():
        invite = await s.get(Invite, (event.chat_id, event.user_id))
        if invite is not None and invite.status == I_PENDING and invite.verified_at is None:
            invite.verified_at = event.at


async def on_left(app: App, event: MemberLeft) -> None:
    if event.chat_id is None:
        return
    async with app.db() as s, s.begin():
        invite = await s.get(Invite, (event.chat_id, event.user_id))
        if invite is None or invite.status != I_PENDING:
            return
        invite.status = I_REJECTED
        invite.reason = "banned" if event.status == "kicked" else "left"
        invite.settled_at = event.at
    await app.timers.cancel(timer_key(event.chat_id, event.user_id))


@dataclass
class Settlement:
    status: str  # rewarded, rejected, skipped
    reason: str | None = None
    inviter_id: int = 0
    points: int = 0
    count: int = 0
    badge: bool = False
    level: str | None = None


async def settle(app: App, chat_id: int, invitee_id: int) -> Settlement:
    """Decide the reward of one pending invite (idempotent: a settled invite is skipped)."""
    cfg: CheckinConfig = await app.chat_config.get(chat_id, "checkin")  # type: ignore[assignment]
    needs_verification = await _needs_verification(app, chat_id)
    now = app.clock.now()

    async def tx() -> Settlement:
        async with app.db() as s, s.begin():
            invite = await s.get(Invite, (chat_id, invitee_id))
            if invite is None or invite.status != I_PENDING:
                return Settlement("skipped")
            core = await s.get(Member, (chat_id, invitee_id))
            present = core is not None and core.status in PRESENT and (
                core.left_at is None or core.joined_at is None or core.left_at < core.joined_at)
            reason = None
            if not cfg.enabled:
                reason = "disabled"
            elif not present:
                reason = "banned" if core is not None and core.status == "kicked" else "left"
            elif needs_verification and invite.verified_at is None and (core is None or core.verified_at is None):
                reason = "unverified"
            elif cfg.invite_daily_cap:
                recent = await s.scalar(
                    select(func.count()).select_from(Invite).where(
                        Invite.chat_id == chat_id, Invite.inviter_id == invite.inviter_id,
                        Invite.status == I_REWARDED, Invite.settled_at >= now - timedelta(hours=24))
                )
                if int(recent or 0) >= cfg.invite_daily_cap:
                    reason = "daily_cap"
            invite.settled_at = now
            if reason is not None:
                invite.status, invite.reason = I_REJECTED, reason
                return Settlement("rejected", reason, invite.inviter_id)
            invite.status = I_REWARDED
            await s.flush()
            result = await app.points.change(chat_id, invite.inviter_id, cfg.invite_points, R_INVITE,
                                             f"invite:{chat_id}:{invitee_id}", note=f"invitee {invitee_id}", session=s)
            count = int(await s.scalar(
                select(func.count()).select_from(Invite).where(
                    Invite.chat_id == chat_id, Invite.inviter_id == invite.inviter_id, Invite.status == I_REWARDED)
            ) or 0)
            badge = False
            if cfg.invite_badge_at and count >= cfg.invite_badge_at:
                badge = await grant_badge(s, chat_id, invite.inviter_id, "inviter", badge_label(cfg, "inviter"), now)
            after = clamp_earned(result.earned)
            new_level = level_up(cfg, after - result.delta, after)
            return Settlement("rewarded", None, invite.inviter_id, result.delta, count, badge,
                              new_level.level.name if new_level else None)

    return await retry_locked(tx)


async def on_timer(app: App, fire: TimerFire) -> None:
    if fire.chat_id is None:
        return
    invitee_id = int(fire.payload["invitee"])
    result = await settle(app, fire.chat_id, invitee_id)
    if result.status != "rewarded":
        return
    chat = await app.chat_config.chat(fire.chat_id)
    cfg: CheckinConfig = await app.chat_config.get(fire.chat_id, "checkin")  # type: ignore[assignment]

    def _(text: str) -> str:
        return app.i18n.gettext(chat.language, text)

    msgid = ("🤝 {inviter} 邀请的 {invitee} 已加入满 {hours} 小时，"
             "{inviter} 获得 {points} 积分（已成功邀请 {count} 人）。")
    text = _(msgid).format(
        inviter=await app.members.mention(result.inviter_id), invitee=await app.members.mention(invitee_id),
        hours=f"{cfg.invite_hold_hours:g}", points=result.points, count=result.count)
    if result.badge:
        text += "\n" + _("🏅 获得徽章：{badge}").format(badge=html.escape(badge_label(cfg, "inviter")))
    if result.level and cfg.level_up_announce:
        text += "\n" + _("🎉 升级为「{level}」！").format(level=html.escape(result.level))
    app.send_text(fire.chat_id, text)


async def stats(app: App, chat_id: int, user_id: int) -> dict[str, int]:
    async with app.db() as s:
        rows = await s.execute(
            select(Invite.status, func.count()).where(Invite.chat_id == chat_id, Invite.inviter_id == user_id)
            .group_by(Invite.status)
        )
        counts = {str(k): int(v) for k, v in rows.all()}
    return {"rewarded": counts.get(I_REWARDED, 0), "pending": counts.get(I_PENDING, 0),
            "rejected": counts.get(I_REJECTED, 0)}
