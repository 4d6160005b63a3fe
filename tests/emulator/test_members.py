from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import ChatMemberBanned, ChatMemberMember, ChatMemberRestricted, ChatPermissions

from bot.emulator import ManualClock, World, WorldError

from .conftest import ALICE, BOB, GROUP, OTHER, OWNER, T0


async def test_restrict_until_lapses_with_clock(bot: Bot, world: World, clock: ManualClock) -> None:
    until = int(T0) + 600
    assert await bot.restrict_chat_member(
        GROUP, ALICE, ChatPermissions(can_send_messages=False), until_date=until
    )
    member = await bot.get_chat_member(GROUP, ALICE)
    assert isinstance(member, ChatMemberRestricted) and not member.can_send_messages
    assert int(member.until_date.timestamp()) == until
    assert not world.can_send(GROUP, ALICE)
    with pytest.raises(WorldError, match="cannot send"):
        world.send_message(GROUP, ALICE, "let me talk")
    clock.advance(601)
    assert world.member(GROUP, ALICE)["status"] == "member"
    assert world.can_send(GROUP, ALICE)
    world.send_message(GROUP, ALICE, "free again")
    assert isinstance(await bot.get_chat_member(GROUP, ALICE), ChatMemberMember)


async def test_restrict_then_lift(bot: Bot, world: World) -> None:
    await bot.restrict_chat_member(GROUP, BOB, ChatPermissions(can_send_messages=False))
    assert world.member(GROUP, BOB)["until_date"] == 0  # forever
    everything = ChatPermissions(**{name: True for name in ChatPermissions.model_fields})
    await bot.restrict_chat_member(GROUP, BOB, everything)
    assert world.member(GROUP, BOB)["status"] == "member"
    changes = [u["chat_member"] for u in world.all_updates if "chat_member" in u]
    assert [c["new_chat_member"]["status"] for c in changes] == ["restricted", "member"]
    assert changes[0]["from"]["id"] == world.bot_id


async def test_ban_unban_and_rejoin(bot: Bot, world: World, clock: ManualClock) -> None:
    await bot.ban_chat_member(GROUP, ALICE, until_date=int(T0) + 3600)
    member = await bot.get_chat_member(GROUP, ALICE)
    assert isinstance(member, ChatMemberBanned)
    with pytest.raises(WorldError, match="banned"):
        world.join(GROUP, ALICE)
    assert await bot.unban_chat_member(GROUP, ALICE, only_if_banned=True)
    assert world.member(GROUP, ALICE)["status"] == "left"
    world.join(GROUP, ALICE)
    # kick = ban + unban; unban without only_if_banned removes a present member
    await bot.unban_chat_member(GROUP, ALICE)
    assert world.member(GROUP, ALICE)["status"] == "left"
    await bot.ban_chat_member(GROUP, BOB, until_date=int(T0) + 120)
    clock.advance(121)
    assert world.member(GROUP, BOB)["status"] == "left"


async def test_admin_targets_and_missing_rights(bot: Bot, world: World) -> None:
    with pytest.raises(TelegramBadRequest, match="user is an administrator of the chat"):
        await bot.restrict_chat_member(GROUP, OWNER, ChatPermissions(can_send_messages=False))
    world.set_member(GROUP, BOB, "administrator")
    with pytest.raises(TelegramBadRequest, match="user is an administrator of the chat"):
        await bot.ban_chat_member(GROUP, BOB)
    with pytest.raises(TelegramBadRequest, match="not enough rights to restrict/unrestrict chat member"):
        await bot.restrict_chat_member(OTHER, ALICE, ChatPermissions(can_send_messages=False))
    assert world.member(OTHER, ALICE)["status"] == "member"


async def test_admins_count_and_chat(bot: Bot, world: World) -> None:
    admins = await bot.get_chat_administrators(GROUP)
    assert [a.status for a in admins] == ["creator", "administrator"]
    assert {a.user.id for a in admins} == {OWNER, world.bot_id}
    assert await bot.get_chat_member_count(GROUP) == 4
    chat = await bot.get_chat(GROUP)
    assert chat.title == "粉丝福利群" and chat.permissions is not None and chat.permissions.can_send_messages
    await bot.set_chat_permissions(GROUP, ChatPermissions(can_send_messages=False))
    assert not world.can_send(GROUP, ALICE) and world.can_send(GROUP, OWNER)


async def test_join_request_link(bot: Bot, world: World) -> None:
    world.add_user(301, "Dave")
    link = await bot.create_chat_invite_link(GROUP, creates_join_request=True)
    request = world.join(GROUP, 301, invite_link=link.invite_link)
    assert request["user_chat_id"] == 301 and world.member(GROUP, 301)["status"] == "left"
    assert await bot.approve_chat_join_request(GROUP, 301)
    assert world.member(GROUP, 301)["status"] == "member"
    revoked = await bot.revoke_chat_invite_link(GROUP, link.invite_link)
    assert revoked.is_revoked
    with pytest.raises(WorldError, match="revoked"):
        world.add_user(302, "Eve")
        world.join(GROUP, 302, invite_link=link.invite_link)


async def test_bot_kicked_is_forbidden(bot: Bot, world: World) -> None:
    from aiogram.exceptions import TelegramForbiddenError

    world.set_member(OTHER, world.bot_id, "kicked")
    with pytest.raises(TelegramForbiddenError, match="bot was kicked from the supergroup chat"):
        await bot.send_message(OTHER, "hello?")
    world.send_message(OTHER, ALICE, "/checkin")
    assert world.pending_updates() == []


async def test_sender_chat_ban_stops_a_channel_posting_until_unbanned(bot: Bot, world: World) -> None:
    channel = {"id": -100777, "type": "channel", "title": "搬运频道"}
    world.send_message(GROUP, ALICE, "频道发言", sender_chat=dict(channel))
    assert await bot.ban_chat_sender_chat(GROUP, channel["id"])
    assert world.sender_chat_banned(GROUP, channel["id"])
    with pytest.raises(WorldError, match="banned"):
        world.send_message(GROUP, ALICE, "又来了", sender_chat=dict(channel))
    world.send_message(GROUP, ALICE, "本人发言")  # the member's own account is not affected
    assert await bot.unban_chat_sender_chat(GROUP, channel["id"])
    assert not world.sender_chat_banned(GROUP, channel["id"])
    world.send_message(GROUP, ALICE, "可以了", sender_chat=dict(channel))
    with pytest.raises(TelegramBadRequest, match="not enough rights"):
        await bot.ban_chat_sender_chat(OTHER, channel["id"])
    with pytest.raises(TelegramBadRequest, match="can't ban the chat itself"):
        await bot.ban_chat_sender_chat(GROUP, GROUP)
    with pytest.raises(TelegramBadRequest, match="channel or supergroup id"):
        await bot.ban_chat_sender_chat(GROUP, ALICE)
