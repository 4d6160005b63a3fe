"""Welcome plugin: greetings, captcha, raid merge, service-message clean-up, commands.

Flow of a join (core ``MemberJoined``): decide whether the member gets a captcha (mode on, bot may
restrict, member not an admin, not already muted by someone else), restrict them and arm a durable
deadline timer, then greet: at once when the chat has not been greeted within ``raid_window``
seconds, otherwise into the chat's open batch, flushed by a durable timer as one merged message
(one message per window, so a raid never turns the bot into the spammer). The captcha rides on the
greeting: one message, one challenge shared by everyone greeted in it; each member answers for
themselves.
"""

from __future__ import annotations

import html
import logging
import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Filter
from aiogram.methods import BanChatMember, DeleteMessage, EditMessageText, RestrictChatMember, UnbanChatMember
from aiogram.types import (
    CallbackQuery,
    ChatPermissions,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
)

from bot.app import DELETE_TIMER
from bot.plugin import N_, UsageError
from bot.services.events import ChatSettingsChanged, MemberJoined, MemberLeft, MemberVerified, RaidModeChanged
from bot.services.members import display_name, mention_html
from plugins.welcome import service
from plugins.welcome.config import CAPTCHA_MODES, WelcomeConfig
from plugins.welcome.models import FAILED, FAILING, KICKED, LEFT, PASSED, PASSING, PENDING, RELEASED
from plugins.welcome.service import Batch, Challenge, Joiner, WelcomeRuntime
from plugins.welcome.state import WelcomeState

if TYPE_CHECKING:
    from bot.app import App
    from bot.context import Ctx
    from bot.services.timers import TimerFire

log = logging.getLogger(__name__)

NAME = "welcome"
GREET_TIMER = f"{NAME}.greet"
DEADLINE_TIMER = f"{NAME}.deadline"
PERMISSIONS_TTL = 300.0
MAX_TEXT = 4000

NO_PERMISSIONS = ChatPermissions(
    can_send_messages=False, can_send_audios=False, can_send_documents=False, can_send_photos=False,
    can_send_videos=False, can_send_video_notes=False, can_send_voice_notes=False, can_send_polls=False,
    can_send_other_messages=False, can_add_web_page_previews=False, can_react_to_messages=False,
    can_change_info=False, can_invite_users=False, can_pin_messages=False, can_manage_topics=False,
)
# When getChat cannot tell the chat's default permissions: what a fresh Telegram group allows.
FALLBACK_PERMISSIONS: dict[str, bool] = {
    "can_send_messages": True, "can_send_audios": True, "can_send_documents": True, "can_send_photos": True,
    "can_send_videos": True, "can_send_video_notes": True, "can_send_voice_notes": True, "can_send_polls": True,
    "can_send_other_messages": True, "can_add_web_page_previews": True, "can_react_to_messages": True,
    "can_change_info": False, "can_invite_users": True, "can_pin_messages": False, "can_manage_topics": False,
}

DEFAULT_GREETING = N_("欢迎 {mention} 加入 {title}！")


# ---------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------


def _rt(app: App) -> WelcomeRuntime:
    return cast(WelcomeRuntime, app.runtime(NAME))


def _state(app: App) -> WelcomeState:
    """The chat state every worker shares (raid batch, cooldown, raid mode, caches)."""
    return WelcomeState(app.shared)


async def _cfg(app: App, chat_id: int) -> WelcomeConfig:
    return cast(WelcomeConfig, await app.chat_config.get(chat_id, NAME))


async def _tr(app: App, chat_id: int | None) -> Any:
    language = (await app.chat_config.chat(chat_id)).language
    return lambda text: app.i18n.gettext(language, text)


def _deadline_key(chat_id: int, user_id: int, token: str, deadline_ts: int | None = None) -> str:
    base = f"{DEADLINE_TIMER}:{chat_id}:{user_id}:{token}:"
    return base if deadline_ts is None else f"{base}{deadline_ts}"


def _answer_spec(answer: int, options: int) -> str:
    return f"{answer}/{options}"


def _parse_answer_spec(spec: str) -> tuple[int, int]:
    right, _, count = spec.partition("/")
    return int(right), int(count or 1)


async def _arm_deadline(app: App, chat_id: int, user_id: int, token: str, deadline: Any, session: Any = None) -> None:
    ts = int(deadline.timestamp())
    await app.timers.schedule(
        _deadline_key(chat_id, user_id, token, ts), DEADLINE_TIMER, deadline, chat_id=chat_id,
        payload={"user_id": user_id, "token": token}, session=session,
    )


