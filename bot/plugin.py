"""The plugin contract.

A plugin is a package under ``plugins/`` (or an installed package in the ``qunbot.plugins`` entry-point
group) whose ``__init__`` exports one ``plugin = Plugin(...)``. The core discovers plugins, validates
their config, mounts their router behind a per-chat gate, runs their guards and observers on every
group message, routes commands through one lookup table, arms their jobs and timers, and calls their
``flush`` inside the batch transaction. DESIGN.md explains why guards/observers are not handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from aiogram import Router
from aiogram.types import Message
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.app import App
    from bot.context import Ctx
    from bot.services.events import Event
    from bot.services.timers import TimerFire


class PluginConfig(BaseModel):
    """Base for plugin config models: every field has a default; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    enabled: bool = True


class NoConfig(PluginConfig):
    pass


class UsageError(Exception):
    """Raised by a command handler for wrong arguments; the core replies with the message (or usage)."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or "")
        self.message = message


CommandHandler = Callable[[Message, "Ctx"], Awaitable[None]]
Guard = Callable[[Message, "Ctx"], Awaitable[bool]]
Observer = Callable[[Message, "Ctx"], Awaitable[None]]
TimerHandler = Callable[["App", "TimerFire"], Awaitable[None]]
EventHandler = Callable[["App", Any], Awaitable[None]]
Hook = Callable[["App"], Awaitable[None]]
FlushHook = Callable[["App", "AsyncSession"], Awaitable[None]]


def N_(text: str) -> str:
    """Mark a string for translation without translating it now (descriptions, usages)."""
    return text


@dataclass(frozen=True)
class Command:
    """A command routed through the core's lookup table (one dict lookup, no filter chain).

    ``aliases`` are whole-message keywords such as "签到" that trigger the same handler.
    ``usage`` is a msgid shown when the handler raises ``UsageError()`` without a message.
    """

    name: str
    handler: CommandHandler
    description: str
    usage: str = ""
    aliases: tuple[str, ...] = ()
    admin: bool = False
    owner: bool = False
    scope: Literal["group", "private", "any"] = "group"
    menu: bool = True


@dataclass(frozen=True)
class Job:
    """A recurring job: every ``seconds`` or on a cron spec (APScheduler CronTrigger kwargs)."""

    name: str
    func: Hook
    seconds: float | None = None
    cron: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Plugin:
    name: str
    description: str
    config: type[PluginConfig] = NoConfig
    # A factory, not a Router: aiogram attaches a router to one parent only, and every App (each
    # test, each worker) builds its own Dispatcher.
    make_router: Callable[[], Router] | None = None
    commands: Sequence[Command] = ()
    guards: Sequence[Guard] = ()
    observers: Sequence[Observer] = ()
    jobs: Sequence[Job] = ()
    timers: Mapping[str, TimerHandler] = field(default_factory=dict)
    subscriptions: Mapping[type[Event], EventHandler] = field(default_factory=dict)
    # Builds the plugin's per-App state (caches, buffers); reachable as ``ctx.runtime``.
    runtime: Callable[[App], Any] | None = None
    on_startup: Hook | None = None
    on_shutdown: Hook | None = None
    # Writes buffered high-volume data inside the core's batch transaction (no commit of its own).
    flush: FlushHook | None = None
    # True when the plugin calls app.nlp (jieba, sentiment): the core loads them once at start,
    # not on the first message.
    uses_nlp: bool = False
    # Order among plugins for guards/observers (lower first): moderation guards run before others.
    order: int = 100
    # Adds ``qunbot <sub-command>``s: called with argparse's sub-parsers; each sets ``func(args) -> int``.
    cli: Callable[[Any], None] | None = None
    # Keys shown and editable in /settings (name -> short label msgid).
    settings_keys: Mapping[str, str] = field(default_factory=dict)
