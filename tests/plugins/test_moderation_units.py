"""moderation: pure logic (parsers, matcher, windows, ladder) without Telegram."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.textnorm import TextNormalizer
from plugins.moderation.config import ModerationConfig
from plugins.moderation.detectors import FloodWindow, JoinWindow, WaveWindow
from plugins.moderation.matcher import WordEntry, WordMatcher
from plugins.moderation.parsing import (
    MAX_SECONDS,
    MIN_SECONDS,
    Action,
    ParseError,
    looks_like_duration,
    parse_action,
    parse_duration,
)
from plugins.moderation.runtime import parse_word_file
from plugins.moderation.service import ladder_step, stronger


@pytest.fixture(scope="module")
def norm() -> TextNormalizer:
    return TextNormalizer()


# ---- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1w", 604800), ("1h30m", 5400),
        ("10分钟", 600), ("10分", 600), ("2小时", 7200), ("1天", 86400), ("1周", 604800), ("两天", 172800),
        ("半小时", 1800), ("十分钟", 600), ("二十分钟", 1200), ("１０ｍ", 600), (" 1 D ", 86400), ("1.5h", 5400),
        ("3 days", 259200), ("1个小时", 3600), ("2星期", 1209600),
    ],
)  # fmt: skip
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty"), ("   ", "empty"), ("10", "format"), ("m", "format"), ("10x", "format"), ("1d2", "format"),
        ("-5m", "format"), ("abc", "format"), ("10分钟abc", "format"), ("1" * 50 + "m", "format"),
        ("0m", "range"), ("10s", "range"), ("29s", "range"), ("367d", "range"), ("100w", "range"),
        ("十十分钟", "format"),
    ],
)  # fmt: skip
def test_bad_durations(text: str, code: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_duration(text)
    assert info.value.code == code


@settings(max_examples=250, deadline=None)
@given(st.text(max_size=30))
def test_duration_parser_never_crashes(text: str) -> None:
    try:
        value = parse_duration(text)
    except ParseError:
        return
    assert MIN_SECONDS <= value.total_seconds() <= MAX_SECONDS


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=10_000),
       st.sampled_from(["s", "m", "h", "d", "w", "分钟", "小时", "天", "周"]))
def test_duration_roundtrip(n: int, unit: str) -> None:
    size = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "分钟": 60, "小时": 3600, "天": 86400,
            "周": 604800}[unit]
    total = n * size
    if MIN_SECONDS <= total <= MAX_SECONDS:
        assert parse_duration(f"{n}{unit}").total_seconds() == total
    else:
        with pytest.raises(ParseError):
            parse_duration(f"{n}{unit}")


def test_looks_like_duration() -> None:
    assert looks_like_duration("10m") and looks_like_duration("10x") and looks_like_duration("1天")
    assert not looks_like_duration("刷屏") and not looks_like_duration("一直刷屏") and not looks_like_duration("")


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("mute 1h", Action("mute", 3600)), ("mute:1d", Action("mute", 86400)), ("禁言1天", Action("mute", 86400)),
        ("ban", Action("ban")), ("封禁 7d", Action("ban", 604800)), ("kick", Action("kick")),
        ("delete", Action("delete")), ("warn", Action("warn")), ("警告", Action("warn")), ("mute", Action("mute")),
    ],
)  # fmt: skip
def test_actions(text: str, action: Action) -> None:
    assert parse_action(text) == action


@pytest.mark.parametrize("text", ["", "nuke", "kick 1d", "warn 1h", "mute 5s", "mute 1x", "delete:1d"])
def test_bad_actions(text: str) -> None:
    with pytest.raises(ParseError):
        parse_action(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_action_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(ParseError):
        parse_action(text)


def test_config_validates_actions() -> None:
    with pytest.raises(ValueError):
        ModerationConfig(ladder=["notice", "mute forever"])
    with pytest.raises(ValueError):
        ModerationConfig(flood_action="explode")
    with pytest.raises(ValueError):
        ModerationConfig(locks={"emoji": "delete"})
    cfg = ModerationConfig(locks={"links": "mute 1h"}, allowed_domains=["https://www.Taobao.com/"])
    assert cfg.allowed_domains == ["taobao.com"]
    assert cfg.ladder_actions() == [Action("notice"), Action("mute", 3600), Action("mute", 86400), Action("ban")]


# ---- the ladder ----------------------------------------------------------------------------------


def test_ladder_steps_and_strength() -> None:
    ladder = ModerationConfig().ladder_actions()
    assert [ladder_step(ladder, n) for n in (1, 2, 3, 4, 9)] == [
        Action("notice"), Action("mute", 3600), Action("mute", 86400), Action("ban"), Action("ban"),
    ]
    assert stronger(Action("notice"), Action("mute", 3600)) == Action("mute", 3600)
    assert stronger(Action("mute", 86400), Action("mute", 3600)) == Action("mute", 86400)
    assert stronger(Action("mute"), Action("kick")) == Action("kick")
    assert stronger(Action("ban", 86400), Action("kick")) == Action("ban", 86400)


# ---- banned words --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["骗子", "你是骗 子", "骗*子", "骗\u200b子", "騙子", "骗-子!", "骗😀子", "ＰＩＡＮ骗　子", "骗\u200d\ufe0f子",
     "骗\n子"],
)
def test_evasions_match(norm: TextNormalizer, text: str) -> None:
    matcher = WordMatcher(norm, [WordEntry("骗子", Action("warn"))])
    hit = matcher.match(text)
    assert hit is not None and hit.entry.word == "骗子"


def test_no_false_hit(norm: TextNormalizer) -> None:
    matcher = WordMatcher(norm, [WordEntry("骗子", Action("warn")), WordEntry("VX", Action("delete"))])
    assert matcher.match("今天天气不错") is None
    assert matcher.match("骗") is None
    assert matcher.match("加我 v x 号") is not None  # case-folded, spaces squeezed


def test_pinyin_evasion(norm: TextNormalizer) -> None:
    entries = [WordEntry("骗子", Action("ban"))]
    assert WordMatcher(norm, entries).match("他是 pianzi") is None
    with_pinyin = WordMatcher(norm, entries, pinyin=True)
    for text in ("他是 pianzi", "Pian Zi!!", "PIAN-ZI"):
        hit = with_pinyin.match(text)
        assert hit is not None and hit.via == "pinyin", text
    assert with_pinyin.match("骗紫") is None
    homophones = WordMatcher(norm, entries, homophones=True)
    hit = homophones.match("他是骗紫")
    assert hit is not None and hit.via == "pinyin"
    # Whole syllables only: 西安 (xi an) sounds like nothing in 先走了 (xian zou le), although the
    # letters "xian" are there.
    xian = WordMatcher(norm, [WordEntry("西安", Action("ban"))], homophones=True)
    assert xian.match("先走了") is None
    assert xian.match("我在溪岸边") is not None  # 溪岸: xi an


def test_regex_looking_words_are_literal(norm: TextNormalizer) -> None:
    matcher = WordMatcher(norm, [WordEntry("a.*b", Action("delete")), WordEntry("(.*)", Action("delete")),
                                 WordEntry("[x]+", Action("delete"))])
    assert matcher.match("aXXXb") is None  # not a regex
    assert matcher.match("ab") is None  # and not the word without its symbols
    assert matcher.match("xxxx") is None
    assert matcher.match("hello a.*b") is not None
    assert matcher.match("hello Ａ .* Ｂ") is not None  # width, case and spaces still do not matter
    assert matcher.match("look (.*) here") is not None  # a symbol-only word matches literally
    assert matcher.match("look ( . * ) here") is not None
    assert matcher.match("[x]+") is not None


def test_strongest_action_wins(norm: TextNormalizer) -> None:
    matcher = WordMatcher(norm, [WordEntry("代购", Action("delete")), WordEntry("骗子", Action("ban"))])
    hit = matcher.match("代购骗子")
    assert hit is not None and hit.entry.action == Action("ban")


def test_ten_thousand_words(norm: TextNormalizer) -> None:
    words = [f"违禁{i}号" for i in range(10_000)]
    matcher = WordMatcher(norm, [WordEntry(w, Action("warn")) for w in words])
    assert matcher.size == 10_000
    hit = matcher.match("这里有 违禁 9999 号")
    assert hit is not None and hit.entry.word == "违禁9999号"
    assert matcher.match("大家好，今天的福利活动几点开始？我想买两件，包邮吗") is None
    # Speed is measured by bench/moderation_bench.py (bench/MODERATION_RESULTS.md), not asserted here.


def test_word_file_format() -> None:
    entries, bad = parse_word_file("# ops list\n骗子\n刷单 | ban\n代购|mute 1d\nx | explode\n\n", Action("warn"))
    assert [(e.word, e.action) for e in entries] == [
        ("骗子", Action("warn")), ("刷单", Action("ban")), ("代购", Action("mute", 86400)),
    ]
    assert bad == ["x | explode"]


# ---- windows -------------------------------------------------------------------------------------


def test_flood_window() -> None:
    w = FloodWindow()
    hits = [w.hit(-1, 7, i, t=float(i), limit=8, seconds=10) for i in range(1, 9)]
    assert hits == [None] * 8  # eight messages are fine
    ids = w.hit(-1, 7, 9, t=9.0, limit=8, seconds=10)
    assert ids == list(range(1, 10))  # the ninth within 10 s trips, with every id to delete
    assert w.hit(-1, 7, 10, t=9.5, limit=8, seconds=10) is None  # reset after tripping
    slow = FloodWindow()
    assert all(slow.hit(-1, 7, i, t=i * 2.0, limit=8, seconds=10) is None for i in range(50))
    other = FloodWindow()
    for i in range(8):
        other.hit(-1, 1, i, t=0.0, limit=8, seconds=10)
    assert other.hit(-1, 2, 99, t=0.0, limit=8, seconds=10) is None  # per member


def test_wave_window_near_same_text() -> None:
    w = WaveWindow()
    kw = {"members": 3, "seconds": 60.0, "threshold": 0.8, "min_chars": 8}
    assert w.hit(-1, 1, 10, "加微信领取福利红包名额有限123", 0.0, **kw) is None
    assert w.hit(-1, 2, 11, "加微信领取福利红包名额有限456", 5.0, **kw) is None
    assert w.hit(-1, 2, 12, "今天天气真不错大家出去玩吧", 6.0, **kw) is None
    hit = w.hit(-1, 3, 13, "加微信领取福利红包名额有限啊", 9.0, **kw)
    assert hit is not None and hit.new
    assert sorted(hit.copies) == [(1, 10), (2, 11), (3, 13)]
    late = w.hit(-1, 4, 14, "加微信领取福利红包名额有限789", 20.0, **kw)
    assert late is not None and late.copies == [(4, 14)] and not late.new


def test_wave_needs_several_members_and_window() -> None:
    w = WaveWindow()
    kw = {"members": 3, "seconds": 60.0, "threshold": 0.8, "min_chars": 8}
    for i in range(5):  # one member repeating is not a wave (flood handles that)
        assert w.hit(-1, 1, i, "同一个人一直发同样的话", float(i), **kw) is None
    assert w.hit(-1, 2, 10, "同一个人一直发同样的话", 100.0, **kw) is None  # the old copies expired
    assert w.hit(-1, 3, 11, "短", 100.0, **kw) is None  # too short to judge


def test_join_window() -> None:
    j = JoinWindow()
    assert [j.hit(-1, float(i), 10, 60) for i in range(10)] == [False] * 10
    assert j.hit(-1, 10.0, 10, 60) is True
    k = JoinWindow()
    assert not any(k.hit(-1, i * 10.0, 10, 60) for i in range(30))
