"""/schedule add | list | agenda | preview | pause | resume | rm through the real bot."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from plugins.content_calendar.models import CalendarEntry
from tests.harness import ADMIN, ALICE, GROUP, OTHER_GROUP, Harness
from tests.plugins.test_calendar_flow import advance_to, occurrences, pending, posts, start, texts

# Now: 2026-11-18 19:06:40 in Shanghai (a Wednesday).


async def entry_rows(h: Harness) -> list[CalendarEntry]:
    async with h.app.db() as s:
        return list((await s.scalars(select(CalendarEntry).order_by(CalendarEntry.id))).all())


async def test_add_list_preview_pause_resume_rm(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path)
    await h.say(GROUP, ADMIN, "/schedule add 每天 20:00 #greeting | 晚安，今天是{weekday}，距{next_festival}还有"
                              "{days_to_next_festival}天")
    reply = h.last_text(GROUP)
    assert "已添加 #1" in reply and "2026-11-18 星期三 20:00" in reply
    rows = await entry_rows(h)
    assert [(r.source, r.owner_chat_id, r.spec["when"], r.spec["tags"]) for r in rows] == [
        ("chat", GROUP, "每天 20:00", ["greeting"])]
    key = rows[0].key
    assert list(await pending(h)) == [f"content_calendar:{key}:{GROUP}:2026-11-18T20:00"]

    await h.say(GROUP, ADMIN, "/schedule list")
    listing = h.last_text(GROUP)
    for fragment in ("#1", "每天 20:00", "#greeting", "2026-11-18 星期三 20:00"):
        assert fragment in listing

    h.clear()
    await h.say(GROUP, ADMIN, "/schedule preview 1")
    preview = h.last_text(GROUP)
    assert "预览" in preview and "晚安，今天是星期三，距双十二还有24天" in preview
    assert posts(h, GROUP, "pinChatMessage") == []
    assert [r for r in await occurrences(h)] == []  # a preview is not an occurrence

    await h.say(GROUP, ADMIN, "/schedule pause 1")
    assert "已暂停" in h.last_text(GROUP)
    assert await pending(h) == {}
    await advance_to(h, datetime(2026, 11, 18, 12, 0, tzinfo=UTC))
    assert not any("晚安" in t and "预览" not in t for t in texts(h, GROUP))

    await h.say(GROUP, ADMIN, "/schedule resume #1")
    assert "已恢复" in h.last_text(GROUP) and "2026-11-19 星期四 20:00" in h.last_text(GROUP)
    await advance_to(h, datetime(2026, 11, 19, 12, 0, tzinfo=UTC))
    assert [t for t in texts(h, GROUP) if t.startswith("晚安")] == ["晚安，今天是星期四，距双十二还有23天"]

    await h.say(GROUP, ADMIN, f"/schedule rm {key}")
    assert "已删除" in h.last_text(GROUP)
    assert await pending(h) == {}
    await h.advance(86400)
    assert len([t for t in texts(h, GROUP) if t.startswith("晚安")]) == 1
    await h.say(GROUP, ADMIN, "/schedule list")
    assert "还没有定时内容" in h.last_text(GROUP)


async def test_add_options_buttons_and_relative_day(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path)
    await h.say(GROUP, ADMIN, "/schedule add 明天 09:00 #marketing 置顶 静音 删除=2h | 🔥 限时秒杀 <开始>\n"
                              "[去抢购](https://shop.example.com/?a=1&b=2) [小程序](https://t.me/shopbot/app)")
    assert "已添加" in h.last_text(GROUP)
    spec = (await entry_rows(h))[0].spec
    assert spec["when"] == "2026-11-19 09:00"
    assert spec["pin"] and spec["silent"] and spec["delete_after_hours"] == 2 and spec["tags"] == ["marketing"]
    assert spec["buttons"] == [[{"text": "去抢购", "url": "https://shop.example.com/?a=1&b=2"},
                                {"text": "小程序", "url": "https://t.me/shopbot/app"}]]
    await advance_to(h, datetime(2026, 11, 19, 1, 0, tzinfo=UTC))
    sent = posts(h, GROUP)[-1]
    assert sent.params["text"] == "🔥 限时秒杀 &lt;开始&gt;"  # typed text is text, not HTML
    assert h.texts(GROUP)[-1] == "🔥 限时秒杀 <开始>"
    assert sent.params["disable_notification"] is True
    assert [b["url"] for b in sent.params["reply_markup"]["inline_keyboard"][0]] == [
        "https://shop.example.com/?a=1&b=2", "https://t.me/shopbot/app"]
    assert len(posts(h, GROUP, "pinChatMessage")) == 1


async def test_add_by_replying_to_a_photo(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path)
    photo = await h.say(GROUP, ADMIN, caption="新品上架", photo=True)
    h.world.send_message(GROUP, ADMIN, "/schedule add 2026-11-18 19:30 | 今晚{time}开抢",
                         reply_to=photo["message_id"])
    await h.deliver()
    assert "已添加" in h.last_text(GROUP)
    await advance_to(h, datetime(2026, 11, 18, 11, 30, tzinfo=UTC))
    sent = posts(h, GROUP, "sendPhoto")
    assert len(sent) == 1 and sent[0].params["caption"] == "今晚19:30开抢"
    assert sent[0].params["photo"] == photo["photo"][-1]["file_id"]


async def test_bad_input_is_rejected_with_the_reason(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path)
    cases = {
        "/schedule add 2月30日 20:00 | x": "日期不存在",
        "/schedule add 2027-02-30 20:00 | x": "日期不存在",
        "/schedule add 每天 20:00 | {coupon}": "未知的模板变量 {coupon}",
        "/schedule add 2020-01-01 10:00 | 过去": "时间已经过去",
        "/schedule add 61 * * * * | x": "cron",
        "/schedule add 光棍年节 20:00 | x": "不认识的节日",
        "/schedule add 每天 20:00 #markting | x": "未知的标签：markting",
        "/schedule add 每天 20:00 删除=100h | x": "48 小时",
        "/schedule add 每天 20:00 | ": "没有内容",
        "/schedule add 每天 20:00": "用法",
        "/schedule frobnicate": "用法",
        "/schedule": "用法",
        "/schedule pause": "编号",
        "/schedule pause 999": "本群没有这个条目",
        "/schedule preview nope": "本群没有这个条目",
        "/schedule agenda 500": "天数",
    }
    for command, fragment in cases.items():
        await h.say(GROUP, ADMIN, command)
        assert fragment in h.last_text(GROUP), (command, h.last_text(GROUP))
    assert await entry_rows(h) == []
    assert await pending(h) == {}
    await h.say(GROUP, ALICE, "/schedule add 每天 20:00 | 我不是管理员")
    assert "只有管理员" in h.last_text(GROUP)
    assert await entry_rows(h) == []


async def test_redelivered_add_creates_one_entry(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path)
    await h.say(GROUP, ADMIN, "/schedule add 每天 20:00 | 晚安")
    raw = next(u for c in h.calls("getUpdates") if c.ok for u in c.result
               if u.get("message", {}).get("text", "").startswith("/schedule add"))
    h.world.push_update(raw)
    await h.deliver()
    assert len(await entry_rows(h)) == 1
    assert len(await pending(h)) == 1
    assert sum("已添加" in t for t in texts(h, GROUP)) == 1


async def test_preview_goes_to_the_admins_private_chat_when_possible(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path)
    await h.say(ADMIN, ADMIN, "/start")
    await h.say(GROUP, ADMIN, "/schedule add 每周五 20:00 #marketing 置顶 | 周五闪购 {date}")
    h.clear()
    await h.say(GROUP, ADMIN, "/schedule preview 1")
    dm = posts(h, ADMIN)
    assert len(dm) == 1 and "预览" in dm[0].params["text"] and "周五闪购 11月20日" in dm[0].params["text"]
    assert "私信" in h.last_text(GROUP)
    assert not any("周五闪购" in t for t in texts(h, GROUP))
    assert posts(h, GROUP, "pinChatMessage") == [] and posts(h, ADMIN, "pinChatMessage") == []


async def test_file_entries_are_paused_per_chat_and_cannot_be_removed(make_harness: Any, tmp_path: Path) -> None:
    cal = '[[entry]]\nid = "tips"\nwhen = "每天 19:10"\nchat_tags = ["fans"]\ntags = ["knowledge"]\ntext = "小知识"\n'
    h = await start(make_harness, tmp_path, cal)
    await h.say(GROUP, ADMIN, "/schedule rm tips")
    assert "来自日历文件" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/schedule pause tips")
    assert "已暂停" in h.last_text(GROUP)
    await h.advance(4 * 60)
    assert "小知识" not in texts(h, GROUP)
    assert texts(h, OTHER_GROUP) == ["小知识"]  # another chat is not affected
    await h.say(GROUP, ADMIN, "/schedule list")
    assert "已暂停" in h.last_text(GROUP)
    await h.say(OTHER_GROUP, ADMIN, "/schedule list")
    assert "已暂停" not in h.last_text(OTHER_GROUP) and "✅" in h.last_text(OTHER_GROUP)


async def test_entries_of_another_chat_are_invisible(make_harness: Any, tmp_path: Path) -> None:
    h = await start(make_harness, tmp_path)
    await h.say(GROUP, ADMIN, "/schedule add 每天 20:00 | 只给一群")
    await h.say(OTHER_GROUP, ADMIN, "/schedule list")
    assert "还没有定时内容" in h.last_text(OTHER_GROUP)
    for sub in ("pause 1", "rm 1", "preview 1"):
        await h.say(OTHER_GROUP, ADMIN, f"/schedule {sub}")
        assert "本群没有这个条目" in h.last_text(OTHER_GROUP)
    assert len(await pending(h)) == 1


async def test_agenda_lists_the_coming_days(make_harness: Any, tmp_path: Path) -> None:
    cal = ('[[entry]]\nid = "d12"\nwhen = "双十二倒计时3天 20:00"\nchats = [-1001]\ntext = "x"\n\n'
           '[[entry]]\nid = "mon"\nwhen = "每周一 09:00"\nchats = [-1001]\ntext = "y"\n')
    h = await start(make_harness, tmp_path, cal)
    await h.say(GROUP, ADMIN, "/schedule agenda 30")
    agenda = h.last_text(GROUP)
    lines = [line for line in agenda.split("\n") if line.startswith("2026")]
    assert lines[0].startswith("2026-11-23 星期一 09:00")
    assert sum("d12" in line for line in lines) == 3 and any("双十二" in line for line in lines)
    await h.say(GROUP, ADMIN, "/schedule agenda 2")
    assert "没有安排" in h.last_text(GROUP)
