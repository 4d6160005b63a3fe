"""Helpers for the scale-out tests: a counting test plugin, in-process and subprocess webhook workers,
a TCP proxy that can drop a server off the network and bring it back, and config writers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message
from sqlalchemy import BigInteger, Column, Integer, MetaData, Table, select

from bot.app import App
from bot.context import Ctx
from bot.db import Base, upsert
from bot.emulator.world import World
from bot.plugin import Plugin
from bot.webhook import WebhookServer, secret_for
from tests.harness import TOKEN, Harness, make_settings

ROOT = Path(__file__).resolve().parents[2]

# A table outside Base.metadata (the migration drift test must not see it).
COUNTER_METADATA = MetaData()
COUNTER = Table(
    "scale_test_counter", COUNTER_METADATA,
    Column("chat_id", BigInteger, primary_key=True, autoincrement=False),
    Column("messages", Integer, nullable=False),
)


class CounterRuntime:
    def __init__(self, app: App) -> None:
        self.app = app
        self.buffer: Counter[int] = Counter()
        self.delay = float(os.environ.get("SCALE_TEST_OBSERVER_DELAY", "0"))


async def _count(message: Message, ctx: Ctx) -> None:
    runtime: CounterRuntime = ctx.runtime
    if runtime.delay:
        await asyncio.sleep(runtime.delay)  # makes "killed mid-update" likely in the crash test
    runtime.buffer[message.chat.id] += 1


async def _flush(app: App, session: Any) -> None:
    runtime: CounterRuntime = app.runtime("scalecount")
    rows = [{"chat_id": c, "messages": n} for c, n in runtime.buffer.items()]
    runtime.buffer.clear()
    await upsert(session, COUNTER, rows, ["chat_id"], increment=["messages"])


COUNTER_PLUGIN = Plugin(
    name="scalecount", description="counts group messages in the batch flush (tests only)",
    observers=(_count,), runtime=CounterRuntime, flush=_flush,
)


async def create_schema(app: App) -> None:
    async with app.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
        await conn.run_sync(COUNTER_METADATA.create_all)


async def counts(app_or_engine: Any) -> dict[int, int]:
    engine = app_or_engine.engine if isinstance(app_or_engine, App) else app_or_engine
    async with engine.connect() as conn:
        rows = (await conn.execute(select(COUNTER.c.chat_id, COUNTER.c.messages))).all()
    return {int(c): int(n) for c, n in rows}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answered(world: World, chat_id: int) -> list[int]:
    """Ids of the messages the bot replied to in ``chat_id``, in the order the replies were sent."""
    return [m["reply_to_message"]["message_id"] for m in world.bot_messages(chat_id) if m.get("reply_to_message")]


async def wait_for(predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def worker_config(db_url: str, api: str, *, port: int, redis_url: str | None = None, prefix: str = "qunbot:",
                  extra: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "database": {"url": db_url},
        "webhook": {"host": "127.0.0.1", "port": port, "path": "/tg", "secret_token": "s3cret-Token_1"},
        "bot": {"flush_interval": 30.0},
    }
    if redis_url:
        cfg["redis"] = {"url": redis_url, "prefix": prefix}
    for section, values in (extra or {}).items():
        cfg[section] = {**cfg.get(section, {}), **values}
    return cfg


class Worker:
    """One webhook worker in this process: its own App (its own memory), a shared DB and Redis."""

    def __init__(self, api: str, config: dict[str, Any], *, plugins: list[str] | None = None,
                 plugin_objects: dict[str, Plugin] | None = None, nlp: Any = None, reuse_port: bool = True) -> None:
        self.settings = make_settings(config["database"]["url"], {k: v for k, v in config.items() if k != "database"},
                                      api_server=api)
        self.api = api
        self.plugins = plugins
        self.plugin_objects = plugin_objects
        self.nlp = nlp
        self.reuse_port = reuse_port
        self.app: App
        self.server: WebhookServer

    async def start(self, *, schema: bool = False) -> Worker:
        session = AiohttpSession(api=TelegramAPIServer.from_base(self.api))
        self.app = App(self.settings, session=session, plugins=self.plugins, plugin_objects=self.plugin_objects,
                       nlp=self.nlp)
        if schema:
            await create_schema(self.app)
        await self.app.start()
        cfg = self.settings.webhook
        self.server = WebhookServer(self.app, secret=secret_for(self.settings), path=cfg.path,
                                    commit_interval=cfg.commit_interval, order_timeout=cfg.order_timeout)
        await self.server.start(cfg.host, cfg.port, reuse_port=self.reuse_port)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}{self.settings.webhook.path}"

    @property
    def secret(self) -> str:
        return secret_for(self.settings)

    async def stop(self) -> None:
        await self.server.close()
        await self.app.stop(drain_timeout=5)

    async def crash(self) -> None:
        """Vanish like a SIGKILL: no flush, no lease release, connections cut."""
        app = self.app
        self.server.stopping = True
        if self.server.runner is not None:
            with contextlib.suppress(Exception):
                await self.server.runner.cleanup()
        if app.leadership is not None:
            await app.leadership.abandon()
            term = getattr(app, "_term_timers", None)
            if term is not None:
                term.cancel()
        if app.scheduler.running:
            app.scheduler.shutdown(wait=False)
        for task in app._tasks:
            task.cancel()
        await asyncio.gather(*app._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await app.shared.close()
        with contextlib.suppress(Exception):
            await app.bot.session.close()
        with contextlib.suppress(Exception):
            await app.engine.dispose()


def write_toml(path: Path, api: str, config: dict[str, Any]) -> Path:
    """A config file for a subprocess worker (TOKEN, the emulator, fast pacing limits, ``config``)."""
    lines = ["[telegram]", f'token = "{TOKEN}"', f'api_server = "{api}"', "rate_global_per_second = 100000",
             "rate_chat_per_minute = 100000", ""]
    for section, values in config.items():
        lines.append(f"[{section}]")
        for key, value in values.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, int | float):
                lines.append(f"{key} = {value}")
            elif isinstance(value, list):
                lines.append(f"{key} = {value!r}")
            else:
                lines.append(f'{key} = "{value}"')
        lines.append("")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


async def spawn_worker(cfg: Path, log: Path, *, plugins: str = "counter",
                       env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """``python -m tests.scale.worker``: the production webhook code in its own process."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("QUNBOT_")}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.scale.worker", "--config", str(cfg), "--plugins", plugins,
        cwd=str(ROOT), env={**base, **(env or {})}, stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT,
    )


