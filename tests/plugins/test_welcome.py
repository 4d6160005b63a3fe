"""Welcome plugin, driven through the real bot and the emulated Telegram."""

from __future__ import annotations

from typing import Any

from bot.runner import ALLOWED_UPDATES
from bot.services.events import MemberJoined
from plugins.welcome.handlers import on_member_joined
from plugins.welcome.models import Captcha
from tests.harness import ADMIN, ALICE, BOB, CREATOR, DAVE, GROUP, LOG_CHAT, OTHER_GROUP, Harness


async def start(make_harness: Any, **cfg: Any) -> Harness:
    config = {"plugins": {"welcome": cfg}} if cfg else None
    h: Harness = await make_harness(plugins=["welcome"], config=config)
    # Like the real polling loop (bot.runner), ask for chat_member updates too: the harness's own
    # getUpdates does not, so Telegram's default would drop them.
    h.world.allowed_updates = list(ALLOWED_UPDATES)
    return h


def sends(h: Harness, chat: int = GROUP) -> list[Any]:
    return [c for c in h.calls("sendMessage") if c.params["chat_id"] == chat and c.ok]


def restricts(h: Harness, user: int) -> list[Any]:
    return [c for c in h.calls("restrictChatMember") if c.params["user_id"] == user and c.ok]


def captcha_messages(h: Harness, chat: int = GROUP) -> list[Any]:
    return [c for c in sends(h, chat) if c.params.get("reply_markup")]


def buttons(call: Any) -> list[dict[str, Any]]:
    return [b for row in call.params["reply_markup"]["inline_keyboard"] for b in row]


async def captcha_row(h: Harness, user: int, chat: int = GROUP) -> Captcha | None:
    async with h.app.db() as s:
        return await s.get(Captcha, (chat, user))


async def right_data(h: Harness, user: int, chat: int = GROUP) -> tuple[int, str, list[str]]:
    """(message id, data of the right button, data of the wrong ones) for the member's captcha."""
    row = await captcha_row(h, user, chat)
    assert row is not None and row.message_id is not None
    right = int(row.answer.split("/")[0])
    call = next(c for c in captcha_messages(h, chat) if c.result["message_id"] == row.message_id)
    datas = [b["callback_data"] for b in buttons(call)]
    return row.message_id, datas[right], [d for i, d in enumerate(datas) if i != right]


def can_send(h: Harness, user: int, chat: int = GROUP) -> bool:
    return h.world.can_send(chat, user)


def answers(h: Harness) -> list[dict[str, Any]]:
    return [c.params for c in h.calls("answerCallbackQuery") if c.ok]


# ---------------------------------------------------------------------------------------------
# greeting
# ---------------------------------------------------------------------------------------------


async def test_greeting_mentions_member_with_chat_text(make_harness: Any) -> None:
    h = await start(make_harness, captcha="off")
    await h.join(GROUP, DAVE)
    [greet] = sends(h)
    assert 'href="tg://user?id=1004"' in greet.params["text"]
    assert "粉丝福利群" in greet.params["text"]
    assert not h.calls("restrictChatMember")
    member = await h.app.members.get(GROUP, DAVE)
    assert member is not None and member.verified_at is not None

    await h.say(GROUP, CREATOR, "/setwelcome 你好 {name}，欢迎来到 <b>{title}</b>！现在 {count} 人。群规：{rules}")
    await h.say(GROUP, CREATOR, "/setrules 不许发广告")
    h.clear()
    await h.join(OTHER_GROUP, DAVE)  # per-chat: the other group keeps the default greeting
    assert "欢迎" in sends(h, OTHER_GROUP)[0].params["text"] and "你好" not in sends(h, OTHER_GROUP)[0].params["text"]
    h.world.add_user(3000, "<script>", username="xss_fan")
    await h.advance(10)  # outside the raid window: greeted at once
    await h.join(GROUP, 3000)
    text = sends(h)[-1].params["text"]
    assert text.startswith("你好 &lt;script&gt;，欢迎来到 <b>粉丝福利群</b>！")
    count = h.world.m_getChatMemberCount({"chat_id": GROUP})
    assert f"现在 {count} 人" in text and "不许发广告" in text


