from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import (
    CallbackQuery,
    ChatPermissions,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
)

from bot.emulator import (
    EmulatorSession,
    SandboxClock,
    World,
    build_sandbox_world,
    run_sandbox,
    start_server,
)
from bot.emulator.sandbox import parse_duration


def _toy_dispatcher() -> Dispatcher:
    dp = Dispatcher()

    @dp.message(F.text == "hi")
    async def on_hi(message: Message) -> None:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="点我", callback_data="poke")]]
        )
        await message.answer(
            f"你好 {message.from_user.first_name if message.from_user else ''}", reply_markup=markup
        )

    @dp.message(F.text == "mute me")
    async def on_mute(message: Message, bot: Bot) -> None:
        assert message.from_user is not None
        until = int(message.date.timestamp()) + 600
        await bot.restrict_chat_member(
            message.chat.id, message.from_user.id, ChatPermissions(can_send_messages=False), until_date=until
        )

    @dp.callback_query(F.data == "poke")
    async def on_poke(query: CallbackQuery) -> None:
        await query.answer("被戳了", show_alert=True)

    return dp


@contextlib.asynccontextmanager
async def _running_bot(world: World, http: bool) -> AsyncIterator[None]:
    server = await start_server(world) if http else None
    if server is not None:
        session: AiohttpSession | EmulatorSession = AiohttpSession(
            api=TelegramAPIServer.from_base(server.base_url)
        )
    else:
        session = EmulatorSession(world)
    bot = Bot(world.token, session=session)
    dp = _toy_dispatcher()
    task = asyncio.create_task(dp.start_polling(bot, handle_signals=False, polling_timeout=5))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if isinstance(session, AiohttpSession) and session._session is not None:
            await session._session.close()
        if server is not None:
            await server.close()


async def test_sandbox_repl_drives_a_real_bot() -> None:
    clock = SandboxClock()
    world = build_sandbox_world(clock=clock)
    lines: list[str] = []
    state = {"i": 0}
    script = [
        "hi",
        None,
        ":press 2 1",
        None,
        "mute me",
        None,
        ":who",
        ":clock +11m",
        ":who",
        ":as bob",
        ":join nobody",
        ":leave carol",
        ":log 3",
        ":bogus",
        ":quit",
    ]
    waits = {1: "sendMessage", 3: "answerCallbackQuery", 5: "restrictChatMember"}

    async def input_func(prompt: str) -> str:
        while True:
            index = state["i"]
            state["i"] += 1
            step = script[index]
            if step is not None:
                return step
            await world.wait_for_call(waits[index], timeout=5)
            await asyncio.sleep(0.02)  # let the watcher print

    async with _running_bot(world, http=True):
        await asyncio.wait_for(run_sandbox(world, input_func=input_func, output=lines.append), 15)
    text = "\n".join(lines)
    assert "   #1 alice: hi" in text
    assert "🤖 #2 sendMessage → 粉丝福利群: 你好 Alice" in text
    assert "      [1] 点我 (cb: poke)" in text
    assert "alice pressed [点我]" in text
    assert "🤖 answerCallbackQuery: 被戳了 (alert)" in text
    assert "🤖 restrictChatMember alice until" in text and "(muted)" in text
    assert "world time is now" in text
    who_blocks = [line for line in lines if "alice" in line and ("member" in line or "restricted" in line)]
    assert "restricted" in who_blocks[0] and who_blocks[-1].split()[-1] in ("member", "you")
    assert "now acting as bob" in text and "⚠ no user named 'nobody'" in text and "carol left" in text
    assert "⚠ unknown command :bogus" in text
    assert lines[-1] == "bye"
    assert clock.offset == pytest.approx(660)


async def test_sandbox_eof_and_errors() -> None:
    world = build_sandbox_world()
    lines: list[str] = []
    feed = iter([":chat -1002", ":press 5 1", ":reply x", ":chat dm", "/start", ":clock +1h"])

    def input_func(prompt: str) -> str:
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    await run_sandbox(world, input_func=input_func, output=lines.append)
    text = "\n".join(lines)
    assert "now in 粉丝二群" in text and "message #5 has 0 button(s)" in text
    assert "usage: :reply MSG_ID text" in text and "now in DM @alice" in text
    assert world.messages_in(201)[0]["text"] == "/start"
    assert world.pending_updates()[-1]["message"]["chat"]["type"] == "private"
    assert parse_duration("+2m") == 120 and parse_duration("1d") == 86400


async def test_sandbox_with_in_process_session() -> None:
    world = build_sandbox_world()
    lines: list[str] = []
    steps = iter(["hi"])

    async def input_func(prompt: str) -> str:
        for line in steps:
            return line
        await world.wait_for_call("sendMessage", timeout=5)
        await asyncio.sleep(0.02)
        raise EOFError

    async with _running_bot(world, http=False):
        await asyncio.wait_for(run_sandbox(world, input_func=input_func, output=lines.append), 10)
    assert any("sendMessage → 粉丝福利群: 你好 Alice" in line for line in lines)
