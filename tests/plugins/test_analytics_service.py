"""analytics: metrics, segments and value tiers over a generated month, checked against hand-computed values.

The month is written through the collector's own ``write`` (the flush path) plus core_members rows, for
the chat GROUP, today = 2026-11-18 (Wednesday) in Asia/Shanghai; the clock is the harness FakeClock
(2026-11-18 15:06 local). Members (T = today, "T-5" = five days ago, rows at local noon):

    ALICE  joined T-40, 2 messages every day T-29..T, 3 replies + 2 mentions + 1 thank received, 200 points
    BOB    joined T-20, 1 message on T-20, T-19 and T-10, 1 reply received
    CAROL  joined T-25, 1 message on T-25
    DAVE   joined T-12, never spoke
    EVE    joined T-3, 1 message on T-3, 6 mentions received
    FRANK  joined T-35, 1 message on T-31
    GRACE  joined T-15, 1 message on T-15, left T-5
    HENRY  joined T-2, never spoke
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bot.models import Member, User
from bot.services.events import CrisisChanged, QuestionUnanswered
from plugins.analytics import collector, report, service
from plugins.analytics.collector import (
    CHARS,
    CHECKINS,
    JOINS,
    LEAVES,
    MENTIONS,
    MESSAGES,
    N_MEMBER,
    REPLIES_RECEIVED,
    THANKS,
    Buffers,
)
from plugins.analytics.config import AnalyticsConfig
from plugins.analytics.models import ChatDay, MemberDay
from tests.harness import GROUP, Harness

TZ = ZoneInfo("Asia/Shanghai")
T = date(2026, 11, 18)
ALICE, BOB, CAROL, DAVE, EVE, FRANK, GRACE, HENRY = range(2001, 2009)
NAMES = {ALICE: "Alice", BOB: "Bob", CAROL: "Carol", DAVE: "Dave", EVE: "Eve", FRANK: "Frank", GRACE: "Grace",
         HENRY: "Henry"}


def d(k: int) -> date:
    return T - timedelta(days=k)


def noon(k: int) -> datetime:
    return datetime.combine(d(k), time(12), TZ).astimezone(UTC)


def cfg(**kw: Any) -> AnalyticsConfig:
    return AnalyticsConfig(koc_min=3, **kw)


async def month(h: Harness) -> None:
    """Write the month described in the module docstring."""
    snap = Buffers()

    def row(uid: int, k: int) -> list[int]:
        return snap.members.setdefault((GROUP, uid, d(k)), [0] * N_MEMBER)

    def msg(uid: int, k: int, n: int = 1, hour: int = 20) -> None:
        r = row(uid, k)
        r[MESSAGES] += n
        r[CHARS] += 10 * n
        key = (GROUP, d(k), hour)
        snap.hours[key] = snap.hours.get(key, 0) + n

    for k in range(30):
        msg(ALICE, k, 2)
    for k in (20, 19, 10):
        msg(BOB, k, hour=9)
    msg(CAROL, 25)
    msg(EVE, 3)
    msg(FRANK, 31)
    msg(GRACE, 15)
    for uid, k in ((ALICE, 40), (BOB, 20), (CAROL, 25), (DAVE, 12), (EVE, 3), (FRANK, 35), (GRACE, 15), (HENRY, 2)):
        row(uid, k)[JOINS] += 1
    row(GRACE, 5)[LEAVES] += 1
    row(ALICE, 10)[REPLIES_RECEIVED] += 3
    row(ALICE, 4)[MENTIONS] += 2
    row(ALICE, 10)[THANKS] += 1
    row(BOB, 19)[REPLIES_RECEIVED] += 1
    row(EVE, 2)[MENTIONS] += 6
    for k in range(7):
        row(ALICE, k)[CHECKINS] += 1
    snap.extra[(GROUP, d(0))] = [0, 0, 0, 2, 1.4]
    snap.extra[(GROUP, d(1))] = [0, 0, 0, 2, 0.6]
    snap.extra[(GROUP, d(10))] = [0, 0, 0, 1, 0.1]
    snap.faq = {(GROUP, d(1), 12): 5, (GROUP, d(2), 7): 2, (GROUP, d(0), 12): 1, (GROUP, d(40), 9): 50}
    async with h.app.db() as s, s.begin():
        await collector.write(s, snap)
        for uid, joined, last, status in (
            (ALICE, 40, 0, "member"), (BOB, 20, 10, "member"), (CAROL, 25, 25, "member"), (DAVE, 12, None, "member"),
            (EVE, 3, 3, "member"), (FRANK, 35, 31, "member"), (GRACE, 15, 15, "left"), (HENRY, 2, None, "member"),
        ):
            s.add(User(user_id=uid, first_name=NAMES[uid], username=NAMES[uid].lower(), updated_at=noon(50)))
            s.add(Member(chat_id=GROUP, user_id=uid, status=status, first_seen_at=noon(joined), joined_at=noon(joined),
                         left_at=noon(5) if status == "left" else None, join_count=1,
                         last_message_at=noon(last) if last is not None else None))
    await h.app.points.change(GROUP, ALICE, 200, "checkin", "seed-alice")
    for text in ("什么时候发货？", "什么时候 发货", "什么时候发货?!"):
        await collector.on_unanswered(h.app, QuestionUnanswered(chat_id=GROUP, user_id=BOB, text=text, at=noon(1)))
    await collector.on_unanswered(h.app, QuestionUnanswered(chat_id=GROUP, user_id=CAROL, text="怎么退款", at=noon(0)))
    for event in (
        CrisisChanged(chat_id=GROUP, incident_id=1, level=3, old_level=None, at=noon(2)),
        CrisisChanged(chat_id=GROUP, incident_id=1, level=1, old_level=3, at=noon(2)),
        CrisisChanged(chat_id=GROUP, incident_id=1, level=1, old_level=3, at=noon(2)),  # a repeat: no change
        CrisisChanged(chat_id=GROUP, incident_id=1, level=None, old_level=1, at=noon(1)),
        CrisisChanged(chat_id=GROUP, incident_id=2, level=2, old_level=None, at=noon(40)),
    ):
        await collector.on_crisis(h.app, event)
    await h.app.flush()


@pytest.fixture
async def h(make_harness: Any) -> Harness:
    harness: Harness = await make_harness(plugins=["analytics"])
    await month(harness)
    return harness


async def test_daily_counts_and_active_members(h: Harness) -> None:
    async with h.app.db() as s:
        days = await service.daily(s, GROUP, d(29), d(0))
        assert len(days) == 30 and days[0].day == d(29) and days[-1].day == T
        assert await service.dau(s, GROUP, T) == 1  # ALICE
        assert await service.dau(s, GROUP, d(3)) == 2  # ALICE, EVE
        assert await service.dau(s, GROUP, d(10)) == 2  # ALICE, BOB
        assert await service.wau(s, GROUP, T) == 2  # ALICE, EVE
        assert await service.mau(s, GROUP, T) == 5  # ALICE, BOB, CAROL, EVE, GRACE (FRANK spoke on T-31)
        assert await service.dau(s, GROUP, d(31)) == 1
    month_totals = service.totals(days)
    assert month_totals.messages == 60 + 3 + 1 + 1 + 1
    assert month_totals.joins == 6 and month_totals.leaves == 1  # ALICE (T-40) and FRANK (T-35) joined before
    assert month_totals.checkins == 7
    assert month_totals.active_days_sum == 30 + 3 + 1 + 1 + 1
    week = service.totals(days[-7:])
    assert week.messages == 14 + 1 and round(week.avg_dau, 4) == round(8 / 7, 4)
    assert week.sentiment == pytest.approx(2.0 / 4)  # T-10's sample is outside the week
    assert days[-1].sentiment == pytest.approx(0.7)
    assert month_totals.sentiment == pytest.approx(2.1 / 5)


async def test_rates(h: Harness) -> None:
    members = 7  # present: everyone but GRACE
    assert service.active_ratio(2, members) == pytest.approx(2 / 7)
    assert service.churn_rate(leaves=1, joins=6, members_now=members) == pytest.approx(0.5)  # 1 / (7 - 6 + 1)
    assert service.checkin_rate(7, 7, members) == pytest.approx(1 / 7)
    assert service.active_ratio(3, 0) is None and service.churn_rate(0, 0, 0) is None
    assert service.change(15, 10) == pytest.approx(0.5) and service.change(3, 0) is None


async def test_retention_by_join_cohort(h: Harness) -> None:
    async with h.app.db() as s:
        cohort = await service.retention(s, GROUP, d(59), T, T)
        # Joins: ALICE T-40, FRANK T-35, CAROL T-25, BOB T-20, GRACE T-15, DAVE T-12, EVE T-3, HENRY T-2.
        # Last message: ALICE T, FRANK T-31, CAROL T-25, BOB T-10, GRACE T-15, EVE T-3, DAVE/HENRY never.
        assert cohort.size == 8
        assert cohort.retention[1] == (3, 8)  # ALICE, FRANK, BOB
        assert cohort.retention[7] == (2, 6)  # eligible: all but EVE, HENRY; retained ALICE, BOB
        assert cohort.retention[30] == (1, 2)  # eligible ALICE, FRANK; retained ALICE
        assert cohort.rate(7) == pytest.approx(1 / 3)
        weekly = await service.weekly_cohorts(s, GROUP, T, weeks=6)
    # Weeks start on Monday; T (Wed 11-18) is in the week of 11-16.
    assert [c.start for c in weekly] == [date(2026, 10, 12) + timedelta(days=7 * i) for i in range(6)]
    # FRANK 10-14, CAROL 10-24, BOB 10-29, GRACE 11-03 + DAVE 11-06, EVE 11-15 (a Sunday), HENRY 11-16.
    assert [c.size for c in weekly] == [1, 1, 1, 2, 1, 1]
    assert weekly[-1].retention[1] == (0, 1)  # HENRY, eligible since T-1, never spoke
    assert weekly[-1].retention[7] == (0, 0)  # nobody of this week is 7 days in yet


async def test_hours_heatmap_and_histogram(h: Harness) -> None:
    async with h.app.db() as s:
        hist = await service.hour_histogram(s, GROUP, d(27), T)
        grid = await service.heatmap(s, GROUP, d(27), T)
    # 28 days of ALICE (2 at 20:00), BOB on T-20, T-19, T-10 at 09:00, CAROL T-25, EVE T-3, GRACE T-15 at 20:00.
    assert hist == {20: 56 + 3, 9: 3}
    assert sum(map(sum, grid)) == 62
    # Every weekday has 4 x 2 ALICE messages at 20:00; T-15 (Tue), T-25 (Sat), T-3 (Sun) one more: ties go to
    # the earliest weekday.
    assert grid[1][20] == grid[5][20] == grid[6][20] == 9 and grid[0][20] == 8
    assert service.peak_slot(grid) == (1, 20)
    assert service.peak_slot([[0] * 24 for _ in range(7)]) is None


async def test_histogram_event_answers_the_calendar(h: Harness) -> None:
    from bot.services.events import ActivityHistogramRequested

    question = ActivityHistogramRequested(chat_id=GROUP, days=7)
    await h.app.events.emit(question)
    # Last 7 days: ALICE 14 at 20:00, EVE T-3 at 20:00.
    assert question.hours == {20: 15}
    nothing = ActivityHistogramRequested(chat_id=-1002, days=28)
    await h.app.events.emit(nothing)
    assert nothing.hours == {}


async def test_faq_questions_and_incidents(h: Harness) -> None:
    async with h.app.db() as s:
        assert await service.top_faq(s, GROUP, d(29), T) == [(12, 6, None), (7, 2, None)]
        questions = await service.top_questions(s, GROUP, d(29), T)
        assert [n for _q, n in questions] == [3, 1]
        assert "发货" in questions[0][0] and questions[1][0] == "怎么退款"
        assert await service.incidents(s, GROUP, d(29), T) == (1, 1)  # incident 2 opened on T-40
        assert await service.incidents(s, GROUP, d(59), T) == (2, 1)
        assert await service.incidents(s, GROUP, d(0), T) == (0, None)
        assert (await s.scalar(select(ChatDay.unanswered).where(ChatDay.chat_id == GROUP, ChatDay.day == d(1)))) == 3


async def test_lifecycle_segments(h: Harness) -> None:
    now = h.app.clock.now()
    async with h.app.db() as s:
        seg = await service.segment(s, GROUP, now, TZ, cfg())
    assert {k: sorted(seg.members(k)) for k in service.LIFECYCLE_ORDER} == {
        "new": [EVE, HENRY], "active": [ALICE, BOB], "silent": [CAROL], "churned": [FRANK, GRACE], "zombie": [DAVE],
    }
    assert seg.counts() == {"new": 2, "active": 2, "silent": 1, "churned": 2, "zombie": 1}
    # Thresholds are configurable: with silent at 30 and churn at 40 days CAROL is active, FRANK silent.
    async with h.app.db() as s:
        loose = await service.segment(s, GROUP, now, TZ, cfg(silent_days=30, churn_days=40, zombie_days=13))
    assert loose.lifecycle[CAROL] == "active" and loose.lifecycle[FRANK] == "silent"
    assert loose.lifecycle[DAVE] == "silent"  # joined 12 days ago, never spoke: not yet a zombie at 13 days


async def test_value_scores_tiers_and_koc(h: Harness) -> None:
    async with h.app.db() as s:
        seg = await service.segment(s, GROUP, h.app.clock.now(), TZ, cfg())
    sc = seg.scores
    # ALICE: R 1, F min(1, 30/15) = 1, C min(1, 200/200 + 1/5) = 1, I (3 + 2)/20 = .25
    assert (sc[ALICE].recency, sc[ALICE].frequency, sc[ALICE].contribution, sc[ALICE].influence) == (1, 1, 1, 0.25)
    assert sc[ALICE].total == 81.2  # 100 x (.2 + .3 + .25 + .25 x .25) = 81.25
    # BOB: R 1 - 10/30, F 3/15, C 0, I 1/20 -> 100 x (.2 x 2/3 + .3 x .2 + .25 x .05) = 20.58
    assert sc[BOB].total == 20.6
    # EVE: R 1 - 3/30 = .9, F 1/15, I 6/20 -> 100 x (.18 + .02 + .075) = 27.5
    assert sc[EVE].total == 27.5
    # CAROL: R 1 - 25/30, F 1/15 -> 100 x (.2/6 + .02) = 5.33
    assert sc[CAROL].total == 5.3
    assert sc[DAVE].total == sc[HENRY].total == sc[FRANK].total == 0  # FRANK: 31 days idle, R 0
    assert GRACE not in sc  # left: no tier
    assert seg.tiers == {ALICE: "高价值", BOB: "普通", CAROL: "普通", DAVE: "普通", EVE: "活跃", FRANK: "普通",
                         HENRY: "普通"}
    assert seg.tier_counts(cfg()) == {"普通": 5, "活跃": 1, "忠诚": 0, "高价值": 1}
    assert [(u, a.influence) for u, a in seg.koc] == [(EVE, 6), (ALICE, 5)]  # BOB: 1 < koc_min
    # Weights and full marks are configurable: all weight on frequency.
    async with h.app.db() as s:
        freq = await service.segment(s, GROUP, h.app.clock.now(), TZ,
                                     cfg(weight_recency=0, weight_contribution=0, weight_influence=0,
                                         weight_frequency=1, full_active_days=3))
    assert freq.scores[BOB].total == 100 and freq.tiers[BOB] == "高价值"


def test_lifecycle_rules_edge_cases() -> None:
    now = datetime(2026, 11, 18, 12, tzinfo=UTC)
    c = AnalyticsConfig()

    def m(joined: float | None, last: float | None, status: str = "member", first: float = 100) -> service.MemberFacts:
        at = lambda days: now - timedelta(days=days) if days is not None else None  # noqa: E731
        return service.MemberFacts(1, status, at(joined), at(first), None, at(last))

    assert service.lifecycle(m(6.9, None), now, c) == "new"
    assert service.lifecycle(m(7, None), now, c) == "zombie"
    assert service.lifecycle(m(7, 6.5), now, c) == "active"
    assert service.lifecycle(m(30, 14), now, c) == "silent"
    assert service.lifecycle(m(40, 30), now, c) == "churned"
    assert service.lifecycle(m(40, 1, status="kicked"), now, c) == "churned"
    # Spoke before re-joining, silent since: a zombie again.
    assert service.lifecycle(m(8, 9), now, c) == "zombie"
    # Seen only by its messages (joined before the bot came): never new, never a zombie.
    assert service.lifecycle(m(None, 2), now, c) == "active"


async def test_stats_report_text(h: Harness) -> None:
    r = await report.gather(h.app, GROUP, cfg(), TZ, lambda x: x)
    text = report.render_stats(r, cfg(), lambda x: x)
    assert r.members == await report.member_count(h.app, GROUP)
    assert f"日活 1 · 周活 2 · 月活 5 · 周活跃率 {2 / r.members * 100:.1f}%" in text
    assert "今日消息 2 · 近7天 15（日均 2.1）· 近30天 66" in text
    assert "最活跃时段（近4周）：周二 20:00" in text
    assert "留存（近60天入群 8 人）：次日 37.5% · 7日 33.3% · 30日 50.0%" in text
    assert "生命周期：新人 2 · 活跃 2 · 沉默 1 · 流失 2 · 僵尸 1" in text
    assert "价值分层：高价值 1 · 忠诚 0 · 活跃 1 · 普通 5" in text
    assert "意见领袖：Eve（回复 0 · 提及 6）、Alice（回复 3 · 提及 2）" in text
    assert "热门问答（近30天）：#12 ×6、#7 ×2" in text
    assert "近30天危机事件 1 起（最高 1 级）" in text
    assert "情绪均值：近7天 0.50 😐 · 近30天 0.42 😐" in text


async def test_no_data_report(make_harness: Any) -> None:
    h = await make_harness(plugins=["analytics"])
    r = await report.gather(h.app, GROUP, cfg(), TZ, lambda x: x)
    assert not r.has_data
    assert "还没有统计数据" in report.render_stats(r, cfg(), lambda x: x)


async def test_repair_restores_lost_event_counts(h: Harness) -> None:
    # A check-in and a join whose events were lost (emitted, then a crash before the batch commit).
    async with h.app.db() as s, s.begin():
        s.add(Member(chat_id=GROUP, user_id=3001, status="member", first_seen_at=noon(1), joined_at=noon(1),
                     join_count=1))
    await h.app.points.change(GROUP, BOB, 5, "checkin", f"checkin:{GROUP}:{BOB}:{d(0).isoformat()}")
    h.clock.advance(timedelta(days=1, hours=1))  # today is over (+1 h grace)
    from plugins.analytics import jobs

    repaired = await jobs.maintain_chat(h.app, GROUP)
    assert repaired == 3  # BOB's check-in on T, 3001's join on T-1, HENRY's join on T-2 (already counted)
    async with h.app.db() as s:
        bob = await s.get(MemberDay, (GROUP, BOB, d(0)))
        newbie = await s.get(MemberDay, (GROUP, 3001, d(1)))
        chat_t = await s.get(ChatDay, (GROUP, d(0)))
        chat_t1 = await s.get(ChatDay, (GROUP, d(1)))
    assert bob is not None and bob.checkins == 1
    assert newbie is not None and newbie.joins == 1
    assert chat_t is not None and chat_t.checkins == 2  # ALICE's (counted) + BOB's (repaired)
    assert chat_t1 is not None and chat_t1.joins == 1
    # Counted ones are never raised twice, and repairing again changes nothing.
    async with h.app.db() as s:
        alice = await s.get(MemberDay, (GROUP, ALICE, d(0)))
    assert alice is not None and alice.checkins == 1
    assert await jobs.maintain_chat(h.app, GROUP) == 3
    async with h.app.db() as s:
        assert (await s.get(ChatDay, (GROUP, d(0)))).checkins == 2  # type: ignore[union-attr]


async def test_prune_keeps_aggregates(h: Harness) -> None:
    from plugins.analytics import privacy

    deleted = await privacy.prune(h.app, GROUP, 30, T)
    async with h.app.db() as s:
        oldest = await s.scalar(select(MemberDay.day).where(MemberDay.chat_id == GROUP).order_by(MemberDay.day))
        chat_old = await s.get(ChatDay, (GROUP, d(40)))
    assert deleted == 3  # ALICE's and FRANK's join rows (T-40, T-35) and FRANK's message (T-31)
    assert oldest == d(29)
    assert chat_old is not None and chat_old.joins == 1  # the anonymous total stays


def test_config_example_lists_every_key_with_its_default() -> None:
    import tomllib
    from pathlib import Path

    import plugins.analytics as pkg

    folder = Path(pkg.__file__).parent
    data = tomllib.loads((folder / "config.example.toml").read_text(encoding="utf-8"))["plugins"]["analytics"]
    assert set(data) == set(AnalyticsConfig.model_fields)
    assert AnalyticsConfig.model_validate(data) == AnalyticsConfig()


def test_english_catalog_covers_every_message() -> None:
    import ast
    from pathlib import Path

    import plugins.analytics as pkg
    from bot.i18n import parse_po

    folder = Path(pkg.__file__).parent
    catalog = parse_po((folder / "locales" / "en.po").read_text(encoding="utf-8"))
    found: set[str] = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                f = node.func
                named = isinstance(f, ast.Name) and f.id in ("_", "N_")
                if isinstance(node.args[0].value, str) and (named or (isinstance(f, ast.Attribute) and f.attr == "_")):
                    found.add(node.args[0].value)
    found |= set(report.LIFECYCLE_LABELS.values()) | set(report.WEEKDAYS)
    assert len(found) > 100
    assert sorted(found - set(catalog)) == []


def test_bad_config_is_refused() -> None:
    from pydantic import ValidationError

    for bad in ({"silent_days": 40, "churn_days": 30}, {"tiers": [{"name": "x", "min_score": 10}]},
                {"wakeup_segments": ["vip"]}, {"wakeup_text": "hello"}, {"weight_recency": 0, "weight_frequency": 0,
                 "weight_contribution": 0, "weight_influence": 0}, {"retention_days": 5}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            AnalyticsConfig.model_validate(bad)


def test_english_catalog_keeps_every_placeholder() -> None:
    import re as _re
    from pathlib import Path

    import plugins.analytics as pkg
    from bot.i18n import parse_po

    catalog = parse_po((Path(pkg.__file__).parent / "locales" / "en.po").read_text(encoding="utf-8"))
    for zh, en in catalog.items():
        assert sorted(_re.findall(r"\{[^}]*\}", zh)) == sorted(_re.findall(r"\{[^}]*\}", en)), zh


async def test_the_month_on_postgresql(make_harness: Any) -> None:
    """Upserts (increment and max), the DAU check, savepoint-guarded reads and the pseudonym on PostgreSQL."""
    from plugins.analytics import jobs, privacy
    from tests.dbutil import drop_postgres_database, fresh_postgres_database

    created = await fresh_postgres_database()
    if created is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    url, admin_url = created
    try:
        h = await make_harness(plugins=["analytics"], db_url=url)
        await month(h)
        async with h.app.db() as s:
            assert (await service.dau(s, GROUP, T), await service.wau(s, GROUP, T), await service.mau(s, GROUP, T)) \
                == (1, 2, 5)
            cohort = await service.retention(s, GROUP, d(59), T, T)
            assert (cohort.retention[1], cohort.retention[7], cohort.retention[30]) == ((3, 8), (2, 6), (1, 2))
            seg = await service.segment(s, GROUP, h.app.clock.now(), TZ, cfg())
            assert await service.top_faq(s, GROUP, d(29), T) == [(12, 6, None), (7, 2, None)]
            assert [n for _q, n in await service.top_questions(s, GROUP, d(29), T)] == [3, 1]
        assert seg.counts() == {"new": 2, "active": 2, "silent": 1, "churned": 2, "zombie": 1}
        assert seg.scores[ALICE].total == 81.2 and seg.tiers[EVE] == "活跃"
        await h.app.points.change(GROUP, BOB, 5, "checkin", f"checkin:{GROUP}:{BOB}:{d(0).isoformat()}")
        h.clock.advance(timedelta(days=1, hours=1))
        assert await jobs.maintain_chat(h.app, GROUP) == 2  # BOB's check-in on T, HENRY's join on T-2
        async with h.app.db() as s:
            assert (await s.get(ChatDay, (GROUP, d(0)))).checkins == 2  # type: ignore[union-attr]
        gone = await privacy.forget_user(h.app, ALICE)
        assert gone.ledger_rows == 1 and gone.day_rows == 31  # T-29..T and the join on T-40
        assert await h.app.points.balance(GROUP, ALICE) == 0
        assert await h.app.points.leaderboard(GROUP) == [(BOB, 5)]  # the pseudonym is not on the board
        await h.stop()
    finally:
        await drop_postgres_database(url, admin_url)


def test_cleanup_candidates_by_kind() -> None:
    from plugins.analytics import actions

    now = datetime(2026, 11, 18, 12, tzinfo=UTC)

    def m(uid: int, joined: float, last: float | None, status: str = "member") -> service.MemberFacts:
        return service.MemberFacts(uid, status, now - timedelta(days=joined), now - timedelta(days=joined), None,
                                   now - timedelta(days=last) if last is not None else None)

    facts = [m(1, 40, None), m(2, 10, None), m(3, 3, None), m(4, 60, 35), m(5, 60, 20), m(6, 90, None, "left"),
             m(7, 50, None)]
    assert actions.candidates(facts, "zombies", 7, now, skip={7}) == [1, 2]  # longest inactive first
    assert actions.candidates(facts, "zombies", 30, now, skip=set()) == [7, 1]
    assert actions.candidates(facts, "churned", 30, now, skip=set()) == [7, 1, 4]  # never spoke: since the join
    assert actions.candidates(facts, "churned", 15, now, skip={1}) == [7, 4, 5]
