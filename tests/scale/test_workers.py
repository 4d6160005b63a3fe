"""Two webhook workers (separate Apps: separate memory) sharing PostgreSQL and Redis behave like one:
the same effects, every update once, per-chat order; one scheduler leader with failover; Redis and
PostgreSQL blips lose and double nothing."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.emulator.http import EmulatorServer, start_server
from bot.emulator.world import World
from bot.models import Member, ProcessedUpdate
from bot.plugin import Plugin
from bot.services.timers import TimerFire
from tests.harness import ADMIN, ALICE, BOB, CAROL, GROUP, LOG_CHAT, OTHER_GROUP, TOKEN, populate
from tests.scale.support import COUNTER_PLUGIN, TcpProxy, Worker, answered, counts, free_port, worker_config

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

CHATS = (GROUP, OTHER_GROUP, LOG_CHAT)
USERS = (ALICE, BOB, CAROL)


def traffic(world: World, n: int) -> dict[int, list[int]]:
    """Interleaved messages in three chats: every third is /id (answered as a reply), the rest chatter."""
    commands: dict[int, list[int]] = {c: [] for c in CHATS}
    for i in range(n):
        chat = CHATS[i % 3]
        user = USERS[(i // 3) % 3]
        text = "/id" if i % 2 == 0 else f"消息 {i}"
        msg = world.send_message(chat, user, text)
        if text == "/id":
            commands[chat].append(msg["message_id"])
    return commands


def messages_per_chat(world: World) -> dict[int, int]:
    return dict(Counter(u["message"]["chat"]["id"] for u in world.all_updates if "message" in u))


async def db_state(worker: Worker) -> dict[str, Any]:
    async with worker.app.db() as s:
        processed = await s.scalar(select(func.count()).select_from(ProcessedUpdate))
        members = set((await s.execute(select(Member.chat_id, Member.user_id))).all())
    return {"counts": await counts(worker.app), "processed": processed, "members": members}


async def run_workers(world: World, server: EmulatorServer, db_url: str, redis: tuple[str, str] | None, n_workers: int,
                      n_messages: int) -> tuple[dict[int, list[int]], dict[str, Any], list[Worker]]:
    for uid in USERS:
        world.set_member(LOG_CHAT, uid, "member")
    world.webhook_keepalive = False  # a connection per POST: the kernel spreads them over the workers
    port = free_port()
    url, prefix = redis if redis else (None, "")
    cfg = worker_config(db_url, server.base_url, port=port, redis_url=url, prefix=prefix)
    workers = []
    for i in range(n_workers):
        workers.append(await Worker(server.base_url, cfg, plugin_objects={"scalecount": COUNTER_PLUGIN}).start(
            schema=i == 0))
    try:
        first = workers[0]
        assert await first.app.bot.set_webhook(first.url, secret_token=first.secret, max_connections=20)
        commands = traffic(world, n_messages)
        await world.wait_until_consumed(90)
        for w in workers:
            await w.app.sender.drain(10)
        state = await db_state(first)
    finally:
        for w in workers:
            await w.stop()
    return commands, state, workers


async def test_two_workers_have_exactly_the_effects_of_one(pg_url: str, redis_prefix: Any) -> None:
    from tests.dbutil import drop_postgres_database, fresh_postgres_database

    # One worker (no Redis) on its own database: the reference.
    created = await fresh_postgres_database()
    assert created is not None
    single_db, admin = created
    world1 = World(token=TOKEN)
    populate(world1)
    server1 = await start_server(world1)
    try:
        cmds1, state1, _ = await run_workers(world1, server1, single_db, None, 1, 150)
    finally:
        await server1.close()
        await drop_postgres_database(single_db, admin)

    world2 = World(token=TOKEN)
    populate(world2)
    server2 = await start_server(world2)
    try:
        cmds2, state2, workers = await run_workers(world2, server2, pg_url, redis_prefix, 2, 150)
        assert cmds2 == cmds1
        for chat in CHATS:
            assert answered(world2, chat) == cmds2[chat], f"chat {chat}: every /id once, in order"
            assert answered(world1, chat) == cmds1[chat]
        assert state2 == state1
        assert state2["processed"] == len(world2.all_updates)
        # Both workers really took part, and they interleaved on the same chats.
        accepted = [w.server.stats["accepted"] for w in workers]
        assert all(a > 10 for a in accepted), accepted
        assert sum(accepted) == len(world2.all_updates)
    finally:
        await server2.close()


async def test_chat_settings_changed_on_one_worker_apply_on_the_other(
    pg_url: str, redis_prefix: Any, emulator: EmulatorServer
) -> None:
    world = emulator.world
    world.webhook_keepalive = False
    url, prefix = redis_prefix
    cfg = worker_config(pg_url, emulator.base_url, port=free_port(), redis_url=url, prefix=prefix)
    a = await Worker(emulator.base_url, cfg, plugins=[]).start(schema=True)
    b = await Worker(emulator.base_url, cfg, plugins=[]).start()
    try:
        # Both workers have the chat's (Chinese) config cached.
        for w in (a, b):
            await w.app.chat_config.get(GROUP, "core")
        assert await a.app.bot.set_webhook(a.url, secret_token=a.secret)
        world.send_message(GROUP, ADMIN, "/lang en")
        helps = [world.send_message(GROUP, (ALICE, BOB, CAROL)[i % 3], "/help")["message_id"] for i in range(12)]
        await world.wait_until_consumed(30)
        for w in (a, b):
            await w.app.sender.drain(5)
        replies = [m for m in world.bot_messages(GROUP) if (m.get("reply_to_message") or {}).get("message_id") in helps]
        assert len(replies) == 12
        assert all("Member commands" in m["text"] for m in replies), [m["text"][:20] for m in replies]
        assert a.server.stats["accepted"] and b.server.stats["accepted"]
    finally:
        await a.stop()
        await b.stop()


async def test_admin_list_is_fetched_once_and_shared(pg_url: str, redis_prefix: Any, emulator: EmulatorServer) -> None:
    world = emulator.world
    url, prefix = redis_prefix
    cfg = worker_config(pg_url, emulator.base_url, port=free_port(), redis_url=url, prefix=prefix)
    a = await Worker(emulator.base_url, cfg, plugins=[]).start(schema=True)
    b = await Worker(emulator.base_url, cfg, plugins=[]).start()
    try:
        assert await a.app.admins.is_admin(GROUP, ADMIN)
        assert await b.app.admins.is_admin(GROUP, ADMIN)
        assert not await b.app.admins.is_admin(GROUP, ALICE)
        assert len(world.calls_of("getChatAdministrators")) == 1
        # Promotion seen by worker a: b's copy and the shared one are dropped.
        world.set_member(GROUP, ALICE, "administrator", can_restrict_members=True)
        a.app.admins.note_status(GROUP, ALICE, "administrator", "member")
        await a.app.shared.settle()
        for _ in range(50):
            if GROUP not in b.app.admins._cache:
                break
            await asyncio.sleep(0.02)
        assert await b.app.admins.is_admin(GROUP, ALICE)
    finally:
        await a.stop()
        await b.stop()


# ---- the scheduler leader -------------------------------------------------------------------------------
def timer_plugin(fired: list[tuple[str, str]], name: str) -> Plugin:
    async def fire(app: Any, event: TimerFire) -> None:
        fired.append((event.key, name))

    return Plugin(name="scaletimer", description="records timer fires (tests only)", timers={"fire": fire})


@pytest.mark.parametrize(
    "ttl", [pytest.param(2.0, id="ttl2"), pytest.param(15.0, id="default", marks=pytest.mark.slow)])
async def test_leader_failover_without_double_fire(
    pg_url: str, redis_prefix: Any, emulator: EmulatorServer, ttl: float
) -> None:
    from datetime import timedelta

    url, prefix = redis_prefix
    cfg = worker_config(pg_url, emulator.base_url, port=free_port(), redis_url=url, prefix=prefix,
                        extra={"redis": {"leader_ttl": ttl}})
    fired: list[tuple[str, str]] = []
    a = await Worker(emulator.base_url, cfg, plugin_objects={"scaletimer": timer_plugin(fired, "a")}).start(schema=True)
    b = await Worker(emulator.base_url, cfg, plugin_objects={"scaletimer": timer_plugin(fired, "b")}).start()
    stopped: list[Worker] = []
    try:
        for _ in range(100):
            if a.app.leadership.is_leader or b.app.leadership.is_leader:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.05)
        leaders = [w for w in (a, b) if w.app.leadership.is_leader]  # type: ignore[union-attr]
        assert len(leaders) == 1
        leader = leaders[0]
        other = b if leader is a else a
        assert other.app.scheduler.state == 2  # STATE_PAUSED: the follower runs no jobs
        now = leader.app.clock.now()
        total = 12
        for i in range(total):
            await leader.app.timers.schedule(f"t{i}", "scaletimer.fire", now + timedelta(seconds=0.5 + i * ttl / 4))
        await asyncio.sleep(1.5)
        before = len(fired)
        assert before >= 1 and all(w == ("a" if leader is a else "b") for _, w in fired)
        killed_at = time.monotonic()
        await leader.crash()
        stopped.append(leader)
        while not other.app.leadership.is_leader:  # type: ignore[union-attr]
            assert time.monotonic() - killed_at < 30, "no failover within 30 s"
            await asyncio.sleep(0.1)
        failover = time.monotonic() - killed_at
        assert failover <= ttl + ttl / 3 + 1.5
        deadline = time.monotonic() + 30 + ttl * 3
        while len(fired) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        keys = Counter(k for k, _ in fired)
        assert set(keys) == {f"t{i}" for i in range(total)}
        assert max(keys.values()) == 1, f"double fire: {keys}"
        assert len(fired) > before
        print(f"failover after {failover:.1f}s (ttl {ttl}s)")
    finally:
        for w in (a, b):
            if w not in stopped:
                await w.stop()


# ---- faults -------------------------------------------------------------------------------------------
async def blip_run(world: World, server: EmulatorServer, cfg: dict[str, Any], proxy: TcpProxy,
                   n: int = 120) -> tuple[dict[int, list[int]], list[Worker]]:
    world.webhook_keepalive = False
    for uid in USERS:
        world.set_member(LOG_CHAT, uid, "member")
    a = await Worker(server.base_url, cfg, plugin_objects={"scalecount": COUNTER_PLUGIN}).start(schema=True)
    b = await Worker(server.base_url, cfg, plugin_objects={"scalecount": COUNTER_PLUGIN}).start()
    assert await a.app.bot.set_webhook(a.url, secret_token=a.secret, max_connections=10)
    commands: dict[int, list[int]] = {c: [] for c in CHATS}
    # The middle third arrives while Redis is unreachable, so the outage is met under traffic
    # rather than only in the idle gap between parts.
    for part in range(3):
        if part == 1:
            await proxy.down()
        more = traffic(world, n // 3)
        for chat, ids in more.items():
            commands[chat] += ids
        if part == 1:
            await asyncio.sleep(2.5)
            await proxy.up()
        await asyncio.sleep(0.3)
    await world.wait_until_consumed(90)
    for w in (a, b):
        await w.app.sender.drain(10)
    return commands, [a, b]


async def test_redis_blip_loses_and_doubles_nothing(pg_url: str, redis_prefix: Any, emulator: EmulatorServer) -> None:
    world = emulator.world
    url, prefix = redis_prefix
    hostport, db = url.split("//", 1)[1].split("/", 1)
    host, port = hostport.split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.up()
    cfg = worker_config(pg_url, emulator.base_url, port=free_port(), redis_url=f"redis://127.0.0.1:{proxy.port}/{db}",
                        prefix=prefix)
    workers: list[Worker] = []
    try:
        commands, workers = await blip_run(world, emulator, cfg, proxy)
        for chat in CHATS:
            assert answered(world, chat) == commands[chat]  # once each, in order
        assert await counts(workers[0].app) == messages_per_chat(world)
        assert any(w.app.shared.outages for w in workers)  # type: ignore[attr-defined]
        assert all(w.app.shared.healthy for w in workers)  # type: ignore[attr-defined]
        failed = [d for d in world.webhook_deliveries if d["status"] != 200]
        assert not failed, failed[:5]  # served through the outage
    finally:
        for w in workers:
            await w.stop()
        await proxy.down()


async def test_postgres_restart_loses_and_doubles_nothing(
    pg_url: str, redis_prefix: Any, emulator: EmulatorServer
) -> None:
    world = emulator.world
    url, prefix = redis_prefix
    proxy = TcpProxy("127.0.0.1", 5432)
    await proxy.up()
    proxied = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert proxied != pg_url
    cfg = worker_config(proxied, emulator.base_url, port=free_port(), redis_url=url, prefix=prefix)
    workers: list[Worker] = []
    try:
        commands, workers = await blip_run(world, emulator, cfg, proxy)
        for chat in CHATS:
            got = answered(world, chat)
            assert list(dict.fromkeys(got)) == commands[chat], "every /id answered, first answers in order"
            # A reply sent before a commit that failed is sent again with the redelivery (Telegram has no
            # idempotent send); the database effects below are exact.
            assert len(got) - len(set(got)) <= sum(1 for d in world.webhook_deliveries if d["status"] == 500)
        assert await counts(workers[0].app) == messages_per_chat(world)
        async with workers[0].app.db() as s:
            assert await s.scalar(select(func.count()).select_from(ProcessedUpdate)) == len(world.all_updates)
        assert any(d["status"] != 200 for d in world.webhook_deliveries), "the outage was not noticed"
    finally:
        for w in workers:
            await w.stop()
        await proxy.down()
