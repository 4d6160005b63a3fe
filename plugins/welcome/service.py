"""aiogram-free logic of the welcome plugin: templates, challenges, captcha state, raid batching."""

from __future__ import annotations

import html
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from types import MappingProxyType
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from plugins.welcome.config import CaptchaQuestion
from plugins.welcome.models import OPEN_STATUSES, PASSED, PENDING, Captcha, Prompt

# ---------------------------------------------------------------------------------------------
# Templates
# ---------------------------------------------------------------------------------------------

TEMPLATE_VARS: tuple[str, ...] = ("name", "mention", "title", "count", "rules")
_VAR_RE = re.compile(r"\{([^{}\n]{0,40})\}")


def unknown_variables(text: str) -> list[str]:
    """The ``{...}`` placeholders in ``text`` that are not template variables (in order, unique)."""
    seen: list[str] = []
    for match in _VAR_RE.finditer(text):
        name = match.group(1)
        if name not in TEMPLATE_VARS and name not in seen:
            seen.append(name)
    return seen


def uses_variable(text: str, name: str) -> bool:
    return "{" + name + "}" in text


def render(text: str, values: Mapping[str, str]) -> str:
    """Replace the known ``{var}``s; values are inserted as given (callers pass HTML-safe values)."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        return values.get(name, match.group(0)) if name in TEMPLATE_VARS else match.group(0)

    return _VAR_RE.sub(sub, text)


# ---------------------------------------------------------------------------------------------
# Telegram HTML
# ---------------------------------------------------------------------------------------------

_ALLOWED_TAGS: Mapping[str, frozenset[str]] = {
    "b": frozenset(), "strong": frozenset(), "i": frozenset(), "em": frozenset(), "u": frozenset(),
    "ins": frozenset(), "s": frozenset(), "strike": frozenset(), "del": frozenset(),
    "tg-spoiler": frozenset(), "span": frozenset({"class"}), "a": frozenset({"href"}),
    "code": frozenset({"class"}), "pre": frozenset(), "blockquote": frozenset({"expandable"}),
    "tg-emoji": frozenset({"emoji-id"}),
}


class _HtmlCheck(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.ok = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        allowed = _ALLOWED_TAGS.get(tag)
        if allowed is None or any(name not in allowed for name, _ in attrs):
            self.ok = False
            return
        if tag == "span" and dict(attrs).get("class") != "tg-spoiler":
            self.ok = False
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ok = False

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            self.ok = False

    def handle_entityref(self, name: str) -> None:
        if name not in ("lt", "gt", "amp", "quot"):
            self.ok = False

    def handle_comment(self, data: str) -> None:
        self.ok = False

    def handle_decl(self, decl: str) -> None:
        self.ok = False

    def handle_pi(self, data: str) -> None:
        self.ok = False

    def unknown_decl(self, data: str) -> None:
        self.ok = False


def is_telegram_html(text: str) -> bool:
    """Whether ``text`` parses as Telegram HTML (allowed tags only, balanced, no stray ``<``/``&``)."""
    checker = _HtmlCheck()
    try:
        checker.feed(text)
        checker.close()
    except Exception:
        return False
    if not checker.ok or checker.stack:
        return False
    # HTMLParser lets a lone "<" or "&" through as data; Telegram rejects them.
    stripped = re.sub(r"<(/?)([a-z-]+)([^<>]*)>", "", text)
    stripped = re.sub(r"&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);", "", stripped)
    return "<" not in stripped and ">" not in stripped and "&" not in stripped


def as_html(text: str) -> str:
    """Admin-typed text: kept when it is valid Telegram HTML, escaped otherwise."""
    return text if is_telegram_html(text) else html.escape(text, quote=False)


# ---------------------------------------------------------------------------------------------
# Challenges
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    """What a captcha message asks: ``question`` (plain text, "" in button mode), the button labels
    and the index of the right one. Shared by every member greeted in the same message."""

    mode: str
    question: str
    options: tuple[str, ...]
    answer: int

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "question": self.question, "options": list(self.options), "answer": self.answer}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Challenge:
        options = tuple(str(o) for o in data.get("options") or ())
        answer = int(data.get("answer", 0))
        if not options or not 0 <= answer < len(options):
            raise ValueError("bad challenge")
        return cls(str(data.get("mode", "button")), str(data.get("question", "")), options, answer)


def button_challenge(label: str) -> Challenge:
    return Challenge("button", "", (label,), 0)


def math_challenge(rng: random.Random) -> Challenge:
    """A small sum, difference or product with four distinct non-negative answer buttons."""
    kind = rng.choice(("+", "-", "×"))
    if kind == "+":
        a, b = rng.randint(1, 20), rng.randint(1, 20)
        right = a + b
    elif kind == "-":
        a = rng.randint(5, 30)
        b = rng.randint(1, a - 1)
        right = a - b
    else:
        a, b = rng.randint(2, 9), rng.randint(2, 9)
        right = a * b
    choices = {right}
    while len(choices) < 4:
        candidate = right + rng.choice((-10, -3, -2, -1, 1, 2, 3, 10)) * rng.randint(1, 2)
        if candidate >= 0:
            choices.add(candidate)
    ordered = list(choices)
    rng.shuffle(ordered)
    return Challenge("math", f"{a} {kind} {b} = ?", tuple(str(c) for c in ordered), ordered.index(right))


def question_challenge(rng: random.Random, questions: Sequence[CaptchaQuestion]) -> Challenge:
    q = rng.choice(list(questions))
    options = list(q.options)
    rng.shuffle(options)
    return Challenge("question", q.question, tuple(options), options.index(q.answer))


CALLBACK_PREFIX = "wlc:"
_CALLBACK_RE = re.compile(r"^wlc:([0-9a-f]{10}):(\d{1,2})$")


def callback_data(token: str, index: int) -> str:
    return f"{CALLBACK_PREFIX}{token}:{index}"


def parse_callback(data: str | None) -> tuple[str, int] | None:
    """(token, option index) from a captcha button's data; None for anything garbled."""
    match = _CALLBACK_RE.match(data or "")
    if match is None:
        return None
    return match.group(1), int(match.group(2))


