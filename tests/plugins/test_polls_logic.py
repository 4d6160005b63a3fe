"""Service-level tests of the polls plugin: parsers, the verifiable draw, PK tags, the DB service."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.db import Base, create_engine, session_factory
from plugins.polls import service
from plugins.polls.draw import commitment, draw_winners, entrants_digest, new_seed
from plugins.polls.parsing import (
    ParseError,
    check_duration,
    format_duration,
    parse_duration,
    parse_lottery,
    parse_pk,
    parse_poll,
    parse_quiz,
    parse_when,
)
from plugins.polls.runtime import LivePk, PollsRuntime, own_normalize

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 18, 15, 0, tzinfo=TZ)


# ------------------------------------------------------------------------------------------ durations
@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("90s", 90), ("1w", 604800),
        ("30分钟", 1800), ("2小时", 7200), ("3天", 259200), ("两小时", 7200), ("十分钟", 600), ("半小时", 1800),
        ("１２ｈ", 43200), ("2H", 7200), ("1天2小时", 93600), ("三十分钟", 1800), ("10年", 10 * 365 * 86400),
        ("10 years", 10 * 365 * 86400),
    ],
)
def test_parse_duration_accepts(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "30", "m", "2x", "20:00", "h2", "0m", "-5m", "5分钟abc"])
def test_parse_duration_rejects(text: str) -> None:
    assert parse_duration(text) is None


def test_check_duration_bounds_and_format() -> None:
    check_duration(3600, 60, 30 * 86400, str)
    with pytest.raises(ParseError) as short:
        check_duration(30, 60, 30 * 86400, str)
    assert "至少" in (short.value.render(str) or "")
    with pytest.raises(ParseError) as long:
        check_duration(10 * 365 * 86400, 60, 30 * 86400, str)
    assert "30天" in (long.value.render(str) or "")
    assert format_duration(5400) == "1小时30分钟"
    assert format_duration(86400 + 7200 + 5) == "1天2小时"


# ------------------------------------------------------------------------------------------ /poll
def test_parse_poll_flags_and_options() -> None:
    spec = parse_poll("匿名 多选 2h 下期上新哪款？ | 草莓味 | 抹茶味 | 芒果味")
    assert spec.question == "下期上新哪款？"
    assert spec.options == ("草莓味", "抹茶味", "芒果味")
    assert spec.anonymous and spec.multiple and spec.duration == 7200 and spec.correct_option is None
    quiz = parse_poll("quiz=2 30分钟 1+1=? ｜ 1 ｜ 2 ｜ 3")
    assert quiz.correct_option == 1 and quiz.duration == 1800 and not quiz.multiple
    assert quiz.question == "1+1=?"
    lines = parse_poll("今晚吃什么\n火锅\n烧烤")
    assert lines.question == "今晚吃什么" and lines.options == ("火锅", "烧烤")
    # a word that is not a flag starts the question, flags after it are part of it
    assert parse_poll("anon poll 2h | a | b").question == "poll 2h"
    assert parse_poll("q | a | b |").options == ("a", "b")  # a trailing separator is harmless


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (" | 选项1 | 选项2", "问题不能为空"),
        ("2h | 选项1 | 选项2", "问题不能为空"),
        ("问题 | 只有一个", "至少需要两个选项"),
        ("问题", "至少需要两个选项"),
        ("问题 | " + " | ".join(f"选项{i}" for i in range(11)), "最多 10 个"),
        ("问题 | 苹果 | 香蕉 | 苹果", "选项重复"),
        ("问题 | Apple | ＡＰＰＬＥ", "选项重复"),
        ("问题 | a |  | b", "选项不能为空"),
        ("quiz=5 问题 | a | b", "1 到 2"),
        ("quiz=x 问题 | a | b", "1 到 2"),
        ("quiz=1 multi 问题 | a | b", "只能单选"),
        ("time=abc 问题 | a | b", "时长格式不对"),
        ("问题 | " + "长" * 101 + " | b", "100 个字符"),
    ],
)
def test_parse_poll_bad_input(args: str, fragment: str) -> None:
    with pytest.raises(ParseError) as err:
        parse_poll(args)
    assert fragment in (err.value.render(str) or "")


def test_parse_poll_empty_is_usage() -> None:
    with pytest.raises(ParseError) as err:
        parse_poll("   ")
    assert err.value.msgid is None


# ------------------------------------------------------------------------------------------ /pk
def test_parse_pk_forms() -> None:
    assert parse_pk("甜粽子 vs 咸粽子 2h") == parse_pk("甜粽子 VS 咸粽子 2小时")
    spec = parse_pk("甜粽子 对 咸粽子")
    assert (spec.side_a, spec.side_b, spec.duration) == ("甜粽子", "咸粽子", None)
    assert parse_pk("猫派vs狗派").side_b == "狗派"
    assert parse_pk("早睡 vs 熬夜 | 30m").duration == 1800
    assert parse_pk("Python vs Java script").side_b == "Java script"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ("甜粽子 vs 甜粽子", "不能相同"),
        ("vs 咸粽子", None),
        ("甜粽子 vs 2h", "都不能为空"),
        ("甜粽子 vs 咸粽子 5x", "时长格式不对"),
        ("甜粽子 vs 咸粽子 | abc", "时长格式不对"),
        ("只有一边", None),
        ("长" * 41 + " vs 短", "40 个字符"),
    ],
)
def test_parse_pk_bad_input(args: str, fragment: str | None) -> None:
    with pytest.raises(ParseError) as err:
        parse_pk(args)
    if fragment is None:
        assert err.value.msgid is None or "不能为空" in err.value.msgid
    else:
        assert fragment in (err.value.render(str) or "")


# ------------------------------------------------------------------------------------------ /lottery
def test_parse_lottery_forms() -> None:
    spec = parse_lottery("口红 一支 3 2h 我要抽奖", NOW)
    assert (spec.prize, spec.winners, spec.duration, spec.keyword) == ("口红 一支", 3, 7200, "我要抽奖")
    at = parse_lottery("iPhone 15 1 20:00", NOW)
    assert at.prize == "iPhone 15" and at.winners == 1 and at.at == NOW.replace(hour=20, minute=0)
    early = parse_lottery("红包 2 08:30", NOW)
    assert early.at == (NOW + timedelta(days=1)).replace(hour=8, minute=30)  # already past today: tomorrow
    dated = parse_lottery("红包 2名 2026-11-20 20:00 口令", NOW)
    assert dated.at == datetime(2026, 11, 20, 20, 0, tzinfo=TZ) and dated.keyword == "口令" and dated.winners == 2
    tomorrow = parse_lottery("红包 1 明天 9点半", NOW)
    assert tomorrow.at == datetime(2026, 11, 19, 9, 30, tzinfo=TZ)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ("口红 3 abc", "开奖时间格式不对"),
        ("口红 0 2h", "1 到 100"),
        ("口红 1000 2h", "1 到 100"),
        ("口红 2h", None),
        ("", None),
        ("口红 1 2h /start", "不能以 /"),
    ],
)
def test_parse_lottery_bad_input(args: str, fragment: str | None) -> None:
    with pytest.raises(ParseError) as err:
        parse_lottery(args, NOW)
    if fragment is None:
        assert err.value.msgid is None
    else:
        assert fragment in (err.value.render(str) or "")


def test_parse_when_rejects_nonsense() -> None:
    assert parse_when(["25:00"], NOW) is None
    assert parse_when(["2026-02-30", "10:00"], NOW) is None
    assert parse_when(["明天"], NOW) is None


# ------------------------------------------------------------------------------------------ /quiz
def test_parse_quiz_forms() -> None:
    spec = parse_quiz("本店哪年开业？| 2019 | 20 | 10m")
    assert (spec.question, spec.answers, spec.points, spec.duration) == ("本店哪年开业？", ("2019",), 20, 600)
    short = parse_quiz("1+1=? | 2")
    assert short.answers == ("2",) and short.points is None  # a lone number is the answer
    inline = parse_quiz("首都是？| 北京 / Beijing 30 5分钟")
    assert inline.answers == ("北京", "Beijing") and inline.points == 30 and inline.duration == 300


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (" | 答案", "问题不能为空"),
        ("问题 | ", "答案不能为空"),
        ("问题 | 答案 | abc", "无法识别"),
        ("问题 | 答案 | 5x", "时长格式不对"),
        ("没有分隔符", None),
    ],
)
def test_parse_quiz_bad_input(args: str, fragment: str | None) -> None:
    with pytest.raises(ParseError) as err:
        parse_quiz(args)
    if fragment is None:
        assert err.value.msgid is None
    else:
        assert fragment in (err.value.render(str) or "")


# ------------------------------------------------------------------------------------------ the draw
def _independent_draw(seed: str, entrants: list[int], count: int) -> list[int]:
    """The recipe from the README, written again from scratch (no plugin code)."""
    ids = sorted(set(entrants))
    base = seed + ":" + ",".join(str(i) for i in ids)
    pool = list(ids)
    out = []
    for k in range(min(count, len(ids))):
        digest = hashlib.sha256((base + ":" + str(k)).encode()).hexdigest()
        out.append(pool.pop(int(digest, 16) % len(pool)))
    return out


def test_draw_is_deterministic_and_recomputable() -> None:
    seed = new_seed()
    assert len(seed) == 64 and commitment(seed) == hashlib.sha256(seed.encode()).hexdigest()
    entrants = [1003, 1001, 5000, 42, 777, 1001]
    winners = draw_winners(seed, entrants, 3)
    assert winners == _independent_draw(seed, entrants, 3)
    assert winners == draw_winners(seed, list(reversed(entrants)), 3)  # order of joining does not matter
    assert len(set(winners)) == 3 and set(winners) <= set(entrants)
    assert sorted(draw_winners(seed, [1, 2], 5)) == [1, 2]  # fewer entrants than prizes: all win
    assert draw_winners(seed, [], 3) == []
    assert entrants_digest([2, 1]) == hashlib.sha256(b"1,2").hexdigest()


def test_draw_depends_on_the_seed() -> None:
    entrants = list(range(1, 101))
    results = {tuple(draw_winners(f"{i:064x}", entrants, 1)) for i in range(40)}
    assert len(results) > 20  # different seeds pick different winners


def test_draw_is_roughly_uniform() -> None:
    entrants = [1, 2, 3, 4]
    counts = dict.fromkeys(entrants, 0)
    for i in range(2000):
        counts[draw_winners(f"{i:064x}", entrants, 1)[0]] += 1
    assert all(400 < n < 600 for n in counts.values()), counts


# ------------------------------------------------------------------------------------------ PK tags
class _FakeApp:
    class _Nlp:
        @property
        def normalizer(self) -> object:
            raise RuntimeError("no nlp here")

    nlp = _Nlp()


def test_pk_tags_and_normalization_fallback() -> None:
    rt = PollsRuntime(_FakeApp())  # type: ignore[arg-type]
    assert rt.normalize("Ｂｅｉｊｉｎｇ  北京!") == own_normalize("beijing北京")
    tags = {"a": 0, "正方": 0, "b": 1, "反方": 1, "甜粽子": 0, "咸粽子": 1}
    pk = LivePk(1, 10, tuple(sorted(tags.items(), key=lambda kv: -len(kv[0]))))
    assert rt.side_of("#A 甜的才是正宗", pk, rt.normalize) == (0, "甜的才是正宗")
    assert rt.side_of("＃ｂ咸的香", pk, rt.normalize) == (1, "咸的香")
    assert rt.side_of("[反方] 咸粽子配肉", pk, rt.normalize) == (1, "咸粽子配肉")
    assert rt.side_of("【正方】甜", pk, rt.normalize) == (0, "甜")
    assert rt.side_of("#甜粽子 yyds", pk, rt.normalize) == (0, "yyds")
    assert rt.side_of("#apple 不是标签", pk, rt.normalize) is None
    assert rt.side_of("[路人] 随便", pk, rt.normalize) is None
    assert rt.side_of("普通消息", pk, rt.normalize) is None


# ------------------------------------------------------------------------------------------ DB service
@pytest.fixture
async def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    import bot.models  # noqa: F401
    import plugins.polls.models  # noqa: F401

    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'polls.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield session_factory(engine)
    await engine.dispose()


async def test_service_votes_switch_and_close_once(db) -> None:  # type: ignore[no-untyped-def]
    now = datetime(2026, 11, 18, tzinfo=UTC)
    async with db() as s, s.begin():
        contest, created = await service.create_contest(
            s, chat_id=-1, kind="pk", creator_id=1, title="a vs b", options=["a", "b"], data={}, now=now,
            closes_at=now + timedelta(hours=1), source_chat_id=-1, source_message_id=5,
        )
        again, created_again = await service.create_contest(
            s, chat_id=-1, kind="pk", creator_id=1, title="a vs b", options=["a", "b"], data={}, now=now,
            closes_at=now + timedelta(hours=1), source_chat_id=-1, source_message_id=5,
        )
    assert created and not created_again and again.id == contest.id
    async with db() as s, s.begin():
        first = await service.pk_vote(s, contest.id, 7, 0, now)
        same = await service.pk_vote(s, contest.id, 7, 0, now)
        switched = await service.pk_vote(s, contest.id, 7, 1, now)
        other = await service.pk_vote(s, contest.id, 8, 1, now)
    assert [v.outcome for v in (first, same, switched, other) if v] == ["new", "same", "switched", "new"]
    async with db() as s:
        assert await service.side_counts(s, contest.id) == [0, 2]
    async with db() as s, s.begin():
        assert await service.close(s, contest.id, {"x": 1}, now)
        assert not await service.close(s, contest.id, {"x": 2}, now)
        assert await service.pk_vote(s, contest.id, 9, 0, now) is None  # closed: no more votes
    async with db() as s:
        closed = await service.get(s, contest.id)
        assert closed is not None and closed.result == {"x": 1} and closed.status == "closed"


# ------------------------------------------------------------------------------------------ i18n
def _msgids() -> set[str]:
    import ast

    ids = {"{n}天", "{n}小时", "{n}分钟", "{n}秒"}  # format_duration's table
    for path in (Path(__file__).parents[2] / "plugins" / "polls").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else ""
            first = node.args[0]
            if name in ("_", "N_", "ParseError") and isinstance(first, ast.Constant) and isinstance(first.value, str):
                ids.add(first.value)
    return ids


def test_every_message_has_an_english_translation_with_the_same_placeholders() -> None:
    import string

    from bot.i18n import parse_po

    catalog = parse_po((Path(__file__).parents[2] / "plugins/polls/locales/en.po").read_text(encoding="utf-8"))
    ids = _msgids()
    assert len(ids) > 100
    missing = sorted(ids - set(catalog))
    assert not missing, missing
    fields = string.Formatter()
    for msgid in ids:
        zh = {f for _, f, _, _ in fields.parse(msgid) if f}
        en = {f for _, f, _, _ in fields.parse(catalog[msgid]) if f}
        assert zh == en, (msgid, catalog[msgid])


def test_config_example_is_valid_and_complete() -> None:
    import tomllib

    from plugins.polls.config import PollsConfig

    data = tomllib.loads((Path(__file__).parents[2] / "plugins/polls/config.example.toml").read_text("utf-8"))
    block = data["plugins"]["polls"]
    assert PollsConfig(**block) == PollsConfig()  # the example shows the defaults
    assert set(block) == set(PollsConfig.model_fields)  # and every key
    with pytest.raises(ValueError):
        PollsConfig(poll_default_duration="abc")