async def _default_permissions(app: App, chat_id: int) -> ChatPermissions:
    """The chat's default member permissions (getChat), cached for a few minutes for every worker."""
    state = _state(app)
    now = app.clock.time()
    cached = await state.permissions(chat_id, now, PERMISSIONS_TTL)
    if cached is not None:
        return ChatPermissions(**cached)
    perms: dict[str, bool] | None = None
    try:
        info = await app.bot.get_chat(chat_id)
        if info.permissions is not None:
            perms = {k: bool(v) for k, v in info.permissions.model_dump(exclude_none=True).items()
                     if k in ChatPermissions.model_fields}
    except TelegramAPIError as exc:
        log.warning("getChat(%s) failed, using fallback permissions: %s", chat_id, exc)
    if perms is None:
        perms = dict(FALLBACK_PERMISSIONS)
    await state.save_permissions(chat_id, perms, now, PERMISSIONS_TTL)
    return ChatPermissions(**perms)


def _make_challenge(app: App, cfg: WelcomeConfig, _: Any) -> Challenge:
    rng = _rt(app).rng
    if cfg.captcha == "math":
        return service.math_challenge(rng)
    if cfg.captcha == "question" and cfg.captcha_questions:
        return service.question_challenge(rng, cfg.captcha_questions)
    return service.button_challenge(_("✅ 我不是机器人"))


def _keyboard(challenge: Challenge, token: str) -> InlineKeyboardMarkup:
    buttons = [
        InlineKeyboardButton(text=label[:60], callback_data=service.callback_data(token, i))
        for i, label in enumerate(challenge.options)
    ]
    # numbers two by two; longer answers one per row
    width = 2 if challenge.mode == "math" else 1
    rows = [buttons[i:i + width] for i in range(0, len(buttons), width)]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def _captcha_prompt(cfg: WelcomeConfig, challenge: Challenge, _: Any) -> str:
    seconds = str(cfg.captcha_timeout)
    if challenge.mode == "math":
        head = _("请在 {seconds} 秒内点出下面算术题的答案完成验证，验证前暂时不能发言：")
    elif challenge.mode == "question":
        head = _("请在 {seconds} 秒内选出下面问题的正确答案完成验证，验证前暂时不能发言：")
    else:
        head = _("请在 {seconds} 秒内点击下方按钮完成验证，验证前暂时不能发言。")
    text = head.replace("{seconds}", seconds)
    if challenge.question:
        text += f"\n<b>{html.escape(challenge.question)}</b>"
    return text


async def _member_count(app: App, chat_id: int) -> int:
    try:
        return int(await app.bot.get_chat_member_count(chat_id))
    except TelegramAPIError:
        return await app.members.count_present(chat_id)


async def _greeting(app: App, cfg: WelcomeConfig, chat_id: int, title: str, members: list[Joiner], _: Any) -> str:
    """The welcome text for ``members`` (one or a merged raid batch), HTML."""
    template = cfg.text or _(DEFAULT_GREETING)
    shown = members[: cfg.raid_max_mentions]
    mentions = " ".join(mention_html(m.user_id, m.name) for m in shown)
    names = _("、").join(html.escape(m.name) for m in shown)
    if len(members) > len(shown):
        more = _(" 等 {n} 人").replace("{n}", str(len(members)))
        mentions += more
        names += more
    values = {
        "name": names,
        "mention": mentions,
        "title": html.escape(title),
        "rules": cfg.rules,
        "count": str(await _member_count(app, chat_id)) if service.uses_variable(template, "count") else "",
    }
    text = service.render(template, values)
    if len(text) > MAX_TEXT - 600:
        values["rules"] = _("（群规较长，请发送 /rules 查看）")
        text = service.render(template, values)
    if len(text) > MAX_TEXT - 600:
        text = service.render(_(DEFAULT_GREETING), values)
    return text


async def _warn_no_right(app: App, chat_id: int, title: str) -> None:
    """Tell the chat's admins (the log chat, else the chat) once that captcha needs the right."""
    state = _state(app)
    if await state.warned(chat_id):
        return
    await state.set_warned(chat_id, True)
    core = await app.chat_config.chat(chat_id)
    _ = await _tr(app, chat_id)
    text = (
        _("⚠️ 群「{title}」（{chat_id}）开启了入群验证，但机器人没有“限制成员”权限 (can_restrict_members)，"
          "新成员只会收到欢迎语，不会被验证。请在群管理员设置里给机器人这项权限。")
        .replace("{title}", html.escape(title or str(chat_id)))
        .replace("{chat_id}", str(chat_id))
    )
    target = app.log_chat_for(core.log_chat_id)
    app.send_text(target if target is not None else chat_id, text)


async def _verified(app: App, chat_id: int, user_id: int) -> None:
    now = app.clock.now()
    await app.members.mark_verified(chat_id, user_id, now)
    await app.events.emit(MemberVerified(chat_id=chat_id, user_id=user_id, at=now))


