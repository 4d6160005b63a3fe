"""Core behaviour driven through the real dispatcher and the emulated Telegram."""

from __future__ import annotations

import json

from bot.plugin import Plugin
from tests.harness import ADMIN, ALICE, BOB, CREATOR, GROUP, OTHER_GROUP, OWNER


async def test_help_lists_commands_admins_see_more(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=[])
    await h.say(GROUP, ALICE, "/help")
    member_view = h.last_text(GROUP)
    assert "/help" in member_view and "/settings" not in member_view
    await h.say(GROUP, CREATOR, "/help")
    assert "/settings" in h.last_text(GROUP)


async def test_admin_command_refused_for_member_allowed_for_admins(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=[])
    await h.say(GROUP, ALICE, "/settings")
    assert "只有管理员" in h.last_text(GROUP)
    for admin in (CREATOR, ADMIN, OWNER):
        await h.say(GROUP, admin, "/settings")
        assert "本群设置" in h.last_text(GROUP), admin
    assert h.texts(OTHER_GROUP) == []


async def test_anonymous_admin_counts_as_admin(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=[])
    anon_chat = {"id": GROUP, "type": "supergroup", "title": "粉丝福利群"}
    await h.say(GROUP, CREATOR, "/settings", sender_chat=anon_chat)
    assert "本群设置" in h.last_text(GROUP)


async def test_set_validates_and_is_per_chat(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=[])
    await h.say(GROUP, CREATOR, "/set core.timezone Mars/Base")
    assert "设置无效" in h.last_text(GROUP)
    await h.say(GROUP, CREATOR, "/set core.timezone Europe/Paris")
    assert "Europe/Paris" in h.last_text(GROUP)
    assert (await h.app.chat_config.chat(GROUP)).timezone == "Europe/Paris"
    assert (await h.app.chat_config.chat(OTHER_GROUP)).timezone == "Asia/Shanghai"
    await h.say(GROUP, CREATOR, "/set nonsense")
    assert "用法" in h.last_text(GROUP)


async def test_language_switch_translates_replies(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=[])
    await h.say(GROUP, CREATOR, "/lang en")
    await h.say(GROUP, ALICE, "/settings")
    assert "Only admins" in h.last_text(GROUP)
    await h.say(OTHER_GROUP, ALICE, "/settings")
    assert "只有管理员" in h.last_text(OTHER_GROUP)
    await h.say(GROUP, CREATOR, "/lang klingon")
    assert "/lang" in h.last_text(GROUP)


async def test_connect_from_private_chat_manages_the_group(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=[])
    await h.say(CREATOR, CREATOR, "/start")
    await h.say(CREATOR, CREATOR, f"/connect {GROUP}")
    assert "已连接" in h.last_text(CREATOR)
    await h.say(CREATOR, CREATOR, "/settings")
    assert str(GROUP) in h.last_text(CREATOR)
    await h.say(ALICE, ALICE, f"/connect {GROUP}")
    assert "不是该群的管理员" in h.last_text(ALICE)
    await h.say(ALICE, ALICE, "/settings")
    assert "请在群里使用" in h.last_text(ALICE)


async def test_export_import_settings_between_chats(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=[])
    await h.say(GROUP, CREATOR, "/set core.notice_ttl 30")
    await h.say(GROUP, CREATOR, "/exportsettings")
    docs = h.calls("sendDocument")
    assert docs, "no settings file sent"
    exported = await h.app.chat_config.export(GROUP)
    await h.say(OTHER_GROUP, CREATOR, "/importsettings " + json.dumps({"plugins": exported}))
    assert (await h.app.chat_config.chat(OTHER_GROUP)).notice_ttl == 30
    await h.say(OTHER_GROUP, CREATOR, '/importsettings {"plugins": {"ghost": {}}}')
    assert "导入失败" in h.last_text(OTHER_GROUP)
    await h.say(OTHER_GROUP, BOB, '/importsettings {"plugins": {}}')
    assert "只有管理员" in h.last_text(OTHER_GROUP)


async def test_settings_toggle_button_checks_presser(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugin_objects={"demo": Plugin(name="demo", description="演示")})
    await h.say(GROUP, CREATOR, "/settings")
    msg = h.world.last_message(GROUP)
    assert msg is not None
    buttons = h.world.buttons(GROUP, msg["message_id"])
    toggle = next(b for b in buttons if b.get("callback_data", "").startswith("cfg:t:"))
    plugin = toggle["callback_data"].rsplit(":", 1)[1]
    await h.press(GROUP, ALICE, msg["message_id"], toggle["callback_data"])
    assert await h.app.chat_config.enabled(GROUP, plugin)
    await h.press(GROUP, CREATOR, msg["message_id"], toggle["callback_data"])
    assert not await h.app.chat_config.enabled(GROUP, plugin)
    assert await h.app.chat_config.enabled(OTHER_GROUP, plugin)


