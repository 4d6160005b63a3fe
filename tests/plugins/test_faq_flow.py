"""FAQ auto-reply end to end: the real bot against the emulated Telegram (harness) and real SQLite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from bot.runner import RawGetUpdates, parse_updates
from bot.services.events import FaqAnswered, QuestionUnanswered
from plugins.faq.handlers import refresh_job
from plugins.faq.models import FaqEntry, FaqGap
from plugins.faq.parsing import prepare_entry
from plugins.faq.service import save_entry
from tests.harness import ADMIN, ALICE, BOB, CAROL, GROUP, OTHER_GROUP, Harness
from tests.plugins.test_faq_matcher import shared_nlp

FILTER_SHIPPING = "/filter (发货多久, 几天到, 什么时候发货) 48小时内发货"


async def faq_harness(make_harness: Callable[..., Any], **cfg: Any) -> Harness:
    config = {"plugins": {"faq": cfg}} if cfg else None
    return await make_harness(plugins=["faq"], config=config)


def answers(h: Harness, chat_id: int = GROUP) -> list[dict[str, Any]]:
    """sendMessage calls the bot made in a chat (params)."""
    return [c.params for c in h.calls("sendMessage") if c.params.get("chat_id") == chat_id and c.ok]


async def hits_in_db(h: Harness) -> dict[int, int]:
    async with h.app.db() as s:
        rows = await s.execute(sa.select(FaqEntry.id, FaqEntry.hits))
    return {int(i): int(n) for i, n in rows}


async def test_filter_then_a_matching_question_gets_the_stored_answer(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    await h.say(GROUP, ADMIN, FILTER_SHIPPING + " [查物流](buttonurl://https://kuaidi.example/q)")
    assert "已添加自动回复" in h.last_text(GROUP)
    h.clear()
    question = await h.say(GROUP, ALICE, "請問一般幾天到？")  # traditional + full-width punctuation
    sent = answers(h)
    assert len(sent) == 1
    assert sent[0]["text"] == "48小时内发货"
    assert sent[0]["reply_parameters"]["message_id"] == question["message_id"]
    assert sent[0]["reply_markup"]["inline_keyboard"] == [[{"text": "查物流", "url": "https://kuaidi.example/q"}]]
    h.clear()
    await h.say(GROUP, BOB, "今天天气真好")
    assert answers(h) == []


async def test_reply_keeps_telegram_formatting(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    text = "/filter 退货 请先看<置顶>，再联系客服"
    bold = text.index("置顶") - 1  # "<置顶>" incl. brackets, all BMP: UTF-16 offsets equal indexes
    await h.say(GROUP, ADMIN, text, entities=[{"type": "bold", "offset": bold, "length": 4},
                                             {"type": "italic", "offset": text.index("客服"), "length": 2}])
    h.clear()
    await h.say(GROUP, ALICE, "怎么退货")
    assert answers(h)[0]["text"] == "请先看<b>&lt;置顶&gt;</b>，再联系<i>客服</i>"
    assert h.last_text(GROUP) == "请先看<置顶>，再联系客服"


async def test_filter_by_replying_to_a_message_stores_its_content(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    photo = await h.say(GROUP, ADMIN, None, photo="AgADsizechart", caption="尺码表见图")
    await h.say(GROUP, ADMIN, "/filter 尺码", reply_to=photo["message_id"])
    text_msg = await h.say(GROUP, ADMIN, "优惠券在个人中心领取")
    await h.say(GROUP, ADMIN, '/filter "优惠券 怎么用"', reply_to=text_msg["message_id"])
    h.clear()
    await h.say(GROUP, ALICE, "请问尺码怎么选")
    photos = h.calls("sendPhoto")
    assert len(photos) == 1
    assert photos[0].params["caption"] == "尺码表见图"
    assert photos[0].params["photo"]
    await h.say(GROUP, BOB, "优惠券怎么用？")
    assert answers(h)[-1]["text"] == "优惠券在个人中心领取"


async def test_placeholders_are_filled(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    await h.say(GROUP, ADMIN, "/filter 客服 {first} 你好，客服工作时间 9:00-18:00")
    h.clear()
    await h.say(GROUP, ALICE, "客服在吗")
    assert answers(h)[0]["text"] == "Alice 你好，客服工作时间 9:00-18:00"


async def test_same_entry_is_not_repeated_within_the_cooldown(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness, cooldown=60)
    await h.say(GROUP, ADMIN, FILTER_SHIPPING)
    await h.say(GROUP, ADMIN, "/filter 退货 七天无理由")
    h.clear()
    await h.say(GROUP, ALICE, "发货多久")
    await h.say(GROUP, BOB, "几天到啊")  # same entry, 0 s later
    assert [a["text"] for a in answers(h)] == ["48小时内发货"]
    await h.say(GROUP, BOB, "怎么退货")  # another entry is not cooling down
    assert [a["text"] for a in answers(h)] == ["48小时内发货", "七天无理由"]
    await h.advance(59)
    await h.say(GROUP, BOB, "什么时候发货")
    assert len(answers(h)) == 2
    await h.advance(2)
    await h.say(GROUP, BOB, "什么时候发货")
    assert [a["text"] for a in answers(h)][-1] == "48小时内发货"
    assert len(answers(h)) == 3


async def test_admins_can_be_excluded(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness, ignore_admins=True, cooldown=0)
    await h.say(GROUP, ADMIN, FILTER_SHIPPING)
    h.clear()
    await h.say(GROUP, ADMIN, "发货多久")
    assert answers(h) == []
    await h.say(GROUP, ALICE, "发货多久")
    assert len(answers(h)) == 1


async def test_admins_get_answers_by_default(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    await h.say(GROUP, ADMIN, FILTER_SHIPPING)
    h.clear()
    await h.say(GROUP, ADMIN, "发货多久")
    assert len(answers(h)) == 1


async def test_hits_are_buffered_and_written_at_flush(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness, cooldown=0)
    await h.say(GROUP, ADMIN, FILTER_SHIPPING)
    await h.say(GROUP, ALICE, "发货多久")
    await h.say(GROUP, BOB, "几天到")
    (entry_id,) = (await hits_in_db(h)).keys()
    assert (await hits_in_db(h))[entry_id] == 2  # h.say delivers a batch, then the core flushes
    # Between flushes the count lives in the runtime only.
    h.world.send_message(GROUP, ALICE, "什么时候发货")
    raw = await h.app.bot(RawGetUpdates(offset=h.offset, limit=100, timeout=0))
    updates, highest = parse_updates(h.app, raw)
    await h.app.process_batch(updates)
    assert (await hits_in_db(h))[entry_id] == 2
    assert h.app.runtime("faq").hits[entry_id][0] == 1
    await h.app.flush()
    h.offset = (highest or 0) + 1
    assert (await hits_in_db(h))[entry_id] == 3
    await h.say(GROUP, ADMIN, "/filters")
    assert "命中 3 次" in h.last_text(GROUP)


async def test_unanswered_questions_are_logged_and_listed(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    await h.say(GROUP, ADMIN, FILTER_SHIPPING)
    for user in (ALICE, BOB, ALICE):
        await h.say(GROUP, user, "什么时候上新呢？")
    await h.say(GROUP, BOB, "有優惠券嗎")
    await h.say(GROUP, BOB, "哈哈哈 好的")  # not a question
    await h.say(GROUP, ALICE, "发货多久？")  # answered: not a gap
    async with h.app.db() as s:
        gaps = dict((await s.execute(sa.select(FaqGap.question, FaqGap.count))).all())
    assert gaps == {"什么时候上新呢": 3, "有优惠券吗": 1}
    await h.say(GROUP, ADMIN, "/faqgaps")
    listing = h.last_text(GROUP)
    assert listing.index("什么时候上新呢 — 3 次") < listing.index("有优惠券吗 — 1 次")
    assert "哈哈" not in listing and "发货" not in listing
    # Once an entry answers a gap, /faqgaps stops listing it.
    await h.say(GROUP, ADMIN, "/filter 上新 每周五晚八点上新")
    await h.say(GROUP, ADMIN, "/faqgaps")
    assert "上新" not in h.last_text(GROUP) and "有优惠券吗" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/faqgaps clear")
    await h.say(GROUP, ADMIN, "/faqgaps")
    assert h.last_text(GROUP) == "最近没有记录到没人回答的问题。"


async def test_events_are_emitted(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    seen: list[Any] = []

    async def record(app: Any, event: Any) -> None:
        seen.append(event)

    h.app.events.subscribe(FaqAnswered, "core", record)
    h.app.events.subscribe(QuestionUnanswered, "core", record)
    await h.say(GROUP, ADMIN, FILTER_SHIPPING)
    await h.say(GROUP, ALICE, "几天到")
    await h.say(GROUP, BOB, "能开发票吗")
    assert [type(e) for e in seen] == [FaqAnswered, QuestionUnanswered]
    assert seen[0].chat_id == GROUP and seen[0].user_id == ALICE
    assert seen[1].text == "能开发票吗" and seen[1].user_id == BOB


async def test_chats_are_isolated(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    await h.say(GROUP, ADMIN, FILTER_SHIPPING)
    h.clear()
    await h.say(OTHER_GROUP, ALICE, "发货多久")
    assert answers(h, OTHER_GROUP) == []
    await h.say(OTHER_GROUP, ADMIN, "/filters")
    assert "还没有自动回复" in h.last_text(OTHER_GROUP)
    await h.say(OTHER_GROUP, ADMIN, "/filter 发货多久 我们这边三天内发")
    await h.say(OTHER_GROUP, ADMIN, "/stopall")
    h.clear()
    await h.say(GROUP, ALICE, "发货多久")
    assert [a["text"] for a in answers(h)] == ["48小时内发货"]
    await h.say(OTHER_GROUP, BOB, "发货多久")
    assert [a["text"] for a in answers(h, OTHER_GROUP)] == ["我们这边三天内发"]


async def test_redelivered_question_gets_one_answer(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness, cooldown=0)  # no cooldown: only deduplication can stop a repeat
    await h.say(GROUP, ADMIN, FILTER_SHIPPING)
    h.clear()
    await h.say(GROUP, ALICE, "发货多久")
    raw = h.world.all_updates[-1]
    h.world.push_update(raw)
    await h.deliver()
    assert len(answers(h)) == 1
    assert (await hits_in_db(h)) == {next(iter(await hits_in_db(h))): 1}


async def test_non_admin_cannot_add_or_remove_filters(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    await h.say(GROUP, ALICE, "/filter 发货 假消息")
    assert h.last_text(GROUP) == "只有管理员可以使用这个命令。"
    await h.say(GROUP, ADMIN, "/filter 退货 七天无理由")
    await h.say(GROUP, BOB, "/stop 退货")
    assert h.last_text(GROUP) == "只有管理员可以使用这个命令。"
    h.clear()
    await h.say(GROUP, CAROL, "发货吗")
    assert answers(h) == []
    await h.say(GROUP, BOB, "怎么退货")
    assert [a["text"] for a in answers(h)] == ["七天无理由"]



async def test_bad_input_gets_clear_answers(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    cases = {
        "/filter": "用法",
        "/filter 发货": "请写上回复内容",
        "/filter ？？ 回复": "关键词不能只有标点",
        '/filter "没闭合 回复': "引号没有闭合",
        "/filter 发货 " + "长" * 4097: "回复太长",
        "/filter regex:(a+)+ 回复": "嵌套的重复",
        "/filter regex:[abc 回复": "正则表达式有误",
        "/stop": "用法",
        "/stop 不存在的词": "没有这个关键词的自动回复",
        "/faqgaps 什么": "用法",
    }
    for command, expected in cases.items():
        h.clear()
        await h.say(GROUP, ADMIN, command)
        texts = [a["text"] for a in answers(h)]
        assert len(texts) == 1 and expected in texts[0], (command, texts)
    async with h.app.db() as s:
        assert await s.scalar(sa.select(sa.func.count()).select_from(FaqEntry)) == 0


async def test_duplicate_keyword_updates_the_existing_entry(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    await h.say(GROUP, ADMIN, "/filter 发货 旧回答")
    await h.say(GROUP, ADMIN, "/filter (發貨, 几天到) 新回答")  # traditional spelling is the same keyword
    assert "已更新自动回复" in h.last_text(GROUP)
    await h.say(GROUP, ADMIN, "/filters")
    listing = h.last_text(GROUP)
    assert "共 1 条" in listing and "發貨" in listing and "几天到" in listing
    h.clear()
    await h.say(GROUP, ALICE, "几天到")
    assert [a["text"] for a in answers(h)] == ["新回答"]


async def test_stop_removes_one_keyword_and_keeps_the_others(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness, cooldown=0)
    await h.say(GROUP, ADMIN, FILTER_SHIPPING)
    await h.say(GROUP, ADMIN, "/stop 几天到")
    assert "还保留关键词" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, ALICE, "几天到")
    assert answers(h) == []
    await h.say(GROUP, ALICE, "发货多久")
    assert len(answers(h)) == 1
    await h.say(GROUP, ADMIN, '/stop (发货多久, "什么时候发货")')
    assert "已删除自动回复" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, ALICE, "发货多久")
    assert answers(h) == []
    async with h.app.db() as s:
        assert await s.scalar(sa.select(sa.func.count()).select_from(FaqEntry)) == 0


async def test_stopall_asks_for_confirmation(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    await h.say(OTHER_GROUP, ADMIN, FILTER_SHIPPING)
    await h.say(GROUP, ADMIN, FILTER_SHIPPING)
    await h.say(GROUP, ADMIN, "/filter 退货 七天无理由")
    h.clear()
    await h.say(GROUP, ADMIN, "/stopall")
    prompt = h.calls("sendMessage")[-1]
    message_id = prompt.result["message_id"]
    confirm, cancel = prompt.params["reply_markup"]["inline_keyboard"][0]
    await h.press(GROUP, ALICE, message_id, confirm["callback_data"])  # not the admin who asked
    forgeries = [("faq:sa:forged", ADMIN), (f"faq:sa:{GROUP}:{ALICE}", ALICE), ("faq:zz:1", ADMIN),
                 (f"faq:sa:{OTHER_GROUP}:{ADMIN}", ADMIN)]  # the last one names another group
    for forged, user in forgeries:  # a client can send any data
        h.world.push_update({"callback_query": {
            "id": f"forged-{forged}", "from": h.world.find_user(user), "chat_instance": "1", "data": forged,
            "message": h.world.message(GROUP, message_id),
        }})
        await h.deliver()
    async with h.app.db() as s:
        assert await s.scalar(sa.select(sa.func.count()).select_from(FaqEntry)) == 3
    await h.press(GROUP, ADMIN, message_id, cancel["callback_data"])
    assert "已取消" in h.world.message(GROUP, message_id)["text"]
    async with h.app.db() as s:
        assert await s.scalar(sa.select(sa.func.count()).select_from(FaqEntry)) == 3
    await h.say(GROUP, ADMIN, "/stopall")
    prompt = h.calls("sendMessage")[-1]
    message_id = prompt.result["message_id"]
    await h.press(GROUP, ADMIN, message_id, confirm["callback_data"])
    assert "全部 2 条" in h.world.message(GROUP, message_id)["text"]
    raw = h.world.all_updates[-1]
    h.world.push_update({"callback_query": {**raw["callback_query"], "id": "again"}})  # a second tap, late
    await h.deliver()
    assert "已经没有自动回复" in h.world.message(GROUP, message_id)["text"]
    h.clear()
    await h.say(GROUP, ALICE, "发货多久")
    assert answers(h) == []
    await h.say(OTHER_GROUP, ALICE, "发货多久")
    assert len(answers(h, OTHER_GROUP)) == 1  # the other group's entries are untouched


async def test_stopall_from_a_private_chat_after_connect(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    await h.say(GROUP, ADMIN, FILTER_SHIPPING)
    await h.say(ADMIN, ADMIN, f"/connect {GROUP}")
    await h.say(ADMIN, ADMIN, "/filters")
    assert "发货多久" in h.last_text(ADMIN)
    h.clear()
    await h.say(ADMIN, ADMIN, "/stopall")
    prompt = h.calls("sendMessage")[-1]
    confirm = prompt.params["reply_markup"]["inline_keyboard"][0][0]
    await h.press(ADMIN, ADMIN, prompt.result["message_id"], confirm["callback_data"])
    assert "全部 1 条" in h.world.message(ADMIN, prompt.result["message_id"])["text"]
    h.clear()
    await h.say(GROUP, ALICE, "发货多久")
    assert answers(h) == []


async def test_word_mode_end_to_end(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness, cooldown=0)
    h.app._nlp = shared_nlp()  # share the built jieba with the other FAQ tests (about 1 s each)
    await h.say(GROUP, ADMIN, "/filter word:发货 48小时内发货")
    assert "整词" in h.last_text(GROUP)
    h.clear()
    await h.say(GROUP, ALICE, "发货单在哪里看")
    assert answers(h) == []
    await h.say(GROUP, ALICE, "你们几号发货")
    assert [a["text"] for a in answers(h)] == ["48小时内发货"]


async def test_exact_and_regex_modes_end_to_end(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness, cooldown=0)
    await h.say(GROUP, ADMIN, "/filter exact:客服 人工客服请私聊 @shop_help")
    await h.say(GROUP, ADMIN, r"/filter regex:^(怎么|如何)(退货|退款) 退货流程见置顶")
    h.clear()
    await h.say(GROUP, ALICE, "客服在吗")
    await h.say(GROUP, ALICE, "客服！")
    await h.say(GROUP, BOB, "如何退款？")
    await h.say(GROUP, BOB, "我想知道如何退款")
    assert [a["text"] for a in answers(h)] == ["人工客服请私聊 @shop_help", "退货流程见置顶"]


async def test_changes_made_by_another_process_are_picked_up(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    await h.say(GROUP, ALICE, "发货多久")  # builds (and caches) the empty matcher
    # `qunbot faq import` writes from another process: only the revision tells the bot.
    entry = prepare_entry(["发货多久"], "contains", "48小时内发货", h.app.nlp.normalizer.normalize)
    async with h.app.db() as s, s.begin():
        await save_entry(s, GROUP, entry, by=None, now=h.app.clock.now(), max_entries=10, max_regex=1)
    h.clear()
    await h.say(GROUP, BOB, "发货多久")
    assert answers(h) == []  # still the cached matcher
    await refresh_job(h.app)
    await h.say(GROUP, BOB, "发货多久")
    assert [a["text"] for a in answers(h)] == ["48小时内发货"]


async def test_answers_survive_a_restart(make_harness: Callable[..., Any]) -> None:
    h = await faq_harness(make_harness)
    await h.say(GROUP, ADMIN, FILTER_SHIPPING)
    await h.restart()
    h.clear()
    await h.say(GROUP, ALICE, "什么时候发货")
    assert [a["text"] for a in answers(h)] == ["48小时内发货"]


async def test_english_chat_gets_english_texts(make_harness: Callable[..., Any]) -> None:
    h = await make_harness(plugins=["faq"], config={"chats": {GROUP: {"language": "en"}}})
    await h.say(GROUP, ADMIN, "/filter regex:(a+)+ x")
    assert h.last_text(GROUP).startswith("The regex nests repeats")
    await h.say(GROUP, ADMIN, "/filter 发货 48小时内发货")
    assert h.last_text(GROUP) == "Auto-reply added (contains): 发货"
    await h.say(GROUP, ADMIN, "/stop 没有")
    assert h.last_text(GROUP).startswith("No auto-reply has this keyword: 没有")
