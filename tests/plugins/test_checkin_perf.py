"""checkin's cheap paths: the running "earned" total equals the old ledger aggregate (property test),
the per-day rank counter, the check-in's bounded statement count and the fallback when today's row
exists unexpectedly, the one-statement-per-step ``PointsService.credit``, and the migration backfill."""

from __future__ import annotations

import contextlib
import importlib
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event, func, or_, select, text

from bot.clock import FakeClock
from bot.db import session_factory
from bot.migrate import upgrade
from bot.models import PointsBalance, PointsEntry
from bot.services.points import NOT_EARNED_REASONS, RESET_REASONS, Credit, InsufficientPoints, PointsService
from plugins.checkin import boards, service
from plugins.checkin.activity import CheckinRuntime
from plugins.checkin.config import CheckinConfig
from plugins.checkin.levels import level_for
from plugins.checkin.models import CheckinDay, CheckinDayCount
from plugins.checkin.service import add_cards, check_in, earned
from tests.dbutil import db_url, drop_postgres_database, engine_with_schema, fresh_postgres_database  # noqa: F401
from tests.harness import ALICE, BOB, CAROL, GROUP, OTHER_GROUP

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")


async def aggregate_earned(session: Any, svc: PointsService, chat_id: int, user_id: int) -> int:
    """The former ``earned()``: the member's ledger after their last reset, NOT_EARNED left out (unclamped)."""
    pool = svc.pool_for(chat_id)
    last_reset = await session.scalar(
        select(func.max(PointsEntry.id)).where(PointsEntry.pool == pool, PointsEntry.user_id == user_id,
                                               PointsEntry.reason.in_(RESET_REASONS)))
    total = await session.scalar(
        select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
            PointsEntry.pool == pool, PointsEntry.user_id == user_id,
            PointsEntry.reason.not_in(NOT_EARNED_REASONS),
            or_(last_reset is None, PointsEntry.id > (last_reset or 0))))
    return int(total or 0)


def test_plugin_reasons_match_the_core_rule() -> None:
    assert set(service.NOT_EARNED) == NOT_EARNED_REASONS
    assert service.R_REDEEM in NOT_EARNED_REASONS and service.R_RESET in RESET_REASONS
    assert service.R_CHECKIN not in NOT_EARNED_REASONS and service.R_TAKE not in NOT_EARNED_REASONS


@given(before=st.integers(0, 2500), gain=st.integers(-50, 700))
def test_level_up_shortcut_matches_the_level_comparison(before: int, gain: int) -> None:
    cfg = CheckinConfig()
    after = max(0, before + gain)
    old, new = level_for(cfg.levels, before), level_for(cfg.levels, after)
    expected = new if new.index > old.index else None
    assert service.level_up(cfg, before, after) == expected


# ---- property: running total == aggregate ------------------------------------------------------
REASONS = ["checkin", "activity", "admin_take", "moderation.warn", "redeem", "refund", "reset"]
CHAT = st.sampled_from([0, 1, 2])
USER = st.integers(1, 2)
REF = st.integers(0, 12)
step = st.one_of(
    st.tuples(st.just("change"), CHAT, USER, st.integers(-40, 40), st.sampled_from(REASONS), REF, st.booleans()),
    st.tuples(st.just("credit"), CHAT, USER, st.integers(0, 40), st.sampled_from(REASONS), REF),
    st.tuples(st.just("batch"), st.lists(st.tuples(CHAT, USER, st.integers(0, 20), st.sampled_from(REASONS), REF),
                                         max_size=6)),
    st.tuples(st.just("reset"), CHAT, USER, REF),
    st.tuples(st.just("forget"), USER),
)


@pytest.fixture
async def prop_db(tmp_path: Any) -> Any:
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path
    engine = await engine_with_schema(f"sqlite+aiosqlite:///{folder / 'earned.db'}")
    yield session_factory(engine), iter(range(1, 10**6))
    await engine.dispose()
    if folder != tmp_path:
        shutil.rmtree(folder, ignore_errors=True)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(step, min_size=1, max_size=25))