async def test_command_menu_published_in_both_languages(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=[])
    await h.app.publish_menu()
    calls = h.calls("setMyCommands")
    assert len(calls) == 2
    zh, en = calls
    zh_names = [c["command"] for c in zh.params["commands"]]
    assert "help" in zh_names and "settings" not in zh_names  # admin commands stay out of the menu
    assert en.params.get("language_code") == "en"
    assert any("commands" in c["description"] for c in en.params["commands"])


async def test_settings_change_is_announced_as_core_event(make_harness) -> None:  # type: ignore[no-untyped-def]
    from bot.services.events import ChatSettingsChanged

    seen: list[ChatSettingsChanged] = []

    async def on_change(app, event: ChatSettingsChanged) -> None:  # type: ignore[no-untyped-def]
        seen.append(event)

    demo = Plugin(name="demo", description="演示", subscriptions={ChatSettingsChanged: on_change})
    h = await make_harness(plugin_objects={"demo": demo})
    await h.say(GROUP, CREATOR, "/set core.notice_ttl 5")
    assert [(e.chat_id, e.plugin, e.changes) for e in seen] == [(GROUP, "core", {"notice_ttl": 5})]


async def test_chats_and_members_are_recorded_in_the_batch_flush(make_harness) -> None:  # type: ignore[no-untyped-def]
    from bot.models import Chat, Member, User

    h = await make_harness(plugins=[])
    await h.say(GROUP, ALICE, "大家好")
    async with h.app.db() as s:
        chat = await s.get(Chat, GROUP)
        member = await s.get(Member, (GROUP, ALICE))
        user = await s.get(User, ALICE)
    assert chat is not None and chat.title == "粉丝福利群" and chat.type == "supergroup"
    assert member is not None and member.last_message_at == h.clock.now()
    assert user is not None and user.username == "alice"


async def test_disable_silences_a_member_command_in_one_chat_only(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=["checkin"])
    await h.say(GROUP, ADMIN, "/disable /top points")
    assert "已禁用" in h.last_text(GROUP) and "/top" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, ALICE, "/top")
    await h.say(GROUP, ALICE, "/points")
    assert [c for c in h.calls("sendMessage") if c.params["chat_id"] == GROUP] == []
    await h.say(GROUP, ADMIN, "/top")  # admins still use it
    assert len([c for c in h.calls("sendMessage") if c.params["chat_id"] == GROUP]) == 1
    h.clear()
    await h.say(OTHER_GROUP, ALICE, "/top")  # another chat is not affected
    assert len([c for c in h.calls("sendMessage") if c.params["chat_id"] == OTHER_GROUP]) == 1
    await h.say(GROUP, ADMIN, "/disabled")
    assert "/points" in h.last_text(GROUP) and "/top" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/help")  # members no longer see them
    assert "/top" not in h.last_text(GROUP) and "/profile" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/help")
    assert "/top" in h.last_text(GROUP)

    # With disabled_delete, the member's command message goes too.
    await h.say(GROUP, ADMIN, "/set core.disabled_delete true")
    h.clear()
    sent = await h.say(GROUP, ALICE, "/top")
    assert [c.params["message_id"] for c in h.calls("deleteMessage") if c.ok] == [sent["message_id"]]

    await h.say(GROUP, ADMIN, "/enable top")
    assert "已恢复" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, ALICE, "/top")
    assert len([c for c in h.calls("sendMessage") if c.params["chat_id"] == GROUP]) == 1
    await h.say(GROUP, ALICE, "/points")  # still disabled
    assert len([c for c in h.calls("sendMessage") if c.params["chat_id"] == GROUP]) == 1
    await h.say(GROUP, ADMIN, "/disable checkin")
    h.clear()
    await h.say(GROUP, ALICE, "签到")  # the alias goes with its command
    assert [c for c in h.calls("sendMessage") if c.params["chat_id"] == GROUP] == []


async def test_disable_refuses_what_cannot_be_disabled(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=["checkin"])
    await h.say(GROUP, ADMIN, "/disable")
    assert "/disable" in h.last_text(GROUP)  # usage
    await h.say(GROUP, ADMIN, "/disable settings")  # an admin command
    assert "不能禁用" in h.last_text(GROUP) and "/top" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/disable help nosuch")
    assert "不能禁用" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/enable top")
    assert "没有被禁用" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/disable top")
    assert "只有管理员" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/disabled")
    assert "本群没有禁用的命令" in h.last_text(GROUP)
