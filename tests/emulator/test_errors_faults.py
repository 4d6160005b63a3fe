from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import TelegramMethod

from bot.emulator import EmulatorApiError, EmulatorSession, ManualClock, World

from .conftest import ALICE, GROUP


async def test_bad_requests(bot: Bot, world: World) -> None:
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(-999, "x")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(GROUP, "长" * 4097)
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(GROUP, "   ")
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("new", chat_id=GROUP, message_id=99)
    with pytest.raises(TelegramBadRequest, match="message to delete not found"):
        await bot.delete_message(GROUP, 99)
    sent = await bot.send_message(GROUP, "same")
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text("same", chat_id=GROUP, message_id=sent.message_id)
    edited = await bot.edit_message_text("changed", chat_id=GROUP, message_id=sent.message_id)
    assert not isinstance(edited, bool) and edited.text == "changed" and edited.edit_date is not None
    assert await bot.delete_message(GROUP, sent.message_id)
    assert world.sent_texts(GROUP, include_deleted=False) == []
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query("12345")
    assert len(world.messages_in(GROUP)) == 0  # no failed call left anything behind


async def test_forbidden_dm_until_started(bot: Bot, world: World) -> None:
    with pytest.raises(TelegramForbiddenError, match="bot can't initiate conversation with a user"):
        await bot.send_message(ALICE, "私聊")
    world.user_starts_bot(ALICE)
    assert (await bot.send_message(ALICE, "私聊")).chat.type == "private"
    world.user_blocks_bot(ALICE)
    with pytest.raises(TelegramForbiddenError, match="blocked"):
        await bot.send_message(ALICE, "again")


async def test_wrong_token_is_unauthorized(bot: Bot, world: World) -> None:
    other = Bot("999:nope", session=bot.session)
    with pytest.raises(TelegramUnauthorizedError):
        await other.get_me()


class _Unknown(TelegramMethod[bool]):
    __returning__ = bool
    __api_method__ = "doMagic"


async def test_unknown_method_not_found(bot: Bot) -> None:
    with pytest.raises(TelegramNotFound):
        await bot(_Unknown())


async def test_deterministic_faults(bot: Bot, world: World) -> None:
    world.faults.retry_after = 3
    world.faults.next("429", method="sendMessage")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(GROUP, "a")
    assert info.value.retry_after == 3
    world.faults.next("502")
    with pytest.raises(TelegramServerError):
        await bot.send_message(GROUP, "b")
    world.faults.next("500")
    with pytest.raises(TelegramServerError):
        await bot.get_chat(GROUP)
    world.faults.next("drop", count=2)
    for _ in range(2):
        with pytest.raises(TelegramNetworkError):
            await bot.send_message(GROUP, "c")
    assert world.messages_in(GROUP) == []  # failed calls had no effect
    assert (await bot.send_message(GROUP, "d")).message_id == 1
    assert world.faults.served == {"429": 1, "502": 1, "500": 1, "drop": 2}
    assert [c.status for c in world.calls_of("sendMessage")] == [429, 502, 0, 0, 200]


async def test_get_updates_exempt_unless_named(world: World) -> None:
    world.faults.next("502")
    assert await world.call("getUpdates") == []
    with pytest.raises(EmulatorApiError):
        await world.call("getMe")
    world.faults.next("502", method="getUpdates")
    with pytest.raises(EmulatorApiError) as info:
        await world.call("getUpdates")
    assert info.value.status == 502


async def test_fault_plan_statistics(world: World) -> None:
    world.faults.plan(0.3, kinds=("429", "502"), seed=7)
    failures = 0
    for _ in range(400):
        try:
            await world.call("getMe")
        except EmulatorApiError:
            failures += 1
        await world.call("getUpdates")  # exempt
    assert failures == world.faults.total
    assert 90 <= failures <= 150
    assert set(world.faults.served) == {"429", "502"}
    assert abs(world.faults.served["429"] - world.faults.served["502"]) < failures * 0.3
    replay = World()
    replay.faults.plan(0.3, kinds=("429", "502"), seed=7)
    log = []
    for _ in range(400):
        try:
            await replay.call("getMe")
        except EmulatorApiError as exc:
            log.append(exc.status)
    assert len(log) == failures  # same seed, same faults


async def test_fault_plan_methods_and_drop_in_session(world: World) -> None:
    world.faults.plan(1.0, kinds=("drop",), methods={"sendMessage"})
    bot = Bot(world.token, session=EmulatorSession(world))
    assert (await bot.get_me()).id == world.bot_id
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(GROUP, "x")
    world.faults.clear()
    await bot.send_message(GROUP, "x")


async def test_rate_limits(bot: Bot, world: World, clock: ManualClock) -> None:
    world.enforce_rate_limits = True
    for i in range(20):
        await bot.send_message(GROUP, f"m{i}")
    with pytest.raises(TelegramRetryAfter) as info:
        await bot.send_message(GROUP, "one too many")
    assert 1 <= info.value.retry_after <= 60
    clock.advance(61)
    await bot.send_message(GROUP, "ok again")
    world.user_starts_bot(ALICE)
    for i in range(9):
        await bot.send_message(ALICE, f"dm{i}")
    clock.advance(0.5)
    for i in range(20):
        await bot.send_message(ALICE, f"dm{i}")
    with pytest.raises(TelegramRetryAfter):  # 30 per second per bot
        await bot.send_message(ALICE, "flood")
