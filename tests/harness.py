"""Drive the real bot (App + Dispatcher + plugins) against the emulated Telegram world.

In-process by default (``EmulatorSession``: no sockets, fast); ``transport="http"`` uses aiogram's real
aiohttp client against the emulator's HTTP server. Both see the same ``World``. Time is a FakeClock
shared by the bot and the world: ``advance()`` moves it and fires due timers.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.app import App
from bot.clock import FakeClock
from bot.db import Base
from bot.emulator.session import EmulatorSession
from bot.emulator.world import World
from bot.runner import ALLOWED_UPDATES, RawGetUpdates, parse_updates
from bot.settings import Settings, load_settings

TOKEN = "123456:TEST-token-for-the-emulator-only"
GROUP = -1001
OTHER_GROUP = -1002
LOG_CHAT = -1009
OWNER = 999  # [bot].owners
CREATOR = 111  # the group's creator
ADMIN = 222  # a group admin
ALICE, BOB, CAROL, DAVE = 1001, 1002, 1003, 1004
START = 1_795_000_000.0  # 2026-11-18 ~07:06 UTC: a fixed, reproducible start


def make_settings(db_url: str, extra: dict[str, Any] | None = None, api_server: str = "http://emulator") -> Settings:
    data: dict[str, Any] = {
        "telegram": {"token": TOKEN, "api_server": api_server, "rate_chat_per_minute": 1000,
                     "rate_global_per_second": 1000},
        "database": {"url": db_url},
        "bot": {"owners": [OWNER], "log_chat_id": LOG_CHAT, "timezone": "Asia/Shanghai", "language": "zh_CN"},
    }
    for section, values in (extra or {}).items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section] = {**data[section], **values}
        else:
            data[section] = values
    return load_settings(data=data)


def populate(world: World) -> None:
    """Two groups, a log chat, an owner, a group creator, an admin and four members."""
    world.add_user(OWNER, "运营老板", username="boss")
    world.add_user(CREATOR, "店长", username="shopowner")
    world.add_user(ADMIN, "管理员小王", username="xiaowang")
    for uid, name, uname in ((ALICE, "Alice", "alice"), (BOB, "Bob", "bob"), (CAROL, "小红", "carol"),
                             (DAVE, "大卫", "dave")):
        world.add_user(uid, name, username=uname)
    for chat_id, title in ((GROUP, "粉丝福利群"), (OTHER_GROUP, "第二个群"), (LOG_CHAT, "运营日志")):
        world.add_chat(chat_id, title)
        world.set_member(chat_id, CREATOR, "creator")
        world.set_member(chat_id, ADMIN, "administrator", can_restrict_members=True, can_delete_messages=True)
    for chat_id in (GROUP, OTHER_GROUP, LOG_CHAT):
        world.set_member(chat_id, OWNER, "member")
    for chat_id in (GROUP, OTHER_GROUP):
        for uid in (ALICE, BOB, CAROL):
            world.set_member(chat_id, uid, "member")


class Harness:
    def __init__(
        self,
        tmp_path: Path,
        *,
        plugins: Iterable[str] | None = None,
        config: dict[str, Any] | None = None,
        transport: Literal["memory", "http"] = "memory",
        db_url: str | None = None,
        plugin_objects: dict[str, Any] | None = None,
        nlp: Any = None,
    ) -> None:
        self.tmp_path = tmp_path
        self.clock = FakeClock(START)
        self.world = World(token=TOKEN, clock=self.clock.time)
        populate(self.world)
        self.db_url = db_url or f"sqlite+aiosqlite:///{tmp_path / 'qunbot.db'}"
        self._plugins = list(plugins) if plugins is not None else None
        self._plugin_objects = plugin_objects
        self._nlp = nlp
        self._config = config or {}
        self.transport = transport
        self.server: Any = None
        self.offset: int | None = None
        self.app: App

    async def start(self, *, create_schema: bool = True) -> Harness:
        if self.transport == "http":
            from bot.emulator.http import start_server

            self.server = await start_server(self.world)
            settings = make_settings(self.db_url, self._config, api_server=self.server.base_url)
            session: Any = AiohttpSession(api=TelegramAPIServer.from_base(self.server.base_url))
        else:
            settings = make_settings(self.db_url, self._config)
            session = EmulatorSession(self.world)
        self.app = App(settings, session=session, clock=self.clock, plugins=self._plugins,
                       plugin_objects=self._plugin_objects, nlp=self._nlp)
        if create_schema:
            async with self.app.engine.begin() as conn:
                await conn.run_sync(Base.metadata.create_all)
        await self.app.start(background=False)
        return self

    async def restart(self) -> None:
        """Stop the bot and start a new App over the same database and world (a clean restart)."""
        await self.stop()
        await self.start(create_schema=False)

    async def crash(self) -> None:
        """Drop the App without flushing or confirming anything (like SIGKILL)."""
        await self.app.bot.session.close()
        await self.app.engine.dispose()
        self.offset = None

    async def stop(self) -> None:
        await self.app.stop(drain_timeout=5)
        if self.server is not None:
            await self.server.close()
            self.server = None

    # ---- delivering updates the way the polling loop does -----------------------------------
    async def deliver(self) -> int:
        """Fetch every pending update, process it as a batch, commit, confirm; wait for sends."""
        total = 0
        while True:
            raw = await self.app.bot(
                RawGetUpdates(offset=self.offset, limit=100, timeout=0, allowed_updates=ALLOWED_UPDATES)
            )
            if not raw:
                break
            updates, highest = parse_updates(self.app, raw)
            await self.app.process_batch(updates)
            await self.app.flush()
            if highest is not None:
                self.offset = highest + 1
            total += len(updates)
        await self.app.sender.drain(10)
        return total

    async def say(self, chat_id: int, user_id: int, text: str | None = None, **extra: Any) -> dict[str, Any]:
        message = self.world.send_message(chat_id, user_id, text, **extra)
        await self.deliver()
        return message

    async def join(self, chat_id: int, user_id: int, **kwargs: Any) -> None:
        self.world.join(chat_id, user_id, **kwargs)
        await self.deliver()

    async def leave(self, chat_id: int, user_id: int) -> None:
        self.world.leave(chat_id, user_id)
        await self.deliver()

    async def press(self, chat_id: int, user_id: int, message_id: int, data: str) -> str:
        callback_id = self.world.press_button(chat_id, user_id, message_id, data)
        await self.deliver()
        return callback_id

    async def advance(self, seconds: float) -> None:
        """Move time forward, fire due timers, then deliver what they caused."""
        self.clock.advance(seconds)
        await self.app.timers.run_due(self.app)
        await self.app.sender.drain(10)
        await self.deliver()

    # ---- reading what the bot did -----------------------------------------------------------
    def calls(self, *methods: str) -> list[Any]:
        return self.world.calls_of(*methods)

    def texts(self, chat_id: int) -> list[str]:
        return self.world.sent_texts(chat_id)

    def last_text(self, chat_id: int) -> str:
        texts = self.texts(chat_id)
        assert texts, f"the bot said nothing in {chat_id}"
        return texts[-1]

    def clear(self) -> None:
        self.world.clear_calls()
