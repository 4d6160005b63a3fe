"""Bad input: hypothesis-fuzzed command arguments and random, schema-valid updates through the full
dispatcher with every plugin on. Nothing may raise past the error boundary (the core logs any
exception a handler raises at ERROR level: there must be none) and the bot must keep answering."""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness import ALICE, BOB, CREATOR, GROUP, Harness

ARG_ALPHABET = st.sampled_from(
    list("abcXYZ019 -+|/@#:：，。！？“”\"'()[]{}<>&;\n\t")
    + list("签到积分发货退款骗子天小时分钟周")
    + ["\u200b", "\u202e", "😀", "ｆｕｌｌ", "0x10", "1e9", "-5", "99999999999999999999"]
)
ARGS = st.lists(ARG_ALPHABET, max_size=30).map("".join)


class ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        # Sends that Telegram refuses are logged as failed sends, not crashes.
        if record.name == "bot.services.sender":
            return
        self.records.append(record)


@pytest.fixture
async def fuzz_harness(make_harness):  # type: ignore[no-untyped-def]
    h: Harness = await make_harness(config={"plugins": {"moderation": {"flood_enabled": False}}})
    collector = ErrorCollector()
    logging.getLogger().addHandler(collector)
    h.errors = collector.records  # type: ignore[attr-defined]
    yield h
    logging.getLogger().removeHandler(collector)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_every_command_survives_garbage_arguments(fuzz_harness: Harness, data: st.DataObject) -> None:
    h = fuzz_harness
    names = sorted(e.spec.name for e in h.app.commands.entries())
    name = data.draw(st.sampled_from(names), label="command")
    args = data.draw(ARGS, label="args")
    sender = data.draw(st.sampled_from([CREATOR, ALICE]), label="sender")
    reply = data.draw(st.booleans(), label="as_reply")
    # Earlier examples may have banned or muted them (/ban, /mute…): put them back.
    for uid in (ALICE, BOB):
        h.world.set_member(GROUP, uid, "member")
    target = h.world.send_message(GROUP, BOB, "目标消息") if reply else None
    h.clock.advance(2)
    await h.say(GROUP, sender, f"/{name} {args}".strip(), reply_to=target["message_id"] if target else None)
    h.clock.advance(2)
    assert h.errors == [], [r.getMessage() for r in h.errors]  # type: ignore[attr-defined]


user_st = st.fixed_dictionaries({
    "id": st.integers(1, 2**40), "is_bot": st.booleans(), "first_name": st.text(min_size=1, max_size=20),
}, optional={"username": st.from_regex(r"[a-z][a-z0-9_]{3,10}", fullmatch=True),
             "language_code": st.sampled_from(["zh-hans", "en", "xx"])})
chat_st = st.sampled_from([
    {"id": GROUP, "type": "supergroup", "title": "粉丝福利群"},
    {"id": ALICE, "type": "private", "first_name": "Alice"},
    {"id": -100555, "type": "supergroup", "title": "陌生群"},
    {"id": -555, "type": "group", "title": "普通群"},
    {"id": -100777, "type": "channel", "title": "频道"},
])
text_st = st.text(max_size=200) | st.sampled_from(["签到", "积分", "排行榜", "/points", "/top week", "发货多久？",
                                                   "骗子！退款！", "", "/start abc", "#A 我支持正方"])


@st.composite
def messages(draw: st.DrawFn) -> dict:
    chat = draw(chat_st)
    msg: dict = {"message_id": draw(st.integers(1, 10**6)), "date": 1_795_000_000, "chat": chat}
    if draw(st.booleans()):
        msg["from"] = draw(user_st)
    kind = draw(st.sampled_from(["text", "caption", "new", "left", "sticker", "sender_chat", "reply"]))
    if kind in ("text", "reply", "sender_chat"):
        text = draw(text_st)
        msg["text"] = text or "x"
        if draw(st.booleans()):
            msg["entities"] = [{"type": draw(st.sampled_from(["bot_command", "mention", "url", "bold"])),
                                "offset": draw(st.integers(0, 50)), "length": draw(st.integers(1, 50))}]
    if kind == "reply":
        msg["reply_to_message"] = {"message_id": 1, "date": 1_795_000_000, "chat": chat,
                                   "from": draw(user_st), "text": "…"}
    if kind == "sender_chat":
        msg["sender_chat"] = draw(chat_st)
    if kind == "caption":
        msg["caption"] = draw(text_st)
        msg["photo"] = [{"file_id": "p", "file_unique_id": "p", "width": 1, "height": 1}]
    if kind == "new":
        msg["new_chat_members"] = draw(st.lists(user_st, min_size=1, max_size=3))
    if kind == "left":
        msg["left_chat_member"] = draw(user_st)
    if kind == "sticker":
        msg["sticker"] = {"file_id": "s", "file_unique_id": "s", "type": "regular", "width": 1, "height": 1,
                          "is_animated": False, "is_video": False}
    return msg


@st.composite
def updates(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["message", "edited_message", "channel_post", "callback_query", "chat_member"]))
    if kind == "callback_query":
        body = {"id": str(draw(st.integers(1, 10**9))), "from": draw(user_st), "chat_instance": "1",
                "data": draw(st.text(max_size=64)), "message": draw(messages())}
    elif kind == "chat_member":
        statuses = st.sampled_from(["member", "left", "kicked", "administrator", "restricted"])
        user = draw(user_st)

        def member(status: str) -> dict:
            base: dict = {"status": status, "user": user}
            if status == "kicked":
                base["until_date"] = 0
            if status == "administrator":
                base.update(can_be_edited=False, is_anonymous=False, can_manage_chat=True, can_delete_messages=True,
                            can_manage_video_chats=False, can_restrict_members=True, can_promote_members=False,
                            can_change_info=False, can_invite_users=True, can_post_stories=False,
                            can_edit_stories=False, can_delete_stories=False)
            if status == "restricted":
                base.update(is_member=draw(st.booleans()), can_send_messages=False, can_send_audios=False,
                            can_send_documents=False, can_send_photos=False, can_send_videos=False,
                            can_send_video_notes=False, can_send_voice_notes=False, can_send_polls=False,
                            can_send_other_messages=False, can_add_web_page_previews=False, can_change_info=False,
                            can_invite_users=False, can_pin_messages=False, can_manage_topics=False, until_date=0)
            return base

        body = {"chat": {"id": GROUP, "type": "supergroup", "title": "粉丝福利群"}, "from": user,
                "date": 1_795_000_000, "old_chat_member": member(draw(statuses)),
                "new_chat_member": member(draw(statuses))}
    else:
        body = draw(messages())
    return {kind: body}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(update=updates())
async def test_random_valid_updates_never_crash_the_bot(fuzz_harness: Harness, update: dict) -> None:
    h = fuzz_harness
    h.world.push_update(update)
    await h.deliver()
    assert h.errors == [], [r.getMessage() for r in h.errors]  # type: ignore[attr-defined]


async def test_bot_still_answers_after_fuzzing(fuzz_harness: Harness) -> None:
    h = fuzz_harness
    await h.say(GROUP, CREATOR, "/id")
    assert "chat_id" in h.last_text(GROUP)
