from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.clock import FakeClock
from bot.db import session_factory
from bot.services.timers import TimerFire, TimerService
from tests.dbutil import db_url, engine_with_schema  # noqa: F401


@pytest.fixture
async def timers(db_url: str):  # noqa: F811
    engine = await engine_with_schema(db_url)
    svc = TimerService(session_factory(engine), FakeClock(1_795_000_000))
    yield svc
    await engine.dispose()


async def test_fires_once_when_due(timers: TimerService) -> None:
    fired: list[TimerFire] = []

    async def handler(app: Any, fire: TimerFire) -> None:
        fired.append(fire)

    timers.register("t.h", handler)
    clock = timers._clock
    assert isinstance(clock, FakeClock)
    assert await timers.schedule("k1", "t.h", clock.now() + timedelta(seconds=60), chat_id=-1, payload={"a": 1})
    assert not await timers.schedule("k1", "t.h", clock.now() + timedelta(seconds=5))  # same key: no-op
    assert await timers.run_due(None) == 0  # type: ignore[arg-type]
    clock.advance(61)
    assert await timers.run_due(None) == 1  # type: ignore[arg-type]
    assert await timers.run_due(None) == 0  # type: ignore[arg-type]
    assert [(f.key, f.chat_id, dict(f.payload)) for f in fired] == [("k1", -1, {"a": 1})]


async def test_failure_retries_with_backoff_then_gives_up(timers: TimerService) -> None:
    calls = 0

    async def boom(app: Any, fire: TimerFire) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("send failed")

    timers.register("t.boom", boom)
    clock = timers._clock
    assert isinstance(clock, FakeClock)
    await timers.schedule("k", "t.boom", clock.now())
    for _ in range(10):
        await timers.run_due(None)  # type: ignore[arg-type]
        clock.advance(400)
    assert calls == 5
    row = await timers.get("k")
    assert row is not None and row.status == "failed" and "send failed" in (row.last_error or "")


async def test_cancel_and_replace(timers: TimerService) -> None:
    fired: list[str] = []

    async def handler(app: Any, fire: TimerFire) -> None:
        fired.append(fire.key)

    timers.register("t.h", handler)
    clock = timers._clock
    assert isinstance(clock, FakeClock)
    await timers.schedule("a", "t.h", clock.now() + timedelta(seconds=10))
    await timers.schedule("b", "t.h", clock.now() + timedelta(seconds=10))
    assert await timers.cancel("a")
    await timers.schedule("b", "t.h", clock.now() + timedelta(seconds=100), replace=True)
    clock.advance(20)
    await timers.run_due(None)  # type: ignore[arg-type]
    assert fired == []
    clock.advance(100)
    await timers.run_due(None)  # type: ignore[arg-type]
    assert fired == ["b"]


async def test_unknown_handler_rejected(timers: TimerService) -> None:
    with pytest.raises(KeyError):
        await timers.schedule("x", "nobody.home", timers._clock.now())
