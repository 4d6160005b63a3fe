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


async def test_misc_methods_have_no_internal_errors(world: World) -> None:
    call = world.call
    link = await call(
        "createChatInviteLink", chat_id=GROUP, member_limit=1, expire_date=int(world.now()) + 3600
    )
    edited = await call("editChatInviteLink", chat_id=GROUP, invite_link=link["invite_link"], name="活动")
    assert edited["name"] == "活动" and edited["member_limit"] == 1
    world.add_user(301, "Dave")
    world.add_user(302, "Eve")
    world.join(GROUP, 301, invite_link=link["invite_link"])
    with pytest.raises(WorldError, match="member limit"):
        world.join(GROUP, 302, invite_link=link["invite_link"])
    note = await call(
        "sendMessage", chat_id=GROUP, text="*粗* _斜_ `code` [链接](https://t.me/x)", parse_mode="Markdown"
    )
    assert note["text"] == "粗 斜 code 链接"
    assert [e["type"] for e in note["entities"]] == ["bold", "italic", "code", "text_link"]
    assert await call("pinChatMessage", chat_id=GROUP, message_id=note["message_id"])
    assert await call("unpinChatMessage", chat_id=GROUP, message_id=note["message_id"])
    assert await call("setChatDescription", chat_id=GROUP, description="福利群")
    video = await call("sendVideo", chat_id=GROUP, video="https://cdn.example.com/v.mp4", caption="看")
    assert video["video"]["file_name"] == "v.mp4"
    anim = await call("sendAnimation", chat_id=GROUP, animation="CgACAgQ")
    copied = await call(
        "copyMessage", chat_id=OTHER, from_chat_id=GROUP, message_id=video["message_id"], caption="转"
    )
    assert world.message(OTHER, copied["message_id"])["caption"] == "转"  # type: ignore[index]
    poll = await call(
        "sendPoll",
        chat_id=GROUP,
        question="Q",
        options=[{"text": "a"}, {"text": "b"}],
        allows_multiple_answers=True,
        open_period=60,
    )
    world.vote_poll(poll["poll"]["id"], ALICE, [0, 1])
    assert [World.update_type(u) for u in world.pending_updates()[-1:]] == ["poll"]  # anonymous: no answer
    stopped = await call(
        "stopPoll",
        chat_id=GROUP,
        message_id=poll["message_id"],
        reply_markup={"inline_keyboard": [[{"text": "结果", "url": "https://t.me/x"}]]},
    )
    assert stopped["is_closed"] and stopped["options"][0]["voter_count"] == 1
    assert await call("deleteMessage", chat_id=GROUP, message_id=anim["message_id"])
    assert await call("getMyCommands", scope={"type": "all_group_chats"}) == []
    assert await call("logOut") and await call("close")
    assert world.internal_errors == []
