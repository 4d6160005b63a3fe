from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.emulator import EmulatorSession, ManualClock, World, start_server

GROUP = -1001
OTHER = -1002
OWNER, ALICE, BOB, CAROL = 111, 201, 202, 203
T0 = 1_750_000_000.0


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def world(clock: ManualClock) -> World:
    w = World(clock=clock)
    w.add_user(OWNER, "店长", "owner")
    w.add_user(ALICE, "Alice", "alice")
    w.add_user(BOB, "Bob", "bob")
    w.add_user(CAROL, "小红")
    w.add_chat(GROUP, "粉丝福利群")
    w.add_chat(OTHER, "二群", bot_status="member")
    for chat in (GROUP, OTHER):
        w.set_member(chat, OWNER, "creator")
        w.set_member(chat, ALICE, "member")
        w.set_member(chat, BOB, "member")
    return w


async def _close_aiohttp(session: AiohttpSession) -> None:
    # AiohttpSession.close() sleeps 0.25 s for TLS shutdown; plain HTTP needs none of that
    if session._session is not None and not session._session.closed:
        await session._session.close()


@pytest.fixture(params=["session", "http"])
async def bot(request: pytest.FixtureRequest, world: World) -> AsyncIterator[Bot]:
    if request.param == "session":
        yield Bot(world.token, session=EmulatorSession(world))
        return
    server = await start_server(world)
    session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
    try:
        yield Bot(world.token, session=session)
    finally:
        await _close_aiohttp(session)
        await server.close()


@pytest.fixture
async def http_bot(world: World) -> AsyncIterator[tuple[Bot, str]]:
    server = await start_server(world)
    session = AiohttpSession(api=TelegramAPIServer.from_base(server.base_url))
    try:
        yield Bot(world.token, session=session), server.base_url
    finally:
        await _close_aiohttp(session)
        await server.close()