# ---------------------------------------------------------------------------------------------
# Raid batching (the records; state.WelcomeState keeps them)
# ---------------------------------------------------------------------------------------------


@dataclass
class Joiner:
    user_id: int
    name: str
    captcha: bool

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.user_id, "name": self.name, "captcha": self.captcha}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Joiner:
        return cls(int(data["id"]), str(data.get("name") or data["id"]), bool(data.get("captcha")))


@dataclass
class Batch:
    """Members waiting for the merged welcome message of the current raid window."""

    key: str
    token: str
    due: datetime
    challenge: Challenge | None
    title: str = ""
    members: list[Joiner] = field(default_factory=list)

    def payload(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "title": self.title,
            "challenge": self.challenge.to_dict() if self.challenge else None,
            "members": [m.to_dict() for m in self.members],
        }

    @classmethod
    def from_payload(cls, key: str, due: datetime, payload: Mapping[str, Any]) -> Batch:
        """The batch as its durable timer stored it (after a restart)."""
        token = str(payload["token"])
        if not re.fullmatch(r"[0-9a-f]{10}", token):
            raise ValueError("bad token")
        raw = payload.get("challenge")
        return cls(
            key=key, token=token, due=due, challenge=Challenge.from_dict(raw) if raw else None,
            title=str(payload.get("title") or ""), members=[Joiner.from_dict(m) for m in payload["members"]],
        )


