from __future__ import annotations

import io
import struct
import zlib

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
)

from bot.emulator import EmulatorSession, World, WorldError

from .conftest import ALICE, BOB, GROUP


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x00\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


async def test_photo_upload_multipart(bot: Bot, world: World) -> None:
    data = _png(3, 2)
    sent = await bot.send_photo(
        GROUP, BufferedInputFile(data, "banner.png"), caption="<b>上新</b>", parse_mode="HTML"
    )
    assert sent.photo is not None and (sent.photo[-1].width, sent.photo[-1].height) == (3, 2)
    assert sent.photo[-1].file_size == len(data)
    assert sent.caption == "上新" and sent.caption_entities is not None
    assert sent.caption_entities[0].type == "bold"
    record = world.files[sent.photo[-1].file_id]
    assert record.file_name == "banner.png" and record.data == data
    again = await bot.send_photo(GROUP, sent.photo[-1].file_id)  # resend by file_id
    assert again.photo is not None and again.photo[-1].file_id == sent.photo[-1].file_id
    file = await bot.get_file(sent.photo[-1].file_id)
    assert file.file_path is not None
    buffer = io.BytesIO()
    await bot.download_file(file.file_path, buffer)
    assert buffer.getvalue() == data
    doc = await bot.send_document(GROUP, BufferedInputFile(b"hello", "notes.txt"))
    assert doc.document is not None and doc.document.file_name == "notes.txt" and doc.document.file_size == 5
    sticker = await bot.send_sticker(GROUP, "CAACAgIAAxkBAAE")
    assert sticker.sticker is not None


async def test_buttons_callbacks_and_replies(bot: Bot, world: World) -> None:
    question = world.send_message(GROUP, ALICE, "怎么领券?")
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="我不是机器人", callback_data="cap:201")]]
    )
    sent = await bot.send_message(
        GROUP,
        "请验证",
        reply_markup=markup,
        reply_parameters=ReplyParameters(message_id=question["message_id"]),
    )
    assert sent.reply_to_message is not None and sent.reply_to_message.text == "怎么领券?"
    assert world.buttons(GROUP, sent.message_id)[0]["callback_data"] == "cap:201"
    with pytest.raises(WorldError, match="no button"):
        world.press_button(GROUP, ALICE, sent.message_id, "cap:999")
    query_id = world.press_button(GROUP, ALICE, sent.message_id, "cap:201")
    updates = await bot.get_updates()
    callback = updates[-1].callback_query
    assert callback is not None and callback.id == query_id and callback.data == "cap:201"
    assert callback.message is not None and callback.message.message_id == sent.message_id
    assert await bot.answer_callback_query(query_id, text="验证成功", show_alert=True)
    assert world.callbacks[query_id]["answer"]["show_alert"] is True
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query_id)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(
            GROUP,
            "x",
            reply_markup=InlineKeyboardMarkup(
                inline_keyboard=[[InlineKeyboardButton(text="t", callback_data="x" * 65)]]
            ),
        )
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(GROUP, "x", reply_to_message_id=999)
    cleared = await bot.edit_message_reply_markup(chat_id=GROUP, message_id=sent.message_id)
    assert not isinstance(cleared, bool) and cleared.reply_markup is None


async def test_polls(bot: Bot, world: World) -> None:
    message = await bot.send_poll(GROUP, "PK: 甜粽 vs 咸粽", ["甜粽", "咸粽"], is_anonymous=False)
    assert message.poll is not None and message.poll.total_voter_count == 0
    poll_id = message.poll.id
    world.vote_poll(poll_id, ALICE, [0])
    world.vote_poll(poll_id, BOB, [1])
    world.vote_poll(poll_id, ALICE, [1])  # re-vote
    updates = await bot.get_updates(allowed_updates=["poll", "poll_answer"])
    answers = [u.poll_answer for u in updates if u.poll_answer]
    assert [(a.user.id if a.user else 0, a.option_ids) for a in answers] == [
        (ALICE, [0]),
        (BOB, [1]),
        (ALICE, [1]),
    ]
    last_poll = [u.poll for u in updates if u.poll][-1]
    assert [o.voter_count for o in last_poll.options] == [0, 2]
    stopped = await bot.stop_poll(GROUP, message.message_id)
    assert stopped.is_closed and stopped.total_voter_count == 2
    with pytest.raises(WorldError, match="closed"):
        world.vote_poll(poll_id, ALICE, [0])
    with pytest.raises(TelegramBadRequest):
        await bot.send_poll(GROUP, "one option?", ["only"])
    quiz = await bot.send_poll(GROUP, "1+1?", ["1", "2"], type="quiz", correct_option_id=1)
    assert quiz.poll is not None and quiz.poll.type == "quiz" and quiz.poll.is_anonymous


