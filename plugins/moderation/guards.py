"""The guard: runs first on every group message (plugin order 10) and may consume it.

Hot path: no database query for an ordinary message. Admin rights come from the core's cached admin
list, words from the chat's prebuilt automaton, approvals and network bans from memory; the flood
window is one call to ``app.shared`` (memory, or one Redis round trip with several workers), made
only for members who are neither admins nor approved. A text with a promotion signal also touches
the wave windows, and a message that already looks like spam (a link, an @mention, a forward) from a
member reads the member's join time (shared; the database when not cached yet).
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from typing import TYPE_CHECKING

from aiogram.types import Message

from bot.context import Ctx
from plugins.moderation.enforce import Case, enforce, excerpt_of
from plugins.moderation.parsing import Action

if TYPE_CHECKING:
    from plugins.moderation.config import ModerationConfig
    from plugins.moderation.runtime import ModerationRuntime

_TLDS = (
    "com|cn|net|org|me|io|cc|xyz|top|info|vip|shop|link|co|ly|gg|app|site|online|club|tk|ru|ink|pro|tv|hk|tw|"
    "biz|live|store|fun|icu|work|asia|uk|us|jp|kr"
)
URL_RE = re.compile(
    rf"(?i)(?:https?://|www\.)\S+|tg://\S+|(?<![\w@.])(?:[a-z0-9](?:[a-z0-9-]{{0,61}}[a-z0-9])?\.)+(?:{_TLDS})"
    r"(?![a-z0-9-])(?:/\S*)?"
)
INVITE_RE = re.compile(r"(?i)(?:t(?:elegram)?\.me|telegram\.dog)/(?:\+|joinchat/)[\w-]+|tg://join\?invite=")
MENTION_RE = re.compile(r"(?<![\w@])@([a-zA-Z][\w]{3,31})")
MEDIA_ATTRS = ("photo", "video", "audio", "voice", "video_note")
# Promotion signals in normalized (simplified, case-folded) text: what makes copies a spam wave.
PROMO_RE = re.compile(
    r"https?://|www\.|t\.me/|@[a-z][\w]{3,}|\d{6,}|v\s*x|wei\s*xin|微信|薇信|威信|加v|加我|私聊|私信|qq|扣扣|"
    r"兼职|赚钱|日结|返利|刷单|代理|招募|推广|引流|涨粉|点击链接|扫码"
)


def promo_signal(normalized: str, message: Message) -> bool:
    """Does the text advertise (a link, a contact, a job offer)? A 接龙 list never does."""
    if "接龙" in normalized:
        return False
    if message.entities or message.caption_entities:
        for e in message.entities or message.caption_entities or []:
            if e.type in ("url", "text_link", "mention", "phone_number", "email"):
                return True
    return PROMO_RE.search(normalized) is not None


def links_of(message: Message) -> list[str]:
    """URLs in the message: url/text_link entities, or URL-looking text when there are none."""
    text = message.text or message.caption or ""
    entities = message.entities or message.caption_entities or []
    urls: list[str] = []
    for e in entities:
        if e.type == "url":
            urls.append(e.extract_from(text))
        elif e.type == "text_link" and e.url:
            urls.append(e.url)
    if not urls and ("." in text or "tg://" in text):
        urls = URL_RE.findall(text)
    return urls


def host_path(url: str) -> str:
    u = url.strip().lower()
    for prefix in ("https://", "http://", "tg://"):
        if u.startswith(prefix):
            u = u[len(prefix):]
            break
    return u.removeprefix("www.").rstrip("/.,;!?)")


def allowed_link(url: str, allowed: list[str]) -> bool:
    if not allowed:
        return False
    hp = host_path(url)
    host = hp.split("/", 1)[0].split(":", 1)[0]
    for entry in allowed:
        if "/" in entry:
            if hp == entry or hp.startswith(entry + "/") or hp.startswith(entry + "?"):
                return True
        elif host == entry or host.endswith("." + entry):
            return True
    return False


def bad_links(message: Message, allowed: list[str]) -> list[str]:
    return [u for u in links_of(message) if not allowed_link(u, allowed)]


def mentions_of(message: Message) -> list[str]:
    text = message.text or message.caption or ""
    entities = message.entities or message.caption_entities or []
    names = [e.extract_from(text).lstrip("@") for e in entities if e.type == "mention"]
    if not names and "@" in text:
        names = MENTION_RE.findall(text)
    return names


def from_channel_forward(message: Message) -> bool:
    origin = message.forward_origin
    if origin is not None:
        return getattr(origin, "type", None) == "channel"
    chat = message.forward_from_chat
    return chat is not None and chat.type == "channel"


def lock_hit(message: Message, cfg: ModerationConfig, as_channel: bool) -> str | None:
    locks = cfg.locks
    if "channel" in locks and as_channel:
        return "channel"
    if "forwards" in locks and (message.forward_origin is not None or message.forward_date is not None):
        return "forwards"
    if "stickers" in locks and message.sticker is not None:
        return "stickers"
    if "gifs" in locks and message.animation is not None:
        return "gifs"
    if "media" in locks and (
        any(getattr(message, a, None) for a in MEDIA_ATTRS)
        or (message.document is not None and message.animation is None)
    ):
        return "media"
    if "voice" in locks and (message.voice is not None or message.video_note is not None):
        return "voice"
    if "polls" in locks and message.poll is not None:
        return "polls"
    if "contacts" in locks and (message.contact is not None or message.location is not None
                                or message.venue is not None):
        return "contacts"
    if "inline" in locks and message.via_bot is not None:
        return "inline"
    if "dice" in locks and message.dice is not None:
        return "dice"
    if "links" in locks and bad_links(message, cfg.allowed_domains):
        return "links"
    return None


async def _spam_reason(message: Message, ctx: Ctx, cfg: ModerationConfig, user_id: int) -> str | None:
    """Why a newcomer's message is spam (None: it is not). Cheap checks first, I/O last."""
    text = message.text or message.caption or ""
    invite = ("me/" in text or "dog/" in text or "tg://" in text) and INVITE_RE.search(text) is not None
    forward = from_channel_forward(message)
    links = bad_links(message, cfg.allowed_domains) if not invite else []
    mentions = mentions_of(message) if not (invite or forward or links) else []
    if not (invite or forward or links or mentions):
        return None
    rt: ModerationRuntime = ctx.runtime
    joined = await rt.joined_at(message.chat.id, user_id)
    if joined is None or (ctx.now() - joined).total_seconds() >= cfg.newcomer_hours * 3600:
        return None
    if invite:
        return ctx._("新成员不能发群邀请链接")
    if forward:
        return ctx._("新成员不能转发频道消息")
    if links:
        return ctx._("新成员不能发链接")
    own = (ctx.app.bot_username or "").lower()
    for name in mentions:
        if name.lower() == own:
            continue
        if await ctx.app.members.resolve("@" + name) is None:
            return ctx._("新成员不能提及其他群或频道")
    return None


