"""Core events: how plugins affect each other without importing each other.

Each event is a small frozen dataclass. Plugins subscribe with ``Plugin.subscriptions`` and the
core awaits subscribers in plugin order, each isolated: one failing subscriber is logged and the
others still run.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    chat_id: int | None


@dataclass(frozen=True)
class MemberJoined(Event):
    user_id: int
    first_name: str
    username: str | None
    is_bot: bool
    at: datetime
    chat_title: str | None = None
    invite_link: str | None = None
    invited_by: int | None = None
    # True when the user had been a member of this chat before (a re-join).
    rejoined: bool = False
    update_id: int | None = None
    # The member's status on arrival when Telegram said it (chat_member updates): "member", or
    # "restricted" for someone still muted from an earlier stay. None: unknown (a service message).
    status: str | None = None


@dataclass(frozen=True)
class MemberLeft(Event):
    user_id: int
    at: datetime
    # "left" or "kicked"
    status: str = "left"


@dataclass(frozen=True)
class MemberVerified(Event):
    """The member passed the captcha (or no captcha was required)."""

    user_id: int
    at: datetime


@dataclass(frozen=True)
class PenaltyApplied(Event):
    user_id: int
    action: str  # warn, mute, ban, kick, delete
    reason: str
    at: datetime
    until: datetime | None = None


@dataclass(frozen=True)
class CrisisChanged(Event):
    """An incident opened (old_level None), changed level, or closed (level None). 1 is highest."""

    incident_id: int
    level: int | None
    old_level: int | None
    at: datetime


@dataclass(frozen=True)
class CheckedIn(Event):
    user_id: int
    at: datetime
    streak: int
    points: int
    # The 签到 was committed before, and its update is delivered again (after a crash): state kept from
    # the event may need writing again (idempotently), but nothing must be counted twice.
    redelivered: bool = False


@dataclass(frozen=True)
class FaqAnswered(Event):
    user_id: int
    entry_id: int
    at: datetime


@dataclass(frozen=True)
class QuestionUnanswered(Event):
    user_id: int
    text: str
    at: datetime


@dataclass(frozen=True)
class BotStarted(Event):
    """A user opened a private chat with the bot (/start), possibly with a deep-link payload."""

    user_id: int
    payload: str = ""


@dataclass(frozen=True)
class ChatSettingsChanged(Event):
    plugin: str
    changes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RaidModeChanged(Event):
    """Anti-raid mode turned on (``until``: when it ends) or off in a chat (moderation).

    While it is on, new joiners are restricted or temporarily banned; welcome pauses greetings.
    """

    on: bool
    until: datetime | None = None


@dataclass(frozen=True)
class ActivityHistogramRequested(Event):
    """A question rather than a notice: messages per local hour of day (0-23) in ``chat_id`` over the last
    ``days`` days. A plugin that keeps activity data (analytics) adds its counts into ``hours``; when no
    plugin answers, ``hours`` stays empty and the asker (content_calendar's ``peak``) uses its default."""

    days: int = 28
    hours: dict[int, int] = field(default_factory=dict)


Subscriber = Callable[["App", Any], Awaitable[None]]


class EventBus:
    def __init__(self, app: App) -> None:
        self._app = app
        self._subs: dict[type[Event], list[tuple[str, Subscriber]]] = defaultdict(list)

    def subscribe(self, event_type: type[Event], owner: str, handler: Subscriber) -> None:
        self._subs[event_type].append((owner, handler))

    async def emit(self, event: Event) -> None:
        for owner, handler in self._subs.get(type(event), ()):
            if (
                owner != "core"
                and event.chat_id is not None
                and not await self._app.chat_config.enabled(event.chat_id, owner)
            ):
                continue
            try:
                await handler(self._app, event)
            except Exception:
                log.exception("plugin %s failed handling %s", owner, type(event).__name__)
