"""crisis with two workers (two Apps: two memories) sharing PostgreSQL and Redis decides like one bot: a
pile-on whose messages are split between the workers is scored over all of them (the same incident,
levels and alerts as one process), the leader steps down and closes an incident it never saw a message
of, commands and buttons work on either worker, and garbled shared values are ignored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.emulator.http import EmulatorServer
from plugins.crisis.models import CrisisIncident, CrisisTimeline
from plugins.crisis.runtime import CrisisRuntime
from plugins.crisis.sync import log_key, state_key
from tests.harness import ADMIN, GROUP, LOG_CHAT, Harness
from tests.plugins.test_crisis_flow import ANGRY, ORDINARY, member
from tests.scale.support import Worker, free_port, running_pair, worker_config

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

MEMBERS = 8


def add_members(h: Harness) -> None:
    for i in range(MEMBERS):
        h.world.add_user(member(i), f"会员{i + 1}")
        h.world.set_member(GROUP, member(i), "member")


@pytest.fixture
async def workers(tmp_path: Path, pg_url: str, redis_prefix: tuple[str, str], shared_nlp: Any) -> Any:
    async with running_pair(tmp_path, pg_url, redis_prefix, "crisis", plugin_config={}, nlp=shared_nlp) as (a, b):
        add_members(a)
        yield a, b


def rt(h: Harness | Worker) -> CrisisRuntime:
    runtime = h.app.runtime("crisis")
    assert isinstance(runtime, CrisisRuntime)
    return runtime


async def tick(h: Harness, seconds: float = 0) -> None:
    """Move the shared clock, then run the crisis job on ``h`` (in production: on the leader only)."""
    if seconds:
        await h.advance(seconds)
    await rt(h).tick()
    await h.app.sender.drain(10)
    await h.deliver()


def log_texts(h: Harness) -> list[str]:
    return [m["text"] for m in h.world.messages_in(LOG_CHAT) if m.get("from", {}).get("id") == h.world.bot_id]


async def outcome(h: Harness) -> dict[str, Any]:
    """What one bot did, in terms that do not depend on ids or on the worker."""
    async with h.app.db() as s:
        incidents = list(await s.scalars(select(CrisisIncident).order_by(CrisisIncident.id)))
        steps = list(await s.scalars(select(CrisisTimeline).order_by(CrisisTimeline.id)))
    texts = log_texts(h)
    return {
        "incidents": [(i.status, i.level, i.peak_level, i.trigger, i.close_reason, i.messages, sorted(i.members))
                      for i in incidents],
        "timeline": [(t.kind, t.level, (t.detail or {}).get("action"), (t.detail or {}).get("score")) for t in steps],
        "log": [("summary" if "事件总结" in t else "alert" if "危机预警" in t else "note" if "降为" in t else t[:20])
                for t in texts],
        "summary_members": [t.count("名成员") for t in texts if "事件总结" in t],
    }


async def storm(pick: Callable[[int], Harness], leader: Harness) -> None:
    """A pile-on with ordinary chatter in between, then calm: step-down after the dwell, the close."""
    for i in range(6):
        await pick(2 * i).say(GROUP, member(i), ANGRY[i])
        await leader.advance(4)
        await pick(2 * i + 1).say(GROUP, member(6 + i % 2), ORDINARY[i])
        await leader.advance(4)
    for minutes in (5, 6, 1, 61):
        await tick(leader, minutes * 60)


async def test_a_pile_on_split_between_workers_decides_like_one_process(
    workers: tuple[Harness, Harness], make_harness: Callable[..., Any],
) -> None:
    a, b = workers
    await storm(lambda i: (a, b)[i % 2], a)  # every other message on each worker; a is the leader
    shared = await outcome(a)
    one = await make_harness(plugins=["crisis"], config={"plugins": {"crisis": {}}})
    add_members(one)
    await storm(lambda i: one, one)
    single = await outcome(one)
    assert shared == single
    assert [x[:3] for x in shared["incidents"]] == [("resolved", 3, 2)]
    assert shared["log"] == ["alert", "note", "summary"] and shared["summary_members"] == [1]
    [inc] = shared["incidents"]
    assert inc[5] >= 6 and len(inc[6]) == 6  # messages and members noted on both workers, added up


async def test_the_leader_steps_down_and_closes_an_incident_it_saw_no_message_of(
    workers: tuple[Harness, Harness],
) -> None:
    a, b = workers
    for i in range(6):  # every message on b
        await b.say(GROUP, member(i), ANGRY[i])
        await b.advance(8)
    assert [x[:2] for x in (await outcome(a))["incidents"]] == [("open", 2)]
    assert GROUP not in rt(a).signals or not rt(a).signals[GROUP].records
    await tick(a, 5 * 60)  # a learns of the chat (active chats), catches its window up: still level 2
    assert len(rt(a).signals[GROUP].records) == 6 and rt(a).incidents[GROUP].state.level == 2
    await tick(a, 6 * 60)
    assert rt(a).incidents[GROUP].state.level == 3
    assert "降为三级" in log_texts(a)[-1] and "粉丝福利群" in log_texts(a)[-1]
    # b, told by an invalidation message, re-reads the incident before noting its next message.
    await b.say(GROUP, member(7), ORDINARY[0])
    assert rt(b).incidents[GROUP].state.level == 3
    await tick(a, 60)
    await tick(a, 61 * 60)
    [inc] = (await outcome(a))["incidents"]
    assert inc[0] == "resolved" and inc[4] == "auto" and inc[5] == 6
    assert "事件总结" in log_texts(a)[-1] and "6 名成员" in log_texts(a)[-1]


async def test_one_members_flood_split_between_workers_is_one_voice(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    for i in range(10):  # the same accusation again and again, through both workers
        await (a, b)[i % 2].say(GROUP, member(0), "骗子！退款！")
        await a.advance(3)
    raw = dict(a.world.all_updates[-1])
    a.world.push_update(raw)  # a redelivery, to the other worker this time
    await a.deliver()
    await tick(b, 10)
    for w in (a, b):
        sig = rt(w).signals[GROUP]
        await rt(w).sync.catch_up(sig, w.app.clock.time(), 600)  # type: ignore[union-attr]
        snap = sig.snapshot(w.app.clock.time(), rt(w).profile(await rt(w).cfg(GROUP)).signal)
        assert len(sig.records) == 10 and snap.messages == 1 and snap.risk_members == 1
    assert (await outcome(a))["incidents"] == []


async def test_commands_and_buttons_work_on_either_worker(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    for i in range(6):
        await (a, b)[i % 2].say(GROUP, member(i), ANGRY[i])
        await a.advance(8)
    await b.say(GROUP, ADMIN, "/crisis status")
    status = b.world.sent_texts(GROUP)[-1]
    assert "#1" in status and "二级" in status and "6 人涉及风险词" in status
    await b.say(GROUP, ADMIN, "/crisis ack")
    await a.say(GROUP, ADMIN, "/crisis ack")
    assert a.world.sent_texts(GROUP)[-1] == "这个事件已经有人认领了。"
    [alert] = [m for m in a.world.messages_in(LOG_CHAT) if m.get("from", {}).get("id") == a.world.bot_id]
    await a.press(LOG_CHAT, ADMIN, alert["message_id"], "crisis:esc:1")  # a knows b's ack: no ack button
    assert [c.params.get("text") for c in a.calls("answerCallbackQuery")][-1].startswith("已升级为一级")
    assert rt(a).incidents[GROUP].state.level == 1 and rt(a).incidents[GROUP].acked
    assert "认领" not in str(a.world.messages_in(LOG_CHAT)[-1].get("reply_markup"))
    await b.say(GROUP, ADMIN, "/crisis resolve 已处理")
    assert "事件已结束" in b.world.sent_texts(GROUP)[-1]
    [inc] = (await outcome(a))["incidents"]
    assert inc[:2] == ("resolved", 1) and inc[4] == "manual"
    assert GROUP not in rt(b).incidents
    await a.say(GROUP, member(7), ORDINARY[1])
    assert GROUP not in rt(a).incidents  # a re-read it


async def test_garbled_shared_values_count_as_absent(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    await a.app.shared.set(state_key(GROUP), "{not json", 60)
    await a.app.shared.log_append(log_key(GROUP), '["garbled"', after=0, ttl=60)
    for i in range(6):
        await (a, b)[i % 2].say(GROUP, member(i), ANGRY[i])
        await a.advance(8)
    assert [x[:2] for x in (await outcome(a))["incidents"]] == [("open", 2)]
    assert len(log_texts(a)) == 1


async def test_a_pile_on_pushed_to_two_webhook_workers_alerts_once(
    pg_url: str, redis_prefix: tuple[str, str], emulator: EmulatorServer, shared_nlp: Any,
) -> None:
    """The production path: Telegram pushes, the kernel spreads the POSTs over both workers, each update
    runs under the chat's shared lock; evaluations under the crisis lock, on the real clock."""
    world = emulator.world
    world.webhook_keepalive = False  # a connection per POST: both workers get some
    for i in range(MEMBERS):
        world.add_user(member(i), f"会员{i + 1}")
        world.set_member(GROUP, member(i), "member")
    url, prefix = redis_prefix
    cfg = worker_config(pg_url, emulator.base_url, port=free_port(), redis_url=url, prefix=prefix,
                        extra={"plugins": {"crisis": {"eval_seconds": 0}}})
    a = await Worker(emulator.base_url, cfg, plugins=["crisis"], nlp=shared_nlp).start(schema=True)
    b = await Worker(emulator.base_url, cfg, plugins=["crisis"], nlp=shared_nlp).start()
    try:
        assert await a.app.bot.set_webhook(a.url, secret_token=a.secret)
        for i in range(6):
            world.send_message(GROUP, member(i), ANGRY[i])
        await world.wait_until_consumed(30)
        for w in (a, b):
            await w.app.sender.drain(10)
        # The kernel picks the worker per connection: usually both get some, not always (the deterministic
        # splits are the tests above). Every message was accepted (a redelivery may add one), counted once.
        assert a.server.stats["accepted"] + b.server.stats["accepted"] >= 6, (a.server.stats, b.server.stats)
        async with a.app.db() as s:
            [inc] = list(await s.scalars(select(CrisisIncident)))
        assert inc.level == 2 and inc.status == "open"
        assert inc.messages == 6  # the window seeded at the open plus what each worker noted after, once
        alerts = [m for m in world.messages_in(LOG_CHAT) if m.get("from", {}).get("id") == world.bot_id]
        assert len(alerts) == 1 and "等级 2" in alerts[0]["text"]
        for w in (a, b):  # each worker's window holds every message
            sig, _ = await rt(w).view(GROUP, await rt(w).cfg(GROUP))
            assert len(sig.records) == 6
    finally:
        await a.stop()
        await b.stop()