# ---------------------------------------------------------------------------------------------
# joins
# ---------------------------------------------------------------------------------------------


async def _needs_captcha(app: App, cfg: WelcomeConfig, ev: MemberJoined, had_left_captcha: bool) -> bool:
    chat_id = ev.chat_id
    assert chat_id is not None
    if cfg.captcha == "off" or ev.is_bot:
        return False  # bots cannot press buttons; an admin added them (skip_bots = false)
    if await app.admins.is_admin(chat_id, ev.user_id):
        return False
    if ev.invited_by is not None and ev.invite_link is None and await app.admins.is_admin(chat_id, ev.invited_by):
        return False  # added by an admin in person
    if not await app.admins.bot_can(chat_id, "can_restrict_members"):
        await _warn_no_right(app, chat_id, ev.chat_title or "")
        return False
    await _state(app).set_warned(chat_id, False)
    if not had_left_captcha and ev.status != "member":
        # Already muted by someone else (a mute dodged by leaving and rejoining): leave it alone,
        # passing our captcha must not lift another restriction. A chat_member update says so itself
        # ("restricted"); a join service message does not, so ask.
        try:
            member = await app.bot.get_chat_member(chat_id, ev.user_id)
        except TelegramAPIError:
            member = None
        if member is not None and member.status == "restricted" and not getattr(member, "can_send_messages", True):
            return False
    return True


async def on_raid_mode(app: App, ev: RaidModeChanged) -> None:
    if ev.chat_id is None:
        return
    # The event fires in the worker that saw the raid; every worker's joins must pause.
    state = _state(app)
    if ev.on:
        await state.set_raid(ev.chat_id, ev.until.timestamp() if ev.until else float("inf"), app.clock.time())
    else:
        await state.clear_raid(ev.chat_id)


async def on_member_joined(app: App, ev: MemberJoined) -> None:
    chat_id = ev.chat_id
    if chat_id is None or ev.user_id == app.bot.id:
        return
    cfg = await _cfg(app, chat_id)
    if ev.is_bot and cfg.skip_bots:
        return
    state = _state(app)
    if await state.raid_until(chat_id) > app.clock.time():
        # Anti-raid mode: moderation restricts or bans joiners; greeting them would amplify the raid.
        return
    async with state.lock(chat_id):
        async with app.db() as s:
            existing = await service.get_captcha(s, chat_id, ev.user_id)
        if existing is not None and existing.status in (PENDING, PASSING, FAILING):
            return  # one captcha at a time: a repeat of this join changes nothing
        captcha = await _needs_captcha(app, cfg, ev, existing is not None and existing.status == LEFT)
        if cfg.greet or captcha:
            captcha = await _enqueue_greeting(app, cfg, ev, captcha)
    if not captcha:
        # No captcha for this member (off, an admin, no right): verified on arrival.
        await _verified(app, chat_id, ev.user_id)


async def _enqueue_greeting(app: App, cfg: WelcomeConfig, ev: MemberJoined, captcha: bool) -> bool:
    """Put the member into this window's greeting (sent now, or merged at the window's end).

    Returns whether the member is now under a captcha. The caller holds the chat's shared lock, so
    the chat's open batch read here is the one every worker sees."""
    chat_id = ev.chat_id
    assert chat_id is not None
    rt = _rt(app)
    state = _state(app)
    _ = await _tr(app, chat_id)
    now = app.clock.now()
    batch = await state.batch(chat_id)
    stored = batch is not None
    immediate = False
    if batch is None:
        last = await state.last_greeting(chat_id)
        window = cfg.raid_window
        immediate = window <= 0 or last is None or app.clock.time() - last >= window
        due = now if immediate else now + timedelta(seconds=max(0.0, last + window - app.clock.time()))  # type: ignore[operator]
        token = rt.new_token()
        batch = Batch(key=f"{GREET_TIMER}:{chat_id}:{token}", token=token, due=due, challenge=None,
                      title=ev.chat_title or "")
    joiner = Joiner(ev.user_id, display_name(ev.first_name, None, ev.username), captcha)
    if captcha:
        if batch.challenge is None:
            batch.challenge = _make_challenge(app, cfg, _)
        joiner.captcha = await _start_captcha(app, cfg, chat_id, ev.user_id, batch)
    if not joiner.captcha and not cfg.greet:
        # the captcha could not start and there is no greeting to send
        if stored and not batch.members:
            await state.drop_batch(chat_id)
        return False
    batch.members.append(joiner)
    if immediate:
        await state.set_last_greeting(chat_id, app.clock.time(), cfg.raid_window)
        await state.mark_flushed(batch.key)
        await _send_batch(app, chat_id, batch)
    else:
        await state.save_batch(chat_id, batch, now)
        await app.timers.schedule(batch.key, GREET_TIMER, batch.due, chat_id=chat_id, payload=batch.payload(),
                                  replace=True)
    return joiner.captcha