async def test_running_earned_equals_the_ledger_aggregate(prop_db: Any, sequence: list[Any]) -> None:
    db, counter = prop_db
    base = -10_000 * next(counter)  # fresh chats (and pools) and users for every example
    chats = [base - 1, base - 2, base - 3]  # the first two share a pool
    users = {1: -base + 1, 2: -base + 2}
    svc = PointsService(db, FakeClock(0), {f"brand{base}": chats[:2]})
    app = SimpleNamespace(points=svc)
    for op in sequence:
        kind = op[0]
        if kind == "change":
            _, chat, user, delta, reason, ref, allow_negative = op
            with contextlib.suppress(InsufficientPoints):
                await svc.change(chats[chat], users[user], delta, reason, f"r{ref}", allow_negative=allow_negative)
        elif kind == "credit":
            _, chat, user, delta, reason, ref = op
            async with db() as s, s.begin():
                await svc.credit(s, chats[chat], users[user], delta, reason, f"r{ref}")
        elif kind == "batch":
            async with db() as s, s.begin():
                await svc.credit_many(s, [Credit(chats[c], users[u], d, why, f"r{r}") for c, u, d, why, r in op[1]])
        elif kind == "reset":
            _, chat, user, ref = op
            balance = await svc.balance(chats[chat], users[user])
            await svc.change(chats[chat], users[user], -balance, "reset", f"reset{ref}", allow_negative=True)
        else:
            await svc.anonymize_user(users[op[1]])
    async with db() as s:
        for chat in chats:
            raw = await svc.earned_totals(s, chat, users.values())
            clamped = await earned(s, app, chat, users.values())  # type: ignore[arg-type]
            for uid in users.values():
                expected = await aggregate_earned(s, svc, chat, uid)
                assert raw[uid] == expected
                assert clamped[uid] == max(0, expected)
        # Pseudonymized rows keep the invariant too.
        rows = (await s.execute(select(PointsBalance.pool, PointsBalance.user_id, PointsBalance.earned)
                                .where(PointsBalance.pool.in_([svc.pool_for(c) for c in chats])))).all()
        for pool, uid, value in rows:
            chat = next(c for c in chats if svc.pool_for(c) == pool)
            assert value == await aggregate_earned(s, svc, chat, uid)


# ---- PointsService.credit ----------------------------------------------------------------------
async def test_credit_is_idempotent_and_matches_change(prop_db: Any) -> None:
    db, _ = prop_db
    svc = PointsService(db, FakeClock(0))
    async with db() as s, s.begin():
        first = await svc.credit(s, 1, 7, 10, "checkin", "a", note="n")
        again = await svc.credit(s, 1, 7, 10, "checkin", "a")
        spend = await svc.credit(s, 1, 7, 3, "refund", "b")
    assert (first.applied, first.balance, first.delta, first.earned) == (True, 10, 10, 10)
    assert (again.applied, again.balance, again.delta, again.earned) == (False, 10, 0, 10)
    assert (spend.balance, spend.earned) == (13, 10)
    changed = await svc.change(1, 7, 5, "activity", "c")
    assert (changed.balance, changed.earned) == (18, 15)
    assert await svc.ledger_sum(1, 7) == 18
    with pytest.raises(ValueError):
        async with db() as s, s.begin():
            await svc.credit(s, 1, 7, -1, "checkin", "d")


