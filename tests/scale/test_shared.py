"""The shared-state backends: the same behaviour in memory and in Redis, sharing across workers, and the
fallback when Redis stops answering (a proxy closes its port, then opens it again)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from bot.shared import RateLimit, RedisShared, SharedState
from tests.scale.support import TcpProxy


async def test_sliding_window_and_counters(shared: SharedState) -> None:
    t = 1_000.0
    assert [await shared.hit("flood:1:7", 10, now=t + i) for i in range(5)] == [1, 2, 3, 4, 5]
    assert await shared.count("flood:1:7", 10, now=t + 4) == 5
    # 10 s later the first events left the window.
    assert await shared.hit("flood:1:7", 10, now=t + 12) == 3
    assert await shared.count("flood:1:8", 10, now=t) == 0
    assert await shared.incr("spam:1", 60) == 1
    assert await shared.incr("spam:1", 60, 4) == 5
    await shared.reset("spam:1", "flood:1:7")
    assert await shared.incr("spam:1", 60) == 1
    assert await shared.count("flood:1:7", 10, now=t + 12) == 0


async def test_rolling_window(shared: SharedState) -> None:
    for i, item in enumerate(["-0.9|101", "-0.8|102", "0.5|101", "-0.95|103"]):
        await shared.rolling_add("crisis:-1001", item, now=100.0 + i * 60, window=180)
    items = await shared.rolling_items("crisis:-1001", now=100.0 + 180, window=180)
    assert [i for _, i in items] == ["-0.8|102", "0.5|101", "-0.95|103"]
    assert [t for t, _ in items] == [160.0, 220.0, 280.0]
    for i in range(10):
        await shared.rolling_add("crisis:cap", str(i), now=float(i), window=1000, max_items=4)
    assert [i for _, i in await shared.rolling_items("crisis:cap", now=10, window=1000)] == ["6", "7", "8", "9"]


async def test_rolling_push_returns_the_window_after_the_add(shared: SharedState) -> None:
    assert await shared.rolling_push("flood:-1001:7", "11", now=100.0, window=10, max_items=3) == [(100.0, "11")]
    await shared.rolling_push("flood:-1001:7", "12|x", now=104.5, window=10, max_items=3)
    # 10 s after the first item it has left the window; items may hold "|".
    assert await shared.rolling_push("flood:-1001:7", "13", now=110.0, window=10, max_items=3) == [
        (104.5, "12|x"), (110.0, "13")]
    # At most max_items, the newest kept.
    for i in range(4):
        items = await shared.rolling_push("flood:-1001:7", str(20 + i), now=111.0 + i, window=10, max_items=3)
    assert [i for _, i in items] == ["21", "22", "23"]
    assert [i for _, i in await shared.rolling_items("flood:-1001:7", now=114.0, window=10)] == ["21", "22", "23"]
    await shared.reset("flood:-1001:7")
    assert await shared.rolling_push("flood:-1001:7", "30", now=115.0, window=10) == [(115.0, "30")]


async def test_rolling_window_skips_members_it_did_not_write(redis_prefix: Any) -> None:
    url, prefix = redis_prefix
    shared = RedisShared(url, prefix=prefix)
    try:
        await shared.client.zadd(prefix + "crisis:-1001", {"junk": 100.0})
        await shared.rolling_add("crisis:-1001", "0.5|101", now=101.0, window=60)
        assert await shared.rolling_items("crisis:-1001", now=102.0, window=60) == [(101.0, "0.5|101")]
        pushed = await shared.rolling_push("crisis:-1001", "x", now=103.0, window=60)
        assert pushed == [(101.0, "0.5|101"), (103.0, "x")]
    finally:
        await shared.close()


async def test_ordered_log_replicated_by_position(shared: SharedState) -> None:
    assert await shared.log_read("crisis:log:-1001", after=0) == (0, [])
    # Worker a appends from scratch; worker b (read up to 0) appends next and catches up with a's item.
    assert await shared.log_append("crisis:log:-1001", "a1", after=0, ttl=60) == (1, [])
    assert await shared.log_append("crisis:log:-1001", "b1|x:y", after=0, ttl=60) == (2, ["a1"])
    assert await shared.log_append("crisis:log:-1001", "a2", after=1, ttl=60) == (3, ["b1|x:y"])
    assert await shared.log_read("crisis:log:-1001", after=1) == (3, ["b1|x:y", "a2"])
    assert await shared.log_read("crisis:log:-1001", after=3) == (3, [])
    # A position beyond the log's (it expired or was replaced) reads everything it holds.
    assert await shared.log_read("crisis:log:-1001", after=99) == (3, ["a1", "b1|x:y", "a2"])
    # Only the newest max_items are kept; a reader further behind gets what is left.
    for i in range(5):
        position, _ = await shared.log_append("crisis:log:cap", str(i), after=0, ttl=60, max_items=3)
    assert position == 5
    assert await shared.log_read("crisis:log:cap", after=0) == (5, ["2", "3", "4"])
    await shared.reset("crisis:log:cap")
    assert await shared.log_read("crisis:log:cap", after=5) == (0, [])
    assert await shared.log_append("crisis:log:cap", "new", after=5, ttl=60) == (1, [])


async def test_ordered_log_expires_after_its_ttl(shared: SharedState) -> None:
    await shared.log_append("crisis:log:ttl", "x", after=0, ttl=0.05)
    await asyncio.sleep(0.1)
    assert await shared.log_read("crisis:log:ttl", after=0) == (0, [])

async def test_cache_locks_leases_and_invalidation(shared: SharedState) -> None:
    assert await shared.get("admins:1") is None
    await shared.set("admins:1", '{"x": 1}', 30)
    assert await shared.get("admins:1") == '{"x": 1}'
    await shared.delete("admins:1")
    assert await shared.get("admins:1") is None

    assert await shared.lease("scheduler", "a", 5) is True
    assert await shared.lease("scheduler", "b", 5) is False
    assert await shared.lease("scheduler", "a", 5) is True
    await shared.release_lease("scheduler", "b")  # not b's: nothing happens
    assert await shared.lease("scheduler", "b", 5) is False
    await shared.release_lease("scheduler", "a")
    assert await shared.lease("scheduler", "b", 5) is True

    order: list[str] = []

    async def critical(name: str) -> None:
        async with shared.lock("chat:-1001"):
            order.append(f"{name}+")
            await asyncio.sleep(0.02)
            order.append(f"{name}-")

    await asyncio.gather(*(critical(n) for n in "abc"))
    assert all(order[i][0] == order[i + 1][0] for i in range(0, 6, 2))

    got: list[str] = []
    shared.on_invalidate("chat_config", got.append)
    await shared.publish("chat_config", "-1001")
    for _ in range(100):
        if got:
            break
        await asyncio.sleep(0.02)
    assert got == ["-1001"]


async def test_two_workers_share_counters_locks_and_the_token_bucket(redis_prefix: Any) -> None:
    url, prefix = redis_prefix
    a, b = RedisShared(url, prefix=prefix), RedisShared(url, prefix=prefix)
    await a.start()
    await b.start()
    try:
        assert await a.hit("flood:1:7", 10, now=5.0) == 1
        assert await b.hit("flood:1:7", 10, now=5.5) == 2  # the other worker sees the first hit

        # One chat lock across both: critical sections never overlap.
        inside: list[int] = []
        overlaps = 0

        async def section(backend: RedisShared, n: int) -> None:
            nonlocal overlaps
            async with backend.lock("chat:-5"):
                inside.append(n)
                if len(inside) > 1:
                    overlaps += 1
                await asyncio.sleep(0.005)
                inside.remove(n)

        await asyncio.gather(*(section(a if i % 2 else b, i) for i in range(20)))
        assert overlaps == 0

        # 20 per minute in a chat, shared: 30 reservations from two workers, 20 go now, 10 must wait.
        limit = [RateLimit("pace:chat:-7", 20, 60.0)]
        waits = await asyncio.gather(*((a if i % 2 else b).reserve(limit) for i in range(30)))
        assert sum(1 for w in waits if w == 0) == 20
        later = sorted(w for w in waits if w > 0)
        assert later[0] == pytest.approx(3.0, abs=0.2) and later[-1] == pytest.approx(30.0, abs=0.3)

        # A change published by one worker reaches the other's callback.
        got: list[str] = []
        b.on_invalidate("admins", got.append)
        await asyncio.sleep(0.1)  # b's listener subscribed
        await a.publish("admins", "-1001")
        for _ in range(100):
            if got:
                break
            await asyncio.sleep(0.02)
        assert got == ["-1001"]
    finally:
        await a.close()
        await b.close()


async def test_redis_blip_falls_back_logs_once_and_recovers(
    redis_prefix: Any, caplog: pytest.LogCaptureFixture
) -> None:
    url, prefix = redis_prefix
    host_port = url.split("//", 1)[1].split("/", 1)
    host, port = host_port[0].split(":")
    proxy = TcpProxy(host, int(port))
    await proxy.up()
    shared = RedisShared(f"redis://127.0.0.1:{proxy.port}/{host_port[1]}", prefix=prefix, workers=2)
    await shared.start()
    dropped: list[str] = []
    shared.on_invalidate("chat_config", dropped.append)
    caplog.set_level(logging.WARNING, logger="bot.shared")
    try:
        assert await shared.hit("w", 60, now=1.0) == 1
        await proxy.down()  # Redis stops answering: the port is closed
        started = time.monotonic()
        for i in range(50):
            assert await shared.hit("w", 60, now=2.0 + i) >= 1  # served locally, never raises
            async with shared.lock("chat:1"):
                pass
            assert await shared.lease("scheduler", "me", 5) is None  # unknown, not "taken by another"
        assert time.monotonic() - started < 5, "the circuit breaker must not wait on every call"
        assert not shared.healthy
        # Local pacing at this worker's share (1/2) of the limit: 10 per minute in the chat, not 20.
        waits = [await shared.reserve([RateLimit("pace:chat:-9", 20, 60.0)]) for _ in range(12)]
        assert sum(1 for w in waits if w == 0) == 10
        warnings = [r for r in caplog.records if "Redis unreachable" in r.getMessage()]
        assert len(warnings) == 1

        await proxy.up()
        await asyncio.sleep(shared.RETRY_AFTER + 0.1)
        assert await shared.hit("w", 60, now=60.0) == 2  # Redis again: the first hit is still there
        assert shared.healthy
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        assert "*" in dropped  # caches were dropped once: invalidations may have been missed
    finally:
        await shared.close()
        await proxy.down()