async def _start_captcha(app: App, cfg: WelcomeConfig, chat_id: int, user_id: int, batch: Batch) -> bool:
    """Record the captcha, arm its deadline, restrict the member. False when it could not start."""
    assert batch.challenge is not None
    now = app.clock.now()
    deadline = max(batch.due, now) + timedelta(seconds=cfg.captcha_timeout)
    answer = _answer_spec(batch.challenge.answer, len(batch.challenge.options))
    async with app.db() as s, s.begin():
        opened = await service.open_captcha(s, chat_id, user_id, token=batch.token, mode=batch.challenge.mode,
                                            answer=answer, deadline=deadline, now=now)
        if not opened:
            return False
        # Armed in the same transaction: a crash after the restriction still ends in a verdict.
        await _arm_deadline(app, chat_id, user_id, batch.token, deadline, session=s)
    ok = await app.call_now(chat_id, RestrictChatMember(chat_id=chat_id, user_id=user_id, permissions=NO_PERMISSIONS,
                                                    use_independent_chat_permissions=True))
    if ok is True:
        return True
    log.warning("welcome: could not restrict %s in %s; greeting without captcha", user_id, chat_id)
    async with app.db() as s, s.begin():
        await service.finish(s, chat_id, user_id, batch.token, RELEASED, now)
    await app.timers.cancel_prefix(_deadline_key(chat_id, user_id, batch.token))
    return False


async def _send_batch(app: App, chat_id: int, batch: Batch) -> None:
    """Send the (merged) welcome message of a batch, with the shared captcha if anyone needs one."""
    cfg = await _cfg(app, chat_id)
    _ = await _tr(app, chat_id)
    now = app.clock.now()
    async with app.db() as s:
        still_open = set(await service.open_members(s, chat_id, batch.token))
    members: list[Joiner] = []
    for m in batch.members:
        if m.captcha:
            if m.user_id in still_open:
                members.append(m)
        else:
            row = await app.members.get(chat_id, m.user_id)
            if row is None or row.status not in ("member", "restricted", "administrator", "creator"):
                continue
            members.append(m)
    if not members:
        return
    greeting = await _greeting(app, cfg, chat_id, batch.title, members, _) if cfg.greet else ""
    captcha_members = [m for m in members if m.captcha]
    if not captcha_members or batch.challenge is None:
        if greeting:
            app.send_text(chat_id, greeting, delete_after=cfg.delete_welcome_after or None)
        return
    prompt = _captcha_prompt(cfg, batch.challenge, _)
    if "tg://user?id=" not in greeting:
        prompt = " ".join(mention_html(m.user_id, m.name) for m in captcha_members[: cfg.raid_max_mentions]) \
            + " " + prompt
    text = f"{greeting}\n\n{prompt}" if greeting else prompt
    if len(text) > 4096:
        text = prompt if len(prompt) <= 4096 else _captcha_prompt(cfg, batch.challenge, _)
    sent = await app.send_text_now(chat_id, text, reply_markup=_keyboard(batch.challenge, batch.token))
    if sent is None:
        log.warning("welcome: captcha message to %s failed; releasing %d member(s)", chat_id, len(captcha_members))
        for m in captcha_members:
            await _release(app, chat_id, m.user_id, batch.token)
        return
    late = (now - batch.due).total_seconds() > 2
    async with app.db() as s, s.begin():
        await service.attach_message(s, chat_id, batch.token, sent.message_id, greeting, now)
        if late:
            # The window closed late (a restart, a slow timer): everyone gets the full time.
            await service.extend_deadlines(s, chat_id, batch.token, now + timedelta(seconds=cfg.captcha_timeout))


async def on_greet_timer(app: App, fire: TimerFire) -> None:
    """The raid window closed: send its merged welcome."""
    chat_id = fire.chat_id
    if chat_id is None:
        return
    state = _state(app)
    async with state.lock(chat_id):
        batch = await state.take_batch(chat_id, fire.key)
        if batch is None:
            if await state.was_flushed(fire.key):
                return
            try:
                batch = Batch.from_payload(fire.key, fire.due_at, fire.payload)  # after a restart
            except (KeyError, TypeError, ValueError):
                log.warning("welcome: dropping malformed greet timer %s", fire.key)
                return
        await state.mark_flushed(fire.key)
        cfg = await _cfg(app, chat_id)
        await state.set_last_greeting(chat_id, app.clock.time(), cfg.raid_window)
        if not cfg.enabled:
            for m in batch.members:  # switched off during the window: no greeting, no captcha
                if m.captcha:
                    await _release(app, chat_id, m.user_id, batch.token)
            return
        await _send_batch(app, chat_id, batch)


