"""Notes (/save, #name, /get, /notes, /clear): the real bot against the emulated Telegram and SQLite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from plugins.faq.models import FaqNote
from tests.harness import ADMIN, ALICE, BOB, GROUP, OTHER_GROUP, Harness


async def notes_harness(make_harness: Callable[..., Any]) -> Harness:
    return await make_harness(plugins=["faq"])


def sent(h: Harness, method: str = "sendMessage", chat_id: int = GROUP) -> list[dict[str, Any]]:
    return [c.params for c in h.calls(method) if c.params.get("chat_id") == chat_id and c.ok]


async def test_save_then_hash_name_sends_the_note_once(make_harness: Callable[..., Any]) -> None:
    h = await notes_harness(make_harness)
    await h.say(GROUP, ADMIN, "/save 发货 下单后48小时内发货，{first} 请耐心等待 [查物流](buttonurl://https://kuaidi.example/q)")
    assert "已保存笔记 发货" in h.last_text(GROUP) and "#发货" in h.last_text(GROUP)
    h.clear()
    ask = await h.say(GROUP, ALICE, "#发货")
    out = sent(h)
    assert len(out) == 1
    assert out[0]["text"] == "下单后48小时内发货，Alice 请耐心等待"
    assert out[0]["reply_parameters"]["message_id"] == ask["message_id"]
    assert out[0]["reply_markup"]["inline_keyboard"] == [[{"text": "查物流", "url": "https://kuaidi.example/q"}]]
    h.world.push_update(dict(h.world.all_updates[-1]))  # delivered again: answered once
    await h.deliver()
    assert len(sent(h)) == 1
    h.clear()
    await h.say(GROUP, BOB, "#發貨，在哪看")  # traditional form of the name, words after it
    await h.say(GROUP, BOB, "/get 发货")
    assert [m["text"] for m in sent(h)] == ["下单后48小时内发货，Bob 请耐心等待"] * 2


async def test_hash_name_under_a_question_answers_the_asker(make_harness: Callable[..., Any]) -> None:
    h = await notes_harness(make_harness)
    await h.say(GROUP, ADMIN, "/save 退货 {first}，七天无理由退货")
    question = await h.say(GROUP, ALICE, "可以退吗")
    h.clear()
    await h.say(GROUP, ADMIN, "#退货", reply_to=question["message_id"])
    out = sent(h)
    assert len(out) == 1 and out[0]["reply_parameters"]["message_id"] == question["message_id"]
    assert out[0]["text"] == "Alice，七天无理由退货"  # the placeholders are the asker's


async def test_a_long_list_of_notes_is_cut_to_one_message(make_harness: Callable[..., Any]) -> None:
    h = await notes_harness(make_harness)
    for i in range(300):
        await h.say(GROUP, ADMIN, f"/save 活动说明第{i:03d}号 内容{i}")
    await h.say(GROUP, ALICE, "/notes")
    listing = h.last_text(GROUP)
    assert len(listing) < 4096 and "#活动说明第000号" in listing and "还有" in listing


async def test_media_note_from_a_replied_message_and_listing_and_clearing(make_harness: Callable[..., Any]) -> None:
    h = await notes_harness(make_harness)
    poster = await h.say(GROUP, ADMIN, None, photo=True, caption="双十一海报")
    await h.say(GROUP, ADMIN, "/save 海报", reply_to=poster["message_id"])
    await h.say(GROUP, ADMIN, "/save 客服 联系 @shop_help")
    h.clear()
    await h.say(GROUP, ALICE, "#海报")
    photos = sent(h, "sendPhoto")
    assert len(photos) == 1 and photos[0]["caption"] == "双十一海报" and photos[0]["photo"]
    await h.say(GROUP, ALICE, "/notes")
    listing = h.last_text(GROUP)
    assert "#客服" in listing and "#海报" in listing
    await h.say(GROUP, ADMIN, "/clear #海报")
    assert "已删除笔记 海报" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, ALICE, "#海报")
    assert sent(h, "sendPhoto") == [] and sent(h) == []
    await h.say(GROUP, ADMIN, "/clear 海报")
    assert "没有叫 海报 的笔记" in h.last_text(GROUP)
    async with h.app.db() as s:
        names = (await s.execute(sa.select(FaqNote.name))).scalars().all()
    assert names == ["客服"]


async def test_notes_stay_in_their_chat_and_never_match_on_their_own(make_harness: Callable[..., Any]) -> None:
    h = await notes_harness(make_harness)
    await h.say(GROUP, ADMIN, "/save 规则 不许发广告")
    await h.say(GROUP, ADMIN, "/save 规则 不许发广告，不许刷屏")  # saved again: replaced
    assert "已更新笔记 规则" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, ALICE, "群规则是什么")  # the name inside a sentence is no request
    await h.say(OTHER_GROUP, ALICE, "#规则")  # another chat has no such note
    await h.say(GROUP, ALICE, "#没有这个")
    await h.say(GROUP, ALICE, "#")
    await h.say(GROUP, ALICE, "#  ")
    await h.say(GROUP, ALICE, "#规则们")  # a longer tag is another name
    assert sent(h) == [] and sent(h, chat_id=OTHER_GROUP) == []
    await h.say(GROUP, ALICE, "#规则")
    assert [m["text"] for m in sent(h)] == ["不许发广告，不许刷屏"]


async def test_bad_note_commands_get_a_usage_reply_and_members_cannot_save(make_harness: Callable[..., Any]) -> None:
    h = await notes_harness(make_harness)
    await h.say(GROUP, ADMIN, "/save")
    assert "/save" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/save 名字")
    assert "请写上笔记内容" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/save 坏/名字 内容")
    assert "笔记名只能用" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/save " + "长" * 40 + " 内容")
    assert "笔记名只能用" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/save 广告 加我微信")
    assert "只有管理员" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/clear 广告")
    assert "只有管理员" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/get")
    assert "/get" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/get 不存在")
    assert "没有叫 不存在 的笔记" in h.last_text(GROUP)
    await h.say(GROUP, ALICE, "/notes")
    assert "本群还没有笔记" in h.last_text(GROUP)
    async with h.app.db() as s:
        assert (await s.scalar(sa.select(sa.func.count()).select_from(FaqNote))) == 0


async def test_a_note_changed_outside_the_bot_is_picked_up_by_the_revision_check(
    make_harness: Callable[..., Any],
) -> None:
    from plugins.faq.handlers import refresh_job
    from plugins.faq.notes import save_note

    h = await notes_harness(make_harness)
    await h.say(GROUP, ADMIN, "/save 活动 满100减10")
    await h.say(GROUP, ALICE, "#活动")  # cached
    async with h.app.db() as s, s.begin():  # what `qunbot faq import` does in another process
        await save_note(s, GROUP, "活动", "活动", "满200减30", [], None, None, by=None, now=h.clock.now())
    h.clear()
    await h.say(GROUP, ALICE, "#活动")
    assert [m["text"] for m in sent(h)] == ["满100减10"]  # the cache until the check
    await refresh_job(h.app)
    h.clear()
    await h.say(GROUP, ALICE, "#活动")
    assert [m["text"] for m in sent(h)] == ["满200减30"]