async def guard(message: Message, ctx: Ctx) -> bool:
    """The message guard: carry out whatever ``judge`` decides; True consumes the message."""
    cases = await judge(message, ctx)
    for case in cases:
        await enforce(ctx.app, case)
    return bool(cases)


async def judge(message: Message, ctx: Ctx, *, edited: bool = False) -> list[Case]:
    """The penalties this message earns (usually none). ``edited``: an edit of an earlier message,
    judged on its content only (no flood or wave counting)."""
    cfg: ModerationConfig = ctx.cfg  # type: ignore[assignment]
    rt: ModerationRuntime = ctx.runtime
    app = ctx.app
    if message.is_automatic_forward:
        return []  # the linked channel's own posts
    chat_id = message.chat.id
    user = message.from_user
    sender_chat = message.sender_chat
    if sender_chat is not None and sender_chat.id == chat_id:
        return []  # an anonymous admin
    as_channel = sender_chat is not None
    target = None if as_channel or user is None else user.id
    if target is not None and cfg.admins_exempt and await app.admins.is_admin(chat_id, target):
        return []
    if target is not None and target == app.bot.id:
        return []
    await rt.ensure_loaded()
    mid = message.message_id
    text = message.text or message.caption or ""
    excerpt = excerpt_of(text) or _kind_excerpt(message)

    channel = sender_chat if as_channel else None

    def case(rule: str, action: Action, source: str, **kw: object) -> Case:
        return Case(chat_id=chat_id, user_id=target, rule=rule, action=action, source=source, excerpt=excerpt,
                    chat_title=message.chat.title, sender_chat_id=channel.id if channel else None,
                    sender_chat_title=channel.title if channel else None, **kw)  # type: ignore[arg-type]

    if target is not None and cfg.gban_enforce and target in rt.gbans:
        return [case("gban", Action("ban"), f"gban:{mid}", delete_ids=[mid], reason=ctx._("全网封禁名单"))]

    approved = target is not None and rt.is_approved(chat_id, target)

    if cfg.flood_enabled and target is not None and not approved and not edited:
        ids = await rt.windows.flood(chat_id, target, mid, app.clock.time(), cfg.flood_messages, cfg.flood_seconds)
        if ids is not None:
            reason = ctx._("{n} 秒内发了超过 {m} 条消息").format(n=_num(cfg.flood_seconds), m=cfg.flood_messages)
            return [case("flood", cfg.rule_action("flood"), f"flood:{mid}",
                         delete_ids=ids if cfg.flood_delete else (), reason=reason,
                         add_warn=cfg.auto_actions_add_warn)]

    if cfg.locks and not approved:
        lock = lock_hit(message, cfg, as_channel)
        if lock is not None:
            return [case(f"lock:{lock}", _lock_action(cfg, lock), f"lock:{mid}", delete_ids=[mid],
                         add_warn=cfg.auto_actions_add_warn)]

    normalized = squeezed = ""
    if text:
        normalizer = rt.normalizer
        normalized = normalizer.normalize(text)
        squeezed = normalizer.strip(normalized)

    if cfg.blacklist_enabled and text:
        matcher = await rt.matcher(chat_id, cfg)
        hit = matcher.match_parts(normalized, squeezed) if matcher is not None else None
        if hit is not None:
            detail = ctx._("命中") + f"：「{html.escape(hit.entry.word)}」" + (
                f"（{ctx._('拼音')}）" if hit.via == "pinyin" else "")
            return [case("blacklist", hit.entry.action, f"msg:{mid}", delete_ids=[mid], detail=detail,
                         add_warn=True)]

    if cfg.spam_enabled and target is not None and not approved:
        reason = await _spam_reason(message, ctx, cfg, target)
        if reason is not None:
            return [case("spam", cfg.rule_action("spam"), f"spam:{mid}", delete_ids=[mid], reason=reason,
                         add_warn=cfg.auto_actions_add_warn)]

    if (
        cfg.spam_wave_enabled and target is not None and not approved and squeezed and not edited
        and len(squeezed) >= cfg.spam_wave_min_chars
        and (not cfg.spam_wave_require_signal or promo_signal(normalized, message))
    ):
        wave = await rt.windows.wave(chat_id, target, mid, squeezed, app.clock.time(),
                                     members=cfg.spam_wave_members, seconds=cfg.spam_wave_seconds,
                                     threshold=cfg.spam_wave_similarity, min_chars=cfg.spam_wave_min_chars)
        if wave is not None:
            by_user: dict[int, list[int]] = defaultdict(list)
            for uid, message_id in wave.copies:
                by_user[uid].append(message_id)
            reason = ctx._("多人短时间内发送相同内容")
            action = cfg.rule_action("spam_wave")
            return [
                Case(chat_id=chat_id, user_id=uid, rule="wave", action=action, source=f"wave:{min(ids)}",
                     excerpt=excerpt, chat_title=message.chat.title, delete_ids=ids, reason=reason,
                     add_warn=cfg.auto_actions_add_warn)
                for uid, ids in by_user.items()
            ]
    return []


def _lock_action(cfg: ModerationConfig, lock: str) -> Action:
    from plugins.moderation.config import RULE_KINDS
    from plugins.moderation.parsing import ParseError, parse_action

    try:
        return parse_action(cfg.locks[lock], allowed=RULE_KINDS)
    except ParseError:
        return Action("delete")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _kind_excerpt(message: Message) -> str | None:
    for attr, label in (("sticker", "[sticker]"), ("animation", "[gif]"), ("photo", "[photo]"),
                        ("video", "[video]"), ("document", "[document]"), ("voice", "[voice]")):
        if getattr(message, attr, None):
            return label
    return None
