"""A simulated Telegram (users, chats, members, messages, polls, links) plus the Bot API methods.

The world is a plain Python object: no aiohttp in here. Two transports drive it through the same entry
point, :meth:`World.handle_request`: the aiohttp server in :mod:`bot.emulator.http` and the in-process
aiogram session in :mod:`bot.emulator.session`. Tests act as Telegram users through the user-side
helpers (``join``, ``send_message``, ``press_button`` ...) which enqueue real Telegram-shaped updates,
and read what the bot did from ``world.calls`` and the chat histories.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import math
import random
import re
import time
import traceback
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

# --------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------

PERMISSION_FIELDS: tuple[str, ...] = (
    "can_send_messages",
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
    "can_react_to_messages",
    "can_edit_tag",
    "can_change_info",
    "can_invite_users",
    "can_pin_messages",
    "can_manage_topics",
)
#: permissions that, when granted without use_independent_chat_permissions, imply can_send_messages
_IMPLY_SEND_MESSAGES: tuple[str, ...] = (
    "can_send_audios",
    "can_send_documents",
    "can_send_photos",
    "can_send_videos",
    "can_send_video_notes",
    "can_send_voice_notes",
    "can_send_polls",
    "can_send_other_messages",
    "can_add_web_page_previews",
)
DEFAULT_CHAT_PERMISSIONS: Mapping[str, bool] = {
    **{name: True for name in PERMISSION_FIELDS},
    "can_edit_tag": False,
    "can_change_info": False,
    "can_pin_messages": False,
    "can_manage_topics": False,
}
ADMIN_RIGHTS: tuple[str, ...] = (
    "can_manage_chat",
    "can_delete_messages",
    "can_manage_video_chats",
    "can_restrict_members",
    "can_promote_members",
    "can_change_info",
    "can_invite_users",
    "can_post_stories",
    "can_edit_stories",
    "can_delete_stories",
    "can_send_welcome_messages",
    "can_pin_messages",
    "can_manage_topics",
)
CHANNEL_ADMIN_RIGHTS: tuple[str, ...] = ("can_post_messages", "can_edit_messages")
MEMBER_STATUSES = frozenset({"creator", "administrator", "member", "restricted", "left", "kicked"})
PRESENT_STATUSES = frozenset({"creator", "administrator", "member", "restricted"})
CHAT_TYPES = frozenset({"private", "group", "supergroup", "channel"})

ALL_UPDATE_TYPES: tuple[str, ...] = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "business_connection",
    "business_message",
    "edited_business_message",
    "deleted_business_messages",
    "message_reaction",
    "message_reaction_count",
    "inline_query",
    "chosen_inline_result",
    "callback_query",
    "shipping_query",
    "pre_checkout_query",
    "purchased_paid_media",
    "poll",
    "poll_answer",
    "my_chat_member",
    "chat_member",
    "chat_join_request",
    "chat_boost",
    "removed_chat_boost",
)
#: what Telegram sends when allowed_updates was never given (or given as an empty list)
DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})

SEND_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendVideo",
        "sendDocument",
        "sendAnimation",
        "sendSticker",
        "sendPoll",
        "forwardMessage",
        "copyMessage",
    }
)
#: parameters that are always plain strings in the form encoding (never JSON-decoded)
STRING_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "question",
        "question_parse_mode",
        "explanation",
        "explanation_parse_mode",
        "description",
        "description_parse_mode",
        "callback_query_id",
        "inline_message_id",
        "business_connection_id",
        "url",
        "name",
        "title",
        "invite_link",
        "emoji",
        "action",
        "secret_token",
        "ip_address",
        "language_code",
        "data",
        "message_effect_id",
        "type",
        "custom_title",
        "file_id",
        "sticker_set_name",
        "short_name",
        "query",
        "first_name",
        "last_name",
        "username",
    }
)
FILE_PARAMS = frozenset(
    {"photo", "video", "document", "animation", "sticker", "audio", "voice", "video_note", "thumbnail"}
)
CHAT_ID_PARAMS = frozenset({"chat_id", "from_chat_id", "sender_chat_id"})
CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
SERVICE_KEYS = frozenset(
    {
        "new_chat_members",
        "left_chat_member",
        "new_chat_title",
        "new_chat_photo",
        "delete_chat_photo",
        "group_chat_created",
        "supergroup_chat_created",
        "pinned_message",
        "migrate_to_chat_id",
        "migrate_from_chat_id",
    }
)
CONTENT_KEYS: tuple[str, ...] = (
    "text",
    "entities",
    "photo",
    "video",
    "document",
    "animation",
    "sticker",
    "audio",
    "voice",
    "video_note",
    "caption",
    "caption_entities",
    "poll",
    "location",
    "contact",
    "dice",
    "link_preview_options",
)
GROUP_ANONYMOUS_BOT: Mapping[str, Any] = {
    "id": 1087968824,
    "is_bot": True,
    "first_name": "Group",
    "username": "GroupAnonymousBot",
}
TELEGRAM_SERVICE_USER: Mapping[str, Any] = {"id": 777000, "is_bot": False, "first_name": "Telegram"}
CHANNEL_BOT: Mapping[str, Any] = {
    "id": 136817688,
    "is_bot": True,
    "first_name": "Channel",
    "username": "Channel_Bot",
}
#: bot accounts whose messages Telegram does deliver to bots (anonymous admins, "send as channel")
_VISIBLE_SERVICE_BOTS = frozenset({1087968824, 136817688})

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
POLL_MIN_OPTIONS = 2
POLL_MAX_OPTIONS = 12  # Bot API 9.x (aiogram 3.31) allows up to 12 answer options
CALLBACK_ANSWER_WINDOW = 15 * 60.0  # seconds a callback query stays answerable (world clock)
DELETE_WINDOW = 48 * 3600.0
RATE_PER_SECOND = 30
RATE_PER_GROUP_MINUTE = 20
FAULT_KINDS = frozenset({"429", "500", "502", "drop"})
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)

_INT_RE = re.compile(r"-?\d+")
_NUM_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_COMMAND_RE = re.compile(r"(?<![A-Za-z0-9_/@])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?(?![\w/])")
_MENTION_RE = re.compile(r"(?<![A-Za-z0-9_@])@[A-Za-z][A-Za-z0-9_]{3,31}(?![\w@])")
_HASHTAG_RE = re.compile(r"(?<![\w#])#[^\W\d_][\w]{0,255}|(?<![\w#])#\d*[^\W\d][\w]*")
_URL_CHARS = r"[^\s<>\"\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]"  # stop at CJK text and punctuation
_URL_RE = re.compile(
    rf"(?<![A-Za-z0-9_@/.])(?:https?://{_URL_CHARS}+|(?:[A-Za-z0-9-]+\.)+(?:com|net|org|io|me|cn|ru|info|"
    rf"xyz|top|app|dev|co|cc|tv|ly|gg|hk|tw|jp|ai)(?:/{_URL_CHARS}*)?)(?![A-Za-z0-9_])"
)
_COMMAND_NAME_RE = re.compile(r"[a-z0-9_]{1,32}")


# --------------------------------------------------------------------------------------------------
# Errors and records
# --------------------------------------------------------------------------------------------------


class EmulatorApiError(Exception):
    """A Bot API call answered with ok=false (raised by :meth:`World.call`)."""

    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(f"{status} {description}")
        self.status = status
        self.description = description
        self.retry_after = retry_after


class ConnectionDropped(EmulatorApiError):
    """A "drop" fault: the transport must close the connection without answering."""

    def __init__(self, method: str) -> None:
        super().__init__(0, f"connection dropped during {method}")
        self.method = method


class WorldError(Exception):
    """A user-side action that Telegram would not allow (a muted member sending, a banned user joining)."""


class _ApiFailure(Exception):
    """Internal: abort a method with a Telegram-shaped error response."""

    def __init__(self, status: int, description: str, parameters: dict[str, Any] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return body


def _resolve_future(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _bad(description: str) -> _ApiFailure:
    return _ApiFailure(400, f"Bad Request: {description}")


def _forbidden(description: str) -> _ApiFailure:
    return _ApiFailure(403, f"Forbidden: {description}")


@dataclass
class ApiCall:
    """One Bot API call as the world saw it."""

    method: str
    params: dict[str, Any]
    status: int
    result: Any  # the result on success, else the error payload
    at: float

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def result_or_error(self) -> Any:
        return self.result

    @property
    def error(self) -> str | None:
        if self.ok or not isinstance(self.result, dict):
            return None
        return str(self.result.get("description"))

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


@dataclass
class UploadedFile:
    """A file part of a multipart request."""

    filename: str
    data: bytes
    content_type: str | None = None

    def __repr__(self) -> str:
        return f"UploadedFile({self.filename!r}, {len(self.data)} bytes)"


@dataclass
class FileRecord:
    file_id: str
    file_unique_id: str
    kind: str
    file_path: str
    file_name: str | None = None
    file_size: int | None = None
    mime_type: str | None = None
    data: bytes | None = None
    width: int | None = None
    height: int | None = None


class ManualClock:
    """A clock for tests: frozen unless advanced. ``World(clock=ManualClock())``."""

    def __init__(self, start: float | None = None) -> None:
        self.value = float(time.time() if start is None else start)

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> float:
        self.value += seconds
        return self.value

    def set(self, value: float) -> None:
        self.value = float(value)


# --------------------------------------------------------------------------------------------------
# Fault injection
# --------------------------------------------------------------------------------------------------


@dataclass
class _PlannedFault:
    kind: str
    remaining: int
    method: str | None


class Faults:
    """Random (``plan``) and deterministic (``next``) faults, applied before a method has any effect."""

    def __init__(self) -> None:
        self.retry_after: int = 1
        self.served: Counter[str] = Counter()
        self.log: list[tuple[str, str]] = []  # (method, kind) of every fault served
        self._queue: list[_PlannedFault] = []
        self._rate = 0.0
        self._kinds: tuple[str, ...] = ()
        self._methods: frozenset[str] | None = None
        self._rng = random.Random(0)

    @staticmethod
    def _check_kind(kind: str) -> str:
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {sorted(FAULT_KINDS)}")
        return kind

    def plan(
        self,
        rate: float,
        kinds: Iterable[str] = ("429", "502", "drop"),
        seed: int = 0,
        methods: set[str] | None = None,
    ) -> None:
        """Fail a fraction ``rate`` of calls with a random kind. getUpdates only if named in ``methods``."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within 0..1")
        self._kinds = tuple(self._check_kind(k) for k in kinds)
        if rate and not self._kinds:
            raise ValueError("kinds must not be empty")
        self._rate = float(rate)
        self._rng = random.Random(seed)
        self._methods = frozenset(methods) if methods is not None else None

    def next(self, kind: str, count: int = 1, method: str | None = None) -> None:
        """Fail the next ``count`` calls (of ``method``, or of any method but getUpdates) with ``kind``."""
        if count < 1:
            raise ValueError("count must be >= 1")
        self._queue.append(_PlannedFault(self._check_kind(kind), count, method))

    def clear(self) -> None:
        self._queue.clear()
        self._rate = 0.0

    @property
    def total(self) -> int:
        return sum(self.served.values())

    @property
    def pending(self) -> int:
        return sum(p.remaining for p in self._queue)

    def pick(self, method: str) -> str | None:
        for planned in self._queue:
            if planned.method is None and method == "getUpdates":
                continue
            if planned.method is not None and planned.method.lower() != method.lower():
                continue
            planned.remaining -= 1
            if planned.remaining <= 0:
                self._queue.remove(planned)
            return self._serve(method, planned.kind)
        if self._rate <= 0:
            return None
        if self._methods is None:
            if method == "getUpdates":
                return None
        elif method not in self._methods:
            return None
        if self._rng.random() < self._rate:
            return self._serve(method, self._rng.choice(self._kinds))
        return None

    def _serve(self, method: str, kind: str) -> str:
        self.served[kind] += 1
        self.log.append((method, kind))
        return kind


# --------------------------------------------------------------------------------------------------
# Parameter decoding
# --------------------------------------------------------------------------------------------------


def _decode_scalar(value: str) -> Any:
    stripped = value.strip()
    if not stripped:
        return value
    if stripped in ("true", "false", "null") or stripped[0] in "[{" or _NUM_RE.fullmatch(stripped):
        try:
            return json.loads(stripped)
        except ValueError:
            return value
    if stripped in ("True", "False"):
        return stripped == "True"
    return value


def normalize_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Decode params sent as aiogram sends them (form strings, JSON strings, attach:// files) or as values."""
    uploads = {key: value for key, value in params.items() if isinstance(value, UploadedFile)}
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, UploadedFile):
            if key in FILE_PARAMS:
                out[key] = value
            continue  # an attachment part referenced by attach://key
        if isinstance(value, bytes | bytearray):
            value = bytes(value).decode("utf-8", "replace")
        if isinstance(value, str):
            if key in FILE_PARAMS:
                if value.startswith("attach://"):
                    name = value[len("attach://") :]
                    if name not in uploads:
                        raise _bad(f"file attachment {name!r} not found in the request")
                    out[key] = uploads[name]
                else:
                    out[key] = value
            elif key in STRING_PARAMS:
                out[key] = value
            elif key in CHAT_ID_PARAMS:
                out[key] = int(value) if _INT_RE.fullmatch(value.strip()) else value
            else:
                out[key] = _decode_scalar(value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------------------------------
# Text formatting (parse_mode) and automatic entities
# --------------------------------------------------------------------------------------------------


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _ParseError(Exception):
    pass


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode("utf-8"))


_HTML_TAGS: Mapping[str, str] = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}