async def test_batch_and_single_credits_on_both_databases(db_url: str) -> None:  # noqa: F811
    """The dialect-specific statements (ON CONFLICT ... RETURNING, many rows) on SQLite and PostgreSQL."""
    engine = await engine_with_schema(db_url)
    db = session_factory(engine)
    svc = PointsService(db, FakeClock(0), {"brand": [1, 2]})
    try:
        async with db() as s, s.begin():
            applied, after = await svc.credit_many_earned(s, [
                Credit(1, 7, 5, "activity", "a"), Credit(2, 7, 3, "activity", "b"), Credit(1, 8, 4, "refund", "c"),
                Credit(1, 7, 5, "activity", "a"), Credit(3, 7, 2, "activity", "a")])
        assert len(applied) == 4 and after == {("pool:brand", 7): 8, ("pool:brand", 8): 0, ("3", 7): 2}
        async with db() as s, s.begin():
            again, _ = await svc.credit_many_earned(s, [Credit(1, 7, 5, "activity", "a"), Credit(1, 8, 1, "reset", "r"),
                                                        Credit(1, 8, 2, "checkin", "d")])
            single = await svc.credit(s, 2, 7, 10, "checkin", "e")
        assert [c.reference for c in again] == ["r", "d"]
        assert (single.balance, single.earned) == (18, 18)
        await svc.change(1, 7, -18, "reset", "z", allow_negative=True)
        await svc.change(1, 7, 6, "admin_give", "y")
        async with db() as s:
            assert await svc.earned_totals(s, 1, [7, 8, 9]) == {7: 6, 8: 2, 9: 0}
            for uid in (7, 8):
                assert (await svc.earned_totals(s, 1, [uid]))[uid] == await aggregate_earned(s, svc, 1, uid)
            assert await svc.balance(1, 8) == await svc.ledger_sum(1, 8) == 7
    finally:
        await engine.dispose()


# ---- check-in ----------------------------------------------------------------------------------
@pytest.fixture
async def h(make_harness: Any) -> Any:
    return await make_harness(plugins=["checkin"], config={"plugins": {"checkin": {"lucky_chance": 0}}})


async def cfg_for(h: Any) -> Any:
    return await h.app.chat_config.get(GROUP, "checkin")


async def test_rank_counter_counts_real_checkins_only(h: Any) -> None:
    cfg = await cfg_for(h)
    h.clock.set(datetime(2026, 11, 1, 9, tzinfo=SH))
    assert (await check_in(h.app, cfg, GROUP, CAROL, tz=SH)).rank == 1
    h.clock.set(datetime(2026, 11, 4, 9, tzinfo=SH))
    async with h.app.db() as s, s.begin():
        await add_cards(s, GROUP, CAROL, 2, h.app.clock.now())
    ranks = [await check_in(h.app, cfg, GROUP, uid, tz=SH) for uid in (ALICE, CAROL, BOB)]
    assert ranks[1].made_up == 2  # two made-up days filled: they do not count for anyone's rank
    assert [r.rank for r in ranks] == [1, 2, 3]
    assert (await check_in(h.app, cfg, GROUP, BOB, tz=SH)).rank == 3  # "already": the stored rank
    async with h.app.db() as s:
        counts = {(c.chat_id, c.day): c.count for c in await s.scalars(select(CheckinDayCount))}
        real = {(c, d): n for c, d, n in (await s.execute(
            select(CheckinDay.chat_id, CheckinDay.day, func.count()).where(CheckinDay.made_up.is_(False))
            .group_by(CheckinDay.chat_id, CheckinDay.day))).all()}
    assert counts == real and sum(real.values()) == 4


async def test_checkin_is_a_few_statements_whatever_the_history(h: Any) -> None:
    cfg = await cfg_for(h)
    h.clock.set(datetime(2026, 11, 1, 9, tzinfo=SH))
    await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
    async with h.app.db() as s, s.begin():  # a long history
        await h.app.points.credit_many(s, [Credit(GROUP, ALICE, 1, "activity", f"h{i}") for i in range(2000)])
    h.clock.advance(86_400)
    seen: list[str] = []

    def log(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()).lower())

    event.listen(h.app.engine.sync_engine, "before_cursor_execute", log)
    try:
        r = await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
    finally:
        event.remove(h.app.engine.sync_engine, "before_cursor_execute", log)
    assert r.status == "ok" and r.streak == 2
    # member, rank, day row, member row, ledger row, balance: nothing sums or counts the history.
    assert len(seen) <= 6, seen
    assert not any("sum(" in q or "count(" in q for q in seen), seen
    async with h.app.db() as s:
        assert (await earned(s, h.app, GROUP, [ALICE]))[ALICE] == 5 + 2000 + 6


