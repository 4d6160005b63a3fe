from __future__ import annotations

import asyncio

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramConflictError
from aiogram.types import Update

from bot.emulator import World

from .conftest import ALICE, BOB, GROUP, OTHER, OWNER


async def test_get_updates_offset_confirms(bot: Bot, world: World) -> None:
    for text in ("one", "two", "three"):
        world.send_message(GROUP, ALICE, text)
    first = await bot.get_updates(limit=2)
    assert [u.message.text for u in first if u.message] == ["one", "two"]
    assert [u["update_id"] for u in world.pending_updates()] == [1, 2, 3]  # nothing confirmed yet
    again = await bot.get_updates(offset=first[-1].update_id + 1)
    assert [u.message.text for u in again if u.message] == ["three"]
    assert world.confirmed_update_ids == [1, 2]
    assert await bot.get_updates(offset=again[-1].update_id + 1) == []
    assert world.confirmed_update_ids == [1, 2, 3] and world.pending_updates() == []


async def test_negative_offset_keeps_last_updates(world: World) -> None:
    for i in range(5):
        world.send_message(GROUP, ALICE, f"m{i}")
    updates = await world.call("getUpdates", offset=-2)
    assert [u["message"]["text"] for u in updates] == ["m3", "m4"]
    assert world.confirmed_update_ids == [1, 2, 3]


async def test_long_poll_wakes_on_new_update(bot: Bot, world: World) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    assert not task.done()
    world.send_message(GROUP, BOB, "醒醒")
    updates = await asyncio.wait_for(task, 2)
    assert updates[0].message is not None and updates[0].message.text == "醒醒"
    assert loop.time() - started < 2


async def test_long_poll_times_out_empty(world: World) -> None:
    assert await world.call("getUpdates", timeout=0) == []
    loop = asyncio.get_running_loop()
    t = loop.time()
    assert await world.call("getUpdates", timeout=0.2) == []
    assert loop.time() - t >= 0.15


async def test_second_poller_conflicts_first(bot: Bot, world: World) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    second = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.05)
    world.send_message(GROUP, ALICE, "hi")
    with pytest.raises(TelegramConflictError):
        await asyncio.wait_for(first, 2)
    assert (await asyncio.wait_for(second, 2))[0].message is not None


async def test_join_sends_chat_member_and_service_message(bot: Bot, world: World) -> None:
    world.add_user(301, "Dave", "dave")
    link = await bot.create_chat_invite_link(GROUP, name="双十一")
    assert link.invite_link.startswith("https://t.me/+") and link.creator.id == world.bot_id
    world.join(GROUP, 301, invite_link=link.invite_link)
    updates = await bot.get_updates(allowed_updates=["message", "chat_member"])
    assert isinstance(updates[0], Update)
    cm = updates[0].chat_member
    assert cm is not None and cm.old_chat_member.status == "left" and cm.new_chat_member.status == "member"
    assert (
        cm.new_chat_member.user.id == 301 and cm.invite_link is not None and cm.invite_link.name == "双十一"
    )
    message = updates[1].message
    assert message is not None and message.new_chat_members is not None
    assert message.new_chat_members[0].id == 301
    assert world.member(GROUP, 301)["status"] == "member"
    assert any(m.get("new_chat_members") for m in world.messages_in(GROUP))


async def test_default_allowed_updates_skip_chat_member(world: World) -> None:
    world.add_user(301, "Dave")
    world.join(GROUP, 301)
    updates = await world.call("getUpdates")
    assert [World.update_type(u) for u in updates] == ["message"]
    assert [World.update_type(u) for u in world.dropped_updates] == ["chat_member"]
    # the list given last is remembered
    world.leave(GROUP, 301)
    second = await world.call(
        "getUpdates", offset=updates[-1]["update_id"] + 1, allowed_updates=["chat_member"]
    )
    assert [World.update_type(u) for u in second] == ["chat_member"]  # the left_chat_member message dropped
    world.join(GROUP, 301)
    third = await world.call("getUpdates", offset=second[-1]["update_id"] + 1)
    assert [World.update_type(u) for u in third] == ["chat_member"]


async def test_leave_and_privacy_mode(world: World) -> None:
    world.leave(GROUP, BOB)
    assert world.member(GROUP, BOB)["status"] == "left"
    # in OTHER the bot is a plain member: privacy mode hides ordinary chatter, not commands or replies
    world.send_message(OTHER, ALICE, "随便聊聊")
    world.send_message(OTHER, ALICE, "/checkin")
    world.send_message(OTHER, OWNER, "hey @qunbot_bot")
    updates = await world.call("getUpdates", allowed_updates=["message"])
    texts = [u["message"].get("text") for u in updates]
    assert "随便聊聊" not in texts and "/checkin" in texts and "hey @qunbot_bot" in texts
    command = next(u for u in updates if u["message"].get("text") == "/checkin")["message"]
    assert command["entities"] == [{"type": "bot_command", "offset": 0, "length": 8}]


async def test_edit_callback_and_channel_updates(bot: Bot, world: World) -> None:
    msg = world.send_message(GROUP, ALICE, "typo")
    world.edit_message(GROUP, msg["message_id"], "fixed")
    world.add_chat(-100777, "频道", type="channel")
    world.channel_post(-100777, "新品上架")
    updates = await bot.get_updates()
    assert updates[1].edited_message is not None and updates[1].edited_message.text == "fixed"
    assert updates[2].channel_post is not None and updates[2].channel_post.text == "新品上架"


async def test_push_update_raw(world: World) -> None:
    update_id = world.push_update({"message": {"weird": True}})
    assert world.pending_updates()[-1] == {"update_id": update_id, "message": {"weird": True}}


async def test_private_chat_on_demand(bot: Bot, world: World) -> None:
    world.send_message(ALICE, ALICE, "/start")
    updates = await bot.get_updates()
    assert updates[0].message is not None and updates[0].message.chat.type == "private"
    reply = await bot.send_message(ALICE, "你好")
    assert reply.chat.id == ALICE and world.sent_texts(ALICE) == ["你好"]


def test_world_survives_across_event_loops() -> None:
    import asyncio as aio

    world = World()
    world.add_user(1, "U")
    world.add_chat(-5, "G")
    world.set_member(-5, 1, "member")
    assert aio.run(world.call("getUpdates", timeout=0.01)) == []
    world.send_message(-5, 1, "second loop")
    assert aio.run(world.call("getUpdates", timeout=0.01))[0]["message"]["text"] == "second loop"


async def test_pushed_redelivery_is_delivered_once(world: World) -> None:
    world.send_message(GROUP, ALICE, "/id")
    raw = world.pending_updates()[-1]
    first = await world.call("getUpdates")
    await world.call("getUpdates", offset=first[-1]["update_id"] + 1)
    world.push_update(raw)  # Telegram redelivers an update the bot already saw
    world.push_update({"update_id": "bogus", "message": {}})
    again = await world.call("getUpdates", offset=first[-1]["update_id"] + 1)
    assert [u["update_id"] for u in again] == [raw["update_id"], "bogus"]
    assert await world.call("getUpdates", offset=first[-1]["update_id"] + 1) == []
    assert world.pending_updates() == []