async def worker_ready(port: int, timeout: float = 60.0, *, count: int = 1) -> list[dict[str, Any]]:
    """Wait until ``count`` distinct worker processes answer /healthz on ``port``."""
    import aiohttp

    seen: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        while len(seen) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {len(seen)} of {count} workers ready on port {port}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        data = await resp.json()
                        seen[data["worker"]] = data
                        continue
            await asyncio.sleep(0.1)
    return list(seen.values())


class TcpProxy:
    """127.0.0.1:port -> target; ``down()`` closes every connection and the port, ``up()`` reopens it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.AbstractServer | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def up(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)

    async def down(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                transport = writer.transport
                transport.abort()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.transport.abort()

        for task in (asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))):
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)


@contextlib.asynccontextmanager
async def running_pair(tmp_path: Path, pg_url: str, redis: tuple[str, str], plugin: str, *,
                       plugin_config: dict[str, Any] | None = None,
                       nlp: Any = None) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two workers (Harnesses with their own App and memory) over one emulated Telegram and one clock,
    sharing PostgreSQL and Redis; each update goes to the worker the test picks. Both are stopped when
    the block ends."""
    url, prefix = redis
    config: dict[str, Any] = {"redis": {"url": url, "prefix": prefix}}
    if plugin_config is not None:
        config["plugins"] = {plugin: plugin_config}
    harnesses = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        harnesses.append(Harness(tmp_path / name, plugins=[plugin], config=config, db_url=pg_url, nlp=nlp))
    a, b = harnesses
    b.world, b.clock = a.world, a.clock
    await a.start()
    try:
        await b.start(create_schema=False)
        try:
            assert a.app.shared.distributed and b.app.shared.distributed
            yield a, b
        finally:
            await b.stop()
    finally:
        await a.stop()