# ---------------------------------------------------------------------------------------------
# verdicts
# ---------------------------------------------------------------------------------------------


async def _pass(app: App, chat_id: int, user_id: int, token: str) -> bool:
    async with app.db() as s, s.begin():
        if not await service.claim(s, chat_id, user_id, token, (PENDING, PASSING), PASSING):
            return False
    ok = await app.call(chat_id, RestrictChatMember(chat_id=chat_id, user_id=user_id,
                                                    permissions=await _default_permissions(app, chat_id),
                                                    use_independent_chat_permissions=True))
    if ok is not True:
        # Stays "passing": pressing again (or the redelivered press) retries the lift.
        log.warning("welcome: lifting the captcha restriction of %s in %s failed", user_id, chat_id)
        return False
    async with app.db() as s, s.begin():
        await service.finish(s, chat_id, user_id, token, PASSED, app.clock.now())
    await app.timers.cancel_prefix(_deadline_key(chat_id, user_id, token))
    await _verified(app, chat_id, user_id)
    await _close(app, chat_id, token)
    return True


async def _fail(app: App, chat_id: int, user_id: int, token: str) -> bool:
    async with app.db() as s, s.begin():
        if not await service.claim(s, chat_id, user_id, token, (PENDING, FAILING), FAILING):
            return False
    cfg = await _cfg(app, chat_id)
    status = FAILED
    if cfg.captcha_kick:
        # A kick: ban, then unban at once so they may come back later. The short until_date is a
        # safety net in case the unban is lost.
        until = app.clock.now() + timedelta(seconds=60)
        await app.call(chat_id, BanChatMember(chat_id=chat_id, user_id=user_id, until_date=until))
        await app.call(chat_id, UnbanChatMember(chat_id=chat_id, user_id=user_id, only_if_banned=True))
        status = KICKED
    async with app.db() as s, s.begin():
        await service.finish(s, chat_id, user_id, token, status, app.clock.now())
    await app.timers.cancel_prefix(_deadline_key(chat_id, user_id, token))
    await _close(app, chat_id, token)
    return True


async def _release(app: App, chat_id: int, user_id: int, token: str) -> None:
    """The captcha could never be shown: lift the restriction without a verdict."""
    async with app.db() as s, s.begin():
        if not await service.claim(s, chat_id, user_id, token, (PENDING,), RELEASED):
            return
        await service.finish(s, chat_id, user_id, token, RELEASED, app.clock.now())
    await app.call(chat_id, RestrictChatMember(chat_id=chat_id, user_id=user_id,
                                               permissions=await _default_permissions(app, chat_id),
                                               use_independent_chat_permissions=True))
    await app.timers.cancel_prefix(_deadline_key(chat_id, user_id, token))


async def _close(app: App, chat_id: int, token: str) -> None:
    """When nobody on a captcha message is still open: leave the greeting, or remove the message."""
    async with app.db() as s, s.begin():
        closed = await service.close_prompt(s, chat_id, token, app.clock.now())
    if closed is None:
        return
    prompt, anyone_passed = closed
    cfg = await _cfg(app, chat_id)
    if anyone_passed and prompt.greeting:
        await app.call(chat_id, EditMessageText(chat_id=chat_id, message_id=prompt.message_id, text=prompt.greeting,
                                                reply_markup=None))
        if cfg.delete_welcome_after:
            await _schedule_delete(app, chat_id, prompt.message_id, cfg.delete_welcome_after)
    else:
        app.call(chat_id, DeleteMessage(chat_id=chat_id, message_id=prompt.message_id))


async def _schedule_delete(app: App, chat_id: int, message_id: int, after: float) -> None:
    await app.timers.schedule(f"core.delete:{chat_id}:{message_id}", DELETE_TIMER,
                              app.clock.now() + timedelta(seconds=after), chat_id=chat_id,
                              payload={"message_id": message_id})


async def on_deadline_timer(app: App, fire: TimerFire) -> None:
    chat_id = fire.chat_id
    try:
        user_id = int(fire.payload["user_id"])
        token = str(fire.payload["token"])
    except (KeyError, TypeError, ValueError):
        log.warning("welcome: malformed deadline timer %s", fire.key)
        return
    if chat_id is None:
        return
    async with _state(app).lock(chat_id):
        async with app.db() as s:
            row = await service.get_captcha(s, chat_id, user_id)
        if row is None or row.token != token or row.status not in (PENDING, FAILING):
            return
        now = app.clock.now()
        if row.deadline > now + timedelta(seconds=1):
            # The deadline moved (the message went out late): wait for the new one.
            await _arm_deadline(app, chat_id, user_id, token, row.deadline)
            return
        never_shown = row.message_id is None and row.status == PENDING
        if never_shown or (row.status == PENDING and not (await _cfg(app, chat_id)).enabled):
            # Never shown, or the plugin was switched off meanwhile: no verdict, just let them talk.
            await _release(app, chat_id, user_id, token)
            await _close(app, chat_id, token)
            return
        await _fail(app, chat_id, user_id, token)