class _HtmlEntityParser(HTMLParser):
    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self.source = source
        self.line_starts = [0]
        for match in re.finditer("\n", source):
            self.line_starts.append(match.end())
        self.parts: list[str] = []
        self.pos16 = 0
        self.stack: list[tuple[str, dict[str, Any], int]] = []
        self.entities: list[dict[str, Any]] = []

    def _offset(self) -> int:
        line, col = self.getpos()
        return _byte_offset(self.source, self.line_starts[line - 1] + col)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        kind = _HTML_TAGS.get(tag)
        attr = {k: v for k, v in attrs}
        if kind is None or (tag == "span" and attr.get("class") != "tg-spoiler"):
            raise _ParseError(f'Unsupported start tag "{tag}" at byte offset {self._offset()}')
        entity: dict[str, Any] = {"type": kind}
        if tag == "a":
            href = attr.get("href")
            if not href:
                entity = {"type": "_none"}
            else:
                entity["url"] = href
        elif tag == "blockquote" and "expandable" in attr:
            entity["type"] = "expandable_blockquote"
        elif tag == "tg-emoji":
            entity["custom_emoji_id"] = attr.get("emoji-id") or ""
        elif tag == "code" and self.stack and self.stack[-1][0] == "pre":
            language = (attr.get("class") or "").removeprefix("language-")
            if language:
                self.stack[-1][1]["language"] = language
            entity = {"type": "_none"}
        self.stack.append((tag, entity, self.pos16))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise _ParseError(f'Unsupported start tag "{tag}" at byte offset {self._offset()}')

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1][0] != tag:
            raise _ParseError(
                f'Unmatched end tag at byte offset {self._offset()}, expected "</'
                f'{self.stack[-1][0] if self.stack else ""}>", found "</{tag}>"'
            )
        _, entity, start = self.stack.pop()
        length = self.pos16 - start
        if entity["type"] != "_none" and length > 0:
            self.entities.append({**entity, "offset": start, "length": length})

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.pos16 += utf16_len(data)

    def handle_comment(self, data: str) -> None:
        raise _ParseError(f"Unexpected comment at byte offset {self._offset()}")

    def handle_decl(self, decl: str) -> None:
        raise _ParseError(f"Unexpected declaration at byte offset {self._offset()}")


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    for match in re.finditer(r"<(?![A-Za-z/])", text):
        raise _ParseError(f"Unexpected end of name token at byte offset {_byte_offset(text, match.start())}")
    parser = _HtmlEntityParser(text)
    parser.feed(text)
    if "<" in parser.rawdata:
        raise _ParseError(
            f"Unclosed start tag at byte offset {_byte_offset(text, len(text) - len(parser.rawdata))}"
        )
    parser.close()
    if parser.stack:
        tag = parser.stack[-1][0]
        raise _ParseError(f'Can\'t find end tag corresponding to start tag "{tag}"')
    return "".join(parser.parts), parser.entities


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")


def parse_markdown_v2(text: str) -> tuple[str, list[dict[str, Any]]]:
    out: list[str] = []
    pos16 = 0
    open_: dict[str, tuple[int, int]] = {}  # marker -> (start pos16, byte offset)
    entities: list[dict[str, Any]] = []
    link_stack: list[tuple[int, int]] = []
    markers = {"*": "bold", "_": "italic", "__": "underline", "~": "strikethrough", "||": "spoiler"}
    i = 0
    n = len(text)

    def emit(chunk: str) -> None:
        nonlocal pos16
        out.append(chunk)
        pos16 += utf16_len(chunk)

    def close(marker: str, kind: str, extra: dict[str, Any] | None = None) -> None:
        start, _ = open_.pop(marker)
        if pos16 > start:
            entities.append({"type": kind, "offset": start, "length": pos16 - start, **(extra or {})})

    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                raise _ParseError(
                    f"Character '\\' is reserved and must be escaped with the preceding '\\' "
                    f"at byte offset {_byte_offset(text, i)}"
                )
            emit(text[i + 1])
            i += 2
            continue
        if text.startswith("```", i):
            end = text.find("```", i + 3)
            if end < 0:
                raise _ParseError(f"Can't find end of Pre entity at byte offset {_byte_offset(text, i)}")
            body = text[i + 3 : end]
            language = ""
            if "\n" in body:
                first, rest = body.split("\n", 1)
                if first and " " not in first:
                    language, body = first, rest
            body = re.sub(r"\\([`\\])", r"\1", body)
            start = pos16
            emit(body)
            entity: dict[str, Any] = {"type": "pre", "offset": start, "length": pos16 - start}
            if language:
                entity["language"] = language
            entities.append(entity)
            i = end + 3
            continue
        if c == "`":
            end = i + 1
            while end < n and text[end] != "`":
                end += 2 if text[end] == "\\" else 1
            if end >= n:
                raise _ParseError(f"Can't find end of Code entity at byte offset {_byte_offset(text, i)}")
            body = re.sub(r"\\([`\\])", r"\1", text[i + 1 : end])
            start = pos16
            emit(body)
            entities.append({"type": "code", "offset": start, "length": pos16 - start})
            i = end + 1
            continue
        marker = "||" if text.startswith("||", i) else "__" if text.startswith("__", i) else c
        if marker in markers:
            if marker in open_:
                close(marker, markers[marker])
            else:
                open_[marker] = (pos16, _byte_offset(text, i))
            i += len(marker)
            continue
        if c == "[":
            link_stack.append((pos16, _byte_offset(text, i)))
            i += 1
            continue
        if c == "]" and link_stack:
            start, _ = link_stack.pop()
            if i + 1 >= n or text[i + 1] != "(":
                raise _ParseError(f"Can't find end of a URL at byte offset {_byte_offset(text, i)}")
            end = i + 2
            url_chars: list[str] = []
            while end < n and text[end] != ")":
                if text[end] == "\\" and end + 1 < n:
                    end += 1
                url_chars.append(text[end])
                end += 1
            if end >= n:
                raise _ParseError(f"Can't find end of a URL at byte offset {_byte_offset(text, i)}")
            if pos16 > start:
                entities.append(
                    {"type": "text_link", "offset": start, "length": pos16 - start, "url": "".join(url_chars)}
                )
            i = end + 1
            continue
        if c == ">" and (i == 0 or text[i - 1] == "\n"):
            i += 1  # blockquote marker: kept simple, no entity
            continue
        if c in _MDV2_RESERVED:
            raise _ParseError(f"Character '{c}' is reserved and must be escaped with the preceding '\\'")
        emit(c)
        i += 1
    if open_ or link_stack:
        names = {"*": "Bold", "_": "Italic", "__": "Underline", "~": "Strikethrough", "||": "Spoiler"}
        if open_:
            marker, (_, byte) = next(iter(open_.items()))
            raise _ParseError(f"Can't find end of {names[marker]} entity at byte offset {byte}")
        raise _ParseError(f"Can't find end of TextUrl entity at byte offset {link_stack[-1][1]}")
    return "".join(out), entities