async def test_greeting_off_and_bots_skipped(make_harness: Any) -> None:
    h = await start(make_harness, captcha="off")
    h.world.add_user(5000, "SomeBot", username="some_bot", is_bot=True)
    await h.join(GROUP, 5000, by_user_id=CREATOR)
    assert sends(h) == []
    await h.say(GROUP, CREATOR, "/welcome off")
    h.clear()
    await h.join(GROUP, DAVE)
    assert sends(h) == []


# ---------------------------------------------------------------------------------------------
# captcha
# ---------------------------------------------------------------------------------------------


async def test_muted_member_rejoining_is_left_alone_and_a_plain_join_asks_nothing(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.join(GROUP, DAVE)
    # Telegram said "member" in the chat_member update: no getChatMember round trip for it.
    assert not h.calls("getChatMember")
    assert restricts(h, DAVE)
    # Someone muted by a moderator leaves and comes back: Telegram keeps them "restricted", and our
    # captcha (whose pass lifts restrictions) must not start for them.
    h.world.set_member(GROUP, BOB, "restricted", can_send_messages=False)
    await h.leave(GROUP, BOB)
    await h.join(GROUP, BOB)
    assert not restricts(h, BOB)
    assert await captcha_row(h, BOB) is None
    assert not can_send(h, BOB)


async def test_captcha_pass_restricts_then_restores_chat_defaults(make_harness: Any) -> None:
    h = await start(make_harness)
    # The chat's own defaults forbid polls and inviting: lifting must restore exactly these.
    h.world.chats[GROUP]["permissions"].update({"can_send_polls": False, "can_invite_users": False})
    await h.join(GROUP, DAVE)
    [restrict] = restricts(h, DAVE)
    assert restrict.params["permissions"]["can_send_messages"] is False
    assert not can_send(h, DAVE)
    [captcha] = captcha_messages(h)
    assert 'href="tg://user?id=1004"' in captcha.params["text"]
    assert [b["text"] for b in buttons(captcha)] == ["✅ 我不是机器人"]

    message_id, right, _ = await right_data(h, DAVE)
    await h.press(GROUP, DAVE, message_id, right)
    lift = restricts(h, DAVE)[-1]
    perms = lift.params["permissions"]
    assert perms["can_send_messages"] is True
    assert perms["can_send_polls"] is False and perms["can_invite_users"] is False
    assert can_send(h, DAVE)
    assert h.world.member(GROUP, DAVE)["status"] == "member"
    # The captcha part goes away; the greeting stays.
    edits = [c for c in h.calls("editMessageText") if c.ok]
    assert edits and edits[-1].params["message_id"] == message_id and "reply_markup" not in h.world.message(
        GROUP, message_id)
    assert "验证" not in h.world.message(GROUP, message_id)["text"]
    member = await h.app.members.get(GROUP, DAVE)
    assert member is not None and member.verified_at is not None
    row = await captcha_row(h, DAVE)
    assert row is not None and row.status == "passed"

    # Pressing again (a double tap) or a redelivered press changes nothing.
    h.clear()
    press = next(u for u in reversed(h.world.all_updates) if "callback_query" in u)
    h.world.push_update(press)
    await h.deliver()
    assert h.calls("restrictChatMember") == [] and h.calls("banChatMember") == []
    await h.advance(200)
    assert h.calls("banChatMember") == [] and can_send(h, DAVE)


async def test_captcha_timeout_kicks_at_120s_not_before(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.join(GROUP, DAVE)
    [captcha] = captcha_messages(h)
    await h.advance(119)
    assert h.calls("banChatMember") == []
    await h.advance(2)
    [ban] = h.calls("banChatMember")
    [unban] = h.calls("unbanChatMember")
    assert ban.params["user_id"] == DAVE and unban.params["user_id"] == DAVE
    assert h.world.member(GROUP, DAVE)["status"] == "left"  # kicked, may come back
    assert h.world.is_deleted(GROUP, captcha.result["message_id"])
    row = await captcha_row(h, DAVE)
    assert row is not None and row.status == "kicked"
    await h.advance(600)
    assert len(h.calls("banChatMember")) == 1
    # Kicked members can rejoin and get a fresh captcha.
    await h.join(GROUP, DAVE)
    assert len(captcha_messages(h)) == 2


async def test_restart_with_pending_captcha_still_kicks(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.join(GROUP, DAVE)
    await h.restart()
    await h.advance(60)
    assert h.calls("banChatMember") == []
    await h.advance(61)
    assert [c.params["user_id"] for c in h.calls("banChatMember")] == [DAVE]
    assert h.calls("unbanChatMember")


async def test_restart_with_pending_captcha_answer_still_works(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.join(GROUP, DAVE)
    message_id, right, _ = await right_data(h, DAVE)
    await h.restart()
    await h.press(GROUP, DAVE, message_id, right)
    assert can_send(h, DAVE)
    await h.advance(300)
    assert h.calls("banChatMember") == []


async def test_only_the_member_can_answer(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.join(GROUP, DAVE)
    message_id, right, _ = await right_data(h, DAVE)
    before = len(h.calls("restrictChatMember"))
    await h.press(GROUP, ALICE, message_id, right)
    assert answers(h)[-1]["show_alert"] is True
    assert len(h.calls("restrictChatMember")) == before
    assert not can_send(h, DAVE)
    row = await captcha_row(h, DAVE)
    assert row is not None and row.status == "pending"


async def test_forged_callback_data_refused(make_harness: Any) -> None:
    h = await start(make_harness, captcha="math")
    await h.join(GROUP, DAVE)
    message_id, right, _ = await right_data(h, DAVE)
    message = h.world.message(GROUP, message_id)
    token = right.split(":")[1]
    before = len(h.calls("restrictChatMember"))
    for data in ("wlc:garbage", f"wlc:{token}:9", "wlc:0000000000:0", "other:1", f"wlc:{token}:-1"):
        h.world.push_update({"callback_query": {
            "id": f"q{data}", "from": h.world.users[DAVE], "message": message, "chat_instance": "1", "data": data}})
    await h.deliver()
    assert len(h.calls("restrictChatMember")) == before and h.calls("banChatMember") == []
    row = await captcha_row(h, DAVE)
    assert row is not None and row.status == "pending" and row.attempts == 0


async def test_math_wrong_answers_then_fail(make_harness: Any) -> None:
    h = await start(make_harness, captcha="math", captcha_attempts=3)
    await h.join(GROUP, DAVE)
    [captcha] = captcha_messages(h)
    assert len(buttons(captcha)) == 4 and "= ?" in captcha.params["text"]
    message_id, _right, wrong = await right_data(h, DAVE)
    await h.press(GROUP, DAVE, message_id, wrong[0])
    assert answers(h)[-1]["show_alert"] and "2" in answers(h)[-1]["text"]
    await h.press(GROUP, DAVE, message_id, wrong[1])
    assert h.calls("banChatMember") == []
    await h.press(GROUP, DAVE, message_id, wrong[2])
    assert [c.params["user_id"] for c in h.calls("banChatMember")] == [DAVE]
    assert h.calls("unbanChatMember") and h.world.is_deleted(GROUP, message_id)


async def test_math_right_answer_after_a_wrong_one(make_harness: Any) -> None:
    h = await start(make_harness, captcha="math")
    await h.join(GROUP, DAVE)
    message_id, right, wrong = await right_data(h, DAVE)
    await h.press(GROUP, DAVE, message_id, wrong[0])
    await h.press(GROUP, DAVE, message_id, right)
    assert can_send(h, DAVE) and h.calls("banChatMember") == []


async def test_question_mode_from_config(make_harness: Any) -> None:
    questions = [{"question": "我们的品牌叫什么？", "options": ["小米", "小红书", "泡泡玛特"], "answer": "泡泡玛特"}]
    h = await start(make_harness, captcha="question", captcha_questions=questions)
    await h.join(GROUP, DAVE)
    [captcha] = captcha_messages(h)
    assert "我们的品牌叫什么？" in captcha.params["text"]
    labels = {b["text"]: b["callback_data"] for b in buttons(captcha)}
    assert set(labels) == {"小米", "小红书", "泡泡玛特"}
    await h.press(GROUP, DAVE, captcha.result["message_id"], labels["泡泡玛特"])
    assert can_send(h, DAVE)


async def test_leave_while_pending_cancels_and_rejoin_gets_one_captcha(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.join(GROUP, DAVE)
    await h.leave(GROUP, DAVE)
    row = await captcha_row(h, DAVE)
    assert row is not None and row.status == "left"
    assert await h.app.timers.pending("welcome.deadline") == []
    await h.advance(200)
    assert h.calls("banChatMember") == []
    await h.join(GROUP, DAVE)
    assert len(captcha_messages(h)) == 2
    assert not can_send(h, DAVE)
    # The same join event again (e.g. both Telegram signals slipping through): still one captcha.
    ev = MemberJoined(chat_id=GROUP, user_id=DAVE, first_name="大卫", username="dave", is_bot=False,
                      at=h.clock.now(), chat_title="粉丝福利群")
    await on_member_joined(h.app, ev)
    await h.app.sender.drain(5)
    assert len(captcha_messages(h)) == 2
    assert len(await h.app.timers.pending("welcome.deadline")) == 1


async def test_redelivered_join_greets_once(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.join(GROUP, DAVE)
    raw = [u for u in h.world.all_updates if "chat_member" in u or "message" in u]
    assert len(sends(h)) == 1
    for update in raw:
        h.world.push_update(update)
    await h.deliver()
    await h.restart()
    for update in raw:
        h.world.push_update(update)
    await h.deliver()
    assert len(sends(h)) == 1 and len(restricts(h, DAVE)) == 1


async def test_raid_is_merged_into_few_messages(make_harness: Any) -> None:
    h = await start(make_harness)
    fans = list(range(2001, 2011))
    for uid in fans:
        h.world.add_user(uid, f"粉丝{uid}", username=f"fan{uid}")
    for uid in fans:
        await h.join(GROUP, uid)
    assert len(sends(h)) == 1  # the first is greeted at once, the rest wait for the window
    await h.advance(5)
    greetings = sends(h)
    assert len(greetings) == 2
    merged = greetings[-1].params["text"]
    for uid in fans[1:]:
        assert f"tg://user?id={uid}" in merged
    assert all(not can_send(h, uid) for uid in fans)
    # One shared captcha message; each member answers for themselves.
    merged_id = greetings[-1].result["message_id"]
    [data] = [b["callback_data"] for b in buttons(greetings[-1])]
    for uid in fans[1:]:
        await h.press(GROUP, uid, merged_id, data)
    assert all(can_send(h, uid) for uid in fans[1:])
    assert not can_send(h, fans[0])
    # everyone on the merged message answered: its captcha part is gone
    assert "reply_markup" not in h.world.message(GROUP, merged_id)
    await h.advance(120)
    assert [c.params["user_id"] for c in h.calls("banChatMember")] == [fans[0]]


async def test_no_restrict_right_greets_and_tells_admins_once(make_harness: Any) -> None:
    h = await start(make_harness)
    h.world.set_member(GROUP, h.world.bot_id, "administrator", can_restrict_members=False)
    h.app.admins.invalidate(GROUP)
    await h.join(GROUP, DAVE)
    h.world.add_user(2100, "新人")
    await h.advance(10)
    await h.join(GROUP, 2100)
    assert h.calls("restrictChatMember") == []
    assert len(sends(h)) == 2 and not captcha_messages(h)
    warnings = sends(h, LOG_CHAT)
    assert len(warnings) == 1 and "限制成员" in warnings[0].params["text"]


async def test_clean_service_messages_and_autodelete_welcome(make_harness: Any) -> None:
    h = await start(make_harness, captcha="off", clean_service=True, delete_welcome_after=30)
    await h.join(GROUP, DAVE)
    service = [m for m in h.world.messages_in(GROUP, include_deleted=True) if m.get("new_chat_members")]
    assert h.world.is_deleted(GROUP, service[0]["message_id"])
    [greet] = sends(h)
    assert not h.world.is_deleted(GROUP, greet.result["message_id"])
    await h.advance(31)
    assert h.world.is_deleted(GROUP, greet.result["message_id"])
    await h.leave(GROUP, DAVE)
    left = [m for m in h.world.messages_in(GROUP, include_deleted=True) if m.get("left_chat_member")]
    assert h.world.is_deleted(GROUP, left[0]["message_id"])


# ---------------------------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------------------------


async def test_setwelcome_bad_variable_gets_usage_and_changes_nothing(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, CREATOR, "/setwelcome 欢迎 {nmae}！")
    reply = h.last_text(GROUP)
    assert "{nmae}" in reply and "用法" in reply
    await h.say(GROUP, CREATOR, "/setwelcome")
    assert "用法" in h.last_text(GROUP)
    cfg = await h.app.chat_config.get(GROUP, "welcome")
    assert cfg.text == ""  # type: ignore[attr-defined]


async def test_non_admin_setwelcome_refused(make_harness: Any) -> None:
    h = await start(make_harness)
    for command in ("/setwelcome 哈哈 {name}", "/setrules 随便", "/welcome off", "/resetwelcome"):
        await h.say(GROUP, ALICE, command)
        assert "只有管理员" in h.last_text(GROUP)
    cfg = await h.app.chat_config.get(GROUP, "welcome")
    assert cfg.text == "" and cfg.rules == "" and cfg.greet  # type: ignore[attr-defined]
    assert await h.app.chat_config.export(GROUP) == {}


async def test_settings_are_per_chat(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, ADMIN, "/setwelcome 热烈欢迎 {mention}")
    await h.say(GROUP, ADMIN, "/welcome captcha off")
    other = await h.app.chat_config.get(OTHER_GROUP, "welcome")
    assert other.text == "" and other.captcha == "button"  # type: ignore[attr-defined]
    await h.join(OTHER_GROUP, DAVE)
    assert captcha_messages(h, OTHER_GROUP) and "热烈欢迎" not in sends(h, OTHER_GROUP)[0].params["text"]
    await h.join(GROUP, DAVE)
    assert sends(h)[-1].params["text"].startswith("热烈欢迎 ") and not captcha_messages(h)
    assert can_send(h, DAVE, GROUP) and not can_send(h, DAVE, OTHER_GROUP)


async def test_rules_and_welcome_commands(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, BOB, "/rules")
    assert "还没有设置群规" in h.last_text(GROUP)
    await h.say(GROUP, CREATOR, "/setrules <b>第一条</b>：不许刷屏")
    await h.say(GROUP, BOB, "群规")
    last = h.world.last_message(GROUP)
    assert last is not None and "第一条" in last["text"]
    assert any(e["type"] == "bold" for e in last.get("entities", []))
    await h.say(GROUP, CREATOR, "/setrules 1 < 2 & 3")  # not HTML: kept literally
    await h.say(GROUP, BOB, "/rules")
    assert "1 < 2 & 3" in h.last_text(GROUP)

    await h.say(GROUP, CREATOR, "/welcome")
    assert "入群验证" in h.last_text(GROUP) and "按钮" in h.last_text(GROUP)
    await h.say(GROUP, CREATOR, "/welcome captcha math")
    assert (await h.app.chat_config.get(GROUP, "welcome")).captcha == "math"  # type: ignore[attr-defined]
    await h.say(GROUP, CREATOR, "/welcome captcha question")
    assert "captcha_questions" in h.last_text(GROUP)
    await h.say(GROUP, CREATOR, "/welcome captcha maybe")
    assert "用法" in h.last_text(GROUP)
    await h.say(GROUP, CREATOR, "/welcome timeout 5")
    assert "设置无效" in h.last_text(GROUP)
    await h.say(GROUP, CREATOR, "/welcome timeout 60")
    assert (await h.app.chat_config.get(GROUP, "welcome")).captcha_timeout == 60  # type: ignore[attr-defined]

    await h.say(GROUP, CREATOR, "/setwelcome 嗨 {mention}")
    assert "嗨" in h.last_text(GROUP)
    await h.say(GROUP, CREATOR, "/resetwelcome")
    cfg = await h.app.chat_config.get(GROUP, "welcome")
    assert cfg.text == "" and cfg.captcha == "math" and cfg.captcha_timeout == 60  # type: ignore[attr-defined]
    assert (await h.app.chat_config.get(OTHER_GROUP, "welcome")).captcha == "button"  # type: ignore[attr-defined]


async def test_raid_batch_survives_restart_and_late_flush_gives_full_time(make_harness: Any) -> None:
    h = await start(make_harness)
    fans = [2201, 2202, 2203]
    for uid in fans:
        h.world.add_user(uid, f"粉丝{uid}")
        await h.join(GROUP, uid)
    assert len(sends(h)) == 1
    await h.restart()
    await h.advance(100)  # the bot was down: the window closes 95 s late
    merged = sends(h)[-1]
    assert len(sends(h)) == 2 and all(f"tg://user?id={u}" in merged.params["text"] for u in fans[1:])
    await h.advance(100)  # t+200: the first fan's time is up, the merged ones got 120 s from t+100
    assert [c.params["user_id"] for c in h.calls("banChatMember")] == [fans[0]]
    await h.advance(25)
    assert sorted(c.params["user_id"] for c in h.calls("banChatMember")) == sorted(fans)
    assert h.world.is_deleted(GROUP, merged.result["message_id"])


async def test_member_leaving_before_the_merged_greeting_is_left_out(make_harness: Any) -> None:
    h = await start(make_harness, captcha="off")
    await h.join(GROUP, DAVE)
    h.world.add_user(2301, "路人甲")
    h.world.add_user(2302, "路人乙")
    await h.join(GROUP, 2301)
    await h.join(GROUP, 2302)
    await h.leave(GROUP, 2301)
    await h.advance(5)
    merged = sends(h)[-1].params["text"]
    assert "tg://user?id=2302" in merged and "tg://user?id=2301" not in merged


async def test_english_chat_gets_english_captcha(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.say(GROUP, CREATOR, "/lang en")
    await h.join(GROUP, DAVE)
    [captcha] = captcha_messages(h)
    assert [b["text"] for b in buttons(captcha)] == ["✅ I'm human"]
    assert captcha.params["text"].startswith("Welcome to 粉丝福利群, <a")
    message_id, _right, _ = await right_data(h, DAVE)
    await h.press(GROUP, ALICE, message_id, _right)
    assert answers(h)[-1]["text"].startswith("This captcha is not for you")


async def test_plugin_switched_off_while_pending_releases_instead_of_kicking(make_harness: Any) -> None:
    h = await start(make_harness)
    await h.join(GROUP, DAVE)
    assert not can_send(h, DAVE)
    await h.app.chat_config.update(GROUP, "welcome", {"enabled": False})
    await h.advance(121)
    assert h.calls("banChatMember") == [] and can_send(h, DAVE)
    row = await captcha_row(h, DAVE)
    assert row is not None and row.status == "released"


async def test_captcha_over_http_with_the_real_client(make_harness: Any) -> None:
    h: Harness = await make_harness(plugins=["welcome"], transport="http")
    h.world.allowed_updates = list(ALLOWED_UPDATES)
    await h.join(GROUP, DAVE)
    message_id, right, _ = await right_data(h, DAVE)
    await h.press(GROUP, DAVE, message_id, right)
    assert can_send(h, DAVE)
    h.world.add_user(2400, "慢吞吞")
    await h.advance(10)
    await h.join(GROUP, 2400)
    await h.advance(121)
    assert [c.params["user_id"] for c in h.calls("banChatMember")] == [2400]
    assert h.calls("unbanChatMember")[-1].ok


async def test_press_during_downtime_still_passes_when_the_answer_is_too_old(make_harness: Any) -> None:
    h = await start(make_harness, captcha_timeout=3600)
    await h.join(GROUP, DAVE)
    message_id, right, _ = await right_data(h, DAVE)
    h.world.press_button(GROUP, DAVE, message_id, right)  # pressed while the bot was away ...
    h.clock.advance(20 * 60)  # ... for longer than Telegram keeps a button press answerable
    await h.deliver()
    assert [c for c in h.calls("answerCallbackQuery") if not c.ok]
    assert can_send(h, DAVE)


async def test_raid_mode_pauses_greetings_until_it_ends(make_harness: Any) -> None:
    from datetime import timedelta

    from bot.services.events import RaidModeChanged

    h = await start(make_harness)
    until = h.app.clock.now() + timedelta(minutes=10)
    await h.app.events.emit(RaidModeChanged(chat_id=GROUP, on=True, until=until))
    await h.join(GROUP, DAVE)
    assert sends(h) == [] and restricts(h, DAVE) == []
    # Another chat is not in raid mode.
    await h.join(OTHER_GROUP, DAVE)
    assert sends(h, OTHER_GROUP)
    await h.app.events.emit(RaidModeChanged(chat_id=GROUP, on=False))
    await h.leave(GROUP, DAVE)
    h.clock.advance(5)
    await h.join(GROUP, DAVE)
    assert sends(h)