async def on_member_left(app: App, ev: MemberLeft) -> None:
    """A member who leaves while pending: the timer is cancelled and nothing else happens."""
    chat_id = ev.chat_id
    if chat_id is None:
        return
    state = _state(app)
    async with state.lock(chat_id):
        await state.drop_member(chat_id, ev.user_id, app.clock.now())
        async with app.db() as s, s.begin():
            row = await service.get_captcha(s, chat_id, ev.user_id)
            if row is None or row.status != PENDING:
                return
            token = row.token
            if not await service.claim(s, chat_id, ev.user_id, token, (PENDING,), LEFT):
                return
            await service.finish(s, chat_id, ev.user_id, token, LEFT, app.clock.now())
        await app.timers.cancel_prefix(_deadline_key(chat_id, ev.user_id, token))
        await _close(app, chat_id, token)


# ---------------------------------------------------------------------------------------------
# captcha buttons
# ---------------------------------------------------------------------------------------------


async def _answer(query: CallbackQuery, text: str, show_alert: bool = False) -> None:
    """Answer a button press; a failed answer (e.g. a press older than Telegram keeps them, after
    downtime) must not stop the verdict, so it is logged and ignored."""
    try:
        await query.answer(text, show_alert=show_alert)
    except TelegramAPIError as exc:
        log.info("welcome: answerCallbackQuery failed: %s", exc)


class CaptchaButton(Filter):
    async def __call__(self, event: TelegramObject) -> bool:
        data = getattr(event, "data", None)
        return isinstance(data, str) and data.startswith(service.CALLBACK_PREFIX)


async def on_captcha_button(query: CallbackQuery, ctx: Ctx) -> None:
    app = ctx.app
    _ = ctx._
    parsed = service.parse_callback(query.data)
    message = query.message
    if parsed is None or message is None:
        await _answer(query, _("无效的按钮。"), show_alert=True)
        return
    token, index = parsed
    chat_id = message.chat.id
    user_id = query.from_user.id
    async with _state(app).lock(chat_id):
        async with app.db() as s:
            row = await service.get_captcha(s, chat_id, user_id)
        if row is None or row.token != token:
            await _answer(query, _("这不是你的验证，请不要点别人的按钮。"), show_alert=True)
            return
        if row.message_id is not None and row.message_id != message.message_id:
            await _answer(query, _("无效的按钮。"), show_alert=True)
            return
        if row.status in (PASSED, PASSING):
            await _answer(query, _("你已经通过验证了。"))
            if row.status == PASSING:
                await _pass(app, chat_id, user_id, token)
            return
        if row.status != PENDING:
            await _answer(query, _("这个验证已经结束了。"), show_alert=True)
            return
        try:
            right, count = _parse_answer_spec(row.answer)
        except ValueError:
            right, count = 0, 1
        if index >= count:
            await _answer(query, _("无效的按钮。"), show_alert=True)
            return
        if index == right:
            await _answer(query, _("验证通过，欢迎！"))
            await _pass(app, chat_id, user_id, token)
            return
        cfg = cast(WelcomeConfig, ctx.cfg)
        async with app.db() as s, s.begin():
            attempts = await service.add_attempt(s, chat_id, user_id, token)
        left = cfg.captcha_attempts - attempts
        if left > 0:
            await _answer(query, _("答错了，还可以再试 {n} 次。").replace("{n}", str(left)), show_alert=True)
            return
        await _answer(query, _("答错次数太多，验证失败。"), show_alert=True)
        await _fail(app, chat_id, user_id, token)


# ---------------------------------------------------------------------------------------------
# join/leave service messages
# ---------------------------------------------------------------------------------------------


class JoinLeaveService(Filter):
    async def __call__(self, event: TelegramObject) -> bool:
        return bool(getattr(event, "new_chat_members", None) or getattr(event, "left_chat_member", None))


async def on_join_leave_service(message: Message, ctx: Ctx) -> None:
    cfg = cast(WelcomeConfig, ctx.cfg)
    if not cfg.clean_service:
        return
    app = ctx.app
    chat_id = message.chat.id
    if not await app.admins.bot_can(chat_id, "can_delete_messages"):
        return
    if cfg.clean_service_after:
        await _schedule_delete(app, chat_id, message.message_id, cfg.clean_service_after)
    else:
        app.call(chat_id, DeleteMessage(chat_id=chat_id, message_id=message.message_id))


