"""The Dispatcher: stateless wiring built once per App.

Update flow: ``UpdateGate`` (dedup, done-marking) -> for messages ``MessagePipeline`` (membership
service messages, then guards, observers, the command table) -> plugin routers behind a per-chat
``PluginGate``. chat_member updates pass ``MembershipTracker`` first, which turns joins and leaves
into core events.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiogram import Dispatcher, Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.middlewares.base import BaseMiddleware
from aiogram.filters import Filter
from aiogram.types import (
    CallbackQuery,
    ChatMemberUpdated,
    ErrorEvent,
    Message,
    TelegramObject,
    Update,
)

from bot.chat_config import CORE, CoreChatConfig
from bot.commands import GROUP_TYPES
from bot.context import Ctx
from bot.services.events import MemberJoined, MemberLeft
from bot.services.members import PRESENT

if TYPE_CHECKING:
    from bot.app import App
    from bot.plugin import Plugin, PluginConfig

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]

SERVICE_FIELDS = (
    "new_chat_members", "left_chat_member", "new_chat_title", "new_chat_photo", "delete_chat_photo",
    "group_chat_created", "supergroup_chat_created", "migrate_to_chat_id", "migrate_from_chat_id",
    "pinned_message", "message_auto_delete_timer_changed", "video_chat_started", "video_chat_ended",
    "forum_topic_created", "forum_topic_closed", "forum_topic_reopened", "boost_added",
)


def is_service(message: Message) -> bool:
    if message.text is not None or message.caption is not None:
        return False  # service messages carry neither; most messages stop here
    return any(getattr(message, f, None) for f in SERVICE_FIELDS)


class UpdateGate(BaseMiddleware):
    """Skips an update already processed (Telegram delivers at least once)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Update)
        ledger = self.app.updates
        if not ledger.begin(event.update_id):
            return UNHANDLED
        try:
            result = await handler(event, data)
        except BaseException as exc:
            ledger.abandon(event.update_id, exc)
            raise
        ledger.done(event.update_id)
        return result


async def _config(app: App, chat_id: int | None, plugin: str) -> PluginConfig:
    """The chat's config of a plugin, without an await when it is cached (the per-message path)."""
    cached = app.chat_config.cached(chat_id, plugin) if chat_id is not None else None
    return cached if cached is not None else await app.chat_config.get(chat_id, plugin)


class MessagePipeline(BaseMiddleware):
    def __init__(self, app: App) -> None:
        self.app = app
        plugins = list(app.plugins.values())
        self.guarded = [(p.name, p.guards) for p in plugins if p.guards]
        self.observed = [(p.name, p.observers) for p in plugins if p.observers]

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, Message)
        app = self.app
        message = event
        chat = message.chat
        in_group = chat.type in GROUP_TYPES
        update = data.get("event_update")
        update_id = update.update_id if update is not None else None
        user = message.from_user
        now = app.clock.now()
        if in_group:
            app.members.touch_chat(chat.id, chat.type, chat.title, chat.username, now)
        service = in_group and is_service(message)
        if user is not None:
            app.members.touch(user, chat.id if in_group else None, now, spoke=in_group and not service)

        if service:
            await self._membership(message, update_id)
            return await handler(event, data)

        if in_group:
            chat_cfg = app.chat_config
            user_id = user.id if user else None
            chat_id = chat.id
            core = await chat_cfg.chat(chat_id)
            for name, guards in self.guarded:
                cfg = chat_cfg.cached(chat_id, name) or await chat_cfg.get(chat_id, name)
                if not cfg.enabled:
                    continue
                ctx = Ctx(app=app, plugin=name, cfg=cfg, chat=core, chat_id=chat_id, user_id=user_id,
                          update_id=update_id)
                for guard in guards:
                    try:
                        if await guard(message, ctx):
                            return None
                    except Exception:
                        log.exception("guard of plugin %s failed (update %s)", name, update_id)
            for name, observers in self.observed:
                cfg = chat_cfg.cached(chat_id, name) or await chat_cfg.get(chat_id, name)
                if not cfg.enabled:
                    continue
                ctx = Ctx(app=app, plugin=name, cfg=cfg, chat=core, chat_id=chat_id, user_id=user_id,
                          update_id=update_id)
                for observer in observers:
                    try:
                        await observer(message, ctx)
                    except Exception:
                        log.exception("observer of plugin %s failed (update %s)", name, update_id)

        invocation = app.commands.parse(message)
        if invocation is not None:
            await app.commands.dispatch(message, invocation, update_id)
            return None
        return await handler(event, data)

    async def _membership(self, message: Message, update_id: int | None) -> None:
        app = self.app
        now = app.clock.now()
        actor = message.from_user
        for member in message.new_chat_members or ():
            invited_by = actor.id if actor and actor.id != member.id else None
            result = await app.members.record_join(message.chat.id, member, now, invited_by=invited_by)
            if result.new:
                await app.events.emit(
                    MemberJoined(
                        chat_id=message.chat.id, user_id=member.id, first_name=member.first_name,
                        username=member.username, is_bot=member.is_bot, at=now, chat_title=message.chat.title,
                        invited_by=invited_by, rejoined=result.rejoined, update_id=update_id,
                    )
                )
        left = message.left_chat_member
        if left is not None and await app.members.record_leave(message.chat.id, left.id, now):
            await app.events.emit(MemberLeft(chat_id=message.chat.id, user_id=left.id, at=now))


