"""moderation with two workers (two Apps: separate memory) sharing PostgreSQL and Redis behaves like one
bot: floods, spam waves and raids split between the workers are caught; raid mode, banned words,
approvals, network bans and join times changed through one worker apply on the other. Also: the shared
windows follow the detectors' rules on both backends, malformed shared values are treated as absent,
and an unreachable Redis leaves every rule working per worker."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import App
from bot.clock import FakeClock
from bot.db import Base
from bot.emulator.session import EmulatorSession
from bot.emulator.world import World
from bot.runner import ALLOWED_UPDATES, RawGetUpdates, parse_updates
from bot.services.events import RaidModeChanged
from bot.shared import RedisShared, SharedState
from plugins.moderation.windows import SharedWindows
from tests.harness import (
    ADMIN,
    ALICE,
    BOB,
    CAROL,
    DAVE,
    GROUP,
    LOG_CHAT,
    OTHER_GROUP,
    OWNER,
    START,
    TOKEN,
    make_settings,
    populate,
)
from tests.scale.support import free_port, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

A, B = 0, 1
HOUR = 3600
BARRIER = "test-barrier"


class Workers:
    """Two moderation workers on one emulated Telegram; ``say(to, ...)`` hands the update to worker ``to``."""

    def __init__(self, db_url: str, redis: tuple[str, str] | None, nlp: Any, config: dict[str, Any] | None = None,
                 *, n: int = 2) -> None:
        self.clock = FakeClock(START)
        self.world = World(token=TOKEN, clock=self.clock.time)
        populate(self.world)
        extra: dict[str, Any] = {"plugins": {"moderation": config or {}}}
        if redis is not None:
            extra["redis"] = {"url": redis[0], "prefix": redis[1]}
        self.settings = make_settings(db_url, extra)
        self.nlp = nlp
        self.n = n
        self.apps: list[App] = []
        self.offset: int | None = None
        self.raids: list[tuple[int, bool]] = []  # (worker, on) of every RaidModeChanged
        self.barriers: list[set[str]] = []

    async def start(self) -> Workers:
        for i in range(self.n):
            app = App(self.settings, session=EmulatorSession(self.world), clock=self.clock, plugins=["moderation"],
                      nlp=self.nlp)
            if i == 0:
                async with app.engine.begin() as conn:
                    await conn.run_sync(Base.metadata.create_all)
            await app.start(background=False)

            async def on_raid(_app: Any, event: RaidModeChanged, worker: int = i) -> None:
                self.raids.append((worker, event.on))

            app.events.subscribe(RaidModeChanged, "core", on_raid)
            seen: set[str] = set()
            app.shared.on_invalidate(BARRIER, seen.add)
            self.barriers.append(seen)
            self.apps.append(app)
        return self

    async def stop(self) -> None:
        for app in self.apps:
            await app.stop(drain_timeout=5)

    async def settle(self) -> None:
        """Every invalidation a worker published has reached every other worker (pub/sub keeps order)."""
        for app in self.apps:
            await app.sender.drain(10)
            await app.shared.settle()
            if app.shared.distributed:
                token = uuid.uuid4().hex
                await app.shared.publish(BARRIER, token)
                await wait_for(lambda t=token: all(t in seen for seen in self.barriers), 5, "the barrier")

    async def deliver(self, to: int) -> None:
        app = self.apps[to]
        while True:
            raw = await app.bot(RawGetUpdates(offset=self.offset, limit=100, timeout=0,
                                              allowed_updates=ALLOWED_UPDATES))
            if not raw:
                break
            updates, highest = parse_updates(app, raw)
            await app.process_batch(updates)
            await app.flush()
            if highest is not None:
                self.offset = highest + 1
        await self.settle()

    async def say(self, to: int, chat_id: int, user_id: int, text: str | None = None, **extra: Any) -> dict[str, Any]:
        message = self.world.send_message(chat_id, user_id, text, **extra)
        await self.deliver(to)
        return message

    async def join(self, to: int, chat_id: int, user_id: int) -> None:
        self.world.join(chat_id, user_id)
        await self.deliver(to)

    async def leave(self, to: int, chat_id: int, user_id: int) -> None:
        self.world.leave(chat_id, user_id)
        await self.deliver(to)

    def ok(self, *methods: str) -> list[Any]:
        return [c for c in self.world.calls_of(*methods) if c.ok]

    def punitive(self) -> list[Any]:
        return self.ok("restrictChatMember", "banChatMember", "deleteMessage", "deleteMessages")

    def last_text(self, chat_id: int) -> str:
        return self.world.sent_texts(chat_id)[-1]


@pytest.fixture
async def workers(pg_url: str, redis_prefix: tuple[str, str], shared_nlp: Any) -> AsyncIterator[Workers]:
    w = await Workers(pg_url, redis_prefix, shared_nlp, {"raid_joins": 4, "raid_seconds": 60}).start()
    try:
        yield w
    finally:
        await w.stop()


# ---- every message and join counted, whichever worker got it -------------------------------------


async def test_a_flood_split_between_workers_is_caught(workers: Workers) -> None:
    ids = [(await workers.say(i % 2, GROUP, BOB, f"消息{i}"))["message_id"] for i in range(8)]
    assert workers.punitive() == []  # eight in ten seconds is fine, even counted together
    ids.append((await workers.say(A, GROUP, BOB, "第九条"))["message_id"])
    mutes = workers.ok("restrictChatMember")
    assert [m["user_id"] for m in mutes] == [BOB]
    assert mutes[0]["until_date"] == int(workers.clock.time()) + HOUR
    assert sorted(workers.ok("deleteMessages")[0]["message_ids"]) == sorted(ids)  # both workers' messages
    workers.world.clear_calls()
    workers.world.set_member(GROUP, BOB, "member")  # unmuted by hand
    # The window started again: the next messages, on either worker, are not a flood.
    for i in range(4):
        await workers.say(i % 2, GROUP, BOB, f"再来{i}")
    assert workers.punitive() == []


async def test_a_spam_wave_split_between_workers_is_caught(workers: Workers) -> None:
    a = await workers.say(A, GROUP, ALICE, "加微信领取福利红包名额有限 123")
    b = await workers.say(B, GROUP, BOB, "加微信领取福利红包名额有限 456")
    assert workers.punitive() == []
    c = await workers.say(A, GROUP, CAROL, "加微信 领取福利红包 名额有限!!")
    assert {m["message_id"] for m in workers.ok("deleteMessage")} == {a["message_id"], b["message_id"], c["message_id"]}
    assert {m["user_id"] for m in workers.ok("restrictChatMember")} == {ALICE, BOB, CAROL}
    workers.world.clear_calls()
    # A late copy through the other worker belongs to the known wave; the copies already punished are
    # not taken again.
    workers.world.add_user(5001, "Spammer")
    workers.world.set_member(GROUP, 5001, "member")
    d = await workers.say(B, GROUP, 5001, "加微信领取福利红包名额有限 789")
    assert [m["message_id"] for m in workers.ok("deleteMessage")] == [d["message_id"]]
    assert [m["user_id"] for m in workers.ok("restrictChatMember")] == [5001]


async def test_raid_mode_is_one_state_for_every_worker(workers: Workers) -> None:
    raiders = list(range(5001, 5008))
    for uid in raiders:
        workers.world.add_user(uid, f"Raider{uid}")
    for i, uid in enumerate(raiders[:4]):
        await workers.join(i % 2, GROUP, uid)
    assert workers.ok("restrictChatMember") == [] and workers.raids == []
    await workers.join(A, GROUP, raiders[4])  # the fifth join in 60 s, counted over both workers
    assert workers.raids == [(A, True)]  # emitted once, by the worker that turned it on
    await workers.join(B, GROUP, raiders[5])  # the other worker knows raid mode is on
    await workers.join(A, GROUP, raiders[6])
    assert workers.raids == [(A, True)]
    restricted = workers.ok("restrictChatMember")
    assert [c["user_id"] for c in restricted] == raiders[4:]
    assert len({c["until_date"] for c in restricted}) == 1
    await workers.say(B, GROUP, ADMIN, "/raid")
    assert "开启" in workers.last_text(GROUP)

    await workers.say(B, GROUP, ADMIN, "/raid off")
    assert workers.raids == [(A, True), (B, False)]
    assert "期间处理的新成员：3" in workers.last_text(LOG_CHAT)  # joiners handled by both workers
    await workers.say(A, GROUP, ADMIN, "/raid off")
    assert "本来就是关闭" in workers.last_text(GROUP)
    assert workers.raids == [(A, True), (B, False)]
    workers.world.clear_calls()
    workers.world.add_user(5100, "Late")
    await workers.join(A, GROUP, 5100)  # off everywhere, and the join window started again
    assert workers.ok("restrictChatMember") == [] and workers.raids == [(A, True), (B, False)]


async def test_raid_turned_on_by_hand_ends_by_the_timer_on_another_worker(workers: Workers) -> None:
    await workers.say(A, GROUP, ADMIN, "/raid on 10m")
    workers.world.clear_calls()
    await workers.join(B, GROUP, DAVE)
    assert [c["user_id"] for c in workers.ok("restrictChatMember")] == [DAVE]
    workers.clock.advance(11 * 60)
    b = workers.apps[B]
    await b.timers.run_due(b)  # the scheduler leader is worker B
    await workers.settle()
    assert workers.raids == [(A, True), (B, False)]
    assert "期间处理的新成员：1" in workers.last_text(LOG_CHAT)
    workers.world.clear_calls()
    workers.world.add_user(5200, "Later")
    await workers.join(A, GROUP, 5200)
    assert workers.ok("restrictChatMember") == []


# ---- caches changed through one worker apply on the other ----------------------------------------


async def test_word_list_and_approvals_changed_on_one_worker_apply_on_the_other(workers: Workers) -> None:
    # Both workers have judged a message (their caches are loaded) before the change.
    await workers.say(A, GROUP, ALICE, "你好")
    await workers.say(B, GROUP, ALICE, "大家好")
    await workers.say(A, GROUP, ADMIN, "/addblacklist 骗子")
    workers.world.clear_calls()
    msg = await workers.say(B, GROUP, BOB, "你是騙 子吧")
    assert [c["message_id"] for c in workers.ok("deleteMessage")] == [msg["message_id"]]
    await workers.say(B, GROUP, ADMIN, "/rmblacklist 骗子")
    workers.world.clear_calls()
    await workers.say(A, GROUP, BOB, "骗子")
    assert workers.punitive() == []

    await workers.say(A, GROUP, ADMIN, "/approve 1003")
    for i in range(12):  # approved: no flood, on the other worker too
        await workers.say(B, GROUP, CAROL, f"刷{i}")
    assert workers.punitive() == []
    await workers.say(B, GROUP, ADMIN, "/unapprove 1003")
    for i in range(9):
        await workers.say(A, GROUP, CAROL, f"又刷{i}")
    assert [c["user_id"] for c in workers.ok("restrictChatMember")] == [CAROL]


async def test_network_ban_on_one_worker_applies_on_the_other(workers: Workers) -> None:
    await workers.say(B, OTHER_GROUP, ALICE, "你好")  # worker B has loaded its caches
    await workers.say(A, OWNER, OWNER, "/gban 1004 诈骗")
    workers.world.clear_calls()
    await workers.join(B, GROUP, DAVE)
    assert [(c["chat_id"], c["user_id"]) for c in workers.ok("banChatMember")] == [(GROUP, DAVE)]
    await workers.say(B, OWNER, OWNER, "/ungban 1004")
    workers.world.clear_calls()
    await workers.join(A, OTHER_GROUP, DAVE)
    assert workers.ok("banChatMember") == []


async def test_a_join_seen_by_one_worker_makes_a_newcomer_on_the_other(workers: Workers) -> None:
    # Carol was here before the bot: her link is fine, and worker B remembers that she is no newcomer.
    await workers.say(B, GROUP, CAROL, "看这里 http://cheap.xyz/deal")
    assert workers.punitive() == []
    await workers.leave(A, GROUP, CAROL)
    await workers.join(A, GROUP, CAROL)
    workers.world.clear_calls()
    msg = await workers.say(B, GROUP, CAROL, "看这里 http://cheap.xyz/deal")
    assert [c["message_id"] for c in workers.ok("deleteMessage")] == [msg["message_id"]]


# ---- robustness --------------------------------------------------------------------------------


async def test_malformed_shared_values_are_treated_as_absent(workers: Workers, redis_prefix: tuple[str, str]) -> None:
    import redis.asyncio as aioredis

    url, prefix = redis_prefix
    client: Any = aioredis.from_url(url, decode_responses=True)
    try:
        await workers.join(A, GROUP, DAVE)  # raid state compared with the database: off
        await client.set(f"{prefix}mod:raid:{GROUP}", "not-a-time")
        await client.set(f"{prefix}mod:joined:{GROUP}:{CAROL}", "garbage")
        old = START - 5  # inside the windows, older than what follows
        await client.zadd(f"{prefix}mod:flood:{GROUP}:{BOB}", {"junk-without-separator": old, "x|not-an-id": old})
        await client.zadd(f"{prefix}mod:wave:t:{GROUP}", {"junk": old, "1|no-tab": old, "2|x:y\tkey": old})
        await client.zadd(f"{prefix}mod:wave:w:{GROUP}", {"junk": old, "3|no-tab": old})
        await workers.say(B, GROUP, ADMIN, "/raid")
        assert "防突袭模式：关闭" in workers.last_text(GROUP)
        workers.world.add_user(5300, "Newbie")
        await workers.join(B, GROUP, 5300)
        workers.world.clear_calls()
        await workers.say(B, GROUP, CAROL, "看这里 http://cheap.xyz/deal")  # join time read from the database
        assert workers.punitive() == []
        ids = [(await workers.say(i % 2, GROUP, BOB, f"消息{i}"))["message_id"] for i in range(8)]
        assert workers.punitive() == []  # the junk does not count
        ids.append((await workers.say(A, GROUP, BOB, "第九条"))["message_id"])
        assert [c["user_id"] for c in workers.ok("restrictChatMember")] == [BOB]
        assert set(workers.ok("deleteMessages")[0]["message_ids"]) == set(ids)
        workers.world.clear_calls()
        for uid, tail in ((ALICE, "1"), (CAROL, "2"), (DAVE, "3")):
            await workers.say(uid % 2, GROUP, uid, "加微信领取福利红包名额有限 " + tail)
        assert {c["user_id"] for c in workers.ok("restrictChatMember")} == {ALICE, CAROL, DAVE}
    finally:
        await client.aclose()


async def test_redis_unreachable_every_rule_works_per_worker(tmp_path: Path, shared_nlp: Any) -> None:
    dead = (f"redis://127.0.0.1:{free_port()}/0", "qunbot-dead:")
    w = await Workers(f"sqlite+aiosqlite:///{tmp_path / 'q.db'}", dead, shared_nlp, {"raid_joins": 2}, n=1).start()
    try:
        app = w.apps[A]
        assert isinstance(app.shared, RedisShared)
        for i in range(9):
            await w.say(A, GROUP, BOB, f"消息{i}")
        assert [c["user_id"] for c in w.ok("restrictChatMember")] == [BOB]
        assert not app.shared.healthy
        await w.say(A, GROUP, ADMIN, "/addblacklist 骗子")
        w.world.clear_calls()
        await w.say(A, GROUP, ALICE, "骗子")
        assert len(w.ok("deleteMessage")) == 1
        for uid in (5001, 5002, 5003):
            w.world.add_user(uid, f"R{uid}")
            await w.join(A, GROUP, uid)
        assert w.raids == [(A, True)]
        assert [c["user_id"] for c in w.ok("restrictChatMember")] == [5003]
    finally:
        await w.stop()


# ---- the shared windows follow the detectors' rules, in memory and in Redis ----------------------


@pytest.fixture
def windows(shared: SharedState) -> Iterator[SharedWindows]:
    yield SharedWindows(shared)


async def test_shared_flood_window(windows: SharedWindows) -> None:
    hits = [await windows.flood(-1, 7, i, float(i), 8, 10) for i in range(1, 9)]
    assert hits == [None] * 8
    assert await windows.flood(-1, 7, 9, 9.0, 8, 10) == list(range(1, 10))
    assert await windows.flood(-1, 7, 10, 9.5, 8, 10) is None  # started again after tripping
    assert all([await windows.flood(-2, 7, i, i * 2.0, 8, 10) is None for i in range(50)])
    for i in range(8):
        await windows.flood(-3, 1, i, 0.0, 8, 10)
    assert await windows.flood(-3, 2, 99, 0.0, 8, 10) is None  # per member
    # A message exactly `seconds` old still counts, as in FloodWindow.
    for i in range(8):
        await windows.flood(-4, 1, i, float(i), 8, 10)
    assert await windows.flood(-4, 1, 8, 10.0, 8, 10) == list(range(9))


async def test_shared_wave_window(windows: SharedWindows) -> None:
    kw: dict[str, Any] = {"members": 3, "seconds": 60.0, "threshold": 0.8, "min_chars": 8}
    assert await windows.wave(-1, 1, 10, "加微信领取福利红包名额有限123", 0.0, **kw) is None
    assert await windows.wave(-1, 2, 11, "加微信领取福利红包名额有限456", 5.0, **kw) is None
    assert await windows.wave(-1, 2, 12, "今天天气真不错大家出去玩吧", 6.0, **kw) is None
    hit = await windows.wave(-1, 3, 13, "加微信领取福利红包名额有限啊", 9.0, **kw)
    assert hit is not None and hit.new and hit.copies == [(1, 10), (2, 11), (3, 13)]
    late = await windows.wave(-1, 4, 14, "加微信领取福利红包名额有限789", 20.0, **kw)
    assert late is not None and late.copies == [(4, 14)] and not late.new
    # The wave lives on while copies keep coming (the last at 20 s) and ends 60 s after the last one.
    assert (await windows.wave(-1, 5, 15, "加微信领取福利红包名额有限000", 79.0, **kw)) is not None
    assert await windows.wave(-1, 6, 16, "加微信领取福利红包名额有限", 140.0, **kw) is None

    for i in range(5):  # one member repeating is not a wave
        assert await windows.wave(-2, 1, i, "同一个人一直发同样的话", float(i), **kw) is None
    assert await windows.wave(-2, 2, 10, "同一个人一直发同样的话", 100.0, **kw) is None  # expired
    assert await windows.wave(-2, 3, 11, "短", 100.0, **kw) is None


async def test_shared_join_window(windows: SharedWindows) -> None:
    assert [await windows.join(-1, float(i), 10, 60) for i in range(10)] == [False] * 10
    assert await windows.join(-1, 10.0, 10, 60) is True
    await windows.reset_joins(-1)
    assert await windows.join(-1, 11.0, 10, 60) is False
    assert not any([await windows.join(-2, i * 10.0, 10, 60) for i in range(30)])