class WelcomeRuntime:
    """Per-App state that needs no sharing: the random source of tokens and challenges. Everything
    several workers must agree on (raid batches, cooldowns, caches) is in ``state.WelcomeState``."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.SystemRandom()

    def new_token(self) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(10))


# ---------------------------------------------------------------------------------------------
# Captcha state (session first, no commit: callers own the transaction)
# ---------------------------------------------------------------------------------------------


async def get_captcha(session: AsyncSession, chat_id: int, user_id: int) -> Captcha | None:
    return await session.get(Captcha, (chat_id, user_id))


def _build_open_sql(dialect_insert: Any) -> Any:
    table = Captcha.__table__
    fresh = ("token", "message_id", "mode", "answer", "attempts", "deadline", "status", "created_at", "resolved_at")
    ins = dialect_insert(table)
    return ins.on_conflict_do_update(
        index_elements=["chat_id", "user_id"], set_={c: ins.excluded[c] for c in fresh},
        where=table.c.status.not_in(OPEN_STATUSES),
    ).returning(table.c.user_id)


_OPEN_SQL = MappingProxyType({"sqlite": _build_open_sql(sqlite_insert), "postgresql": _build_open_sql(pg_insert)})


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    return "postgresql" if bind is not None and bind.dialect.name == "postgresql" else "sqlite"


async def open_captcha(
    session: AsyncSession, chat_id: int, user_id: int, *, token: str, mode: str, answer: str,
    deadline: datetime, now: datetime,
) -> bool:
    """Start a captcha for the member; False when one is already open (a rejoin or a repeat).

    One statement (a join is on the hot path): insert, or reuse the member's closed row; an open one
    is left alone and nothing is returned. ``answer`` is "<right index>/<number of buttons>"."""
    row = await session.execute(_OPEN_SQL[_dialect(session)], {
        "chat_id": chat_id, "user_id": user_id, "token": token, "message_id": None, "mode": mode, "answer": answer,
        "attempts": 0, "deadline": deadline, "status": PENDING, "created_at": now, "resolved_at": None})
    return row.first() is not None


async def claim(
    session: AsyncSession, chat_id: int, user_id: int, token: str, from_statuses: Iterable[str], to_status: str,
) -> bool:
    """Move the member's captcha to ``to_status`` if it is in ``from_statuses`` (atomic)."""
    result = await session.execute(
        update(Captcha)
        .where(Captcha.chat_id == chat_id, Captcha.user_id == user_id, Captcha.token == token,
               Captcha.status.in_(tuple(from_statuses)))
        .values(status=to_status)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


async def finish(session: AsyncSession, chat_id: int, user_id: int, token: str, status: str, now: datetime) -> None:
    await session.execute(
        update(Captcha)
        .where(Captcha.chat_id == chat_id, Captcha.user_id == user_id, Captcha.token == token)
        .values(status=status, resolved_at=now)
    )


async def add_attempt(session: AsyncSession, chat_id: int, user_id: int, token: str) -> int:
    """Count one wrong answer of a pending captcha; returns the attempts so far (0 if not pending)."""
    await session.execute(
        update(Captcha)
        .where(Captcha.chat_id == chat_id, Captcha.user_id == user_id, Captcha.token == token,
               Captcha.status == PENDING)
        .values(attempts=Captcha.attempts + 1)
    )
    row = await session.get(Captcha, (chat_id, user_id), populate_existing=True)
    return row.attempts if row is not None and row.token == token and row.status == PENDING else 0


async def attach_message(
    session: AsyncSession, chat_id: int, token: str, message_id: int, greeting: str, now: datetime,
) -> None:
    """The captcha message was sent: remember it for the members and for the clean-up."""
    await session.execute(
        update(Captcha).where(Captcha.chat_id == chat_id, Captcha.token == token).values(message_id=message_id)
    )
    insert_prompt = (pg_insert if _dialect(session) == "postgresql" else sqlite_insert)(Prompt.__table__)
    await session.execute(insert_prompt.on_conflict_do_nothing(index_elements=["token"]), {
        "token": token, "chat_id": chat_id, "message_id": message_id, "greeting": greeting, "created_at": now,
        "closed_at": None})


async def extend_deadlines(session: AsyncSession, chat_id: int, token: str, deadline: datetime) -> None:
    await session.execute(
        update(Captcha)
        .where(Captcha.chat_id == chat_id, Captcha.token == token, Captcha.status == PENDING,
               Captcha.deadline < deadline)
        .values(deadline=deadline)
    )


async def open_members(session: AsyncSession, chat_id: int, token: str) -> list[int]:
    rows = await session.scalars(
        select(Captcha.user_id).where(Captcha.chat_id == chat_id, Captcha.token == token,
                                      Captcha.status.in_(OPEN_STATUSES))
    )
    return list(rows)


async def close_prompt(session: AsyncSession, chat_id: int, token: str, now: datetime) -> tuple[Prompt, bool] | None:
    """Close the captcha message once nobody on it is still open; returns it (once) and whether
    anyone on it passed. None while members are open, when already closed, or never sent."""
    if await open_members(session, chat_id, token):
        return None
    result = await session.execute(
        update(Prompt).where(Prompt.token == token, Prompt.closed_at.is_(None)).values(closed_at=now)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    prompt = await session.get(Prompt, token)
    if prompt is None:
        return None
    passed = await session.scalar(
        select(func.count()).select_from(Captcha).where(
            Captcha.chat_id == chat_id, Captcha.token == token, Captcha.status == PASSED
        )
    )
    return prompt, bool(passed)