def make_router() -> Router:
    router = Router(name=NAME)
    router.callback_query.register(on_captcha_button, CaptchaButton())
    # A root filter, so it runs before the core's plugin gate: a chatter message is turned away
    # without building the plugin's context.
    router.message.filter(JoinLeaveService())
    router.message.register(on_join_leave_service)
    return router


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------

USAGE_SETWELCOME = N_(
    "/setwelcome 欢迎语。可用变量：{name} 名字、{mention} @成员、{title} 群名、{count} 人数、{rules} 群规"
)
USAGE_SETRULES = N_("/setrules 群规内容")
USAGE_WELCOME = N_(
    "/welcome 查看设置；/welcome on|off 开关欢迎语；/welcome captcha button|math|question|off 验证方式；"
    "/welcome timeout 秒数；/welcome attempts 次数；/welcome kick on|off；/welcome raid 秒数；"
    "/welcome autodelete 秒数|off；/welcome clean on|off [秒数]"
)
_FORMAT_ENTITIES = frozenset(
    {"bold", "italic", "underline", "strikethrough", "spoiler", "code", "pre", "text_link", "text_mention",
     "blockquote", "expandable_blockquote", "custom_emoji"}
)


def command_body_html(message: Message, args: str) -> str:
    """The text after the command as HTML: the sender's formatting kept (entities, or typed HTML)."""
    if any(e.type in _FORMAT_ENTITIES for e in message.entities or ()):
        parts = re.split(r"\s", message.html_text, maxsplit=1)
        return parts[1].strip() if len(parts) > 1 else ""
    return service.as_html(args.strip())


async def _store(ctx: Ctx, changes: dict[str, Any]) -> WelcomeConfig:
    assert ctx.chat_id is not None
    model = await ctx.app.chat_config.update(ctx.chat_id, NAME, changes, by=ctx.user_id)
    await ctx.app.events.emit(ChatSettingsChanged(chat_id=ctx.chat_id, plugin=NAME, changes=dict(changes)))
    return cast(WelcomeConfig, model)


async def _reset_key(ctx: Ctx, key: str) -> None:
    """Drop one in-chat override so the TOML/default value applies again."""
    assert ctx.chat_id is not None
    app = ctx.app
    overrides = dict((await app.chat_config.export(ctx.chat_id)).get(NAME, {}))
    if key not in overrides:
        return
    overrides.pop(key)
    await app.chat_config.reset(ctx.chat_id, NAME)
    if overrides:
        await app.chat_config.update(ctx.chat_id, NAME, overrides, by=ctx.user_id)
    await app.events.emit(ChatSettingsChanged(chat_id=ctx.chat_id, plugin=NAME, changes={key: None}))


async def cmd_setwelcome(message: Message, ctx: Ctx) -> None:
    _ = ctx._
    text = command_body_html(message, ctx.args)
    if not text:
        raise UsageError()
    unknown = service.unknown_variables(text)
    if unknown:
        names = ", ".join("{" + html.escape(v) + "}" for v in unknown)
        raise UsageError(_("不认识的变量：{bad}。").replace("{bad}", names) + "\n" + _("用法：") + _(USAGE_SETWELCOME))
    if len(text) > 3000:
        raise UsageError(_("欢迎语太长了（最多 3000 字）。"))
    cfg = await _store(ctx, {"text": text})
    user = message.from_user
    sample = [Joiner(user.id, display_name(user.first_name, user.last_name, user.username), False)] if user else []
    assert ctx.chat_id is not None
    preview = await _greeting(ctx.app, cfg, ctx.chat_id, message.chat.title or "", sample, _)
    ctx.reply(message, _("✅ 欢迎语已保存。预览：") + "\n\n" + preview)


async def cmd_resetwelcome(message: Message, ctx: Ctx) -> None:
    await _reset_key(ctx, "text")
    ctx.reply(message, ctx._("✅ 欢迎语已恢复为默认。"))


async def cmd_setrules(message: Message, ctx: Ctx) -> None:
    text = command_body_html(message, ctx.args)
    if not text:
        raise UsageError()
    if len(text) > 3500:
        raise UsageError(ctx._("群规太长了（最多 3500 字）。"))
    await _store(ctx, {"rules": text})
    ctx.reply(message, ctx._("✅ 群规已保存，成员发送 /rules 即可查看。"))


async def cmd_resetrules(message: Message, ctx: Ctx) -> None:
    await _reset_key(ctx, "rules")
    ctx.reply(message, ctx._("✅ 群规已清除。"))


async def cmd_rules(message: Message, ctx: Ctx) -> None:
    cfg = cast(WelcomeConfig, ctx.cfg)
    if not cfg.rules:
        ctx.reply(message, ctx._("本群还没有设置群规。"), notice=True)
        return
    ctx.reply(message, "<b>" + ctx._("群规") + "</b>\n" + cfg.rules)