def parse_markdown(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Legacy Markdown: *bold* _italic_ `code` ```pre``` [text](url); backslash escapes those characters."""
    out: list[str] = []
    pos16 = 0
    entities: list[dict[str, Any]] = []
    i = 0
    n = len(text)

    def emit(chunk: str) -> None:
        nonlocal pos16
        out.append(chunk)
        pos16 += utf16_len(chunk)

    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "*_`[":
            emit(text[i + 1])
            i += 2
            continue
        for opener, closer, kind in (
            ("```", "```", "pre"),
            ("*", "*", "bold"),
            ("_", "_", "italic"),
            ("`", "`", "code"),
        ):
            if text.startswith(opener, i):
                end = text.find(closer, i + len(opener))
                if end < 0:
                    raise _ParseError(
                        f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                    )
                start = pos16
                emit(text[i + len(opener) : end])
                if pos16 > start:
                    entities.append({"type": kind, "offset": start, "length": pos16 - start})
                i = end + len(closer)
                break
        else:
            if c == "[":
                match = re.compile(r"\[([^\]]*)\]\(([^)]*)\)").match(text, i)
                if match is None:
                    raise _ParseError(
                        f"Can't find end of the entity starting at byte offset {_byte_offset(text, i)}"
                    )
                start = pos16
                emit(match.group(1))
                if pos16 > start:
                    entities.append(
                        {"type": "text_link", "offset": start, "length": pos16 - start, "url": match.group(2)}
                    )
                i = match.end()
                continue
            emit(c)
            i += 1
    return "".join(out), entities


def detect_entities(text: str, commands: bool = True) -> list[dict[str, Any]]:
    """The entities Telegram finds by itself: bot_command, mention, hashtag, url (UTF-16 offsets)."""
    found: list[tuple[int, int, str]] = []
    patterns: list[tuple[re.Pattern[str], str]] = [
        (_URL_RE, "url"),
        (_MENTION_RE, "mention"),
        (_HASHTAG_RE, "hashtag"),
    ]
    if commands:
        patterns.insert(0, (_COMMAND_RE, "bot_command"))
    taken: list[tuple[int, int]] = []
    for pattern, kind in patterns:
        for match in pattern.finditer(text):
            start, end = match.span()
            if kind == "url":
                while end > start and text[end - 1] in ".,;:!?)'\"":
                    end -= 1
            if any(start < e and s < end for s, e in taken):
                continue
            taken.append((start, end))
            found.append((start, end, kind))
    found.sort()
    result = []
    for start, end, kind in found:
        offset = utf16_len(text[:start])
        result.append({"type": kind, "offset": offset, "length": utf16_len(text[start:end])})
    return result


def _merge_entities(parsed: list[dict[str, Any]], detected: list[dict[str, Any]]) -> list[dict[str, Any]]:
    merged = list(parsed)
    for entity in detected:
        start, end = entity["offset"], entity["offset"] + entity["length"]
        if any(start < p["offset"] + p["length"] and p["offset"] < end for p in parsed):
            continue
        merged.append(entity)
    merged.sort(key=lambda e: (e["offset"], -e["length"]))
    return merged


def _png_jpeg_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(data):
            if data[i] != 0xFF:
                i += 1
                continue
            marker = data[i + 1]
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            i += 2 + length
    return None


# --------------------------------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------------------------------

API_METHODS: tuple[str, ...] = (
    "getMe",
    "getUpdates",
    "deleteWebhook",
    "setWebhook",
    "getWebhookInfo",
    "logOut",
    "close",
    "sendMessage",
    "editMessageText",
    "editMessageCaption",
    "editMessageReplyMarkup",
    "deleteMessage",
    "deleteMessages",
    "forwardMessage",
    "copyMessage",
    "sendPhoto",
    "sendVideo",
    "sendDocument",
    "sendAnimation",
    "sendSticker",
    "sendPoll",
    "stopPoll",
    "answerCallbackQuery",
    "restrictChatMember",
    "banChatMember",
    "unbanChatMember",
    "banChatSenderChat",
    "unbanChatSenderChat",
    "getChatMember",
    "getChatAdministrators",
    "getChatMemberCount",
    "getChat",
    "setChatPermissions",
    "pinChatMessage",
    "unpinChatMessage",
    "unpinAllChatMessages",
    "createChatInviteLink",
    "editChatInviteLink",
    "revokeChatInviteLink",
    "approveChatJoinRequest",
    "declineChatJoinRequest",
    "setMyCommands",
    "deleteMyCommands",
    "getMyCommands",
    "sendChatAction",
    "leaveChat",
    "setChatTitle",
    "setChatDescription",
    "getFile",
)


class World:
    """A simulated Telegram with the bot-side Bot API method handlers. See the module docstring."""

    def __init__(
        self,
        token: str = "123456:TEST-token",
        clock: Callable[[], float] | None = None,
        bot_username: str = "qunbot_bot",
        *,
        bot_first_name: str = "QunBot",
    ) -> None:
        prefix = token.split(":", 1)[0]
        if not prefix.isdigit() or ":" not in token:
            raise ValueError("token must look like '<bot id>:<secret>'")
        self.token = token
        self.bot_id = int(prefix)
        self.bot_username = bot_username
        self.clock: Callable[[], float] = clock or time.time
        self.users: dict[int, dict[str, Any]] = {}
        self.chats: dict[int, dict[str, Any]] = {}
        self.started_users: set[int] = set()
        self.blocked_users: set[int] = set()
        self.polls: dict[str, dict[str, Any]] = {}
        self.callbacks: dict[str, dict[str, Any]] = {}
        self.files: dict[str, FileRecord] = {}
        self.commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.webhook: dict[str, Any] = {"url": ""}
        # Webhook push mode (setWebhook): "loopback" pushes to 127.0.0.1/localhost URLs only (tests, the
        # sandbox; plain http allowed there), "any" to every URL, "off" never (getUpdates stays blocked).
        self.webhook_push = "loopback"
        self.webhook_timeout = 10.0  # seconds before an unanswered POST counts as failed
        self.webhook_retry_base = 0.05  # backoff after a failed POST: base * 2**attempt, capped
        self.webhook_retry_max = 2.0
        self.webhook_keepalive = True  # False: a new connection per POST (spreads over SO_REUSEPORT workers)
        self.webhook_deliveries: list[dict[str, Any]] = []
        self._pusher: Any = None
        self.calls: list[ApiCall] = []
        self.internal_errors: list[str] = []
        self.faults = Faults()
        self.enforce_rate_limits = False
        self.privacy_mode = True
        self.emit_member_updates_for_bot_actions = True
        self.confirmed_update_ids: list[int] = []
        self.dropped_updates: list[dict[str, Any]] = []  # filtered out by allowed_updates
        self.all_updates: list[dict[str, Any]] = []
        self.allowed_updates: list[str] | None = None
        self._updates: deque[dict[str, Any]] = deque()
        self._forced: set[int] = set()  # id() of pushed updates delivered once whatever the offset
        self._next_update_id = 1
        self._update_waiters: set[asyncio.Future[None]] = set()
        self._call_waiters: set[asyncio.Future[None]] = set()
        self._call_listeners: list[Callable[[ApiCall], None]] = []
        self._poll_generation = 0
        self._counter = 0
        self._rng = random.Random(token)
        self._rate_global: deque[float] = deque()
        self._rate_chat: dict[int, deque[float]] = {}
        self._methods: dict[str, tuple[str, Callable[[dict[str, Any]], Any]]] = {
            name.lower(): (name, getattr(self, f"m_{name}")) for name in API_METHODS
        }
        self.add_user(self.bot_id, bot_first_name, bot_username, is_bot=True, language_code=None)

    # ------------------------------------------------------------------ basics

    def now(self) -> float:
        return float(self.clock())

    def _next(self) -> int:
        self._counter += 1
        return self._counter

    @property
    def bot_user(self) -> dict[str, Any]:
        return dict(self.users[self.bot_id])

    # ------------------------------------------------------------------ setup helpers

    def add_user(
        self,
        id: int,
        first_name: str,
        username: str | None = None,
        is_bot: bool = False,
        language_code: str | None = "zh-hans",
        last_name: str | None = None,
    ) -> dict[str, Any]:
        user: dict[str, Any] = {"id": int(id), "is_bot": bool(is_bot), "first_name": first_name}
        if last_name:
            user["last_name"] = last_name
        if username:
            user["username"] = username.lstrip("@")
        if language_code:
            user["language_code"] = language_code
        self.users[int(id)] = user
        return user

    def add_chat(
        self,
        id: int,
        title: str,
        type: str = "supergroup",
        bot_status: str = "administrator",
        bot_rights: dict[str, bool] | None = None,
        *,
        username: str | None = None,
        permissions: dict[str, bool] | None = None,
        description: str | None = None,
    ) -> dict[str, Any]:
        if type not in CHAT_TYPES - {"private"}:
            raise ValueError(f"add_chat type must be group, supergroup or channel, not {type!r}")
        chat = self._new_chat_state(int(id), type)
        chat["title"] = title
        chat["username"] = username.lstrip("@") if username else None
        chat["description"] = description
        if permissions is not None:
            chat["permissions"].update({k: bool(v) for k, v in permissions.items() if k in PERMISSION_FIELDS})
        self.chats[int(id)] = chat
        rights = {name: True for name in ADMIN_RIGHTS}
        if type == "channel":
            rights.update({name: True for name in CHANNEL_ADMIN_RIGHTS})
        if bot_rights:
            rights.update(bot_rights)
        if bot_status == "administrator":
            self.set_member(int(id), self.bot_id, "administrator", **rights)
        else:
            self.set_member(int(id), self.bot_id, bot_status)
        return chat

    def _new_chat_state(self, chat_id: int, type_: str) -> dict[str, Any]:
        return {
            "id": chat_id,
            "type": type_,
            "title": None,
            "username": None,
            "description": None,
            "permissions": dict(DEFAULT_CHAT_PERMISSIONS),
            "members": {},
            "messages": {},
            "deleted": set(),
            "meta": {},
            "next_message_id": 1,
            "pinned": [],
            "invite_links": {},
            "join_requests": {},
            "banned_sender_chats": set(),
        }

    def set_member(self, chat_id: int, user_id: int, status: str, **rights: Any) -> dict[str, Any]:
        """Set a member's state directly (no update). Rights/permissions as keyword flags."""
        chat = self._chat(chat_id)
        if status not in MEMBER_STATUSES:
            raise ValueError(f"unknown status {status!r}")
        if user_id not in self.users:
            raise WorldError(f"unknown user {user_id}; add_user() first")
        state: dict[str, Any] = {
            "status": status,
            "until_date": int(rights.pop("until_date", 0) or 0),
            "is_anonymous": bool(rights.pop("is_anonymous", False)),
        }
        if "custom_title" in rights:
            state["custom_title"] = rights.pop("custom_title")
        if status == "administrator":
            defaults = {name: True for name in ADMIN_RIGHTS}
            defaults["can_promote_members"] = False
            if chat["type"] == "channel":
                defaults.update({name: True for name in CHANNEL_ADMIN_RIGHTS})
            unknown = set(rights) - set(ADMIN_RIGHTS) - set(CHANNEL_ADMIN_RIGHTS)
            if unknown:
                raise TypeError(f"unknown admin rights: {sorted(unknown)}")
            defaults.update({k: bool(v) for k, v in rights.items()})
            state["rights"] = defaults
        elif status == "restricted":
            state["is_member"] = bool(rights.pop("is_member", True))
            unknown = set(rights) - set(PERMISSION_FIELDS)
            if unknown:
                raise TypeError(f"unknown permissions: {sorted(unknown)}")
            perms = {name: False for name in PERMISSION_FIELDS}
            perms.update({k: bool(v) for k, v in rights.items()})
            state["permissions"] = perms
        elif rights:
            raise TypeError(f"status {status!r} takes no rights, got {sorted(rights)}")
        chat["members"][int(user_id)] = state
        return state

    def user_starts_bot(self, user_id: int) -> dict[str, Any]:
        """The user opened a private chat with the bot (DMs to them work from now on)."""
        self._user(user_id)
        self.started_users.add(int(user_id))
        self.blocked_users.discard(int(user_id))
        return self._private_chat(int(user_id))

    def user_blocks_bot(self, user_id: int) -> None:
        """The user blocked the bot: DMs fail with 403 and a my_chat_member update is sent."""
        chat = self._private_chat(int(user_id))
        self.blocked_users.add(int(user_id))
        bot = self.bot_user
        self._enqueue(
            "my_chat_member",
            {
                "chat": self._chat_public(chat),
                "from": self._user_public(user_id),
                "date": int(self.now()),
                "old_chat_member": {"status": "member", "user": bot},
                "new_chat_member": {"status": "kicked", "user": bot, "until_date": 0},
            },
        )

    def _private_chat(self, user_id: int) -> dict[str, Any]:
        chat = self.chats.get(user_id)
        if chat is None:
            self._user(user_id)
            chat = self._new_chat_state(user_id, "private")
            chat["members"][user_id] = {"status": "member", "until_date": 0}
            chat["members"][self.bot_id] = {"status": "member", "until_date": 0}
            self.chats[user_id] = chat
        return chat

    def find_user(self, name: str | int) -> dict[str, Any]:
        """A user by id, @username, username or first name (case-insensitive)."""
        text = str(name).strip()
        if _INT_RE.fullmatch(text) and int(text) in self.users:
            return self.users[int(text)]
        key = text.lstrip("@").lower()
        for user in self.users.values():
            if str(user.get("username", "")).lower() == key:
                return user
        for user in self.users.values():
            if user["first_name"].lower() == key:
                return user
        raise WorldError(f"no user named {name!r}")

    # ------------------------------------------------------------------ lookups

    def _user(self, user_id: int) -> dict[str, Any]:
        user = self.users.get(int(user_id))
        if user is None:
            raise WorldError(f"unknown user {user_id}; add_user() first")
        return user

    def _chat(self, chat_id: int) -> dict[str, Any]:
        chat = self.chats.get(int(chat_id))
        if chat is None:
            raise WorldError(f"unknown chat {chat_id}; add_chat() first")
        return chat

    def _user_public(self, user_id: int) -> dict[str, Any]:
        user = self.users.get(int(user_id))
        if user is None:
            return {"id": int(user_id), "is_bot": False, "first_name": str(user_id)}
        return dict(user)

    def _chat_public(self, chat: Mapping[str, Any]) -> dict[str, Any]:
        if chat["type"] == "private":
            user = self._user_public(chat["id"])
            public = {"id": chat["id"], "type": "private", "first_name": user["first_name"]}
            for key in ("last_name", "username"):
                if key in user:
                    public[key] = user[key]
            return public
        public = {"id": chat["id"], "type": chat["type"], "title": chat["title"]}
        if chat.get("username"):
            public["username"] = chat["username"]
        return public

    def display_name(self, user_id: int) -> str:
        user = self.users.get(int(user_id))
        if user is None:
            return str(user_id)
        return f"@{user['username']}" if user.get("username") else user["first_name"]

    def chat_title(self, chat_id: int) -> str:
        chat = self.chats.get(int(chat_id))
        if chat is None:
            return str(chat_id)
        if chat["type"] == "private":
            return f"DM {self.display_name(chat['id'])}"
        return str(chat["title"])

    # ------------------------------------------------------------------ member state

    def _state(self, chat: dict[str, Any], user_id: int) -> dict[str, Any]:
        """The member state, with a lapsed restriction or ban applied (by world.now())."""
        state = chat["members"].get(int(user_id))
        if state is None:
            return {"status": "left", "until_date": 0}
        until = state.get("until_date") or 0
        if until and until <= self.now():
            if state["status"] == "restricted":
                state["status"] = "member" if state.get("is_member", True) else "left"
                state.pop("permissions", None)
                state.pop("is_member", None)
            elif state["status"] == "kicked":
                state["status"] = "left"
            state["until_date"] = 0
        return state

    def _is_present(self, state: Mapping[str, Any]) -> bool:
        status = state["status"]
        return status in ("creator", "administrator", "member") or (
            status == "restricted" and bool(state.get("is_member", True))
        )

    def _member_obj(self, chat: dict[str, Any], user_id: int) -> dict[str, Any]:
        state = self._state(chat, user_id)
        user = self._user_public(user_id)
        status = state["status"]
        obj: dict[str, Any] = {"status": status, "user": user}
        if status == "creator":
            obj["is_anonymous"] = bool(state.get("is_anonymous"))
            if state.get("custom_title"):
                obj["custom_title"] = state["custom_title"]
        elif status == "administrator":
            obj["can_be_edited"] = False
            obj["is_anonymous"] = bool(state.get("is_anonymous"))
            rights = state.get("rights", {})
            for name in ADMIN_RIGHTS:
                obj[name] = bool(rights.get(name, False))
            if chat["type"] == "channel":
                for name in CHANNEL_ADMIN_RIGHTS:
                    obj[name] = bool(rights.get(name, False))
            if state.get("custom_title"):
                obj["custom_title"] = state["custom_title"]
        elif status == "restricted":
            obj["is_member"] = bool(state.get("is_member", True))
            perms = state.get("permissions", {})
            for name in PERMISSION_FIELDS:
                obj[name] = bool(perms.get(name, False))
            obj["until_date"] = int(state.get("until_date") or 0)
        elif status == "kicked":
            obj["until_date"] = int(state.get("until_date") or 0)
        return obj

    def member(self, chat_id: int, user_id: int) -> dict[str, Any]:
        """The Telegram ChatMember dict with the effective status (lapsed restrictions/bans applied)."""
        return self._member_obj(self._chat(chat_id), user_id)

    def _has_right(self, chat: dict[str, Any], user_id: int, right: str) -> bool:
        state = self._state(chat, user_id)
        if state["status"] == "creator":
            return True
        return state["status"] == "administrator" and bool(state.get("rights", {}).get(right))

    def _is_admin(self, chat: dict[str, Any], user_id: int) -> bool:
        return self._state(chat, user_id)["status"] in ("creator", "administrator")

    def _may(self, chat: dict[str, Any], user_id: int, permission: str) -> bool:
        """Can this member do ``permission`` (a ChatPermissions field) right now?"""
        if chat["type"] == "private":
            return True
        state = self._state(chat, user_id)
        status = state["status"]
        if status in ("creator", "administrator"):
            return True
        if not self._is_present(state):
            return False
        if not chat["permissions"].get(permission, False):
            return False
        if status == "restricted":
            return bool(state.get("permissions", {}).get(permission, False))
        return True

    def can_send(self, chat_id: int, user_id: int) -> bool:
        return self._may(self._chat(chat_id), user_id, "can_send_messages")

    # ------------------------------------------------------------------ the update queue

    def _enqueue(self, kind: str, payload: dict[str, Any]) -> int:
        """The one place every update flows through (a future webhook push mode hooks in here)."""
        update = {"update_id": self._next_update_id, kind: copy.deepcopy(payload)}
        self._next_update_id += 1
        self._append_update(update)
        return int(update["update_id"])

    def _append_update(self, update: dict[str, Any]) -> None:
        self._updates.append(update)
        self.all_updates.append(update)
        self._wake(self._update_waiters)
        if self._pusher is not None:
            self._push(update)

    # ------------------------------------------------------------------ webhook push mode

    def _push(self, update: dict[str, Any]) -> None:
        kind = self.update_type(update)
        if kind in ALL_UPDATE_TYPES and kind not in self._allowed():
            self._remove_pending(update)
            self.dropped_updates.append(update)
            return
        self._pusher.enqueue(update)

    def _remove_pending(self, update: dict[str, Any]) -> None:
        for index, pending in enumerate(self._updates):  # acknowledged updates are near the head
            if pending is update:
                del self._updates[index]
                return

    @staticmethod
    def _loopback(url: str) -> bool:
        from urllib.parse import urlsplit

        return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")

    def _pushes_to(self, url: str) -> bool:
        return bool(url) and (self.webhook_push == "any" or (self.webhook_push == "loopback" and self._loopback(url)))

    def _restart_pusher(self) -> None:
        self._stop_pusher()
        url = self.webhook.get("url") or ""
        if not self._pushes_to(url):
            return
        from .http import WebhookPusher

        self._pusher = WebhookPusher(self, url, self.webhook.get("secret_token"),
                                     int(self.webhook.get("max_connections") or 40))
        self._forced.clear()
        for update in list(self._updates):
            self._push(update)

    def _stop_pusher(self) -> None:
        if self._pusher is not None:
            self._pusher.stop()
            self._pusher = None

    async def stop_webhook_push(self) -> None:
        """Stop pushing (the emulator is shutting down); unacknowledged updates stay pending."""
        pusher, self._pusher = self._pusher, None
        if pusher is not None:
            await pusher.close()

    def _webhook_attempt(
        self, update: dict[str, Any], status: int | None, error: str | None, attempt: int, seconds: float
    ) -> None:
        ok = status is not None and 200 <= status < 300
        self.webhook_deliveries.append({
            "update_id": update.get("update_id"), "status": status, "error": error, "attempt": attempt,
            "seconds": round(seconds, 4), "at": self.now(),
        })
        if ok:
            self._remove_pending(update)
            update_id = update.get("update_id")
            self.confirmed_update_ids.append(update_id if isinstance(update_id, int) else -1)
            self._wake(self._update_waiters)
        else:
            self.webhook["last_error_date"] = int(self.now())
            self.webhook["last_error_message"] = (
                f"Wrong response from the webhook: {status}" if status is not None else f"Connection failed: {error}"
            )

    def push_update(self, raw: dict[str, Any]) -> int:
        """Enqueue an arbitrary (even malformed) update; an update_id is assigned if missing.

        An update whose explicit update_id is already used (a redelivery) or not an int is delivered once
        by the next getUpdates even if the bot's offset has passed it.
        """
        update = copy.deepcopy(dict(raw))
        if "update_id" not in update:
            update = {"update_id": self._next_update_id, **update}
        update_id = update["update_id"]
        if (
            isinstance(update_id, int)
            and not isinstance(update_id, bool)
            and update_id >= self._next_update_id
        ):
            self._next_update_id = update_id + 1
        else:
            self._forced.add(id(update))
        self._append_update(update)
        return int(update["update_id"]) if isinstance(update["update_id"], int) else -1

    @staticmethod
    def _wake(waiters: set[asyncio.Future[None]]) -> None:
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for future in waiters:
            loop = future.get_loop()
            if future.done() or loop.is_closed():
                continue
            if loop is running:
                future.set_result(None)
            else:  # woken from another thread (or outside any loop)
                loop.call_soon_threadsafe(_resolve_future, future)
        waiters.clear()

    @staticmethod
    async def _wait(waiters: set[asyncio.Future[None]], timeout: float) -> None:
        """Wait for the next wake-up (futures, not a shared Event: a world may outlive an event loop)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.add(future)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(future, timeout)
        finally:
            waiters.discard(future)

    def pending_updates(self) -> list[dict[str, Any]]:
        return list(self._updates)

    @staticmethod
    def update_type(update: Mapping[str, Any]) -> str:
        for key in update:
            if key != "update_id":
                return str(key)
        return ""

    def _allowed(self) -> set[str]:
        if self.allowed_updates:
            return set(self.allowed_updates)
        return set(ALL_UPDATE_TYPES) - DEFAULT_EXCLUDED_UPDATES

    def _confirm(self, offset: int | None) -> None:
        """getUpdates with an offset forgets every update with a lower id."""
        if offset is None:
            return
        if offset < 0:
            ids = [u["update_id"] for u in self._updates if isinstance(u.get("update_id"), int)]
            if len(ids) <= -offset:
                return
            offset = sorted(ids)[len(ids) + offset]
        # Updates that are not forced have valid, strictly increasing ids (push_update forces the rest),
        # so the scan stops at the first of them at or past the offset: a getUpdates costs the updates it
        # confirms, not the whole queue.
        keep: deque[dict[str, Any]] = deque()
        pending = self._updates
        while pending:
            update = pending[0]
            update_id = update.get("update_id")
            valid = isinstance(update_id, int) and not isinstance(update_id, bool)
            if id(update) in self._forced:
                keep.append(pending.popleft())
            elif valid and update_id >= offset:
                break
            else:
                pending.popleft()
                self.confirmed_update_ids.append(update_id if valid else -1)
        keep.extend(pending)
        self._updates = keep

    def _collect(self, limit: int) -> list[dict[str, Any]]:
        allowed = self._allowed()
        batch: list[dict[str, Any]] = []
        keep: deque[dict[str, Any]] = deque()
        pending = iter(self._updates)
        for update in pending:
            kind = self.update_type(update)
            if kind in ALL_UPDATE_TYPES and kind not in allowed:
                self.dropped_updates.append(update)
                self._forced.discard(id(update))
                continue
            keep.append(update)
            batch.append(update)
            self._forced.discard(id(update))
            if len(batch) >= limit:
                break  # the rest is looked at by the getUpdates that reaches it
        keep.extend(pending)
        self._updates = keep
        return batch

    async def wait_for_call(
        self,
        *methods: str,
        where: Callable[[ApiCall], bool] | None = None,
        timeout: float = 5.0,
        since: int = 0,
    ) -> ApiCall:
        """Wait (wall time) for a recorded call of one of ``methods`` (index >= since) matching ``where``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        index = since
        while True:
            while index < len(self.calls):
                call = self.calls[index]
                index += 1
                if methods and call.method not in methods:
                    continue
                if where is None or where(call):
                    return call
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"no {'/'.join(methods) or 'call'} within {timeout} s")
            await self._wait(self._call_waiters, remaining)

    async def wait_until_consumed(self, timeout: float = 5.0) -> None:
        """Wait until the bot has fetched and confirmed every pending update."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._updates:
            if loop.time() >= deadline:
                raise TimeoutError(f"{len(self._updates)} update(s) still pending after {timeout} s")
            await asyncio.sleep(0.005)

    # ------------------------------------------------------------------ calls: entry point & recording

    def add_call_listener(self, listener: Callable[[ApiCall], None]) -> Callable[[], None]:
        self._call_listeners.append(listener)

        def remove() -> None:
            if listener in self._call_listeners:
                self._call_listeners.remove(listener)

        return remove

    def _record(self, call: ApiCall) -> None:
        self.calls.append(call)
        self._wake(self._call_waiters)
        for listener in list(self._call_listeners):
            try:
                listener(call)
            except Exception:  # a broken listener must not break the API
                self.internal_errors.append(traceback.format_exc())

    async def handle_request(
        self, method: str, params: Mapping[str, Any], *, token: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Run one Bot API call; returns (HTTP status, response JSON). Raises ConnectionDropped on "drop"."""
        at = self.now()
        name = method
        decoded: dict[str, Any] = {}
        try:
            if token is not None and token != self.token:
                raise _ApiFailure(401, "Unauthorized")
            entry = self._methods.get(method.lower())
            if entry is None:
                raise _ApiFailure(404, "Not Found")
            name, handler = entry
            decoded = normalize_params(params)
            fault = self.faults.pick(name)
            if fault == "drop":
                self._record(ApiCall(name, decoded, 0, {"dropped": True}, at))
                raise ConnectionDropped(name)
            if fault == "429":
                retry = int(self.faults.retry_after)
                raise _ApiFailure(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})
            if fault == "500":
                raise _ApiFailure(500, "Internal Server Error")
            if fault == "502":
                raise _ApiFailure(502, "Bad Gateway")
            if self.enforce_rate_limits and name in SEND_METHODS:
                self._rate_check(decoded)
            result = handler(decoded)
            if inspect.isawaitable(result):
                result = await result
            if self.enforce_rate_limits and name in SEND_METHODS:
                self._rate_note(decoded)
            status, payload = 200, {"ok": True, "result": result}
        except _ApiFailure as failure:
            status, payload = failure.status, failure.payload()
        except (
            TypeError,
            ValueError,
            KeyError,
            AttributeError,
            IndexError,
            OverflowError,
            WorldError,
        ) as exc:
            self.internal_errors.append(traceback.format_exc())
            status, payload = (
                400,
                {
                    "ok": False,
                    "error_code": 400,
                    "description": f"Bad Request: invalid parameters ({type(exc).__name__}: {exc})",
                },
            )
        self._record(ApiCall(name, decoded, status, payload.get("result") if status == 200 else payload, at))
        return status, payload

    async def call(self, method: str, **params: Any) -> Any:
        """Call a Bot API method as the bot would; raises EmulatorApiError where Telegram says ok=false."""
        status, payload = await self.handle_request(method, params)
        if status != 200 or not payload.get("ok"):
            retry = (payload.get("parameters") or {}).get("retry_after")
            raise EmulatorApiError(status, str(payload.get("description")), retry)
        return copy.deepcopy(payload.get("result"))

    def calls_of(self, *methods: str) -> list[ApiCall]:
        wanted = {m.lower() for m in methods}
        return [c for c in self.calls if not wanted or c.method.lower() in wanted]

    def clear_calls(self) -> None:
        self.calls.clear()

    def messages_in(self, chat_id: int, include_deleted: bool = False) -> list[dict[str, Any]]:
        """The chat history (copies), oldest first; with include_deleted each carries a 'deleted' flag."""
        chat = self._chat(chat_id)
        out = []
        for message_id in sorted(chat["messages"]):
            deleted = message_id in chat["deleted"]
            if deleted and not include_deleted:
                continue
            message = copy.deepcopy(chat["messages"][message_id])
            if include_deleted:
                message["deleted"] = deleted
            out.append(message)
        return out

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        chat = self.chats.get(int(chat_id))
        if chat is None:
            return None
        message = chat["messages"].get(int(message_id))
        return copy.deepcopy(message) if message is not None else None

    def is_deleted(self, chat_id: int, message_id: int) -> bool:
        chat = self._chat(chat_id)
        return int(message_id) in chat["deleted"]

    def bot_messages(self, chat_id: int, include_deleted: bool = True) -> list[dict[str, Any]]:
        return [
            m
            for m in self.messages_in(chat_id, include_deleted)
            if m.get("from", {}).get("id") == self.bot_id
        ]

    def sent_texts(self, chat_id: int, include_deleted: bool = True) -> list[str]:
        """Texts (or captions) of the bot's messages in a chat, as Telegram shows them (markup parsed)."""
        return [
            str(m.get("text", m.get("caption", "")))
            for m in self.bot_messages(chat_id, include_deleted)
            if "text" in m or "caption" in m
        ]

    def last_message(self, chat_id: int) -> dict[str, Any] | None:
        messages = self.messages_in(chat_id)
        return messages[-1] if messages else None

    # ------------------------------------------------------------------ rate limits

    def _rate_chat_id(self, params: Mapping[str, Any]) -> int | None:
        ref = params.get("chat_id")
        try:
            return int(self._resolve_chat(ref)["id"])
        except (_ApiFailure, TypeError, ValueError):
            return None

    def _rate_check(self, params: Mapping[str, Any]) -> None:
        now = self.now()
        window = self._rate_global
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= RATE_PER_SECOND:
            self._too_many(window[0] + 1.0 - now)
        chat_id = self._rate_chat_id(params)
        if chat_id is not None and self.chats[chat_id]["type"] in ("group", "supergroup"):
            per_chat = self._rate_chat.setdefault(chat_id, deque())
            while per_chat and per_chat[0] <= now - 60.0:
                per_chat.popleft()
            if len(per_chat) >= RATE_PER_GROUP_MINUTE:
                self._too_many(per_chat[0] + 60.0 - now)

    @staticmethod
    def _too_many(wait: float) -> None:
        retry = max(1, math.ceil(wait))
        raise _ApiFailure(429, f"Too Many Requests: retry after {retry}", {"retry_after": retry})

    def _rate_note(self, params: Mapping[str, Any]) -> None:
        now = self.now()
        self._rate_global.append(now)
        chat_id = self._rate_chat_id(params)
        if chat_id is not None:
            self._rate_chat.setdefault(chat_id, deque()).append(now)

    # ------------------------------------------------------------------ parameter helpers

    @staticmethod
    def _has(p: Mapping[str, Any], key: str) -> bool:
        return p.get(key) is not None

    @staticmethod
    def _int(
        p: Mapping[str, Any], key: str, default: int | None = None, required: bool = False
    ) -> int | None:
        value = p.get(key)
        if value is None or value == "":
            if required:
                raise _bad(f"{key} is empty")
            return default
        if isinstance(value, bool):
            raise _bad(f"invalid {key} specified")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
            return int(value)
        if not isinstance(value, int):
            raise _bad(f"invalid {key} specified")
        return value

    def _req_int(self, p: Mapping[str, Any], key: str) -> int:
        value = self._int(p, key, required=True)
        assert value is not None
        return value

    @staticmethod
    def _bool(p: Mapping[str, Any], key: str, default: bool = False) -> bool:
        value = p.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value != 0
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        raise _bad(f"invalid {key} specified")

    @staticmethod
    def _str(p: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
        value = p.get(key)
        if value is None:
            return default
        if isinstance(value, dict | list):
            raise _bad(f"invalid {key} specified")
        return str(value)

    @staticmethod
    def _json(p: Mapping[str, Any], key: str, kind: type) -> Any:
        value = p.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                raise _bad(f"can't parse {key} JSON object") from None
        if not isinstance(value, kind):
            raise _bad(f'field "{key}" must be of type {"Array" if kind is list else "Object"}')
        return value

    def _until(self, p: Mapping[str, Any]) -> int:
        """until_date with Telegram's rule: < 30 s or > 366 days from now means forever (0)."""
        until = self._int(p, "until_date", 0) or 0
        now = self.now()
        if until and (until - now < 30 or until - now > 366 * 86400):
            return 0
        return until

    # ------------------------------------------------------------------ chat access for the bot

    def _resolve_chat(self, ref: Any) -> dict[str, Any]:
        if ref is None or ref == "":
            raise _bad("chat_id is empty")
        if isinstance(ref, str) and not _INT_RE.fullmatch(ref.strip()):
            name = ref.strip().lstrip("@").lower()
            for chat in self.chats.values():
                if chat["type"] != "private" and str(chat.get("username") or "").lower() == name:
                    return chat
            raise _bad("chat not found")
        if isinstance(ref, bool):
            raise _bad("chat not found")
        try:
            chat_id = int(ref)
        except (TypeError, ValueError):
            raise _bad("chat not found") from None
        chat = self.chats.get(chat_id)
        if chat is None:
            if chat_id > 0 and chat_id in self.users and chat_id != self.bot_id:
                return self._private_chat(chat_id)
            raise _bad("chat not found")
        return chat

    def _bot_chat(self, p: Mapping[str, Any], key: str = "chat_id", send: bool = False) -> dict[str, Any]:
        """The chat named by ``key`` after checking the bot can act there (403s like Telegram)."""
        chat = self._resolve_chat(p.get(key))
        if chat["type"] == "private":
            user_id = chat["id"]
            if send:
                if user_id in self.blocked_users:
                    raise _forbidden("bot was blocked by the user")
                if user_id not in self.started_users:
                    raise _forbidden("bot can't initiate conversation with a user")
                if self.users.get(user_id, {}).get("is_bot"):
                    raise _forbidden("bot can't send messages to bots")
            return chat
        state = self._state(chat, self.bot_id)
        kind = {"group": "group", "supergroup": "supergroup", "channel": "channel"}[chat["type"]]
        if state["status"] == "kicked":
            raise _forbidden(f"bot was kicked from the {kind} chat")
        if not self._is_present(state):
            raise _forbidden(f"bot is not a member of the {kind} chat")
        return chat

    def _bot_send_check(self, chat: dict[str, Any], permission: str, what: str) -> None:
        if chat["type"] == "private":
            return
        if chat["type"] == "channel":
            if not self._has_right(chat, self.bot_id, "can_post_messages"):
                raise _bad("need administrator rights in the channel chat")
            return
        if not self._may(chat, self.bot_id, permission):
            raise _bad(f"not enough rights to send {what} to the chat")

    def _need_right(self, chat: dict[str, Any], right: str, description: str) -> None:
        if not self._has_right(chat, self.bot_id, right):
            raise _bad(description)

    def _message_of(self, chat: dict[str, Any], message_id: int | None, missing: str) -> dict[str, Any]:
        if message_id is None:
            raise _bad("message identifier is not specified")
        message = chat["messages"].get(message_id)
        if message is None or message_id in chat["deleted"]:
            raise _bad(missing)
        return message

    def _target_user(self, p: Mapping[str, Any]) -> int:
        user_id = self._req_int(p, "user_id")
        if user_id not in self.users:
            raise _bad("user not found")
        return user_id

    # ------------------------------------------------------------------ formatting, markup, files

    def _format(
        self, text: str, parse_mode: Any, entities: Any, auto_commands: bool = True
    ) -> tuple[str, list[dict[str, Any]]]:
        if entities is not None:
            if isinstance(entities, str):
                try:
                    entities = json.loads(entities)
                except ValueError:
                    raise _bad("can't parse entities JSON object") from None
            if not isinstance(entities, list):
                raise _bad("can't parse entities: entities must be an Array")
            plain, parsed = text, [dict(e) for e in entities]
        elif parse_mode:
            mode = str(parse_mode).lower()
            parser = {"html": parse_html, "markdownv2": parse_markdown_v2, "markdown": parse_markdown}.get(
                mode
            )
            if parser is None:
                raise _bad(f"unsupported parse_mode {parse_mode}")
            try:
                plain, parsed = parser(text)
            except _ParseError as exc:
                raise _bad(f"can't parse entities: {exc}") from None
        else:
            plain, parsed = text, []
        for entity in parsed:
            if entity.get("type") == "text_link" and str(entity.get("url", "")).startswith("tg://user?id="):
                user_id_text = str(entity["url"]).split("=", 1)[1]
                if user_id_text.isdigit():
                    entity["type"] = "text_mention"
                    entity["user"] = self._user_public(int(user_id_text))
                    del entity["url"]
        return plain, _merge_entities(parsed, detect_entities(plain, commands=auto_commands))

    def _markup(self, p: Mapping[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(inline keyboard to store on the message, any markup as sent)."""
        markup = self._json(p, "reply_markup", dict)
        if markup is None:
            return None, None
        if "inline_keyboard" not in markup:
            if not any(k in markup for k in ("keyboard", "remove_keyboard", "force_reply")):
                raise _bad("can't parse reply keyboard markup JSON object")
            return None, markup
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
        actions = (
            "url",
            "callback_data",
            "web_app",
            "login_url",
            "switch_inline_query",
            "switch_inline_query_current_chat",
            "switch_inline_query_chosen_chat",
            "copy_text",
            "callback_game",
            "pay",
        )
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not str(button.get("text", "")).strip():
                    raise _bad("text buttons are unallowed in the inline keyboard")
                present = [a for a in actions if a in button]
                if len(present) != 1:
                    raise _bad(
                        "can't parse inline keyboard button: Text buttons are unallowed in the "
                        "inline keyboard"
                    )
                if "callback_data" in button:
                    data = str(button["callback_data"])
                    if not 1 <= len(data.encode("utf-8")) <= 64:
                        raise _bad("BUTTON_DATA_INVALID")
                if "url" in button and not re.match(r"^(https?|tg)://\S+$", str(button["url"])):
                    raise _bad(f"inline keyboard button URL '{button['url']}' is invalid: Wrong HTTP URL")
        return {"inline_keyboard": rows}, markup

    def _reply_to(self, chat: dict[str, Any], p: Mapping[str, Any]) -> dict[str, Any] | None:
        params = self._json(p, "reply_parameters", dict) or {}
        message_id = params.get("message_id", p.get("reply_to_message_id"))
        if message_id is None:
            return None
        allow = bool(params.get("allow_sending_without_reply", p.get("allow_sending_without_reply", False)))
        if isinstance(allow, str):
            allow = allow.lower() == "true"
        source = chat
        if params.get("chat_id") is not None:
            source = self._resolve_chat(params["chat_id"])
        try:
            target = int(message_id)
        except (TypeError, ValueError):
            raise _bad("invalid reply_to_message_id specified") from None
        message = source["messages"].get(target)
        if message is None or target in source["deleted"]:
            if allow:
                return None
            raise _bad("message to be replied not found")
        reply = copy.deepcopy(message)
        reply.pop("reply_to_message", None)
        return reply

    def _register_file(self, kind: str, value: Any, default_name: str | None = None) -> FileRecord:
        if isinstance(value, UploadedFile):
            n = self._next()
            size = _png_jpeg_size(value.data) if kind == "photo" else None
            record = FileRecord(
                file_id=f"EMU{kind.upper()}{n:08d}",
                file_unique_id=f"U{n:08d}",
                kind=kind,
                file_path=f"{kind}s/file_{n}{self._ext(value.filename)}",
                file_name=value.filename,
                file_size=len(value.data),
                mime_type=value.content_type,
                data=value.data,
                width=size[0] if size else None,
                height=size[1] if size else None,
            )
            self.files[record.file_id] = record
            return record
        if not isinstance(value, str) or not value.strip():
            raise _bad(f"there is no {kind} in the request")
        if value in self.files:
            return self.files[value]
        n = self._next()
        if re.match(r"^https?://", value):
            name = value.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0] or default_name
            record = FileRecord(
                f"EMU{kind.upper()}{n:08d}",
                f"U{n:08d}",
                kind,
                f"{kind}s/file_{n}{self._ext(name or '')}",
                file_name=name,
                file_size=0,
            )
        else:
            if re.search(r"\s", value):
                raise _bad("wrong remote file identifier specified: Wrong character in the string")
            record = FileRecord(value, f"U{n:08d}", kind, f"{kind}s/file_{n}", file_name=default_name)
        self.files[record.file_id] = record
        return record

    @staticmethod
    def _ext(name: str) -> str:
        match = re.search(r"(\.[A-Za-z0-9]{1,8})$", name or "")
        return match.group(1) if match else ""

    def _media(self, kind: str, record: FileRecord, p: Mapping[str, Any]) -> Any:
        base: dict[str, Any] = {"file_id": record.file_id, "file_unique_id": record.file_unique_id}
        if record.file_size:
            base["file_size"] = record.file_size
        if kind == "photo":
            return [{**base, "width": record.width or 800, "height": record.height or 600}]
        if kind == "sticker":
            sticker = {
                **base,
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            }
            if p.get("emoji"):
                sticker["emoji"] = str(p["emoji"])
            return sticker
        if record.file_name:
            base["file_name"] = record.file_name
        if record.mime_type:
            base["mime_type"] = record.mime_type
        if kind in ("video", "animation"):
            base.update(
                {
                    "width": self._int(p, "width", 640) or 640,
                    "height": self._int(p, "height", 360) or 360,
                    "duration": self._int(p, "duration", 1) or 0,
                }
            )
        elif kind in ("voice", "audio"):
            base["duration"] = self._int(p, "duration", 1) or 0
        elif kind == "video_note":
            base.update({"length": self._int(p, "length", 240) or 240, "duration": self._int(p, "duration", 1) or 0})
        return base

    # ------------------------------------------------------------------ building messages

    def _new_message(
        self,
        chat: dict[str, Any],
        sender: Mapping[str, Any] | None,
        fields: Mapping[str, Any],
        sender_chat: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        message_id = chat["next_message_id"]
        chat["next_message_id"] += 1
        message: dict[str, Any] = {"message_id": message_id, "date": int(self.now())}
        if sender is not None:
            message["from"] = dict(sender)
        if sender_chat is not None:
            message["sender_chat"] = dict(sender_chat)
        message["chat"] = self._chat_public(chat)
        message.update({k: v for k, v in fields.items() if v is not None})
        chat["messages"][message_id] = message
        return message

    def _bot_message(
        self, chat: dict[str, Any], p: Mapping[str, Any], fields: dict[str, Any]
    ) -> dict[str, Any]:
        inline, raw_markup = self._markup(p)
        reply = self._reply_to(chat, p)
        extra: dict[str, Any] = dict(fields)
        extra["reply_to_message"] = reply
        extra["reply_markup"] = inline
        thread = self._int(p, "message_thread_id")
        if thread is not None:
            extra["message_thread_id"] = thread
        if self._bool(p, "protect_content"):
            extra["has_protected_content"] = True
        if chat["type"] == "channel":
            message = self._new_message(chat, None, extra, sender_chat=self._chat_public(chat))
        else:
            message = self._new_message(chat, self.bot_user, extra)
        chat["meta"][message["message_id"]] = {
            "parse_mode": p.get("parse_mode"),
            "raw_text": p.get("text", p.get("caption")),
            "reply_markup": raw_markup,
            "disable_notification": self._bool(p, "disable_notification"),
        }
        return message

    def _delivers(self, chat: dict[str, Any], message: Mapping[str, Any]) -> bool:
        """Would Telegram deliver this (non-bot) message to the bot?"""
        if chat["type"] == "private":
            return chat["id"] not in self.blocked_users
        state = self._state(chat, self.bot_id)
        if not self._is_present(state):
            return False
        sender = message.get("from") or {}
        if sender.get("is_bot") and sender.get("id") not in _VISIBLE_SERVICE_BOTS:
            return False  # bots never see other bots' messages
        if chat["type"] == "channel" or not self.privacy_mode or self._is_admin(chat, self.bot_id):
            return True
        if any(key in message for key in SERVICE_KEYS):
            return True
        text = str(message.get("text") or message.get("caption") or "")
        if text.startswith("/"):
            first = text.split(maxsplit=1)[0]
            return "@" not in first or first.split("@", 1)[1].lower() == self.bot_username.lower()
        reply = message.get("reply_to_message") or {}
        if (reply.get("from") or {}).get("id") == self.bot_id:
            return True
        return f"@{self.bot_username}".lower() in text.lower()

    def _deliver(self, chat: dict[str, Any], message: dict[str, Any], kind: str) -> int | None:
        if not self._delivers(chat, message):
            return None
        return self._enqueue(kind, message)

    def _member_changed(
        self,
        chat: dict[str, Any],
        user_id: int,
        old: dict[str, Any],
        actor_id: int,
        extra: Mapping[str, Any] | None = None,
    ) -> int | None:
        """Emit chat_member (or my_chat_member for the bot) if the member object changed."""
        new = self._member_obj(chat, user_id)
        if new == old:
            return None
        payload = {
            "chat": self._chat_public(chat),
            "from": self._user_public(actor_id),
            "date": int(self.now()),
            "old_chat_member": old,
            "new_chat_member": new,
            **(extra or {}),
        }
        if user_id == self.bot_id:
            return self._enqueue("my_chat_member", payload)
        if not self._is_admin(chat, self.bot_id):
            return None  # chat_member updates need the bot to be an administrator
        if actor_id == self.bot_id and not self.emit_member_updates_for_bot_actions:
            return None
        return self._enqueue("chat_member", payload)

    # ------------------------------------------------------------------ user-side actions

    def _link_for_join(self, chat: dict[str, Any], invite_link: str | None) -> dict[str, Any] | None:
        if invite_link is None:
            return None
        link = chat["invite_links"].get(invite_link)
        if link is None:
            owner = next(
                (uid for uid, st in chat["members"].items() if st["status"] == "creator"), self.bot_id
            )
            link = {
                "invite_link": invite_link,
                "creator": self._user_public(owner),
                "creates_join_request": False,
                "is_primary": False,
                "is_revoked": False,
                "_uses": 0,
            }
            chat["invite_links"][invite_link] = link
        if link["is_revoked"]:
            raise WorldError(f"invite link {invite_link} was revoked")
        if link.get("expire_date") and link["expire_date"] <= self.now():
            raise WorldError(f"invite link {invite_link} has expired")
        if link.get("member_limit") and link["_uses"] >= link["member_limit"]:
            raise WorldError(f"invite link {invite_link} reached its member limit")
        return link

    @staticmethod
    def _link_public(link: Mapping[str, Any]) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in link.items() if not k.startswith("_")}

    def join(
        self,
        chat_id: int,
        user_id: int,
        invite_link: str | None = None,
        by_user_id: int | None = None,
    ) -> dict[str, Any]:
        """The user joins (or is added by ``by_user_id``): a chat_member update + a new_chat_members message.

        Through a link with creates_join_request a chat_join_request update is sent instead (returned).
        """
        chat = self._chat(chat_id)
        user = self._user(user_id)
        if chat["type"] == "private":
            raise WorldError("cannot join a private chat")
        state = self._state(chat, user_id)
        if self._is_present(state):
            raise WorldError(f"{self.display_name(user_id)} is already a member of {chat['title']}")
        if state["status"] == "kicked":
            raise WorldError(f"{self.display_name(user_id)} is banned from {chat['title']}; unban first")
        link = self._link_for_join(chat, invite_link)
        if link is not None and link.get("creates_join_request") and by_user_id is None:
            request = {
                "chat": self._chat_public(chat),
                "from": dict(user),
                "user_chat_id": user["id"],
                "date": int(self.now()),
                "invite_link": self._link_public(link),
            }
            chat["join_requests"][int(user_id)] = {"link": invite_link, "date": request["date"]}
            link["pending_join_request_count"] = link.get("pending_join_request_count", 0) + 1
            self._enqueue("chat_join_request", request)
            return request
        return self._do_join(chat, int(user_id), link, by_user_id)

    def _do_join(
        self,
        chat: dict[str, Any],
        user_id: int,
        link: dict[str, Any] | None,
        by_user_id: int | None,
        via_join_request: bool = False,
    ) -> dict[str, Any]:
        old = self._member_obj(chat, user_id)
        state = self._state(chat, user_id)
        if state["status"] == "restricted":
            state["is_member"] = True
        else:
            chat["members"][user_id] = {"status": "member", "until_date": 0}
        if link is not None:
            link["_uses"] = link.get("_uses", 0) + 1
        actor = by_user_id if by_user_id is not None else user_id
        extra: dict[str, Any] = {}
        if link is not None:
            extra["invite_link"] = self._link_public(link)
        if via_join_request:
            extra["via_join_request"] = True
        self._member_changed(chat, user_id, old, actor, extra)
        message = self._new_message(
            chat, self._user_public(actor), {"new_chat_members": [self._user_public(user_id)]}
        )
        self._deliver(chat, message, "message")
        return copy.deepcopy(message)

    def leave(self, chat_id: int, user_id: int) -> dict[str, Any]:
        """The user leaves: a chat_member update + a left_chat_member message."""
        chat = self._chat(chat_id)
        self._user(user_id)
        state = self._state(chat, user_id)
        if not self._is_present(state):
            raise WorldError(f"{self.display_name(user_id)} is not in {chat['title']}")
        if state["status"] == "creator":
            raise WorldError("the creator cannot leave in this emulator")
        old = self._member_obj(chat, user_id)
        if state["status"] == "restricted":
            state["is_member"] = False
        else:
            chat["members"][int(user_id)] = {"status": "left", "until_date": 0}
        self._member_changed(chat, int(user_id), old, int(user_id))
        message = self._new_message(
            chat, self._user_public(user_id), {"left_chat_member": self._user_public(user_id)}
        )
        self._deliver(chat, message, "message")
        return copy.deepcopy(message)

    _MEDIA_PERMISSION: Mapping[str, str] = {
        "photo": "can_send_photos",
        "video": "can_send_videos",
        "document": "can_send_documents",
        "audio": "can_send_audios",
        "voice": "can_send_voice_notes",
        "video_note": "can_send_video_notes",
        "sticker": "can_send_other_messages",
        "animation": "can_send_other_messages",
        "poll": "can_send_polls",
    }

    def _user_media(self, kind: str, value: Any) -> Any:
        if isinstance(value, dict | list):
            items = value if isinstance(value, list) else [value]
            for item in items:
                if isinstance(item, dict) and item.get("file_id") and item["file_id"] not in self.files:
                    self.files[item["file_id"]] = FileRecord(
                        item["file_id"],
                        str(item.get("file_unique_id", item["file_id"])),
                        kind,
                        f"{kind}s/{item['file_id']}",
                        file_size=item.get("file_size"),
                    )
            return value
        record = self._register_file(
            kind, f"EMUUSER{kind.upper()}{self._next():08d}" if value is True else value
        )
        return self._media(kind, record, {})

    def send_message(
        self,
        chat_id: int,
        user_id: int,
        text: str | None = None,
        reply_to: int | None = None,
        entities: list[dict[str, Any]] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A member sends a message (a ``message`` update). ``extra`` adds any Message field (photo, caption,
        sticker, forward_origin, sender_chat ...); photo/sticker/document/... may be True or a file_id."""
        user = self._user(user_id)
        if int(chat_id) == int(user_id):
            self.started_users.add(int(user_id))
            chat = self._private_chat(int(user_id))
        else:
            chat = self._chat(chat_id)
        if chat["type"] == "channel":
            raise WorldError("members do not post in channels; use channel_post()")
        sender_chat = extra.pop("sender_chat", None)
        anonymous_admin = isinstance(sender_chat, dict) and sender_chat.get("id") == chat["id"]
        if sender_chat is True:
            sender_chat, anonymous_admin = self._chat_public(chat), True
        if (isinstance(sender_chat, dict) and not anonymous_admin
                and int(sender_chat.get("id", 0)) in chat.get("banned_sender_chats", ())):
            raise WorldError(f"channel {sender_chat.get('id')} is banned in {chat['title']}")
        media_kinds = [k for k in self._MEDIA_PERMISSION if k in extra]
        if (
            text is None
            and not media_kinds
            and not any(k in extra for k in CONTENT_KEYS)
            and not any(k in extra for k in SERVICE_KEYS)
        ):
            raise WorldError("send_message needs text or some content in extra")
        if chat["type"] != "private" and not anonymous_admin and sender_chat is None:
            needed = ["can_send_messages"] if text is not None else []
            needed += [self._MEDIA_PERMISSION[k] for k in media_kinds]
            state = self._state(chat, user_id)
            for permission in needed or ["can_send_messages"]:
                if not self._may(chat, user_id, permission):
                    until = state.get("until_date") or 0
                    detail = f" until {until}" if until else ""
                    raise WorldError(
                        f"{self.display_name(user_id)} cannot send in {chat['title']}: "
                        f"status {state['status']}{detail}, missing {permission}"
                    )
        fields: dict[str, Any] = {}
        if text is not None:
            fields["text"] = text
            fields["entities"] = entities if entities is not None else (detect_entities(text) or None)
        for kind in media_kinds:
            extra[kind] = self._user_media(kind, extra[kind])
        if "caption" in extra and "caption_entities" not in extra:
            fields["caption_entities"] = detect_entities(str(extra["caption"])) or None
        if reply_to is not None:
            target = chat["messages"].get(int(reply_to))
            if target is None or int(reply_to) in chat["deleted"]:
                raise WorldError(f"message {reply_to} not found in chat {chat['id']}")
            reply = copy.deepcopy(target)
            reply.pop("reply_to_message", None)
            fields["reply_to_message"] = reply
        fields.update(extra)
        if anonymous_admin:
            sender = dict(GROUP_ANONYMOUS_BOT)
        elif isinstance(sender_chat, dict) and sender_chat.get("type") == "channel":
            sender = dict(CHANNEL_BOT)  # a member posting "as" a channel
        else:
            sender = dict(user)
        message = self._new_message(chat, sender, fields, sender_chat=sender_chat)
        self._deliver(chat, message, "message")
        return copy.deepcopy(message)

    def edit_message(self, chat_id: int, message_id: int, text: str) -> dict[str, Any]:
        """The author edits a message: an edited_message (edited_channel_post) update."""
        chat = self._chat(chat_id)
        message = chat["messages"].get(int(message_id))
        if message is None or int(message_id) in chat["deleted"]:
            raise WorldError(f"message {message_id} not found in chat {chat_id}")
        if (message.get("from") or {}).get("id") == self.bot_id:
            raise WorldError("use the Bot API to edit the bot's own messages")
        key = "text" if "text" in message or "caption" not in message else "caption"
        message[key] = text
        entities = detect_entities(text, commands=key == "text")
        ent_key = "entities" if key == "text" else "caption_entities"
        if entities:
            message[ent_key] = entities
        else:
            message.pop(ent_key, None)
        message["edit_date"] = int(self.now())
        kind = "edited_channel_post" if chat["type"] == "channel" else "edited_message"
        self._deliver(chat, message, kind)
        return copy.deepcopy(message)

    def press_button(self, chat_id: int, user_id: int, message_id: int, data: str) -> str:
        """The user presses an inline button with callback_data ``data``: a callback_query update."""
        chat = self._chat(chat_id)
        user = self._user(user_id)
        message = chat["messages"].get(int(message_id))
        if message is None or int(message_id) in chat["deleted"]:
            raise WorldError(f"message {message_id} not found in chat {chat_id}")
        if chat["type"] != "private" and not self._is_present(self._state(chat, user_id)):
            raise WorldError(
                f"{self.display_name(user_id)} is not in {chat['title']} and cannot press buttons"
            )
        buttons = [b for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]
        datas = [str(b["callback_data"]) for b in buttons if "callback_data" in b]
        if str(data) not in datas:
            raise WorldError(f"message {message_id} has no button with callback_data {data!r} (has {datas})")
        query_id = str(4_000_000_000_000_000 + self._next())
        self.callbacks[query_id] = {
            "created": self.now(),
            "answered": False,
            "user_id": int(user_id),
            "chat_id": chat["id"],
            "message_id": int(message_id),
            "data": str(data),
            "answer": None,
        }
        self._enqueue(
            "callback_query",
            {
                "id": query_id,
                "from": dict(user),
                "message": copy.deepcopy(message),
                "chat_instance": str(zlib.crc32(f"{self.token}:{chat['id']}".encode()) * 1000 + 7),
                "data": str(data),
            },
        )
        return query_id

    def buttons(self, chat_id: int, message_id: int) -> list[dict[str, Any]]:
        """The inline buttons of a message, row by row flattened."""
        message = self._chat(chat_id)["messages"].get(int(message_id)) or {}
        return [
            dict(b) for row in (message.get("reply_markup") or {}).get("inline_keyboard", []) for b in row
        ]

    def _poll_closed(self, poll: dict[str, Any]) -> bool:
        if not poll["is_closed"] and poll.get("close_date") and poll["close_date"] <= self.now():
            poll["is_closed"] = True
        return bool(poll["is_closed"])

    def vote_poll(self, poll_id: str, user_id: int, option_ids: list[int]) -> None:
        """The user votes (an empty list retracts): poll_answer (non-anonymous) and poll updates."""
        record = self.polls.get(str(poll_id))
        if record is None:
            raise WorldError(f"unknown poll {poll_id}")
        user = self._user(user_id)
        poll = record["poll"]
        if self._poll_closed(poll):
            raise WorldError(f"poll {poll_id} is closed")
        options = [int(o) for o in option_ids]
        if any(not 0 <= o < len(poll["options"]) for o in options) or len(set(options)) != len(options):
            raise WorldError(f"invalid option ids {options} for a poll with {len(poll['options'])} options")
        if len(options) > 1 and not poll["allows_multiple_answers"]:
            raise WorldError("this poll allows one answer")
        previous = record["voters"].get(int(user_id))
        if previous is not None and not poll.get("allows_revoting", True):
            raise WorldError("this poll does not allow changing the vote")
        if not options and previous is None:
            raise WorldError("nothing to retract")
        for o in previous or []:
            poll["options"][o]["voter_count"] -= 1
        for o in options:
            poll["options"][o]["voter_count"] += 1
        if options:
            record["voters"][int(user_id)] = options
        else:
            record["voters"].pop(int(user_id), None)
        poll["total_voter_count"] = len(record["voters"])
        if not poll["is_anonymous"]:
            self._enqueue(
                "poll_answer",
                {
                    "poll_id": poll["id"],
                    "user": dict(user),
                    "option_ids": options,
                    "option_persistent_ids": [poll["options"][o]["persistent_id"] for o in options],
                },
            )
        self._enqueue("poll", poll)

    def channel_post(self, chat_id: int, text: str, **extra: Any) -> dict[str, Any]:
        """A post in a channel: a channel_post update (if the bot is in the channel)."""
        chat = self._chat(chat_id)
        if chat["type"] != "channel":
            raise WorldError(f"chat {chat_id} is not a channel")
        fields: dict[str, Any] = {"text": text, "entities": detect_entities(text) or None, **extra}
        message = self._new_message(chat, None, fields, sender_chat=self._chat_public(chat))
        self._deliver(chat, message, "channel_post")
        return copy.deepcopy(message)

    # ==================================================================================================
    # Bot API methods (called through handle_request with normalized params)
    # ==================================================================================================

    def m_getMe(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            **self.bot_user,
            "can_join_groups": True,
            "can_read_all_group_messages": not self.privacy_mode,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def m_getUpdates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook.get("url"):
            raise _ApiFailure(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = self._int(p, "offset")
        limit = self._int(p, "limit", 100) or 100
        limit = max(1, min(100, limit))
        raw_timeout = p.get("timeout") or 0
        if isinstance(raw_timeout, bool) or not isinstance(raw_timeout, int | float):
            raise _bad("invalid timeout specified")
        timeout = max(0.0, float(raw_timeout))  # fractions allowed here to keep tests fast
        allowed = self._json(p, "allowed_updates", list)
        if allowed is not None:
            self.allowed_updates = [str(a) for a in allowed]
        self._poll_generation += 1
        generation = self._poll_generation
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._confirm(offset)
            batch = self._collect(limit)
            if batch:
                return batch
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            await self._wait(self._update_waiters, remaining)
            if generation != self._poll_generation:
                raise _ApiFailure(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only "
                    "one bot instance is running",
                )

    def m_deleteWebhook(self, p: dict[str, Any]) -> bool:
        self.webhook = {"url": ""}
        self._stop_pusher()
        if self._bool(p, "drop_pending_updates"):
            while self._updates:
                self.dropped_updates.append(self._updates.popleft())
        return True

    def m_setWebhook(self, p: dict[str, Any]) -> bool:
        url = self._str(p, "url", "") or ""
        insecure_ok = self.webhook_push != "off" and self._loopback(url)
        if url and not url.startswith("https://") and not (insecure_ok and url.startswith("http://")):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        allowed = self._json(p, "allowed_updates", list)
        if allowed is not None:
            self.allowed_updates = [str(a) for a in allowed]
        self.webhook = {
            "url": url,
            "secret_token": p.get("secret_token"),
            "max_connections": self._int(p, "max_connections", 40),
        }
        if self._bool(p, "drop_pending_updates"):
            while self._updates:
                self.dropped_updates.append(self._updates.popleft())
        self._restart_pusher()
        return True

    def m_getWebhookInfo(self, p: dict[str, Any]) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook.get("url"):
            info["max_connections"] = self.webhook.get("max_connections") or 40
            for key in ("last_error_date", "last_error_message"):
                if self.webhook.get(key):
                    info[key] = self.webhook[key]
        if self.allowed_updates:
            info["allowed_updates"] = list(self.allowed_updates)
        return info

    def m_logOut(self, p: dict[str, Any]) -> bool:
        return True

    def m_close(self, p: dict[str, Any]) -> bool:
        return True

    # ------------------------------------------------------------------ sending

    def _text_fields(self, p: Mapping[str, Any]) -> dict[str, Any]:
        text = p.get("text")
        if text is None or not str(text).strip():
            raise _bad("message text is empty")
        plain, entities = self._format(str(text), p.get("parse_mode"), p.get("entities"))
        if not plain.strip():
            raise _bad("message text is empty")
        if len(plain) > MAX_TEXT_LENGTH:
            raise _bad("message is too long")
        fields: dict[str, Any] = {"text": plain, "entities": entities or None}
        preview = self._json(p, "link_preview_options", dict)
        if preview:
            fields["link_preview_options"] = preview
        return fields

    def _caption_fields(self, p: Mapping[str, Any]) -> dict[str, Any]:
        caption = p.get("caption")
        if caption is None or str(caption) == "":
            return {}
        plain, entities = self._format(
            str(caption), p.get("parse_mode"), p.get("caption_entities"), auto_commands=False
        )
        if len(plain) > MAX_CAPTION_LENGTH:
            raise _bad("message caption is too long")
        fields: dict[str, Any] = {"caption": plain, "caption_entities": entities or None}
        if self._bool(p, "show_caption_above_media"):
            fields["show_caption_above_media"] = True
        if self._bool(p, "has_spoiler"):
            fields["has_media_spoiler"] = True
        return fields

    def m_sendMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._bot_chat(p, send=True)
        fields = self._text_fields(p)
        self._bot_send_check(chat, "can_send_messages", "text messages")
        return copy.deepcopy(self._bot_message(chat, p, fields))

    def _send_file(self, p: dict[str, Any], kind: str, permission: str, what: str) -> dict[str, Any]:
        chat = self._bot_chat(p, send=True)
        if p.get(kind) is None:
            raise _bad(f"there is no {kind} in the request")
        fields = self._caption_fields(p) if kind != "sticker" else {}
        self._bot_send_check(chat, permission, what)
        self._markup(p)
        self._reply_to(chat, p)  # validate before the file is registered
        record = self._register_file(kind, p[kind])
        fields[kind] = self._media(kind, record, p)
        return copy.deepcopy(self._bot_message(chat, p, fields))

    def m_sendPhoto(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._send_file(p, "photo", "can_send_photos", "photos")

    def m_sendVideo(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._send_file(p, "video", "can_send_videos", "videos")

    def m_sendDocument(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._send_file(p, "document", "can_send_documents", "documents")

    def m_sendAnimation(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._send_file(p, "animation", "can_send_other_messages", "animations")

    def m_sendSticker(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._send_file(p, "sticker", "can_send_other_messages", "stickers")

    def m_sendChatAction(self, p: dict[str, Any]) -> bool:
        chat = self._bot_chat(p, send=True)
        action = self._str(p, "action")
        if action not in CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        self._bot_send_check(chat, "can_send_messages", "text messages")
        return True

    def _copyable(self, p: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        target = self._bot_chat(p, send=True)
        source = self._bot_chat(p, key="from_chat_id")
        message = self._message_of(
            source, self._int(p, "message_id", required=True), "message to copy not found"
        )
        if message.get("has_protected_content"):
            raise _bad("message can't be forwarded")
        if any(key in message for key in SERVICE_KEYS):
            raise _bad("message can't be copied")
        return target, source, message

    def m_forwardMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        try:
            target, source, message = self._copyable(p)
        except _ApiFailure as failure:
            if "copy not found" in failure.description:
                raise _bad("message to forward not found") from None
            raise
        self._bot_send_check(target, "can_send_messages", "text messages")
        origin: dict[str, Any]
        if source["type"] == "channel":
            origin = {
                "type": "channel",
                "chat": self._chat_public(source),
                "message_id": message["message_id"],
                "date": message["date"],
            }
        elif "forward_origin" in message:
            origin = copy.deepcopy(message["forward_origin"])
        elif message.get("sender_chat"):
            origin = {
                "type": "chat",
                "sender_chat": copy.deepcopy(message["sender_chat"]),
                "date": message["date"],
            }
        else:
            origin = {
                "type": "user",
                "sender_user": copy.deepcopy(message.get("from")),
                "date": message["date"],
            }
        fields = {k: copy.deepcopy(message[k]) for k in CONTENT_KEYS if k in message}
        fields["forward_origin"] = origin
        forwarded = self._bot_message(
            target, {k: v for k, v in p.items() if k not in ("reply_markup",)}, fields
        )
        return copy.deepcopy(forwarded)

    def m_copyMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        target, _, message = self._copyable(p)
        self._bot_send_check(target, "can_send_messages", "text messages")
        fields = {k: copy.deepcopy(message[k]) for k in CONTENT_KEYS if k in message}
        if "caption" in p and "text" not in fields:
            fields.pop("caption", None)
            fields.pop("caption_entities", None)
            fields.update(self._caption_fields(p))
        copied = self._bot_message(target, p, fields)
        return {"message_id": copied["message_id"]}

    # ------------------------------------------------------------------ editing & deleting

    def _editable(self, p: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        if p.get("inline_message_id") is not None:
            raise _bad("message to edit not found")
        chat = self._bot_chat(p)
        message = self._message_of(
            chat, self._int(p, "message_id", required=True), "message to edit not found"
        )
        sender = (message.get("from") or {}).get("id")
        own_channel_post = chat["type"] == "channel" and "from" not in message
        if sender != self.bot_id and not own_channel_post:
            raise _bad("message can't be edited")
        return chat, message

    def _finish_edit(
        self,
        chat: dict[str, Any],
        message: dict[str, Any],
        fields: dict[str, Any],
        inline: dict[str, Any] | None,
    ) -> dict[str, Any]:
        before = {k: message.get(k) for k in (*fields, "reply_markup")}
        after = {**{k: v for k, v in fields.items()}, "reply_markup": inline}
        if before == after:
            raise _bad(NOT_MODIFIED.split("Bad Request: ", 1)[1])
        for key, value in fields.items():
            if value is None:
                message.pop(key, None)
            else:
                message[key] = value
        if inline is None:
            message.pop("reply_markup", None)
        else:
            message["reply_markup"] = inline
        message["edit_date"] = int(self.now())
        return copy.deepcopy(message)

    def m_editMessageText(self, p: dict[str, Any]) -> dict[str, Any]:
        chat, message = self._editable(p)
        if "text" not in message:
            raise _bad("there is no text in the message to edit")
        fields = self._text_fields(p)
        fields.setdefault("link_preview_options", message.get("link_preview_options"))
        inline, _ = self._markup(p)
        return self._finish_edit(chat, message, fields, inline)

    def m_editMessageCaption(self, p: dict[str, Any]) -> dict[str, Any]:
        chat, message = self._editable(p)
        if "text" in message:
            raise _bad("there is no caption in the message to edit")
        fields = self._caption_fields(p) or {"caption": None, "caption_entities": None}
        fields.setdefault("caption_entities", None)
        inline, _ = self._markup(p)
        return self._finish_edit(chat, message, fields, inline)

    def m_editMessageReplyMarkup(self, p: dict[str, Any]) -> dict[str, Any]:
        chat, message = self._editable(p)
        inline, _ = self._markup(p)
        return self._finish_edit(chat, message, {}, inline)

    def _check_deletable(self, chat: dict[str, Any], message: Mapping[str, Any]) -> None:
        own = (message.get("from") or {}).get("id") == self.bot_id or (
            chat["type"] == "channel" and "from" not in message
        )
        if chat["type"] == "private":
            if self.now() - message["date"] > DELETE_WINDOW:
                raise _bad("message can't be deleted for everyone")
            return
        if self._has_right(chat, self.bot_id, "can_delete_messages"):
            return
        if own and chat["type"] != "channel":
            if self.now() - message["date"] > DELETE_WINDOW:
                raise _bad("message can't be deleted for everyone")
            return
        raise _bad("message can't be deleted")

    def m_deleteMessage(self, p: dict[str, Any]) -> bool:
        chat = self._bot_chat(p)
        message_id = self._int(p, "message_id", required=True)
        message = self._message_of(chat, message_id, "message to delete not found")
        self._check_deletable(chat, message)
        chat["deleted"].add(message_id)
        return True

    def m_deleteMessages(self, p: dict[str, Any]) -> bool:
        chat = self._bot_chat(p)
        ids = self._json(p, "message_ids", list)
        if not ids:
            raise _bad("message_ids is empty")
        if len(ids) > 100:
            raise _bad("too many message identifiers specified")
        targets = []
        for raw in ids:
            message_id = int(raw)
            message = chat["messages"].get(message_id)
            if message is None or message_id in chat["deleted"]:
                continue
            self._check_deletable(chat, message)
            targets.append(message_id)
        if not targets:
            raise _bad("message to delete not found")
        chat["deleted"].update(targets)
        return True

    # ------------------------------------------------------------------ polls & callbacks

    def m_sendPoll(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._bot_chat(p, send=True)
        question = self._str(p, "question", "") or ""
        if not question.strip() or len(question) > 300:
            raise _bad(
                "poll question must be 1-300 characters long"
                if question.strip()
                else "poll question must be non-empty"
            )
        raw_options = self._json(p, "options", list)
        if raw_options is None:
            raise _bad("poll options must be non-empty")
        texts: list[str] = []
        for option in raw_options:
            text = option.get("text") if isinstance(option, dict) else option
            if not isinstance(text, str | int | float) or not str(text).strip() or len(str(text)) > 100:
                raise _bad("poll options must be non-empty and at most 100 characters long")
            texts.append(str(text))
        if not POLL_MIN_OPTIONS <= len(texts) <= POLL_MAX_OPTIONS:
            raise _bad(f"poll must have {POLL_MIN_OPTIONS}-{POLL_MAX_OPTIONS} options")
        poll_type = self._str(p, "type", "regular") or "regular"
        if poll_type not in ("regular", "quiz"):
            raise _bad("poll type is invalid")
        multiple = self._bool(p, "allows_multiple_answers")
        correct = self._int(p, "correct_option_id")
        correct_ids = self._json(p, "correct_option_ids", list)
        if correct is None and correct_ids:
            correct = int(correct_ids[0])
        if poll_type == "quiz":
            if correct is None:
                raise _bad("poll correct_option_id is required for quizzes")
            if not 0 <= correct < len(texts):
                raise _bad("poll correct_option_id is invalid")
            if multiple:
                raise _bad("quizzes can't have multiple answers")
        open_period = self._int(p, "open_period")
        close_date = self._int(p, "close_date")
        if open_period is not None and close_date is not None:
            raise _bad("can't specify both open_period and close_date")
        if open_period is not None:
            if not 5 <= open_period <= 2628000:
                raise _bad("poll open_period is invalid")
            close_date = int(self.now()) + open_period
        elif close_date is not None and not 5 <= close_date - self.now() <= 2628000:
            raise _bad("poll close_date is invalid")
        self._bot_send_check(chat, "can_send_polls", "polls")
        self._markup(p)
        self._reply_to(chat, p)
        poll_id = str(5_000_000_000_000_000 + self._next())
        poll: dict[str, Any] = {
            "id": poll_id,
            "question": question,
            "options": [{"persistent_id": str(i), "text": t, "voter_count": 0} for i, t in enumerate(texts)],
            "total_voter_count": 0,
            "is_closed": self._bool(p, "is_closed"),
            "is_anonymous": self._bool(p, "is_anonymous", True),
            "type": poll_type,
            "allows_multiple_answers": multiple,
            "allows_revoting": self._bool(p, "allows_revoting", poll_type != "quiz"),
            "members_only": self._bool(p, "members_only"),
        }
        if correct is not None and poll_type == "quiz":
            poll["correct_option_id"] = correct
        if p.get("explanation"):
            poll["explanation"] = str(p["explanation"])
        if open_period is not None:
            poll["open_period"] = open_period
        if close_date is not None:
            poll["close_date"] = close_date
        message = self._bot_message(chat, p, {"poll": poll})
        # one shared dict: the stored message shows live results
        self.polls[poll_id] = {
            "poll": message["poll"],
            "chat_id": chat["id"],
            "message_id": message["message_id"],
            "voters": {},
        }
        return copy.deepcopy(message)

    def m_stopPoll(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._bot_chat(p)
        message = self._message_of(
            chat, self._int(p, "message_id", required=True), "message with poll to stop not found"
        )
        if "poll" not in message:
            raise _bad("message with poll to stop not found")
        if (message.get("from") or {}).get("id") != self.bot_id:
            raise _bad("poll can't be stopped")
        poll = message["poll"]
        if self._poll_closed(poll):
            raise _bad("poll has already been closed")
        inline, _ = self._markup(p)
        poll["is_closed"] = True
        if inline is not None:
            message["reply_markup"] = inline
        else:
            message.pop("reply_markup", None)
        self._enqueue("poll", poll)
        return copy.deepcopy(poll)

    def m_answerCallbackQuery(self, p: dict[str, Any]) -> bool:
        query_id = self._str(p, "callback_query_id")
        record = self.callbacks.get(query_id or "")
        if record is None or record["answered"] or self.now() - record["created"] > CALLBACK_ANSWER_WINDOW:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        text = self._str(p, "text")
        if text is not None and len(text) > 200:
            raise _bad("MESSAGE_TOO_LONG")
        record["answered"] = True
        record["answer"] = {
            "text": text,
            "show_alert": self._bool(p, "show_alert"),
            "url": p.get("url"),
            "cache_time": self._int(p, "cache_time", 0),
        }
        return True

    # ------------------------------------------------------------------ members

    def _moderation_target(self, p: dict[str, Any], supergroup_only: bool) -> tuple[dict[str, Any], int]:
        chat = self._bot_chat(p)
        if chat["type"] == "private":
            raise _bad("method is available for supergroup and channel chats only")
        if supergroup_only and chat["type"] != "supergroup":
            raise _bad("method is available only for supergroups")
        user_id = self._target_user(p)
        if not self._has_right(chat, self.bot_id, "can_restrict_members"):
            raise _bad("not enough rights to restrict/unrestrict chat member")
        return chat, user_id

    def _permissions(self, p: dict[str, Any]) -> dict[str, bool]:
        raw = self._json(p, "permissions", dict)
        if raw is None:
            raise _bad("permissions is empty")
        unknown = [k for k in raw if k not in PERMISSION_FIELDS]
        if unknown:
            raise _bad(f"can't parse permissions: unknown field {unknown[0]}")
        perms = {name: bool(raw.get(name, False)) for name in PERMISSION_FIELDS}
        if not self._bool(p, "use_independent_chat_permissions"):
            if any(perms[name] for name in _IMPLY_SEND_MESSAGES):
                perms["can_send_messages"] = True
            if not perms["can_send_messages"]:
                for name in _IMPLY_SEND_MESSAGES:
                    perms[name] = False
        return perms

    def m_restrictChatMember(self, p: dict[str, Any]) -> bool:
        chat, user_id = self._moderation_target(p, supergroup_only=True)
        perms = self._permissions(p)
        if user_id == self.bot_id:
            raise _bad("can't restrict self")
        state = self._state(chat, user_id)
        if state["status"] in ("creator", "administrator"):
            raise _bad("user is an administrator of the chat")
        until = self._until(p)
        old = self._member_obj(chat, user_id)
        present = self._is_present(state)
        unrestricted = all(
            perms[name] or not chat["permissions"].get(name, False) for name in PERMISSION_FIELDS
        )
        if unrestricted:
            if state["status"] == "restricted":
                chat["members"][user_id] = {"status": "member" if present else "left", "until_date": 0}
        else:
            chat["members"][user_id] = {
                "status": "restricted",
                "until_date": until,
                "permissions": perms,
                "is_member": present and state["status"] != "kicked",
            }
        self._member_changed(chat, user_id, old, self.bot_id)
        return True

    def m_banChatMember(self, p: dict[str, Any]) -> bool:
        chat, user_id = self._moderation_target(p, supergroup_only=False)
        if user_id == self.bot_id:
            raise _bad("can't remove self")
        state = self._state(chat, user_id)
        if state["status"] == "creator":
            raise _bad("can't remove chat owner")
        if state["status"] == "administrator":
            raise _bad("user is an administrator of the chat")
        until = self._until(p) if chat["type"] != "group" else 0
        self._bool(p, "revoke_messages")
        old = self._member_obj(chat, user_id)
        chat["members"][user_id] = {"status": "kicked", "until_date": until}
        self._member_changed(chat, user_id, old, self.bot_id)
        return True

    def m_unbanChatMember(self, p: dict[str, Any]) -> bool:
        chat, user_id = self._moderation_target(p, supergroup_only=False)
        only_if_banned = self._bool(p, "only_if_banned")
        state = self._state(chat, user_id)
        if state["status"] == "kicked":
            old = self._member_obj(chat, user_id)
            chat["members"][user_id] = {"status": "left", "until_date": 0}
            self._member_changed(chat, user_id, old, self.bot_id)
            return True
        if only_if_banned or not self._is_present(state):
            return True
        if state["status"] == "creator":
            raise _bad("can't remove chat owner")
        if state["status"] == "administrator":
            raise _bad("user is an administrator of the chat")
        if user_id == self.bot_id:
            raise _bad("can't remove self")
        old = self._member_obj(chat, user_id)  # unban of a present member removes them (Telegram semantics)
        chat["members"][user_id] = {"status": "left", "until_date": 0}
        self._member_changed(chat, user_id, old, self.bot_id)
        return True

    def _sender_chat_target(self, p: dict[str, Any]) -> tuple[dict[str, Any], int]:
        chat = self._bot_chat(p)
        if chat["type"] not in ("supergroup", "channel"):
            raise _bad("method is available for supergroup and channel chats only")
        sender_chat_id = self._req_int(p, "sender_chat_id")
        if sender_chat_id >= 0:
            raise _bad("sender_chat_id must be a channel or supergroup id")
        if not self._has_right(chat, self.bot_id, "can_restrict_members"):
            raise _bad("not enough rights to restrict/unrestrict chat member")
        return chat, sender_chat_id

    def m_banChatSenderChat(self, p: dict[str, Any]) -> bool:
        chat, sender_chat_id = self._sender_chat_target(p)
        if sender_chat_id == chat["id"]:
            raise _bad("can't ban the chat itself")
        chat["banned_sender_chats"].add(sender_chat_id)
        return True

    def m_unbanChatSenderChat(self, p: dict[str, Any]) -> bool:
        chat, sender_chat_id = self._sender_chat_target(p)
        chat["banned_sender_chats"].discard(sender_chat_id)
        return True

    def sender_chat_banned(self, chat_id: int, sender_chat_id: int) -> bool:
        """Whether a channel may no longer post in the chat (banChatSenderChat)."""
        return int(sender_chat_id) in self._chat(chat_id)["banned_sender_chats"]

    def m_getChatMember(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._bot_chat(p)
        return self._member_obj(chat, self._target_user(p))

    def m_getChatAdministrators(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        chat = self._bot_chat(p)
        if chat["type"] == "private":
            raise _bad("there are no administrators in the private chat")
        admins = [
            uid for uid in chat["members"] if self._state(chat, uid)["status"] in ("creator", "administrator")
        ]
        admins.sort(key=lambda uid: (self._state(chat, uid)["status"] != "creator", uid))
        return [self._member_obj(chat, uid) for uid in admins]

    def m_getChatMemberCount(self, p: dict[str, Any]) -> int:
        chat = self._bot_chat(p)
        return sum(1 for uid in list(chat["members"]) if self._is_present(self._state(chat, uid)))

    def m_getChat(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._bot_chat(p)
        info = self._chat_public(chat)
        info.update(
            {
                "accent_color_id": 0,
                "max_reaction_count": 11,
                "accepted_gift_types": {
                    "unlimited_gifts": False,
                    "limited_gifts": False,
                    "unique_gifts": False,
                    "premium_subscription": False,
                    "gifts_from_channels": False,
                },
            }
        )
        if chat["type"] != "private":
            info["permissions"] = dict(chat["permissions"])
            if chat.get("description"):
                info["description"] = chat["description"]
            primary = next((link for link in chat["invite_links"].values() if link.get("is_primary")), None)
            if primary is not None:
                info["invite_link"] = primary["invite_link"]
        pinned = [mid for mid in chat["pinned"] if mid not in chat["deleted"]]
        if pinned:
            info["pinned_message"] = copy.deepcopy(chat["messages"][pinned[-1]])
        return info

    def m_setChatPermissions(self, p: dict[str, Any]) -> bool:
        chat = self._bot_chat(p)
        if chat["type"] not in ("group", "supergroup"):
            raise _bad("method is available only for groups and supergroups")
        self._need_right(chat, "can_restrict_members", "not enough rights to change chat permissions")
        perms = self._permissions(p)
        if perms == chat["permissions"]:
            raise _bad("CHAT_NOT_MODIFIED")
        chat["permissions"] = perms
        return True

    # ------------------------------------------------------------------ pins

    def _pin_check(self, chat: dict[str, Any]) -> None:
        if chat["type"] == "private":
            return
        if chat["type"] == "channel":
            self._need_right(
                chat, "can_edit_messages", "not enough rights to manage pinned messages in the chat"
            )
            return
        if not (
            self._has_right(chat, self.bot_id, "can_pin_messages")
            or (not self._is_admin(chat, self.bot_id) and self._may(chat, self.bot_id, "can_pin_messages"))
        ):
            raise _bad("not enough rights to manage pinned messages in the chat")

    def m_pinChatMessage(self, p: dict[str, Any]) -> bool:
        chat = self._bot_chat(p)
        message_id = self._int(p, "message_id", required=True)
        message = self._message_of(chat, message_id, "message to pin not found")
        self._pin_check(chat)
        if message_id in chat["pinned"]:
            chat["pinned"].remove(message_id)
        chat["pinned"].append(message_id)
        pinned = copy.deepcopy(message)
        pinned.pop("reply_to_message", None)
        if chat["type"] != "private":
            self._bot_service_message(chat, {"pinned_message": pinned})
        return True

    def _bot_service_message(self, chat: dict[str, Any], content: dict[str, Any]) -> None:
        """The service message Telegram posts for an action of the bot (sent as the channel in channels)."""
        sender = None if chat["type"] == "channel" else self.bot_user
        self._new_message(chat, sender, content, sender_chat=self._chat_public(chat) if sender is None else None)

    def m_unpinChatMessage(self, p: dict[str, Any]) -> bool:
        chat = self._bot_chat(p)
        self._pin_check(chat)
        message_id = self._int(p, "message_id")
        if message_id is None:
            if chat["pinned"]:
                chat["pinned"].pop()
            return True
        if message_id not in chat["pinned"]:
            raise _bad("message to unpin not found")
        chat["pinned"].remove(message_id)
        return True

    def m_unpinAllChatMessages(self, p: dict[str, Any]) -> bool:
        chat = self._bot_chat(p)
        self._pin_check(chat)
        chat["pinned"].clear()
        return True

    # ------------------------------------------------------------------ invite links & join requests

    def _invite_chat(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._bot_chat(p)
        if chat["type"] == "private":
            raise _bad("method is available for supergroup and channel chats only")
        self._need_right(chat, "can_invite_users", "not enough rights to manage chat invite link")
        return chat

    def _link_options(self, p: dict[str, Any], link: dict[str, Any]) -> None:
        name = self._str(p, "name")
        if name is not None:
            if len(name) > 32:
                raise _bad("invite link name is too long")
            link["name"] = name
        expire = self._int(p, "expire_date")
        if expire is not None:
            if expire and expire <= self.now():
                raise _bad("EXPIRE_DATE_INVALID")
            link["expire_date"] = expire
        limit = self._int(p, "member_limit")
        if limit is not None:
            if not 1 <= limit <= 99999:
                raise _bad("member limit must be between 1 and 99999")
            link["member_limit"] = limit
        if p.get("creates_join_request") is not None:
            link["creates_join_request"] = self._bool(p, "creates_join_request")
        if link.get("creates_join_request") and link.get("member_limit"):
            raise _bad("member limit can't be specified for links requiring administrator approval")

    def m_createChatInviteLink(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._invite_chat(p)
        code = "".join(
            self._rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
            for _ in range(16)
        )
        link: dict[str, Any] = {
            "invite_link": f"https://t.me/+{code}",
            "creator": self.bot_user,
            "creates_join_request": False,
            "is_primary": False,
            "is_revoked": False,
            "_uses": 0,
        }
        self._link_options(p, link)
        chat["invite_links"][link["invite_link"]] = link
        return self._link_public(link)

    def _own_link(self, chat: dict[str, Any], p: dict[str, Any]) -> dict[str, Any]:
        url = self._str(p, "invite_link")
        link = chat["invite_links"].get(url or "")
        if link is None:
            raise _bad("INVITE_HASH_INVALID")
        if link["creator"]["id"] != self.bot_id and not self._has_right(
            chat, self.bot_id, "can_promote_members"
        ):
            raise _bad("CHAT_ADMIN_REQUIRED")
        return link

    def m_editChatInviteLink(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._invite_chat(p)
        link = self._own_link(chat, p)
        if link["is_revoked"]:
            raise _bad("INVITE_HASH_EXPIRED")
        candidate = dict(link)
        self._link_options(p, candidate)
        link.update(candidate)
        return self._link_public(link)

    def m_revokeChatInviteLink(self, p: dict[str, Any]) -> dict[str, Any]:
        chat = self._invite_chat(p)
        link = self._own_link(chat, p)
        link["is_revoked"] = True
        return self._link_public(link)

    def _join_request(self, p: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, Any]]:
        chat = self._invite_chat(p)
        user_id = self._target_user(p)
        request = chat["join_requests"].get(user_id)
        if request is None:
            raise _bad("HIDE_REQUESTER_MISSING")
        return chat, user_id, request

    def m_approveChatJoinRequest(self, p: dict[str, Any]) -> bool:
        chat, user_id, request = self._join_request(p)
        del chat["join_requests"][user_id]
        link = chat["invite_links"].get(request["link"] or "")
        if link is not None:
            link["pending_join_request_count"] = max(0, link.get("pending_join_request_count", 1) - 1)
        if not self._is_present(self._state(chat, user_id)):
            self._do_join(chat, user_id, link, self.bot_id, via_join_request=True)
        return True

    def m_declineChatJoinRequest(self, p: dict[str, Any]) -> bool:
        chat, user_id, request = self._join_request(p)
        del chat["join_requests"][user_id]
        link = chat["invite_links"].get(request["link"] or "")
        if link is not None:
            link["pending_join_request_count"] = max(0, link.get("pending_join_request_count", 1) - 1)
        return True

    # ------------------------------------------------------------------ commands

    @staticmethod
    def _scope_key(p: dict[str, Any]) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        if isinstance(scope, str):
            try:
                scope = json.loads(scope)
            except ValueError:
                raise _bad("can't parse BotCommandScope") from None
        if not isinstance(scope, dict) or "type" not in scope:
            raise _bad("can't parse BotCommandScope")
        return json.dumps(scope, sort_keys=True), str(p.get("language_code") or "")

    def m_setMyCommands(self, p: dict[str, Any]) -> bool:
        commands = self._json(p, "commands", list)
        if commands is None:
            raise _bad("commands is empty")
        if len(commands) > 100:
            raise _bad("too many commands")
        clean = []
        for command in commands:
            if not isinstance(command, dict):
                raise _bad("can't parse BotCommand")
            name = str(command.get("command", "")).lstrip("/")
            description = str(command.get("description", ""))
            if not _COMMAND_NAME_RE.fullmatch(name):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise _bad(
                    "BOT_COMMAND_DESCRIPTION_INVALID" if description else "command description is empty"
                )
            clean.append({"command": name, "description": description})
        self.commands[self._scope_key(p)] = clean
        return True

    def m_deleteMyCommands(self, p: dict[str, Any]) -> bool:
        self.commands.pop(self._scope_key(p), None)
        return True

    def m_getMyCommands(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        return copy.deepcopy(self.commands.get(self._scope_key(p), []))

    # ------------------------------------------------------------------ chat settings

    def m_leaveChat(self, p: dict[str, Any]) -> bool:
        chat = self._bot_chat(p)
        if chat["type"] == "private":
            raise _bad("chat member status can't be changed in private chats")
        old = self._member_obj(chat, self.bot_id)
        chat["members"][self.bot_id] = {"status": "left", "until_date": 0}
        self._member_changed(chat, self.bot_id, old, self.bot_id)
        return True

    def m_setChatTitle(self, p: dict[str, Any]) -> bool:
        chat = self._bot_chat(p)
        if chat["type"] == "private":
            raise _bad("chat title can't be changed in private chats")
        self._need_right(chat, "can_change_info", "not enough rights to change chat title")
        title = (self._str(p, "title", "") or "").strip()
        if not title:
            raise _bad("chat title is empty")
        if len(title) > 128:
            raise _bad("chat title is too long")
        if title == chat["title"]:
            raise _bad("chat title is not modified")
        chat["title"] = title
        self._bot_service_message(chat, {"new_chat_title": title})
        return True

    def m_setChatDescription(self, p: dict[str, Any]) -> bool:
        chat = self._bot_chat(p)
        if chat["type"] == "private":
            raise _bad("chat description can't be changed in private chats")
        self._need_right(chat, "can_change_info", "not enough rights to change chat description")
        description = self._str(p, "description", "") or ""
        if len(description) > 255:
            raise _bad("chat description is too long")
        if description == (chat.get("description") or ""):
            raise _bad("chat description is not modified")
        chat["description"] = description or None
        return True

    def m_getFile(self, p: dict[str, Any]) -> dict[str, Any]:
        file_id = self._str(p, "file_id") or ""
        record = self.files.get(file_id)
        if record is None:
            raise _bad("invalid file_id")
        result: dict[str, Any] = {
            "file_id": record.file_id,
            "file_unique_id": record.file_unique_id,
            "file_path": record.file_path,
        }
        if record.file_size:
            result["file_size"] = record.file_size
        return result

    def file_by_path(self, path: str) -> FileRecord | None:
        for record in self.files.values():
            if record.file_path == path:
                return record
        return None
