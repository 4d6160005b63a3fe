"""The App: every piece of state, built once per process (or per test) and handed to handlers.

The Dispatcher is stateless wiring; the App owns the bot, the database, the clock, the services and
each plugin's runtime state. Handlers reach it as aiogram workflow data (``app``) or through ``Ctx``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import DeleteMessage, DeleteMessages, SendMessage
from aiogram.types import InlineKeyboardMarkup, LinkPreviewOptions, Message, ReplyParameters, Update
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession

from bot.chat_config import ChatConfigService
from bot.clock import Clock
from bot.db import create_engine, retry_locked, session_factory
from bot.i18n import I18n
from bot.plugin import Plugin
from bot.registry import discover, locale_dirs
from bot.services.admins import AdminService
from bot.services.events import ChatSettingsChanged, EventBus
from bot.services.members import MemberDirectory
from bot.services.points import PointsService
from bot.services.sender import PacingMiddleware, Sender
from bot.services.timers import TimerFire, TimerService
from bot.services.updates import UpdateLedger
from bot.settings import Settings
from bot.shared import SharedChatConfig, SharedState, create_shared

if TYPE_CHECKING:
    from bot.commands import CommandTable
    from bot.leader import Leadership
    from bot.nlp import NlpService

log = logging.getLogger(__name__)

SANDBOX_TOKEN = "123456:SANDBOX-not-a-real-token"
DELETE_TIMER = "core.delete_message"


def update_chat_key(update: Update) -> int | str:
    """Updates with the same key are processed one at a time, in order."""
    try:
        event = update.event
    except Exception:  # an update type this aiogram does not know: it is skipped later
        return f"u{update.update_id}"
    chat = getattr(event, "chat", None)
    if chat is not None:
        return chat.id
    message = getattr(event, "message", None)
    if message is not None and getattr(message, "chat", None) is not None:
        return message.chat.id
    user = getattr(event, "from_user", None) or getattr(event, "user", None)
    if user is not None:
        return user.id
    return f"u{update.update_id}"


class App:
    def __init__(
        self,
        settings: Settings,
        *,
        session: BaseSession | None = None,
        clock: Clock | None = None,
        plugins: Iterable[str] | None = None,
        plugin_objects: Mapping[str, Plugin] | None = None,
        nlp: NlpService | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.plugins: dict[str, Plugin] = dict(plugin_objects) if plugin_objects is not None else discover(plugins)
        self.engine = create_engine(settings.database.url, echo=settings.database.echo,
                                    sqlite_inline=settings.database.sqlite_inline)
        self.db = session_factory(self.engine)
        self.i18n = I18n(locale_dirs(self.plugins.values()))
        # Shared state: in this process (default) or in Redis when [redis] url is set (several workers).
        self.shared: SharedState = create_shared(settings)
        self.leadership: Leadership | None = None
        if self.shared.distributed:
            self.chat_config: ChatConfigService = SharedChatConfig(
                settings, self.plugins, self.db, self.clock, self.shared)
        else:
            self.chat_config = ChatConfigService(settings, self.plugins, self.db, self.clock)

        token = settings.token() if settings.has_token else SANDBOX_TOKEN
        if session is None:
            session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram.api_server.rstrip("/")))
        self.pacing = PacingMiddleware(
            global_per_second=settings.telegram.rate_global_per_second,
            chat_per_minute=settings.telegram.rate_chat_per_minute,
            max_retries=settings.telegram.max_retries,
            shared=self.shared if self.shared.distributed else None,
        )
        session.middleware(self.pacing)
        self.bot = Bot(
            token,
            session=session,
            default=DefaultBotProperties(parse_mode="HTML", link_preview=LinkPreviewOptions(is_disabled=True)),
        )
        self.sender = Sender()
        self.admins = AdminService(lambda: self.bot, settings.bot.owners, self.clock, settings.bot.admin_cache_ttl,
                                   shared=self.shared if self.shared.distributed else None)
        self.points = PointsService(self.db, self.clock, settings.points.pools)
        self.timers = TimerService(self.db, self.clock)
        self.events = EventBus(self)
        self.members = MemberDirectory(self.db, self.clock)
        self.updates = UpdateLedger(self.db, self.clock)
        self.scheduler = AsyncIOScheduler(timezone=settings.bot.timezone)
        self._nlp = nlp
        self._runtimes: dict[str, Any] = {}
        self.stop_event = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._flush_lock = asyncio.Lock()
        self.flush_barrier: Any = None  # bot.webhook.FlushBarrier in webhook mode
        self.bot_username: str | None = None

        self.chat_config.on_change = self._settings_changed
        self.timers.register(DELETE_TIMER, _delete_message_timer)
        for plugin in self.plugins.values():
            if plugin.runtime is not None:
                self._runtimes[plugin.name] = plugin.runtime(self)
            for timer_name, handler in plugin.timers.items():
                self.timers.register(f"{plugin.name}.{timer_name}", handler)
            for event_type, handler in plugin.subscriptions.items():
                self.events.subscribe(event_type, plugin.name, handler)

        from bot.commands import CommandTable
        from bot.dispatcher import build_dispatcher

        self.commands: CommandTable = CommandTable(self)
        self.dp: Dispatcher = build_dispatcher(self)

    # ---- accessors -----------------------------------------------------------------------------
    def runtime(self, plugin: str) -> Any:
        return self._runtimes.get(plugin)

    @property
    def nlp(self) -> NlpService:
        if self._nlp is None:
            from bot.nlp import NlpService

            self._nlp = NlpService(scorer=self.settings.nlp.scorer, user_dict=self.settings.nlp.user_dict)
        return self._nlp

    def log_chat_for(self, chat_log_id: int | None) -> int | None:
        return chat_log_id if chat_log_id is not None else self.settings.bot.log_chat_id

    async def _settings_changed(self, chat_id: int, plugin: str, changes: dict[str, Any]) -> None:
        await self.events.emit(ChatSettingsChanged(chat_id=chat_id, plugin=plugin, changes=changes))

    # ---- outbound ------------------------------------------------------------------------------
    def send_text(
        self,
        chat_id: int,
        text: str,
        *,
        reply_to: int | None = None,
        reply_markup: InlineKeyboardMarkup | None = None,
        delete_after: float | None = None,
        disable_notification: bool | None = None,
    ) -> asyncio.Future[Message | None]:
        method = self._send_message(chat_id, text, reply_to=reply_to, reply_markup=reply_markup,
                                    disable_notification=disable_notification)
        return self.call(chat_id, method, delete_after=delete_after)

    async def send_text_now(
        self, chat_id: int, text: str, *, reply_markup: InlineKeyboardMarkup | None = None,
    ) -> Message | None:
        """``await send_text(...)`` for a caller that needs the message before it goes on."""
        return await self.call_now(chat_id, self._send_message(chat_id, text, reply_markup=reply_markup))

    @staticmethod
    def _send_message(
        chat_id: int, text: str, *, reply_to: int | None = None, reply_markup: InlineKeyboardMarkup | None = None,
        disable_notification: bool | None = None,
    ) -> SendMessage:
        return SendMessage(
            chat_id=chat_id,
            text=text[:4096],
            reply_parameters=ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
            if reply_to
            else None,
            reply_markup=reply_markup,
            disable_notification=disable_notification,
        )

    def call(self, chat_id: int | str, method: Any, *, delete_after: float | None = None) -> asyncio.Future[Any]:
        """Queue any Bot API method for ``chat_id``; resolves to its result or None on failure."""
        return self.sender.submit(chat_id, self._runner(chat_id, method, delete_after))

    async def call_now(self, chat_id: int | str, method: Any) -> Any:
        """``await call(...)`` for a caller that needs the result before it goes on: the same order and
        pacing, without the hand-over to the chat's send queue when it is idle (Sender.run_now)."""
        return await self.sender.run_now(chat_id, self._runner(chat_id, method, None))

    def _runner(self, chat_id: int | str, method: Any, delete_after: float | None) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            try:
                result = await self.bot(method)
            except TelegramBadRequest as exc:
                if isinstance(method, DeleteMessage | DeleteMessages) and "message to delete not found" in exc.message:
                    # Already gone (a member or another rule deleted it first): the deletion's goal holds.
                    log.debug("%s in %s: already deleted", method.__api_method__, chat_id)
                    return False
                raise
            if delete_after and isinstance(result, Message):
                await self.timers.schedule(
                    f"core.delete:{result.chat.id}:{result.message_id}",
                    DELETE_TIMER,
                    self.clock.now() + timedelta(seconds=delete_after),
                    chat_id=result.chat.id,
                    payload={"message_id": result.message_id},
                )
            return result

        return run

    # ---- processing ----------------------------------------------------------------------------
    async def feed(self, update: Update) -> None:
        """Process one update through the full pipeline (dedup, guards, observers, handlers)."""
        await self.dp.feed_update(self.bot, update, app=self)

    async def process_batch(self, updates: list[Update]) -> None:
        """Updates of one chat run one at a time and in order; chats run concurrently."""
        groups: dict[int | str, list[Update]] = defaultdict(list)
        for update in updates:
            groups[update_chat_key(update)].append(update)

        async def run(group: list[Update]) -> None:
            for update in group:
                await self.feed(update)

        if len(groups) == 1:
            await run(next(iter(groups.values())))
        else:
            await asyncio.gather(*(run(g) for g in groups.values()))

    async def flush(self) -> None:
        """Write every buffer (plugins, member directory, processed ids) in one transaction."""
        # Webhook mode sets a barrier: no update is half-processed while the buffers are written.
        barrier = self.flush_barrier
        async with barrier.exclusive() if barrier is not None else contextlib.nullcontext(), self._flush_lock:
            self.updates.snapshot()

            async def tx() -> None:
                async with self.db() as session, session.begin():
                    await self._flush_into(session)

            try:
                await retry_locked(tx)
            except Exception as exc:
                self.updates.commit_failed(exc)
                raise
            self.updates.committed()

    async def _flush_into(self, session: AsyncSession) -> None:
        for plugin in self.plugins.values():
            if plugin.flush is not None:
                await plugin.flush(self, session)
        await self.members.flush(session)
        await self.updates.flush(session)

    # ---- lifecycle -----------------------------------------------------------------------------
    async def start(self, *, background: bool = True, contact_telegram: bool = True) -> None:
        await self.shared.start()
        await self.updates.load()
        if any(p.uses_nlp for p in self.plugins.values()):
            # ~0.4 s and ~14 MB for jieba: paid once here, never on a member's message.
            await asyncio.to_thread(self.nlp.warm_up)
        if contact_telegram:
            try:
                me = await self.bot.me()
                self.bot_username = me.username
            except Exception as exc:  # the emulator or Telegram may be down: we retry in polling
                log.warning("getMe failed at start: %s", type(exc).__name__)
        for plugin in self.plugins.values():
            if plugin.on_startup is not None:
                try:
                    await plugin.on_startup(self)
                except Exception:
                    log.exception("plugin %s failed to start", plugin.name)
        if not background:
            return
        await self.publish_menu()
        for plugin in self.plugins.values():
            for job in plugin.jobs:
                self._add_job(plugin.name, job)
        self.scheduler.add_job(self._housekeeping, "interval", hours=6, id="core.housekeeping")
        if self.shared.distributed:
            # Several workers: jobs and timers run in the one holding the leader lease (bot.leader).
            from bot.leader import Leadership

            self.scheduler.start(paused=True)
            self.leadership = Leadership(self.shared, ttl=self.settings.redis.leader_ttl,
                                         on_gain=self._lead, on_lose=self._follow)
            self.leadership.start()
        else:
            self.scheduler.start()
            self._tasks.append(asyncio.create_task(self.timers.loop(self, self.stop_event), name="timers"))
        self._tasks.append(asyncio.create_task(self._flush_loop(), name="flush"))

    async def _lead(self) -> None:
        self._term_stop = asyncio.Event()
        self.scheduler.resume()
        self._term_timers: asyncio.Task[None] | None = asyncio.create_task(
            self.timers.loop(self, self._term_stop), name="timers")

    async def _follow(self) -> None:
        if self.scheduler.running:
            self.scheduler.pause()
        stop: asyncio.Event | None = getattr(self, "_term_stop", None)
        task: asyncio.Task[None] | None = getattr(self, "_term_timers", None)
        if stop is not None:
            stop.set()
        if task is not None:
            # The iteration in progress finishes (a claimed timer is not cut in half).
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, timeout=30)
            self._term_timers = None

    async def publish_menu(self) -> None:
        """Telegram's command menu: Chinese by default, English for English-speaking users."""
        try:
            await self.bot.set_my_commands(self.commands.menu("zh_CN"))
            await self.bot.set_my_commands(self.commands.menu("en"), language_code="en")
        except Exception as exc:
            log.warning("setMyCommands failed: %s", type(exc).__name__)

    def _add_job(self, plugin: str, job: Any) -> None:
        async def run() -> None:
            try:
                await job.func(self)
            except Exception:
                log.exception("job %s.%s failed", plugin, job.name)

        job_id = f"{plugin}.{job.name}"
        if job.seconds is not None:
            self.scheduler.add_job(run, "interval", seconds=job.seconds, id=job_id, max_instances=1,
                                   coalesce=True)
        elif job.cron is not None:
            self.scheduler.add_job(run, "cron", id=job_id, max_instances=1, coalesce=True, **dict(job.cron))

    async def _housekeeping(self) -> None:
        await self.updates.prune()
        await self.timers.prune()

    async def _flush_loop(self) -> None:
        interval = self.settings.bot.flush_interval
        while not self.stop_event.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), timeout=interval)
            try:
                await self.flush()
            except Exception:
                log.exception("periodic flush failed")

    async def stop(self, drain_timeout: float = 5.0) -> None:
        self.stop_event.set()
        if self.leadership is not None:
            await self.leadership.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self.sender.drain(drain_timeout)
        try:
            await self.flush()
        except Exception:
            log.exception("final flush failed")
        for plugin in reversed(list(self.plugins.values())):
            if plugin.on_shutdown is not None:
                try:
                    await plugin.on_shutdown(self)
                except Exception:
                    log.exception("plugin %s failed to stop", plugin.name)
        await self.shared.close()
        await self.bot.session.close()
        await self.engine.dispose()


async def _delete_message_timer(app: App, fire: TimerFire) -> None:
    if fire.chat_id is None:
        return
    message_id = int(fire.payload["message_id"])
    await app.call(fire.chat_id, DeleteMessage(chat_id=fire.chat_id, message_id=message_id))