async def test_todays_row_found_through_the_unique_constraint(h: Any) -> None:
    """A time-zone change can put today's row behind ``last_day``: the check-in still answers "already"."""
    cfg = await cfg_for(h)
    h.clock.set(datetime(2026, 11, 1, 20, tzinfo=ZoneInfo("UTC")))  # 11-01 15:00 in New York
    first = await check_in(h.app, cfg, GROUP, ALICE, tz=NY, message_id=1)
    h.clock.set(datetime(2026, 11, 2, 3, tzinfo=ZoneInfo("UTC")))  # 11-02 11:00 in Shanghai
    second = await check_in(h.app, cfg, GROUP, ALICE, tz=SH, message_id=2)
    assert (first.day.day, second.day.day, second.streak) == (1, 2, 2)
    h.clock.set(datetime(2026, 11, 2, 4, tzinfo=ZoneInfo("UTC")))  # back to New York: 11-01 23:00
    again = await check_in(h.app, cfg, GROUP, ALICE, tz=NY, message_id=3)
    assert (again.status, again.rank, again.points) == ("already", first.rank, first.points)
    assert (await check_in(h.app, cfg, GROUP, ALICE, tz=NY, message_id=1)).status == "duplicate"
    assert await h.app.points.balance(GROUP, ALICE) == first.points + second.points


async def test_flush_reads_the_running_totals_for_level_ups(make_harness: Any) -> None:
    h = await make_harness(plugins=["checkin"], config={"plugins": {"checkin": {
        "levels": [{"name": "萌新", "min_points": 0}, {"name": "活跃", "min_points": 3}]}}})
    cfg = await cfg_for(h)
    runtime: CheckinRuntime = h.app.runtime("checkin")
    await h.app.points.change(GROUP, BOB, 2, "activity", "seed")
    await h.app.points.change(GROUP, BOB, -2, "redeem", "spent")  # spending: the level stays
    day = h.app.clock.now().date()
    assert runtime.note_message(GROUP, BOB, "第一条发言内容", h.clock.time(), day, cfg)
    assert runtime.note_message(OTHER_GROUP, BOB, "第一条发言内容", h.clock.time(), day, cfg)
    await h.app.flush()
    await h.app.sender.drain(5)
    assert [t for t in h.texts(GROUP) if "活跃" in t]
    assert not [t for t in h.texts(OTHER_GROUP) if "活跃" in t]


async def test_card_and_top_ranks_match_the_full_board(h: Any) -> None:
    """/points and /top count who is ahead instead of loading the board: same ranks, ties by user id."""
    balances = {ALICE: 50, BOB: 80, CAROL: 50, 2001: 80, 2002: 10, 2003: 0, 2004: 50}
    for uid, amount in balances.items():
        if amount:
            await h.app.points.change(GROUP, uid, amount, "admin_give", f"g{uid}")
    await h.app.points.change(GROUP, 2003, 5, "admin_give", "g2003")
    await h.app.points.change(GROUP, 2003, -5, "admin_take", "t2003")  # a balance row at 0: off the board
    cfg = await cfg_for(h)
    now = h.app.clock.now()
    for uid in (*balances, 4242):
        expected = await h.app.points.rank(GROUP, uid)
        assert (await service.card(h.app, cfg, GROUP, uid, tz=SH)).rank == (expected[0] if expected else None)
        rows, mine = await boards.top(h.app, GROUP, "points", "all", now=now, tz=SH, limit=2, user_id=uid)
        assert rows == (await h.app.points.leaderboard(GROUP, limit=0))[:2]
        assert mine == expected
    assert (await service.card(h.app, cfg, GROUP, CAROL, tz=SH)).rank == 4  # BOB, 2001 (80), ALICE, CAROL (50)


