"""checkin services driven directly (real App + SQLite, FakeClock): streaks, 补签卡, luck, levels,
the shop under concurrency, activity points, weekly award, and the ledger property test."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from sqlalchemy import func, select

from bot.clock import FakeClock
from bot.db import session_factory
from bot.models import PointsEntry
from bot.services.points import Credit, InsufficientPoints, PointsService
from plugins.checkin import shop, weekly
from plugins.checkin.config import CheckinConfig
from plugins.checkin.levels import daily_award, ladder_points, level_for, lucky_roll, period_start
from plugins.checkin.models import CheckinBadge, CheckinDay, CouponCode, Redemption, ShopItem
from plugins.checkin.service import add_cards, card, check_in, earned, makeup
from tests.dbutil import drop_postgres_database, engine_with_schema, fresh_postgres_database
from tests.harness import ALICE, BOB, CAROL, DAVE, GROUP, OTHER_GROUP

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")


def at_local(h: Any, tz: ZoneInfo, y: int, m: int, d: int, hh: int, mm: int = 0, ss: int = 0) -> None:
    h.clock.set(datetime(y, m, d, hh, mm, ss, tzinfo=tz))


async def cfg_for(h: Any, chat_id: int = GROUP) -> CheckinConfig:
    cfg = await h.app.chat_config.get(chat_id, "checkin")
    assert isinstance(cfg, CheckinConfig)
    return cfg


async def ledger_rows(h: Any, user_id: int, reason: str | None = None) -> list[PointsEntry]:
    async with h.app.db() as s:
        stmt = select(PointsEntry).where(PointsEntry.user_id == user_id)
        if reason:
            stmt = stmt.where(PointsEntry.reason == reason)
        return list(await s.scalars(stmt.order_by(PointsEntry.id)))


async def assert_ledger_consistent(h: Any, chat_id: int, *users: int) -> None:
    for uid in users:
        assert await h.app.points.balance(chat_id, uid) == await h.app.points.ledger_sum(chat_id, uid)


@pytest.fixture
async def h(make_harness: Any) -> Any:
    return await make_harness(plugins=["checkin"], config={"plugins": {"checkin": {"lucky_chance": 0}}})


# ---- pure rules --------------------------------------------------------------------------------
def test_ladder_caps_and_milestones() -> None:
    cfg = CheckinConfig(base_points=5, streak_step=1, max_daily_points=15, lucky_chance=0)
    assert [ladder_points(cfg, d) for d in (1, 2, 3, 11, 12, 40)] == [5, 6, 7, 15, 15, 15]
    seventh = daily_award(cfg, GROUP, ALICE, date(2026, 11, 18), 7)
    assert (seventh.base, seventh.milestone, seventh.badge, seventh.total) == (11, 20, "streak_7", 31)
    assert daily_award(cfg, GROUP, ALICE, date(2026, 11, 18), 8).milestone == 0
    uncapped = CheckinConfig(base_points=5, streak_step=2, max_daily_points=0)
    assert ladder_points(uncapped, 51) == 105


def test_lucky_is_deterministic_and_follows_the_chance() -> None:
    cfg = CheckinConfig(lucky_chance=0.3, lucky_points=7)
    day = date(2026, 11, 18)
    rolls = [lucky_roll(cfg, GROUP, uid, day) for uid in range(2000)]
    assert rolls == [lucky_roll(cfg, GROUP, uid, day) for uid in range(2000)]  # redelivery rolls the same
    assert set(rolls) == {0, 7}
    assert 0.25 < rolls.count(7) / 2000 < 0.35
    assert lucky_roll(CheckinConfig(lucky_chance=0), GROUP, 1, day) == 0
    assert lucky_roll(CheckinConfig(lucky_chance=1, lucky_points=3), GROUP, 1, day) == 3


def test_levels_and_config_validation() -> None:
    cfg = CheckinConfig()
    assert [level_for(cfg.levels, p).level.name for p in (0, 99, 100, 499, 500, 2000, 10**6)] == [
        "萌新", "萌新", "活跃", "活跃", "达人", "元老", "元老"]
    mid = level_for(cfg.levels, 300)
    assert mid.next is not None and mid.to_next == 200 and mid.progress == pytest.approx(0.5)
    assert level_for(cfg.levels, 5000).next is None
    custom = CheckinConfig(levels=[{"name": "钻石", "min_points": 900}, {"name": "白银", "min_points": 0},
                                   {"name": "黄金", "min_points": 300}])
    assert [lv.name for lv in custom.levels] == ["白银", "黄金", "钻石"]
    with pytest.raises(ValidationError):
        CheckinConfig(levels=[{"name": "a", "min_points": 10}])
    with pytest.raises(ValidationError):
        CheckinConfig(lucky_chance=1.5)
    with pytest.raises(ValidationError):
        CheckinConfig(base_points=-1)
    with pytest.raises(ValidationError):
        CheckinConfig(items=[{"code": "x", "name": "a", "price": 1}, {"code": "X", "name": "b", "price": 2}])
    with pytest.raises(ValidationError):
        CheckinConfig(unknown_key=1)
    assert CheckinConfig(milestones={"7": {"points": 1}}).milestones[7].points == 1  # TOML keys are strings


def test_period_start_is_local() -> None:
    now = datetime(2026, 11, 18, 20, 0, tzinfo=ZoneInfo("UTC"))  # Thu 04:00 in Shanghai, Wed 15:00 in NY
    assert period_start("week", now, SH) == datetime(2026, 11, 16, tzinfo=SH)
    assert period_start("month", now, NY) == datetime(2026, 11, 1, tzinfo=NY)
    assert period_start("all", now, SH) is None


# ---- streaks across midnight -------------------------------------------------------------------
async def test_streak_across_midnight_in_shanghai(h: Any) -> None:
    cfg = await cfg_for(h)
    at_local(h, SH, 2026, 11, 18, 23, 59, 30)
    first = await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
    assert (first.status, first.streak, first.day) == ("ok", 1, date(2026, 11, 18))
    h.clock.advance(60)  # 00:00:30 the next day in Shanghai
    second = await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
    assert (second.status, second.streak, second.points) == ("ok", 2, 6)
    h.clock.advance(23 * 3600 + 59 * 60)  # 23:59:30, still the same local day
    again = await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
    assert again.status == "already" and again.streak == 2
    assert await h.app.points.balance(GROUP, ALICE) == 11
    assert [r.reference for r in await ledger_rows(h, ALICE)] == [
        f"checkin:{GROUP}:{ALICE}:2026-11-18", f"checkin:{GROUP}:{ALICE}:2026-11-19"]


async def test_streak_follows_each_chats_timezone(make_harness: Any) -> None:
    h = await make_harness(plugins=["checkin"], config={
        "chats": {GROUP: {"timezone": "America/New_York"}}, "plugins": {"checkin": {"lucky_chance": 0}}})
    # 2026-11-19 04:30 UTC = 23:30 on the 18th in New York = 12:30 on the 19th in Shanghai.
    h.clock.set(datetime(2026, 11, 19, 4, 30, tzinfo=ZoneInfo("UTC")))
    await h.say(GROUP, ALICE, "签到")
    await h.say(OTHER_GROUP, ALICE, "签到")
    h.clock.advance(3600)  # 00:30 in New York (a new day there), 13:30 in Shanghai (same day)
    await h.say(GROUP, ALICE, "签到")
    await h.say(OTHER_GROUP, ALICE, "签到")
    assert "连续签到 2 天" in h.texts(GROUP)[-1] and "签到成功" in h.texts(GROUP)[-1]
    assert "已经签到过" in h.texts(OTHER_GROUP)[-1]
    async with h.app.db() as s:
        days = (await s.execute(select(CheckinDay.chat_id, CheckinDay.day).order_by(CheckinDay.id))).all()
    assert [(c, d.isoformat()) for c, d in days] == [
        (GROUP, "2026-11-18"), (OTHER_GROUP, "2026-11-19"), (GROUP, "2026-11-19")]


async def test_rank_counts_todays_checkins_per_chat(h: Any) -> None:
    cfg = await cfg_for(h)
    ranks = [(await check_in(h.app, cfg, GROUP, uid, tz=SH)).rank for uid in (BOB, ALICE, CAROL)]
    assert ranks == [1, 2, 3]
    assert (await check_in(h.app, cfg, OTHER_GROUP, CAROL, tz=SH)).rank == 1
    h.clock.advance(86_400)
    assert (await check_in(h.app, cfg, GROUP, CAROL, tz=SH)).rank == 1


async def test_skipped_day_resets_the_streak(h: Any) -> None:
    cfg = await cfg_for(h)
    at_local(h, SH, 2026, 11, 18, 9)
    for _ in range(3):
        await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
        h.clock.advance(86_400)
    h.clock.advance(86_400)  # the clock skips a whole day: no check-in on the 21st
    r = await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
    assert (r.streak, r.broken, r.missed, r.points) == (1, 3, 1, 5)
    c = await card(h.app, cfg, GROUP, ALICE, tz=SH)
    assert c.streak == 1 and c.best_streak == 3 and c.total_days == 4
    await assert_ledger_consistent(h, GROUP, ALICE)


async def test_makeup_card_is_spent_automatically(h: Any) -> None:
    cfg = await cfg_for(h)
    at_local(h, SH, 2026, 11, 18, 9)
    await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
    async with h.app.db() as s, s.begin():
        await add_cards(s, GROUP, ALICE, 2, h.clock.now())
    h.clock.advance(3 * 86_400)  # missed the 19th and 20th
    r = await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
    assert (r.streak, r.made_up, r.broken, r.cards) == (4, 2, 0, 0)
    async with h.app.db() as s:
        made_up = list(await s.scalars(select(CheckinDay.day).where(CheckinDay.made_up.is_(True))))
    assert made_up == [date(2026, 11, 19), date(2026, 11, 20)]
    h.clock.advance(3 * 86_400)  # missed two more days, no cards left: reset
    assert (await check_in(h.app, cfg, GROUP, ALICE, tz=SH)).streak == 1


async def test_makeup_after_a_reset_restores_the_streak_and_pays_the_milestone(make_harness: Any) -> None:
    h = await make_harness(plugins=["checkin"], config={"plugins": {"checkin": {"lucky_chance": 0,
                                                                                 "makeup_auto": False}}})
    cfg = await cfg_for(h)
    at_local(h, SH, 2026, 11, 1, 9)
    for _ in range(6):
        await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
        h.clock.advance(86_400)
    h.clock.advance(86_400)  # missed the 7th
    r = await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
    assert (r.streak, r.broken) == (1, 6)
    assert (await makeup(h.app, cfg, GROUP, ALICE, tz=SH)).status == "no_cards"
    await h.app.points.change(GROUP, ALICE, 100, "gift", "seed")
    bought = await shop.redeem(h.app, GROUP, ALICE, "补签卡", "req-1")  # the default config item, by name
    assert bought.status == "unknown"  # the shop is synced on first use
    await shop.sync_items(h.app, GROUP, cfg)
    bought = await shop.redeem(h.app, GROUP, ALICE, "补签卡", "req-1")
    assert bought.status == "ok" and bought.price == 50
    m = await makeup(h.app, cfg, GROUP, ALICE, tz=SH)
    assert (m.status, m.days, m.streak, m.cards, m.bonus, m.badges) == ("ok", 1, 8, 0, 20, ["streak_7"])
    assert (await makeup(h.app, cfg, GROUP, ALICE, tz=SH)).status == "nothing"
    h.clock.advance(86_400)
    assert (await check_in(h.app, cfg, GROUP, ALICE, tz=SH)).streak == 9
    await assert_ledger_consistent(h, GROUP, ALICE)


async def test_makeup_before_todays_checkin_and_grace_limit(h: Any) -> None:
    cfg = await cfg_for(h)
    at_local(h, SH, 2026, 11, 18, 9)
    await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
    await check_in(h.app, cfg, GROUP, BOB, tz=SH)
    async with h.app.db() as s, s.begin():
        await add_cards(s, GROUP, ALICE, 5, h.clock.now())
        await add_cards(s, GROUP, BOB, 5, h.clock.now())
    h.clock.advance(2 * 86_400)  # ALICE missed the 19th; now the 20th
    m = await makeup(h.app, cfg, GROUP, ALICE, tz=SH)
    assert (m.status, m.days, m.streak) == ("ok", 1, 2)
    assert (await check_in(h.app, cfg, GROUP, ALICE, tz=SH)).streak == 3
    h.clock.advance(3 * 86_400)  # BOB missed 4 days (19th-22nd) > grace of 3
    late = await makeup(h.app, cfg, GROUP, BOB, tz=SH)
    assert (late.status, late.days) == ("too_late", 4)
    assert (await check_in(h.app, cfg, GROUP, BOB, tz=SH)).streak == 1  # auto make-up does not apply either


async def test_redelivered_checkin_is_a_no_op(h: Any) -> None:
    cfg = await cfg_for(h)
    first = await check_in(h.app, cfg, GROUP, ALICE, tz=SH, message_id=42)
    again = await check_in(h.app, cfg, GROUP, ALICE, tz=SH, message_id=42)
    other = await check_in(h.app, cfg, GROUP, ALICE, tz=SH, message_id=43)
    assert (first.status, again.status, other.status) == ("ok", "duplicate", "already")
    assert len(await ledger_rows(h, ALICE)) == 1


async def test_badges_and_card(h: Any) -> None:
    cfg = await cfg_for(h)
    at_local(h, SH, 2026, 11, 1, 9)
    for _ in range(7):
        r = await check_in(h.app, cfg, GROUP, ALICE, tz=SH)
        h.clock.advance(86_400)
    assert r.badges == ["streak_7"] and r.points == 11 + 20
    c = await card(h.app, cfg, GROUP, ALICE, tz=SH)
    assert [label for label, _ in c.badges] == ["🌱 初来乍到", "🔥 七日连签"]
    assert c.balance == 5 + 6 + 7 + 8 + 9 + 10 + 31 == c.earned
    assert c.level.level.name == "萌新" and c.level.to_next == 100 - c.earned
    assert not c.checked_today


async def test_earned_points_ignore_spending_and_restart_after_reset(h: Any) -> None:
    p = h.app.points
    await p.change(GROUP, ALICE, 150, "checkin", "a")
    await p.change(GROUP, ALICE, -50, "redeem", "b")
    await p.change(GROUP, ALICE, -10, "admin_take", "c")
    async with h.app.db() as s:
        assert (await earned(s, h.app, GROUP, [ALICE, BOB])) == {ALICE: 140, BOB: 0}
    await p.change(GROUP, ALICE, -90, "reset", "d", allow_negative=True)
    await p.change(GROUP, ALICE, 7, "checkin", "e")
    async with h.app.db() as s:
        assert (await earned(s, h.app, GROUP, [ALICE]))[ALICE] == 7


# ---- shop --------------------------------------------------------------------------------------
async def _item(h: Any, **kw: Any) -> ShopItem:
    item, _ = await shop.add_item(h.app, GROUP, **{"code": "cup", "name": "限量杯子", "price": 30, **kw})
    return item


async def test_concurrent_redeems_of_the_last_item_exactly_one_wins(h: Any) -> None:
    await _item(h, stock=1, stock_given=True)
    buyers = (ALICE, BOB, CAROL, DAVE, 2001, 2002)
    for uid in buyers:
        await h.app.points.change(GROUP, uid, 100, "gift", f"seed-{uid}")
    results = await asyncio.gather(*(shop.redeem(h.app, GROUP, uid, "cup", f"r{uid}") for uid in buyers))
    assert sorted(r.status for r in results) == ["ok"] + ["sold_out"] * 5
    winner = next(uid for uid, r in zip(buyers, results, strict=True) if r.status == "ok")
    for uid in buyers:
        assert await h.app.points.balance(GROUP, uid) == (70 if uid == winner else 100)
    await assert_ledger_consistent(h, GROUP, *buyers)
    items = await shop.list_items(h.app, GROUP)
    assert next(i for i in items if i.code == "cup").stock == 0


async def test_one_member_redeeming_twice_at_once_respects_the_limit(h: Any) -> None:
    await _item(h, stock=10, stock_given=True, limit=1)
    await h.app.points.change(GROUP, ALICE, 1000, "gift", "seed")
    results = await asyncio.gather(*(shop.redeem(h.app, GROUP, ALICE, "cup", f"r{i}") for i in range(4)))
    assert sorted(r.status for r in results) == ["limit", "limit", "limit", "ok"]
    assert await h.app.points.balance(GROUP, ALICE) == 970
    assert next(i for i in await shop.list_items(h.app, GROUP) if i.code == "cup").stock == 9
    await assert_ledger_consistent(h, GROUP, ALICE)


async def test_coupon_codes_are_never_given_twice(h: Any) -> None:
    await _item(h, kind="coupon")
    _, added, dup = await shop.add_codes(h.app, GROUP, "cup", ["A-1", "A-2", "A-3", "A-2"], ADMIN_ID)
    assert (added, dup) == (3, 1)
    buyers = list(range(3001, 3007))
    for uid in buyers:
        await h.app.points.change(GROUP, uid, 30, "gift", f"seed-{uid}")
    results = await asyncio.gather(*(shop.redeem(h.app, GROUP, uid, "CUP", f"r{uid}") for uid in buyers))
    codes = [r.code for r in results if r.status == "ok"]
    assert sorted(codes) == ["A-1", "A-2", "A-3"]  # type: ignore[type-var]
    assert [r.status for r in results].count("sold_out") == 3
    async with h.app.db() as s:
        claimed = (await s.execute(select(CouponCode.code, CouponCode.claimed_by))).all()
    assert len({c for c, by in claimed if by is not None}) == 3
    await assert_ledger_consistent(h, GROUP, *buyers)


ADMIN_ID = 222


async def test_redeem_bad_cases_leave_everything_unchanged(h: Any) -> None:
    await _item(h, stock=5, stock_given=True)
    await h.app.points.change(GROUP, ALICE, 29, "gift", "seed")
    poor = await shop.redeem(h.app, GROUP, ALICE, "cup", "r1")
    assert (poor.status, poor.balance, poor.price) == ("poor", 29, 30)
    assert (await shop.redeem(h.app, GROUP, ALICE, "nothing-like-this", "r2")).status == "unknown"
    assert (await shop.redeem(h.app, OTHER_GROUP, ALICE, "cup", "r3")).status == "unknown"  # other chat
    assert next(i for i in await shop.list_items(h.app, GROUP) if i.code == "cup").stock == 5
    await h.app.points.change(GROUP, ALICE, 1, "gift", "seed2")
    ok = await shop.redeem(h.app, GROUP, ALICE, "cup", "r4")
    dup = await shop.redeem(h.app, GROUP, ALICE, "cup", "r4")  # the same /redeem delivered again
    assert (ok.status, ok.balance, dup.status) == ("ok", 0, "duplicate")
    async with h.app.db() as s:
        assert await s.scalar(select(func.count()).select_from(Redemption)) == 1
    assert await shop.delete_item(h.app, GROUP, "cup") is not None
    assert (await shop.redeem(h.app, GROUP, ALICE, "cup", "r5")).status == "unknown"
    await assert_ledger_consistent(h, GROUP, ALICE)


async def test_badge_title_and_stock_admin(h: Any) -> None:
    await _item(h, code="vip", name="VIP徽章", kind="badge", price=10)
    await _item(h, code="t1", name="头衔", kind="title", price=10, payload="首席粉丝")
    await h.app.points.change(GROUP, ALICE, 100, "gift", "seed")
    assert (await shop.redeem(h.app, GROUP, ALICE, "vip", "r1")).status == "ok"
    assert (await shop.redeem(h.app, GROUP, ALICE, "vip", "r2")).status == "owned"
    assert (await shop.redeem(h.app, GROUP, ALICE, "t1", "r3")).status == "ok"
    c = await card(h.app, await cfg_for(h), GROUP, ALICE, tz=SH)
    assert c.title == "首席粉丝" and ("VIP徽章", 1) in c.badges and c.balance == 80
    item = await shop.set_stock(h.app, GROUP, "vip", "3")
    assert item is not None and item.stock == 3
    assert (await shop.set_stock(h.app, GROUP, "vip", "-5")).stock == 0  # type: ignore[union-attr]
    assert (await shop.set_stock(h.app, GROUP, "vip", "+2")).stock == 2  # type: ignore[union-attr]
    assert (await shop.set_stock(h.app, GROUP, "vip", "不限")).stock is None  # type: ignore[union-attr]
    with pytest.raises(shop.ShopError):
        await shop.set_stock(h.app, GROUP, "vip", "lots")
    with pytest.raises(shop.ShopError):
        await shop.add_codes(h.app, GROUP, "vip", ["x"], None)


async def test_config_items_sync(make_harness: Any) -> None:
    items = [{"code": "mug", "name": "马克杯", "price": 80, "stock": 2, "kind": "coupon", "codes": ["M1", "M2"]}]
    h = await make_harness(plugins=["checkin"], config={"plugins": {"checkin": {"items": items}}})
    cfg = await cfg_for(h)
    await shop.sync_items(h.app, GROUP, cfg)
    await shop.sync_items(h.app, GROUP, cfg)  # unchanged config: no second write
    views = await shop.list_items(h.app, GROUP)
    assert [(v.code, v.stock, v.codes_left, v.available) for v in views] == [("mug", 2, 2, 2)]
    changed = CheckinConfig(items=[{"code": "mug", "name": "大马克杯", "price": 90, "stock": 9, "kind": "coupon"}])
    await shop.sync_items(h.app, GROUP, changed)
    views = await shop.list_items(h.app, GROUP)
    assert [(v.name, v.price, v.stock) for v in views] == [("大马克杯", 90, 2)]  # stock is not reset
    await shop.sync_items(h.app, GROUP, CheckinConfig(items=[]))
    assert await shop.list_items(h.app, GROUP) == []


# ---- activity ----------------------------------------------------------------------------------
async def test_activity_points_cooldown_length_and_cap(make_harness: Any) -> None:
    h = await make_harness(plugins=["checkin"], config={"plugins": {"checkin": {"activity_daily_cap": 3}}})
    await h.say(GROUP, ALICE, "今天的直播太好看了")
    await h.say(GROUP, ALICE, "再说一句也不会加分")  # within the cooldown
    await h.say(GROUP, BOB, "hi")  # too short
    await h.say(GROUP, BOB, "/points please")  # a command
    h.clock.advance(61)
    await h.say(GROUP, ALICE, "今天的直播太好看了")  # the same text again
    await h.say(GROUP, ALICE, "新的一句话来了哦")
    for i in range(4):
        h.clock.advance(61)
        await h.say(GROUP, ALICE, f"第{i}条足够长的消息")
    rows = await ledger_rows(h, ALICE, "activity")
    assert [r.delta for r in rows] == [1, 1, 1]  # the daily cap of 3
    assert await ledger_rows(h, BOB, "activity") == []
    await assert_ledger_consistent(h, GROUP, ALICE)


async def test_activity_buffer_is_idempotent_by_message_time(h: Any) -> None:
    rt = h.app.runtime("checkin")
    cfg = await cfg_for(h)
    day = date(2026, 11, 18)
    assert rt.note_message(GROUP, ALICE, "一条足够长的消息", 1000.0, day, cfg)
    rt.seen.clear()  # a restart loses the cooldowns; the same message is delivered again
    assert rt.note_message(GROUP, ALICE, "一条足够长的消息", 1000.0, day, cfg)
    await h.app.flush()
    assert [r.reference for r in await ledger_rows(h, ALICE)] == [f"activity:{GROUP}:{ALICE}:1000"]
    assert rt.pending == []


async def test_activity_awards_survive_a_failed_flush(h: Any) -> None:
    rt = h.app.runtime("checkin")
    assert rt.note_message(GROUP, ALICE, "一条足够长的消息", 1000.0, date(2026, 11, 18), await cfg_for(h))
    real = h.app.updates.flush

    async def broken(session: Any) -> None:
        raise RuntimeError("disk full")

    h.app.updates.flush = broken
    with pytest.raises(RuntimeError):
        await h.app.flush()
    assert await ledger_rows(h, ALICE) == []
    h.app.updates.flush = real
    await h.app.flush()
    assert [r.delta for r in await ledger_rows(h, ALICE)] == [1]
    await h.app.flush()
    assert len(await ledger_rows(h, ALICE)) == 1


async def test_activity_level_up_is_announced_at_flush(make_harness: Any) -> None:
    h = await make_harness(plugins=["checkin"], config={"plugins": {"checkin": {"activity_points": 5}}})
    await h.app.points.change(GROUP, ALICE, 97, "checkin", "seed")
    await h.say(GROUP, ALICE, "这是一条会让我升级的消息")
    assert any("升级为「活跃」" in t for t in h.texts(GROUP))


# ---- weekly top --------------------------------------------------------------------------------
async def test_weekly_top_contributor_is_awarded_once(h: Any) -> None:
    at_local(h, SH, 2026, 11, 18, 12)  # a Wednesday
    await h.say(GROUP, CAROL, "hi")  # the chat is active (too short to earn points)
    p = h.app.points
    await p.change(GROUP, ALICE, 40, "checkin", "a")
    await p.change(GROUP, BOB, 60, "activity", "b")
    await p.change(GROUP, BOB, -60, "redeem", "c")  # spending does not lower what BOB earned
    await p.change(GROUP, CAROL, 60, "checkin", "d")
    assert await weekly.run(h.app) == []  # the week is not over yet
    at_local(h, SH, 2026, 11, 23, 0, 30)  # Monday 00:30 local
    winners = await weekly.run(h.app)
    assert [(w.user_id, w.earned, w.week) for w in winners] == [(BOB, 60, date(2026, 11, 16))]  # tie: lower id
    assert await weekly.run(h.app) == []
    async with h.app.db() as s:
        badge = await s.get(CheckinBadge, (GROUP, BOB, "weekly_top"))
    assert badge is not None and badge.count == 1
    assert await p.balance(GROUP, BOB) == 50
    await h.app.sender.drain(5)
    assert any("上周之星" in t for t in h.texts(GROUP))


# ---- core ledger property test -----------------------------------------------------------------
op = st.one_of(
    st.tuples(st.just("change"), st.sampled_from([0, 1, 2]), st.integers(1, 3), st.integers(-60, 60),
              st.integers(0, 8), st.booleans()),
    st.tuples(st.just("batch"), st.lists(st.tuples(st.sampled_from([0, 1, 2]), st.integers(1, 3),
                                                   st.integers(0, 20), st.integers(0, 8)), max_size=6)),
)


@pytest.fixture
async def prop_db(tmp_path: Any) -> Any:
    # RAM-backed when available: the property test commits hundreds of small transactions.
    shm = Path("/dev/shm")
    folder = Path(tempfile.mkdtemp(dir=shm)) if shm.is_dir() else tmp_path
    engine = await engine_with_schema(f"sqlite+aiosqlite:///{folder / 'prop.db'}")
    yield session_factory(engine), iter(range(1, 10**6))
    await engine.dispose()
    if folder != tmp_path:
        shutil.rmtree(folder, ignore_errors=True)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(op, min_size=1, max_size=20))
async def test_ledger_sum_always_equals_balance(prop_db: Any, sequence: list[Any]) -> None:
    db, counter = prop_db
    base = -10_000 * next(counter)  # fresh chats (and pools) for every example, one database for all
    chats = [base - 1, base - 2, base - 3]  # the first two share a pool
    svc = PointsService(db, FakeClock(0), {f"brand{base}": chats[:2]})
    negative_ok: set[tuple[str, int]] = set()
    for step in sequence:
        if step[0] == "change":
            _, chat, user, delta, ref, allow_negative = step
            with contextlib.suppress(InsufficientPoints):
                await svc.change(chats[chat], user, delta, "op", f"ref-{ref}", allow_negative=allow_negative)
            if allow_negative:
                negative_ok.add((svc.pool_for(chats[chat]), user))
        else:
            credits = [Credit(chats[c], u, d, "activity", f"ref-{r}") for c, u, d, r in step[1]]
            async with db() as s, s.begin():
                await svc.credit_many(s, credits)
    for chat in chats:
        for user in (1, 2, 3):
            balance = await svc.balance(chat, user)
            assert balance == await svc.ledger_sum(chat, user)
            assert balance >= 0 or (svc.pool_for(chat), user) in negative_ok
    async with db() as s:
        refs = (await s.execute(select(PointsEntry.pool, PointsEntry.reference)
                                .where(PointsEntry.chat_id.in_(chats)))).all()
    assert len(refs) == len(set(refs))  # one row per reference per pool


async def test_shop_concurrency_on_postgresql(make_harness: Any) -> None:
    """The same guarantees with real row locks (READ COMMITTED) when a PostgreSQL server is around."""
    created = await fresh_postgres_database()
    if created is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    url, admin_url = created
    try:
        h = await make_harness(plugins=["checkin"], db_url=url)
        buyers = (ALICE, BOB, CAROL, DAVE)
        for uid in buyers:
            await h.app.points.change(GROUP, uid, 100, "gift", f"seed-{uid}")
        await _item(h, stock=1, stock_given=True)
        last = await asyncio.gather(*(shop.redeem(h.app, GROUP, uid, "cup", f"r{uid}") for uid in buyers))
        assert sorted(r.status for r in last) == ["ok", "sold_out", "sold_out", "sold_out"]
        await _item(h, code="lim", stock=10, stock_given=True, limit=1)
        twice = await asyncio.gather(*(shop.redeem(h.app, GROUP, ALICE, "lim", f"q{i}") for i in range(4)))
        assert sorted(r.status for r in twice) == ["limit", "limit", "limit", "ok"]
        await _item(h, code="cp", kind="coupon", price=1)
        await shop.add_codes(h.app, GROUP, "cp", ["C1", "C2"], None)
        codes = await asyncio.gather(*(shop.redeem(h.app, GROUP, uid, "cp", f"c{uid}") for uid in buyers))
        assert sorted(r.code for r in codes if r.status == "ok") == ["C1", "C2"]  # type: ignore[type-var]
        await assert_ledger_consistent(h, GROUP, *buyers)
        await h.stop()
    finally:
        await drop_postgres_database(url, admin_url)


def test_english_catalog_keeps_every_placeholder() -> None:
    from string import Formatter

    from bot.i18n import parse_po

    catalog = parse_po((Path(shop.__file__).parent / "locales" / "en.po").read_text(encoding="utf-8"))
    assert len(catalog) > 150

    def fields(text: str) -> set[str]:
        return {name for _, name, _, _ in Formatter().parse(text) if name}

    for source, english in catalog.items():
        assert fields(source) == fields(english), source


async def test_english_chat_gets_english_replies(make_harness: Any) -> None:
    h = await make_harness(plugins=["checkin"], config={"chats": {GROUP: {"language": "en"}},
                                                        "plugins": {"checkin": {"lucky_chance": 0}}})
    await h.say(GROUP, ALICE, "签到")
    assert "Alice checked in! #1 today" in h.last_text(GROUP) and "+5 points" in h.last_text(GROUP)


def test_config_example_lists_every_key_with_its_default() -> None:
    import tomllib

    example = Path(shop.__file__).parent / "config.example.toml"
    table = tomllib.loads(example.read_text(encoding="utf-8"))["plugins"]["checkin"]
    assert set(table) == set(CheckinConfig.model_fields)
    assert CheckinConfig.model_validate(table) == CheckinConfig()


async def test_activity_observer_does_no_database_work(h: Any) -> None:
    from aiogram.types import Message
    from sqlalchemy import event

    from bot.context import Ctx
    from plugins.checkin.activity import observe

    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    ctx = Ctx(app=h.app, plugin="checkin", cfg=await cfg_for(h), chat=await h.app.chat_config.chat(GROUP),
              chat_id=GROUP, user_id=ALICE)
    event.listen(h.app.engine.sync_engine, "before_cursor_execute", count)
    try:
        for i in range(50):
            raw = {"message_id": i + 1, "date": 1_795_000_000 + 61 * i, "text": f"第 {i} 条足够长的消息",
                   "chat": {"id": GROUP, "type": "supergroup", "title": "g"},
                   "from": {"id": ALICE, "is_bot": False, "first_name": "Alice"}}
            await observe(Message.model_validate(raw), ctx)
    finally:
        event.remove(h.app.engine.sync_engine, "before_cursor_execute", count)
    assert statements == []
    assert len(h.app.runtime("checkin").pending) == 50
