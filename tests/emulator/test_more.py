from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError, TelegramForbiddenError
from aiogram.types import BufferedInputFile

from bot.emulator import EmulatorApiError, World, WorldError

from .conftest import ALICE, BOB, GROUP, OTHER, OWNER


async def test_anonymous_admin_and_channel_sender(bot: Bot, world: World) -> None:
    world.send_message(GROUP, OWNER, "匿名公告", sender_chat=True)
    world.send_message(
        GROUP, ALICE, "频道身份", sender_chat={"id": -100555, "type": "channel", "title": "店铺频道"}
    )
    updates = await bot.get_updates()
    first, second = (u.message for u in updates)
    assert first is not None and first.sender_chat is not None and first.sender_chat.id == GROUP
    assert first.from_user is not None and first.from_user.username == "GroupAnonymousBot"
    assert second is not None and second.from_user is not None and second.from_user.username == "Channel_Bot"


async def test_delete_rights_and_history(bot: Bot, world: World) -> None:
    mine = await bot.send_message(OTHER, "bot says")
    theirs = world.send_message(OTHER, ALICE, "/checkin")
    with pytest.raises(TelegramBadRequest, match="message can't be deleted"):
        await bot.delete_message(OTHER, theirs["message_id"])  # the bot is no admin in OTHER
    assert await bot.delete_message(OTHER, mine.message_id)
    history = world.messages_in(OTHER, include_deleted=True)
    assert [(m["message_id"], m["deleted"]) for m in history] == [(1, True), (2, False)]
    a = world.send_message(GROUP, ALICE, "spam 1")
    b = world.send_message(GROUP, BOB, "spam 2")
    assert await bot.delete_messages(GROUP, [a["message_id"], b["message_id"], 999])
    assert world.messages_in(GROUP) == [] and world.is_deleted(GROUP, a["message_id"])


async def test_webhook_blocks_polling(bot: Bot, world: World) -> None:
    assert await bot.set_webhook("https://example.com/hook")
    with pytest.raises(TelegramConflictError):
        await bot.get_updates()
    info = await bot.get_webhook_info()
    assert info.url == "https://example.com/hook"
    world.send_message(GROUP, ALICE, "x")
    assert await bot.delete_webhook(drop_pending_updates=True)
    assert await bot.get_updates() == [] and len(world.dropped_updates) == 1


async def test_leave_chat_and_my_chat_member(bot: Bot, world: World) -> None:
    assert await bot.leave_chat(OTHER)
    with pytest.raises(TelegramForbiddenError, match="not a member"):
        await bot.send_message(OTHER, "still here?")
    updates = await bot.get_updates()
    assert updates[0].my_chat_member is not None
    assert updates[0].my_chat_member.new_chat_member.status == "left"


async def test_caption_edit_and_threads(bot: Bot, world: World) -> None:
    photo = await bot.send_photo(GROUP, BufferedInputFile(b"not really a png", "a.jpg"), caption="old")
    edited = await bot.edit_message_caption(chat_id=GROUP, message_id=photo.message_id, caption="new")
    assert not isinstance(edited, bool) and edited.caption == "new"
    with pytest.raises(TelegramBadRequest, match="there is no text in the message to edit"):
        await bot.edit_message_text("x", chat_id=GROUP, message_id=photo.message_id)
    threaded = await bot.send_message(GROUP, "topic", message_thread_id=7, disable_notification=True)
    assert threaded.message_thread_id == 7
    assert world.chats[GROUP]["meta"][threaded.message_id]["disable_notification"] is True


async def test_world_call_and_user_side_errors(world: World) -> None:
    with pytest.raises(EmulatorApiError) as info:
        await world.call("sendMessage", chat_id=GROUP, text="")
    assert info.value.status == 400 and info.value.description == "Bad Request: message text is empty"
    with pytest.raises(WorldError, match="already a member"):
        world.join(GROUP, ALICE)
    with pytest.raises(WorldError, match="cannot send"):
        world.send_message(GROUP, 203, "not in the group")
    sent = await world.call(
        "sendMessage", chat_id=str(GROUP), text="123", reply_markup='{"inline_keyboard": []}'
    )
    assert sent["text"] == "123"
    assert world.calls[-1].params["chat_id"] == GROUP and world.calls[-1].ok
