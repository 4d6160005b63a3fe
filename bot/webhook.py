"""Webhook mode: Telegram POSTs each update to us; one or several workers answer.

``qunbot run --webhook`` serves ``[webhook] path`` on ``host:port`` (aiohttp). A request:

1. must carry ``X-Telegram-Bot-Api-Secret-Token`` equal to the configured secret: otherwise 401 and
   nothing changes; a body that is not a JSON object with an integer ``update_id``: 400;
2. takes the update's chat lock (in-process, or in Redis across workers: updates of one chat run one
   at a time, in order, whichever worker receives them);
3. with several workers, asks the shared database whether the update was processed already (a
   redelivery that another worker finished), then runs it through the App (guards, observers,
   handlers; the in-memory ledger skips duplicates it knows);
4. waits for the **group commit**: updates finished within ``commit_interval`` (20 ms) share one
   transaction that writes every plugin's buffers and their processed ids, so there is no commit per
   message and a 200 means the effects are durable; a failed commit answers 500 and forgets the ids,
   so Telegram's redelivery processes them again;
5. with several workers, waits (at most ``order_timeout``) until this worker's replies to that chat
   went out, so the next update of the chat, maybe on another worker, answers after them;
6. answers 200 (empty body). An update whose processing failed on a database outage answers 500 (for
   up to 10 minutes, then it is given up like the polling loop does); a plugin's bug is not retried; a
   shutting-down worker answers 503.

``--workers N`` forks N such processes sharing the port with SO_REUSEPORT (a small supervisor restarts a
worker that dies); N > 1 needs PostgreSQL and ``[redis] url``. See docs/scale.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import hashlib
import hmac
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from bot.heap import settle_after_start
from bot.settings import ConfigError, Settings

if TYPE_CHECKING:
    from aiogram.types import Update

    from bot.app import App

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_BODY = 1024 * 1024  # Telegram's updates are a few KB
GIVE_UP_AFTER = 600.0  # an update failing on database errors is retried (by Telegram) this long, then given up
MIGRATION_LOCK = 7_311_042  # pg_advisory_lock key: one worker migrates at a time


def secret_for(settings: Settings) -> str:
    """The configured secret token, else one derived from the bot token (the same in every worker)."""
    if settings.webhook.secret_token is not None:
        return settings.webhook.secret_token.get_secret_value()
    return hashlib.sha256(b"qunbot-webhook:" + settings.token().encode()).hexdigest()


def allowed_updates(settings: Settings) -> list[str]:
    from bot.runner import ALLOWED_UPDATES

    return list(settings.webhook.allowed_updates or ALLOWED_UPDATES)


def is_db_outage(exc: BaseException) -> bool:
    """A failure worth a redelivery: the database (or the network to it) was unavailable."""
    from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

    if isinstance(exc, OperationalError | InterfaceError | ConnectionError | OSError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and isinstance(cause, ConnectionError | OSError)


_IN_FEED: contextvars.ContextVar[bool] = contextvars.ContextVar("qunbot_in_feed", default=False)


class FlushBarrier:
    """Updates are processed concurrently, but never while a flush writes the buffers: a flush waits for
    the updates in progress to finish and holds new ones back, so every transaction holds whole updates
    (their buffered effects together with their processed ids). A flush started from inside an update
    (a plugin flushing before it reads) does not wait for itself; a stuck update stops being waited for
    after ``max_wait`` seconds."""

    def __init__(self, max_wait: float = 2.0) -> None:
        self.max_wait = max_wait
        self._feeding = 0
        self._flushing = 0
        self._no_feeds = asyncio.Event()
        self._no_feeds.set()
        self._no_flush = asyncio.Event()
        self._no_flush.set()

    @contextlib.asynccontextmanager
    async def feed(self) -> AsyncIterator[None]:
        while self._flushing:
            await self._no_flush.wait()
        self._feeding += 1
        self._no_feeds.clear()
        token = _IN_FEED.set(True)
        try:
            yield
        finally:
            _IN_FEED.reset(token)
            self._feeding -= 1
            if not self._feeding:
                self._no_feeds.set()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        if _IN_FEED.get():
            yield
            return
        self._flushing += 1
        self._no_flush.clear()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._no_feeds.wait(), timeout=self.max_wait)
            yield
        finally:
            self._flushing -= 1
            if not self._flushing:
                self._no_flush.set()


class GroupCommit:
    """Coalesces commit requests: at most one flush per ``interval``, each covering everything finished
    before it started. Requests wait on the ledger's per-update futures, not on the flush itself."""

    def __init__(self, flush: Callable[[], Awaitable[None]], interval: float) -> None:
        self._flush = flush
        self.interval = interval
        self._wanted = False
        self._task: asyncio.Task[None] | None = None
        self._last = 0.0
        self.flushes = 0

    def request(self) -> None:
        self._wanted = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="group-commit")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._wanted:
            wait = self._last + self.interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            self._wanted = False
            self._last = loop.time()
            self.flushes += 1
            try:
                await self._flush()
            except Exception:
                # The ledger failed the waiting requests (500: Telegram redelivers them).
                log.exception("group commit failed")

    async def close(self) -> None:
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task


