from __future__ import annotations

from aiogram import Bot
from aiogram.types import Message

from bot.emulator import World

from .conftest import GROUP


async def test_send_message_round_trip(bot: Bot, world: World) -> None:
    me = await bot.get_me()
    assert me.id == world.bot_id and me.username == "qunbot_bot"
    sent = await bot.send_message(GROUP, "欢迎 @alice")
    assert isinstance(sent, Message)
    assert sent.chat.id == GROUP and sent.from_user is not None and sent.from_user.id == world.bot_id
    assert sent.text == "欢迎 @alice" and sent.message_id == 1
    assert sent.entities is not None and sent.entities[0].type == "mention"
    assert world.sent_texts(GROUP) == ["欢迎 @alice"]
    assert world.calls_of("sendMessage")[0].params["text"] == "欢迎 @alice"