async def test_checkin_paths_on_postgresql(make_harness: Any) -> None:
    """The prepared check-in statements (upserts RETURNING, the fallback) on PostgreSQL, when a server is up."""
    created = await fresh_postgres_database()
    if created is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    url, admin_url = created
    try:
        h = await make_harness(plugins=["checkin"], db_url=url,
                               config={"plugins": {"checkin": {"lucky_chance": 0}}})
        cfg = await cfg_for(h)
        h.clock.set(datetime(2026, 11, 1, 20, tzinfo=ZoneInfo("UTC")))
        first = [await check_in(h.app, cfg, GROUP, uid, tz=NY, message_id=uid) for uid in (ALICE, BOB)]
        assert [(r.status, r.rank, r.badges) for r in first] == [("ok", 1, ["first_checkin"]),
                                                                 ("ok", 2, ["first_checkin"])]
        assert (await check_in(h.app, cfg, GROUP, ALICE, tz=NY, message_id=ALICE)).status == "duplicate"
        h.clock.set(datetime(2026, 11, 2, 3, tzinfo=ZoneInfo("UTC")))
        second = await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
        assert (second.status, second.streak, second.rank, second.balance) == ("ok", 2, 1, 5 + 6)
        h.clock.set(datetime(2026, 11, 2, 4, tzinfo=ZoneInfo("UTC")))
        assert (await check_in(h.app, cfg, GROUP, ALICE, tz=NY)).status == "already"  # through the fallback
        c = await service.card(h.app, cfg, GROUP, ALICE, tz=SH)
        assert (c.balance, c.earned, c.rank) == (11, 11, 1)
        async with h.app.db() as s:
            assert await aggregate_earned(s, h.app.points, GROUP, ALICE) == 11
        await h.stop()
    finally:
        await drop_postgres_database(url, admin_url)


# ---- migration backfill ------------------------------------------------------------------------
async def test_migration_backfills_earned_and_day_counts(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    await upgrade(url)
    sync = create_sync_engine(f"sqlite:///{tmp_path / 'm.db'}")
    rows = [  # (id, user, delta, reason)
        (1, 1, 100, "checkin"), (2, 1, -30, "redeem"), (3, 1, -10, "admin_take"), (4, 1, -60, "reset"),
        (5, 1, 7, "activity"), (6, 2, 5, "checkin"), (7, 2, -9, "moderation.warn"), (8, 3, 4, "refund"),
    ]
    with sync.begin() as conn:
        for id_, uid, delta, reason in rows:
            conn.execute(text("INSERT INTO core_points_ledger (id, pool, chat_id, user_id, delta, reason, reference, "
                              "created_at) VALUES (:i, '5', 5, :u, :d, :r, :ref, '2026-11-01 00:00:00')"),
                         {"i": id_, "u": uid, "d": delta, "r": reason, "ref": f"x{id_}"})
        for uid in (1, 2, 3):
            conn.execute(text("INSERT INTO core_points_balances (pool, user_id, balance, earned) "
                              "VALUES ('5', :u, 0, 999)"), {"u": uid})
        for uid, day, made_up in ((1, "2026-11-01", 0), (2, "2026-11-01", 0), (3, "2026-11-01", 1),
                                  (1, "2026-11-02", 0)):
            conn.execute(text("INSERT INTO checkin_days (chat_id, user_id, day, points, streak, rank, lucky, made_up, "
                              "created_at) VALUES (5, :u, :d, 0, 0, 0, 0, :m, '2026-11-01 00:00:00')"),
                         {"u": uid, "d": day, "m": made_up})
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    migration = importlib.import_module("migrations.versions.0003_engagement")
    with sync.begin() as conn, Operations.context(MigrationContext.configure(conn)):
        migration._backfill()
    with sync.connect() as conn:
        earned_by_user = dict(conn.execute(text("SELECT user_id, earned FROM core_points_balances")).all())
        counts = conn.execute(text("SELECT day, count FROM checkin_day_counts ORDER BY day")).all()
    sync.dispose()
    assert earned_by_user == {1: 7, 2: -4, 3: 0}
    assert [(str(d), n) for d, n in counts] == [("2026-11-01", 2), ("2026-11-02", 1)]