class WebhookServer:
    def __init__(
        self,
        app: App,
        *,
        secret: str,
        path: str = "/telegram/webhook",
        commit_interval: float = 0.02,
        order_timeout: float = 5.0,
    ) -> None:
        self.app = app
        self.secret = secret
        self.path = path
        self.order_timeout = order_timeout
        self.distributed = app.shared.distributed
        self.commit = GroupCommit(app.flush, commit_interval)
        self.barrier = FlushBarrier()
        app.flush_barrier = self.barrier
        app.updates.keep_failures = True
        self.stopping = False
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._first_failure: OrderedDict[int, float] = OrderedDict()
        self.stats: dict[str, int] = {"accepted": 0, "unauthorized": 0, "bad_request": 0, "failed": 0,
                                      "duplicate": 0, "unavailable": 0}
        self.runner: web.AppRunner | None = None
        self.port: int | None = None
        self.worker_id = f"{os.getpid()}-{id(self):x}"

    # ---- the HTTP side -------------------------------------------------------------------------
    def application(self) -> web.Application:
        webapp = web.Application(client_max_size=MAX_BODY)
        webapp.router.add_post(self.path, self.handle)
        webapp.router.add_get("/healthz", self.health)
        return webapp

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        self.runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, reuse_port=reuse_port or None, backlog=1024)
        await site.start()
        self.port = int(self.runner.addresses[0][1])

    async def close(self, timeout: float = 4.0) -> None:
        """Refuse new updates (503: Telegram retries them elsewhere), let in-flight ones finish."""
        self.stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=timeout)
        await self.commit.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def health(self, request: web.Request) -> web.Response:
        leader = self.app.leadership.is_leader if self.app.leadership is not None else True
        return web.json_response({"ok": not self.stopping, "pid": os.getpid(), "worker": self.worker_id,
                                  "leader": leader, "in_flight": self.in_flight,
                                  "pending_sends": self.app.sender.pending, **self.stats},
                                 status=503 if self.stopping else 200)

    async def handle(self, request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            self.stats["unauthorized"] += 1
            return web.Response(status=401, text="unauthorized")
        if self.stopping:
            self.stats["unavailable"] += 1
            return web.Response(status=503, headers={"Retry-After": "1"}, text="stopping")
        try:
            raw = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            self.stats["bad_request"] += 1
            return web.Response(status=400, text="malformed JSON")
        update_id = raw.get("update_id") if isinstance(raw, dict) else None
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            self.stats["bad_request"] += 1
            return web.Response(status=400, text="not an update")
        self.in_flight += 1
        self._idle.clear()
        try:
            return await self._process_raw(update_id, raw)
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    async def _process_raw(self, update_id: int, raw: dict[str, Any]) -> web.Response:
        from aiogram.types import Update
        from pydantic import ValidationError

        try:
            update = Update.model_validate(raw, context={"bot": self.app.bot})
        except ValidationError as exc:
            # Like the polling loop: a malformed update is logged and skipped, never retried forever.
            log.warning("skipping malformed update %s: %s", update_id, exc.error_count())
            return web.Response(status=200)
        try:
            retry = await self.process(update)
        except Exception as exc:
            retry = self._should_retry(update_id, exc)
            if retry:
                log.warning("update %s not committed (%s): asking for a redelivery", update_id,
                            type(exc).__name__)
            else:
                log.exception("update %s failed for good", update_id)
        if retry:
            self.stats["failed"] += 1
            return web.Response(status=500, text="retry")
        self.stats["accepted"] += 1
        self._first_failure.pop(update_id, None)
        return web.Response(status=200)

    def _should_retry(self, update_id: int, exc: BaseException) -> bool:
        from bot.shared import LockTimeout

        if not (is_db_outage(exc) or isinstance(exc, LockTimeout) or _is_commit_failure(exc)):
            return False
        now = time.monotonic()
        first = self._first_failure.setdefault(update_id, now)
        while len(self._first_failure) > 10_000:
            self._first_failure.popitem(last=False)
        if now - first > GIVE_UP_AFTER:
            log.error("update %s failed on database errors for %.0f s; giving it up", update_id, now - first)
            return False
        return True

    # ---- processing ----------------------------------------------------------------------------
    async def process(self, update: Update) -> bool:
        """Run one update to a committed state; True when Telegram should redeliver it."""
        from bot.app import update_chat_key

        app = self.app
        ledger = app.updates
        uid = update.update_id
        key = update_chat_key(update)
        async with app.shared.lock(f"chat:{key}"):
            if self.distributed and not ledger.seen(uid) and await ledger.is_committed(uid):
                self.stats["duplicate"] += 1
                return False
            async with self.barrier.feed():
                await app.feed(update)
            failure = ledger.failures.pop(uid, None)
            # Abandoned: a plugin bug is given up (as in polling); a database outage is retried.
            if failure is not None and not ledger.seen(uid) and self._should_retry(uid, failure):
                return True
            waiter = ledger.commit_future(uid)
            if waiter is not None:
                self.commit.request()
                try:
                    await asyncio.shield(waiter)
                except Exception as exc:
                    raise CommitFailed(str(exc)) from exc
            if self.distributed:
                # Invalidation messages out, then this chat's replies: the next update of the chat may
                # run on another worker and must see the new settings and answer after us.
                await app.shared.settle()
                if self.order_timeout and isinstance(key, int):
                    await app.sender.settled(key, self.order_timeout)
        return False


class CommitFailed(Exception):
    """The group commit covering an update failed."""


def _is_commit_failure(exc: BaseException) -> bool:
    return isinstance(exc, CommitFailed)


# ---- running ----------------------------------------------------------------------------------------
@contextlib.asynccontextmanager
async def migration_lock(url: str) -> Any:
    """Several workers starting at once: one applies migrations, the others wait (PostgreSQL)."""
    from sqlalchemy import text

    from bot.db import create_engine, is_sqlite

    if is_sqlite(url):
        yield
        return
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            try:
                yield
            finally:
                await conn.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
    finally:
        await engine.dispose()


def check_scale_config(settings: Settings, workers: int) -> str | None:
    """Why ``workers`` processes cannot run with this config, or None."""
    from bot.db import is_sqlite

    if workers <= 1:
        return None
    problems = []
    if not settings.redis.url:
        problems.append('[redis] url is not set (e.g. url = "redis://127.0.0.1:6379/0")')
    if is_sqlite(settings.database.url):
        problems.append('[database] url is SQLite; several workers need PostgreSQL '
                        '(url = "postgresql+asyncpg://user@host/db")')
    if not problems:
        return None
    return (f"--workers {workers} needs shared state: " + "; ".join(problems)
            + ". Without them run one worker (--workers 1, or polling without --webhook).")


async def serve(app: App, settings: Settings, *, reuse_port: bool = False, ready: Callable[[int], None] | None = None,
                ) -> None:
    """Start ``app`` and its webhook server; return after ``app.stop_event`` and a clean stop."""
    cfg = settings.webhook
    await app.start()
    server = WebhookServer(app, secret=secret_for(settings), path=cfg.path, commit_interval=cfg.commit_interval,
                           order_timeout=cfg.order_timeout)
    try:
        await server.start(cfg.host, cfg.port, reuse_port=reuse_port)
        log.info("webhook worker %d listening on %s:%s%s (plugins: %s)", os.getpid(), cfg.host, server.port,
                 cfg.path, ", ".join(app.plugins) or "none")
        if ready is not None:
            ready(server.port or cfg.port)
        await app.stop_event.wait()
    finally:
        await server.close()
        await app.stop(drain_timeout=4)


async def run_worker(settings: Settings, early_stop: threading.Event, *, migrate: bool = True,
                     reuse_port: bool = False) -> int:
    from bot.app import App
    from bot.migrate import upgrade

    if migrate:
        async with migration_lock(settings.database.url):
            await upgrade(settings.database.url)
    app = App(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, app.stop_event.set)
    if early_stop.is_set():
        app.stop_event.set()
    await serve(app, settings, reuse_port=reuse_port, ready=lambda _port: settle_after_start())
    log.info("webhook worker %d stopped", os.getpid())
    return 0


def supervise(args: argparse.Namespace, settings: Settings, workers: int, early_stop: threading.Event) -> int:
    """Fork ``workers`` processes on one port (SO_REUSEPORT); restart any that dies; stop them on a signal."""
    from bot.migrate import upgrade

    async def migrate() -> None:
        async with migration_lock(settings.database.url):
            await upgrade(settings.database.url)

    asyncio.run(migrate())
    cmd = [sys.executable, "-m", "bot"]
    if getattr(args, "config", None):
        cmd += ["--config", args.config]
    cmd += ["run", "--webhook", "--worker-child", "--log-level", args.log_level]
    env = dict(os.environ, QUNBOT_WEBHOOK__WORKERS=str(workers))
    procs: list[subprocess.Popen[bytes] | None] = [None] * workers
    restarts = [0] * workers
    next_start = [0.0] * workers
    log.info("starting %d webhook workers on %s:%s", workers, settings.webhook.host, settings.webhook.port)
    try:
        while not early_stop.is_set():
            now = time.monotonic()
            for i in range(workers):
                proc = procs[i]
                if proc is not None and proc.poll() is None:
                    continue
                if proc is not None:
                    log.error("worker %d (pid %d) exited with %s; restarting", i, proc.pid, proc.returncode)
                    restarts[i] += 1
                    next_start[i] = now + min(30.0, 0.5 * 2 ** min(restarts[i], 6))
                    procs[i] = None
                if now >= next_start[i]:
                    procs[i] = subprocess.Popen(cmd, env=env)
            early_stop.wait(0.2)
    finally:
        live = [p for p in procs if p is not None and p.poll() is None]
        for p in live:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 9.5
        for p in live:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
    log.info("all webhook workers stopped")
    return 0


def cmd_run_webhook(args: argparse.Namespace, settings: Settings, early_stop: threading.Event) -> int:
    workers = args.workers if args.workers is not None else settings.webhook.workers
    problem = check_scale_config(settings, workers)
    if problem is not None:
        raise ConfigError(problem)
    if args.worker_child:
        return asyncio.run(run_worker(settings, early_stop, migrate=False, reuse_port=True))
    if workers > 1:
        return supervise(args, settings, workers, early_stop)
    return asyncio.run(run_worker(settings, early_stop))


# ---- qunbot webhook set|delete|info -----------------------------------------------------------------
def cmd_webhook(args: argparse.Namespace, settings: Settings) -> int:
    async def go() -> int:
        from aiogram import Bot
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer

        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram.api_server.rstrip("/")))
        bot = Bot(settings.token(), session=session)
        try:
            if args.webhook_command == "set":
                url = args.url or settings.webhook.url
                if not url:
                    raise ConfigError("no webhook URL: set [webhook] url or pass --url https://...")
                await bot.set_webhook(
                    url, secret_token=secret_for(settings), max_connections=settings.webhook.max_connections,
                    allowed_updates=allowed_updates(settings), drop_pending_updates=False,
                )
                print(f"webhook set: {url} (max_connections {settings.webhook.max_connections}; "
                      "pending updates kept)")
            elif args.webhook_command == "delete":
                await bot.delete_webhook(drop_pending_updates=False)
                print("webhook deleted (pending updates kept; polling works again)")
            else:
                info = await bot.get_webhook_info()
                print(json.dumps(info.model_dump(mode="json", exclude_none=True), ensure_ascii=False, indent=2))
        finally:
            await session.close()
        return 0

    return asyncio.run(go())


def add_webhook_cli(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "webhook", help="manage Telegram's webhook (setWebhook, deleteWebhook, getWebhookInfo)")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    wsub = p.add_subparsers(dest="webhook_command", required=True)
    s = wsub.add_parser("set", help="point Telegram at [webhook] url with the secret token")
    s.add_argument("--config", "-c", default=argparse.SUPPRESS)
    s.add_argument("--url", default=None, help="public HTTPS URL (default: [webhook] url)")
    for name, text in (("delete", "remove the webhook (keeps pending updates)"),
                       ("info", "show getWebhookInfo")):
        q = wsub.add_parser(name, help=text)
        q.add_argument("--config", "-c", default=argparse.SUPPRESS)
    return p