async def test_parse_modes(world: World) -> None:
    bot = Bot(world.token, session=EmulatorSession(world), default=DefaultBotProperties(parse_mode="HTML"))
    sent = await bot.send_message(
        GROUP, '欢迎 <a href="tg://user?id=201">Alice</a>，看 <b>群规</b> &amp; 福利'
    )
    assert sent.text == "欢迎 Alice，看 群规 & 福利"
    assert sent.entities is not None
    kinds = {e.type: e for e in sent.entities}
    assert kinds["text_mention"].user is not None and kinds["text_mention"].user.id == ALICE
    assert (kinds["bold"].offset, kinds["bold"].length) == (11, 2)
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(GROUP, "昵称 <小可爱> 加入")
    with pytest.raises(TelegramBadRequest, match="can't parse entities"):
        await bot.send_message(GROUP, "第一行<br>第二行")
    md = await bot.send_message(GROUP, r"*粗体* 和 \. 点", parse_mode="MarkdownV2")
    assert md.text == "粗体 和 . 点" and md.entities is not None and md.entities[0].type == "bold"
    with pytest.raises(TelegramBadRequest, match="reserved"):
        await bot.send_message(GROUP, "结束.", parse_mode="MarkdownV2")
    plain = await bot.send_message(GROUP, "a < b", parse_mode=None)
    assert plain.text == "a < b"


async def test_raw_http_encodings(http_bot: tuple[Bot, str], world: World) -> None:
    _, base = http_bot
    url = f"{base}/bot{world.token}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/getMe") as resp:
            assert (await resp.json())["result"]["id"] == world.bot_id
        async with http.post(f"{url}/sendMessage", json={"chat_id": GROUP, "text": "json body"}) as resp:
            assert resp.status == 200 and (await resp.json())["result"]["text"] == "json body"
        async with http.post(f"{url}/sendMessage", data={"chat_id": str(GROUP), "text": "123"}) as resp:
            assert (await resp.json())["result"]["text"] == "123"  # stays a string
        async with http.get(f"{url}/sendMessage", params={"chat_id": str(GROUP), "text": "query"}) as resp:
            assert (await resp.json())["ok"]
        async with http.get(f"{url}/noSuchMethod") as resp:
            assert resp.status == 404 and (await resp.json())["description"] == "Not Found"
        async with http.get(f"{base}/bot1:wrong/getMe") as resp:
            assert resp.status == 401 and await resp.json() == {
                "ok": False,
                "error_code": 401,
                "description": "Unauthorized",
            }
        async with http.post(f"{url}/sendMessage", json={"chat_id": GROUP}) as resp:
            body = await resp.json()
            assert resp.status == 400 and body["description"] == "Bad Request: message text is empty"
    assert world.sent_texts(GROUP) == ["json body", "123", "query"]


async def test_forward_copy_pin(bot: Bot, world: World) -> None:
    original = world.send_message(GROUP, ALICE, "好物分享 https://shop.example.com/x")
    assert any(e["type"] == "url" for e in original["entities"])
    forwarded = await bot.forward_message(-1002, GROUP, original["message_id"])
    assert forwarded.forward_origin is not None and forwarded.text == original["text"]
    copied = await bot.copy_message(-1002, GROUP, original["message_id"])
    assert world.message(-1002, copied.message_id)["text"] == original["text"]  # type: ignore[index]
    assert await bot.pin_chat_message(GROUP, original["message_id"])
    chat = await bot.get_chat(GROUP)
    assert chat.pinned_message is not None and chat.pinned_message.message_id == original["message_id"]
    assert await bot.unpin_all_chat_messages(GROUP)
    await bot.set_my_commands([BotCommand(command="checkin", description="签到")])
    assert [c.command for c in await bot.get_my_commands()] == ["checkin"]
    assert await bot.set_chat_title(GROUP, "粉丝福利群2")
    assert world.chats[GROUP]["title"] == "粉丝福利群2"
    assert await bot.send_chat_action(GROUP, "typing")