class MembershipTracker(BaseMiddleware):
    """chat_member updates: keep the members table and admin cache current, emit join/leave events."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, ChatMemberUpdated)
        app = self.app
        chat_id = event.chat.id
        member = event.new_chat_member.user
        old, new = event.old_chat_member, event.new_chat_member
        old_in = old.status in PRESENT and getattr(old, "is_member", True)
        new_in = new.status in PRESENT and getattr(new, "is_member", True)
        app.admins.note_status(chat_id, member.id, str(new.status), str(old.status))
        now = app.clock.now()
        update = data.get("event_update")
        update_id = update.update_id if update is not None else None
        if new_in and not old_in:
            link = event.invite_link.invite_link if event.invite_link else None
            invited_by = event.from_user.id if event.from_user and event.from_user.id != member.id else None
            if event.via_join_request or link:
                invited_by = event.invite_link.creator.id if event.invite_link else invited_by
            result = await app.members.record_join(chat_id, member, now, invite_link=link, invited_by=invited_by)
            if result.new:
                await app.events.emit(
                    MemberJoined(
                        chat_id=chat_id, user_id=member.id, first_name=member.first_name, username=member.username,
                        is_bot=member.is_bot, at=now, chat_title=event.chat.title, invite_link=link,
                        invited_by=invited_by, rejoined=result.rejoined, update_id=update_id, status=str(new.status),
                    )
                )
        elif old_in and not new_in:
            status = "kicked" if new.status == "kicked" else "left"
            if await app.members.record_leave(chat_id, member.id, now, status):
                await app.events.emit(MemberLeft(chat_id=chat_id, user_id=member.id, at=now, status=status))
        elif new_in:
            await app.members.set_status(chat_id, member.id, str(new.status))
        return await handler(event, data)


class BotStatusTracker(BaseMiddleware):
    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        assert isinstance(event, ChatMemberUpdated)
        self.app.admins.invalidate(event.chat.id)
        return await handler(event, data)


class PluginGate(Filter):
    """Passes only when the plugin is on in the event's chat; hands the handler ``ctx``."""

    def __init__(self, app: App, plugin: str) -> None:
        self.app = app
        self.plugin = plugin

    async def __call__(self, event: TelegramObject, event_update: Update | None = None) -> bool | dict[str, Any]:
        chat = getattr(event, "chat", None)
        if chat is None and isinstance(event, CallbackQuery) and event.message is not None:
            chat = event.message.chat
        chat_id = chat.id if chat is not None else None
        app, plugin = self.app, self.plugin
        cfg = await _config(app, chat_id, plugin)
        if chat_id is not None and plugin != CORE and not cfg.enabled:
            return False
        core = await _config(app, chat_id, CORE)
        assert isinstance(core, CoreChatConfig)
        user = getattr(event, "from_user", None) or getattr(event, "user", None)
        return {"ctx": Ctx(app=app, plugin=plugin, cfg=cfg, chat=core, chat_id=chat_id,
                           user_id=user.id if user else None,
                           update_id=event_update.update_id if event_update else None)}


def _gate_router(app: App, router: Router, plugin: str) -> None:
    gate = PluginGate(app, plugin)
    for observer in router.observers.values():
        # Only observers with handlers: aiogram runs root filters even for empty observers.
        if observer.event_name in ("update", "error") or not observer.handlers:
            continue
        observer.filter(gate)

    @router.errors()
    async def _plugin_error(event: ErrorEvent) -> bool:
        update_id = event.update.update_id if event.update else None
        log.error("plugin %s failed on update %s", plugin, update_id, exc_info=event.exception)
        return True


def _handles(router: Router, update_type: str) -> bool:
    observer = router.observers.get(update_type)
    if observer is not None and (observer.handlers or len(observer.outer_middleware)):
        return True
    return any(_handles(sub, update_type) for sub in router.sub_routers)


def _skip_unhandled_types(router: Router) -> None:
    """Let an event pass a router (and its sub-routers) that has nothing for its type.

    aiogram walks every router for every event, wrapping middlewares on the way; most plugin routers
    only have callback-query handlers, so a group message crossed 9 routers to reach the 2 with
    message handlers (about a third of a chatter message's dispatch cost, bench/RESULTS.md)."""
    propagate = router.propagate_event

    async def propagate_event(update_type: str, event: TelegramObject, **kwargs: Any) -> Any:
        if not _handles(router, update_type):
            return UNHANDLED
        return await propagate(update_type=update_type, event=event, **kwargs)

    router.propagate_event = propagate_event  # type: ignore[method-assign]


def build_dispatcher(app: App) -> Dispatcher:
    from handlers import make_router as core_router

    # No plugin keeps conversation state in aiogram FSM (state lives in the DB), so skip its
    # per-update storage lookup.
    dp = Dispatcher(app=app, disable_fsm=True)
    dp.update.outer_middleware(UpdateGate(app))
    dp.message.outer_middleware(MessagePipeline(app))
    dp.chat_member.outer_middleware(MembershipTracker(app))
    dp.my_chat_member.outer_middleware(BotStatusTracker(app))
    core = core_router()
    _gate_router(app, core, "core")
    _skip_unhandled_types(core)
    dp.include_router(core)
    plugin: Plugin
    for plugin in app.plugins.values():
        if plugin.make_router is None:
            continue
        router = plugin.make_router()
        _gate_router(app, router, plugin.name)
        _skip_unhandled_types(router)
        dp.include_router(router)

    @dp.errors()
    async def _unhandled(event: ErrorEvent) -> bool:
        update_id = event.update.update_id if event.update else None
        log.error("unhandled error on update %s", update_id, exc_info=event.exception)
        return True

    return dp
