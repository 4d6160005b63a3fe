from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import FakeClock
from bot.db import session_factory
from bot.services.points import InsufficientPoints, PointsService
from tests.dbutil import db_url, engine_with_schema  # noqa: F401

CHAT = -100


@pytest.fixture
async def points(db_url: str):  # noqa: F811
    engine = await engine_with_schema(db_url)
    yield PointsService(session_factory(engine), FakeClock(1_795_000_000), {"brand": [-100, -200]})
    await engine.dispose()


async def test_award_is_idempotent_by_reference(points: PointsService) -> None:
    first = await points.change(CHAT, 1, 10, "checkin", "checkin:1:2026-11-23")
    again = await points.change(CHAT, 1, 10, "checkin", "checkin:1:2026-11-23")
    assert first.applied and first.balance == 10
    assert not again.applied and again.balance == 10
    assert await points.ledger_sum(CHAT, 1) == 10


async def test_debit_never_overdraws(points: PointsService) -> None:
    await points.change(CHAT, 1, 5, "gift", "g1")
    with pytest.raises(InsufficientPoints) as err:
        await points.change(CHAT, 1, -6, "redeem", "r1")
    assert err.value.balance == 5
    assert await points.balance(CHAT, 1) == 5
    assert (await points.change(CHAT, 1, -5, "redeem", "r2")).balance == 0


async def test_concurrent_spends_exactly_one_wins(points: PointsService) -> None:
    await points.change(CHAT, 7, 100, "gift", "seed")
    results = await asyncio.gather(
        *(points.change(CHAT, 7, -100, "redeem", f"spend-{i}") for i in range(5)), return_exceptions=True
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    assert len(wins) == 1
    assert all(isinstance(r, InsufficientPoints) for r in results if isinstance(r, BaseException))
    assert await points.balance(CHAT, 7) == 0 == await points.ledger_sum(CHAT, 7)


async def test_shared_pool_and_separate_chats(points: PointsService) -> None:
    await points.change(-100, 1, 10, "x", "a")
    await points.change(-200, 1, 5, "x", "b")
    await points.change(-300, 1, 1, "x", "c")
    assert await points.balance(-100, 1) == 15 == await points.balance(-200, 1)
    assert await points.balance(-300, 1) == 1


async def test_leaderboard_ties_deterministic_and_since(points: PointsService) -> None:
    for uid, pts in ((3, 10), (1, 10), (2, 20)):
        await points.change(-300, uid, pts, "x", f"r{uid}")
    assert await points.leaderboard(-300) == [(2, 20), (1, 10), (3, 10)]
    assert await points.rank(-300, 3) == (3, 10)
    clock = points._clock
    assert isinstance(clock, FakeClock)
    clock.advance(timedelta(days=8))
    await points.change(-300, 3, 1, "x", "late")
    assert await points.leaderboard(-300, since=clock.now() - timedelta(days=1)) == [(3, 1)]


async def test_rejects_non_integer_and_huge(points: PointsService) -> None:
    with pytest.raises(ValueError):
        await points.change(CHAT, 1, 10**12, "x", "huge")
    with pytest.raises(ValueError):
        await points.change(CHAT, 1, 1.5, "x", "float")  # type: ignore[arg-type]


ops = st.lists(
    st.tuples(st.integers(1, 3), st.integers(-50, 50), st.integers(0, 12)), min_size=1, max_size=25
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=ops)
async def test_balance_always_equals_ledger_sum(tmp_path_factory, sequence) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("prop") / "p.db"
    engine = await engine_with_schema(f"sqlite+aiosqlite:///{path}")
    svc = PointsService(session_factory(engine), FakeClock(0))
    try:
        for user, delta, ref in sequence:
            with contextlib.suppress(InsufficientPoints):
                await svc.change(CHAT, user, delta, "op", f"ref-{ref}-{user}")
        for user in (1, 2, 3):
            balance = await svc.balance(CHAT, user)
            assert balance == await svc.ledger_sum(CHAT, user)
            assert balance >= 0
    finally:
        await engine.dispose()


async def test_write_gate_serializes_sqlite_writers_and_is_reentrant(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.db import WriteGate

    gate = WriteGate(timeout=0.2)
    order: list[str] = []

    async def writer(name: str) -> None:
        held = await gate.acquire()
        try:
            order.append(f"{name}+")
            nested = await gate.acquire()  # same task: passes at once
            gate.release(nested)
            await asyncio.sleep(0.01)
            order.append(f"{name}-")
        finally:
            gate.release(held)

    await asyncio.gather(writer("a"), writer("b"), writer("c"))
    assert order == ["a+", "a-", "b+", "b-", "c+", "c-"]
    # A waiter that cannot get the gate in time proceeds (False) instead of deadlocking.
    assert await gate.acquire()
    waited = await asyncio.create_task(gate.acquire())
    assert waited is False
    gate.release(True)
