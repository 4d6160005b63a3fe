"""Sending an answer (an FAQ entry or a note) and reading one from a replied message."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from aiogram.methods import SendAnimation, SendDocument, SendPhoto, SendSticker, SendVideo
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters

from bot.context import Ctx
from bot.services.members import display_name, mention_html
from plugins.faq.parsing import Buttons, buttons_markup, html_slice

_MEDIA_METHODS: dict[str, tuple[type[Any], str]] = {
    "photo": (SendPhoto, "photo"),
    "video": (SendVideo, "video"),
    "document": (SendDocument, "document"),
    "animation": (SendAnimation, "animation"),
    "sticker": (SendSticker, "sticker"),
}


def render(reply_html: str, message: Message) -> str:
    """Rose-style placeholders: {first} {last} {fullname} {username} {mention} {id} {chatname}."""
    if "{" not in reply_html:
        return reply_html
    user = message.from_user
    first = user.first_name if user else ""
    last = (user.last_name or "") if user else ""
    full = display_name(first, last or None, user.username if user else None)
    values = {
        "{first}": html.escape(first),
        "{last}": html.escape(last),
        "{fullname}": html.escape(full),
        "{username}": html.escape("@" + user.username) if user and user.username else html.escape(full),
        "{mention}": mention_html(user.id, full) if user else "",
        "{id}": str(user.id) if user else "",
        "{chatname}": html.escape(message.chat.title or ""),
    }
    for key, value in values.items():
        reply_html = reply_html.replace(key, value)
    return reply_html


def send_answer(ctx: Ctx, message: Message, reply_to: int, reply_html: str, buttons: Any, media_type: str | None,
                media_file_id: str | None) -> None:
    """Queue the answer to ``message`` (placeholders filled in for its sender) as a reply to ``reply_to``."""
    app = ctx.app
    chat_id = message.chat.id
    markup = buttons_markup(buttons)
    body = render(reply_html, message)
    if media_type and media_file_id and media_type in _MEDIA_METHODS:
        method_cls, field_name = _MEDIA_METHODS[media_type]
        params: dict[str, Any] = {
            "chat_id": chat_id,
            field_name: media_file_id,
            "reply_parameters": ReplyParameters(message_id=reply_to, allow_sending_without_reply=True),
            "reply_markup": markup,
        }
        if media_type != "sticker" and body:
            params["caption"] = body
        app.call(chat_id, method_cls(**params))
    else:
        app.send_text(chat_id, body, reply_to=reply_to, reply_markup=markup)


def media_of(src: Message) -> tuple[str | None, str | None]:
    if src.animation:
        return "animation", src.animation.file_id
    if src.photo:
        return "photo", src.photo[-1].file_id
    if src.video:
        return "video", src.video.file_id
    if src.sticker:
        return "sticker", src.sticker.file_id
    if src.document:
        return "document", src.document.file_id
    return None, None


def url_buttons_of(src: Message) -> Buttons:
    markup = src.reply_markup
    rows: Buttons = []
    if isinstance(markup, InlineKeyboardMarkup):
        for row in markup.inline_keyboard:
            kept = [{"text": b.text, "url": b.url} for b in row if b.url]
            if kept:
                rows.append(kept)
    return rows


@dataclass
class Source:
    """What a /filter or /save command gives as the answer."""

    reply_html: str
    media_type: str | None = None
    media_file_id: str | None = None
    buttons: Buttons = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return self.media_type is None and not self.reply_html


def answer_source(message: Message, start: int) -> Source | None:
    """The command's own text from ``start`` (formatting kept as HTML), else the replied message (its
    text, or its media with the caption, and its URL buttons); None when there is neither."""
    text = message.text or ""
    if text[start:].strip():
        return Source(html_slice(text, message.entities, start))
    src = message.reply_to_message
    if src is None:
        return None
    media_type, media_file_id = media_of(src)
    return Source(src.html_text if (src.text or src.caption) else "", media_type, media_file_id, url_buttons_of(src))