def _on_off(value: str) -> bool | None:
    value = value.lower()
    if value in ("on", "yes", "true", "1", "开", "开启", "打开"):
        return True
    if value in ("off", "no", "false", "0", "关", "关闭"):
        return False
    return None


def _int_arg(value: str) -> int:
    if not value.isdigit() or len(value) > 7:
        raise UsageError()
    return int(value)


async def _summary(ctx: Ctx, cfg: WelcomeConfig) -> str:
    _ = ctx._
    assert ctx.chat_id is not None
    app = ctx.app
    modes = {"button": _("按钮"), "math": _("算术题"), "question": _("问答题"), "off": _("关闭")}
    yes_no = {True: _("开启"), False: _("关闭")}
    lines = ["<b>" + _("入群欢迎设置") + "</b>", _("欢迎语") + "：" + yes_no[cfg.greet]]
    captcha = _("入群验证") + "：" + modes[cfg.captcha]
    if cfg.captcha != "off":
        captcha += " · " + _("{n} 秒").replace("{n}", str(cfg.captcha_timeout))
        captcha += " · " + (_("失败踢出") if cfg.captcha_kick else _("失败保持禁言"))
        if cfg.captcha in ("math", "question"):
            captcha += " · " + _("可尝试 {n} 次").replace("{n}", str(cfg.captcha_attempts))
    lines.append(captcha)
    if cfg.captcha != "off" and not await app.admins.bot_can(ctx.chat_id, "can_restrict_members"):
        lines.append(_("⚠️ 机器人没有“限制成员”权限，验证不会生效。"))
    lines.append(_("合并欢迎") + "：" + (_("{n} 秒内入群的成员合并成一条").replace("{n}", f"{cfg.raid_window:g}")
                                          if cfg.raid_window else _("关闭")))
    lines.append(_("自动删除欢迎语") + "：" + (_("{n} 秒后").replace("{n}", str(cfg.delete_welcome_after))
                                              if cfg.delete_welcome_after else _("不删除")))
    clean = _("删除") if cfg.clean_service else _("保留")
    if cfg.clean_service and cfg.clean_service_after:
        clean += " · " + _("{n} 秒后").replace("{n}", str(cfg.clean_service_after))
    lines.append(_("进群/退群提示") + "：" + clean)
    lines.append(_("群规") + "：" + (_("已设置") if cfg.rules else _("未设置")))
    template = cfg.text or _(DEFAULT_GREETING)
    lines.append(_("当前欢迎语") + (_("（默认）") if not cfg.text else "") + "：")
    lines.append(f"<pre>{html.escape(template)}</pre>")
    return "\n".join(lines)


async def cmd_welcome(message: Message, ctx: Ctx) -> None:
    _ = ctx._
    cfg = cast(WelcomeConfig, ctx.cfg)
    args = ctx.args.split()
    if not args:
        ctx.reply(message, await _summary(ctx, cfg))
        return
    sub = args[0].lower()
    rest = args[1:]
    changes: dict[str, Any]
    flag = _on_off(sub)
    if flag is not None and not rest:
        changes = {"greet": flag}
    elif sub == "captcha" and len(rest) == 1 and rest[0].lower() in CAPTCHA_MODES:
        mode = rest[0].lower()
        if mode == "question" and not cfg.captcha_questions:
            raise UsageError(_("还没有配置验证问题：请在配置文件的 [plugins.welcome] 里添加 captcha_questions。"))
        changes = {"captcha": mode}
    elif sub == "timeout" and len(rest) == 1:
        changes = {"captcha_timeout": _int_arg(rest[0])}
    elif sub == "attempts" and len(rest) == 1:
        changes = {"captcha_attempts": _int_arg(rest[0])}
    elif sub == "kick" and len(rest) == 1 and _on_off(rest[0]) is not None:
        changes = {"captcha_kick": _on_off(rest[0])}
    elif sub == "raid" and len(rest) == 1:
        changes = {"raid_window": _int_arg(rest[0])}
    elif sub == "autodelete" and len(rest) == 1:
        changes = {"delete_welcome_after": 0 if _on_off(rest[0]) is False else _int_arg(rest[0])}
    elif sub == "clean" and 1 <= len(rest) <= 2 and _on_off(rest[0]) is not None:
        changes = {"clean_service": _on_off(rest[0])}
        if len(rest) == 2:
            changes["clean_service_after"] = _int_arg(rest[1])
    else:
        raise UsageError()
    new_cfg = await _store(ctx, changes)
    ctx.reply(message, _("✅ 已更新。") + "\n\n" + await _summary(ctx, new_cfg))
