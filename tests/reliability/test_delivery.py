"""At-least-once delivery, faults and restarts, driven through the real bot and the emulator."""

from __future__ import annotations

from collections import Counter

from tests.harness import ALICE, BOB, CAROL, CREATOR, GROUP, OTHER_GROUP


def replies_by_source(h, chat_id: int) -> Counter[int]:  # type: ignore[no-untyped-def]
    """How many bot messages answered each member message in ``chat_id``."""
    counts: Counter[int] = Counter()
    for msg in h.world.bot_messages(chat_id):
        replied = msg.get("reply_to_message")
        if replied:
            counts[replied["message_id"]] += 1
    return counts


async def test_redelivered_update_changes_nothing(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=[])
    h.world.send_message(GROUP, ALICE, "/id")
    raw = h.world.pending_updates()[-1]
    await h.deliver()
    assert len(h.world.bot_messages(GROUP)) == 1
    # Telegram redelivers the same update (e.g. the offset was not confirmed before a crash).
    h.world.push_update(raw)
    await h.deliver()
    assert len(h.world.bot_messages(GROUP)) == 1
    # ... and after a restart, when the processed ids come back from the database.
    await h.restart()
    h.world.push_update(raw)
    await h.deliver()
    assert len(h.world.bot_messages(GROUP)) == 1


async def test_pending_updates_are_not_dropped_at_start(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=[])
    await h.stop()
    # Messages arrive while the bot is down.
    for uid in (ALICE, BOB, CAROL):
        h.world.send_message(GROUP, uid, "/id")
    await h.start(create_schema=False)
    await h.deliver()
    assert sum(replies_by_source(h, GROUP).values()) == 3
    assert not any(c.method == "deleteWebhook" and c.params.get("drop_pending_updates") for c in h.calls())


async def test_fault_storm_every_reply_delivered_once(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=[])
    h.world.faults.plan(rate=0.25, kinds=("429", "502", "drop"), seed=7)
    sent = []
    for i in range(12):
        chat = GROUP if i % 2 else OTHER_GROUP
        sent.append((chat, h.world.send_message(chat, (ALICE, BOB, CAROL)[i % 3], "/id")["message_id"]))
    await h.deliver()
    h.world.faults.clear()
    assert h.world.faults.total > 0
    for chat in (GROUP, OTHER_GROUP):
        counts = replies_by_source(h, chat)
        expected = {mid for c, mid in sent if c == chat}
        assert set(counts) == expected
        assert all(v == 1 for v in counts.values()), counts
    assert h.app.sender.failed == 0


async def test_malformed_and_odd_updates_are_ignored_safely(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(plugins=[])
    h.world.push_update({"update_id": 10_000_001, "message": {"nonsense": True}})
    h.world.push_update({"update_id": 10_000_002, "unknown_kind": {"x": 1}})
    h.world.add_chat(-100777, "品牌频道", type="channel")
    h.world.channel_post(-100777, "频道消息")
    await h.say(GROUP, ALICE, "表情😀\u200b\u202e" + "长" * 4096)
    await h.say(GROUP, ALICE, sticker={"file_id": "S1", "file_unique_id": "s1", "type": "regular", "width": 512,
                                       "height": 512, "is_animated": False, "is_video": False})
    msg = h.world.send_message(GROUP, BOB, "原文")
    h.world.edit_message(GROUP, msg["message_id"], "/id 编辑过")
    await h.deliver()
    # The bot is still alive and answers normally afterwards.
    await h.say(GROUP, CREATOR, "/id")
    assert "chat_id" in h.last_text(GROUP)
