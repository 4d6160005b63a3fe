"""crisis: lexicon and message analysis, config validation, the window/score and the level policy."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from plugins.crisis.config import CrisisConfig
from plugins.crisis.lexicon import Analysis, Lexicon, analyze
from plugins.crisis.render import message_link
from plugins.crisis.runtime import build_profile
from plugins.crisis.signal import ChatSignal, LevelState, Record, SignalParams, next_level, step

T0 = 1_795_000_000.0


@pytest.fixture(scope="module")
def nlp(shared_nlp: Any) -> Any:
    shared_nlp.warm_up()  # jieba is needed for the negation checks: build it once for the run
    return shared_nlp


@pytest.fixture(scope="module")
def prof(nlp: Any) -> Any:
    return build_profile(CrisisConfig(), nlp.normalizer.normalize)


def run(nlp: Any, prof: Any, text: str) -> Analysis:
    return analyze(nlp, prof.lexicon, prof.analysis, text)


# ---- lexicon ---------------------------------------------------------------------------------------
def test_every_issue_word_is_in_its_category(prof: Any) -> None:
    expected = {
        "complaint": ["投诉", "差评"], "refund": ["退款", "退货", "不发货"],
        "legal": ["315", "12315", "律师", "起诉", "工商", "消协"], "safety": ["过敏", "中毒", "烂脸", "受伤", "送医"],
        "fraud": ["骗子", "假货", "曝光", "维权", "割韭菜", "跑路"],
    }  # fmt: skip
    for cat, words in expected.items():
        for word in words:
            assert cat in prof.lexicon.words[word], (cat, word)


def test_longest_match_and_ascii_boundaries() -> None:
    lex = Lexicon({"legal": (2.5, ["315", "12315"]), "safety": (3.0, ["中毒", "食物中毒"]), "e": (1, ["icu"])})
    assert [h.word for h in lex.find("我打了12315")] == ["12315"]
    assert lex.find("花了3150块") == [] and lex.find("订单号13150") == []
    assert [h.word for h in lex.find("去315投诉")] == ["315"]
    assert [h.word for h in lex.find("疑似食物中毒")] == ["食物中毒"]
    assert lex.find("picuture") == [] and [h.word for h in lex.find("进了icu")] == ["icu"]


def test_words_are_normalized_when_compiled(nlp: Any) -> None:
    lex = Lexicon.from_config({}, {"fraud": ["詐騙集團", "ＳＣＡＭ"]}, ["差评"], nlp.normalizer.normalize)
    assert "诈骗集团" in lex.words and "scam" in lex.words
    assert "差评" not in lex.words  # ignore_words removes a built-in word
    assert lex.find(nlp.normalizer.normalize("這是詐騙集團")) != []


@pytest.mark.parametrize("text", ["不是骗子", "并不是骗子吧，大家放心", "没有过敏，放心用", "别担心，不会过敏的",
                                  "这家不会跑路的", "绝对不是假货", "並不是騙子"])
def test_negated_words_are_not_accusations(nlp: Any, prof: Any, text: str) -> None:
    a = run(nlp, prof, text)
    assert a.hits and all(h.negated for h in a.hits)
    assert a.weights == {} and a.risk == 0


def test_negation_does_not_cancel_a_complaint(nlp: Any, prof: Any) -> None:
    # "没有退款" is itself a complaint (nothing was refunded); "不是我说，…骗子" is still an accusation.
    assert run(nlp, prof, "到现在都没有退款").weights["refund"] > 0
    assert run(nlp, prof, "不是我说，你们就是骗子").weights["fraud"] > 0


@pytest.mark.parametrize("text", ["会过敏吗", "这个会过敏吗？", "敏感肌会不会过敏啊", "是骗子吗"])
def test_questions_are_not_accusations(nlp: Any, prof: Any, text: str) -> None:
    a = run(nlp, prof, text)
    # ("会不会过敏": jieba sees the negator 不会 in the A-not-A question; either way no accusation.)
    assert a.hits and all(h.question or h.negated for h in a.hits)
    for cat in ("safety", "fraud"):
        assert a.weights.get(cat, 0) <= 0.3 * prof.analysis.category_weights[cat] * 0.5
    assert not a.instant


def test_an_exclamation_is_a_demand_not_a_question(nlp: Any, prof: Any) -> None:
    a = run(nlp, prof, "为什么还不退款！")
    assert a.hits and not a.hits[0].question and a.weights["refund"] == pytest.approx(1.5)


def test_question_clause_does_not_soften_the_next_clause(nlp: Any, prof: Any) -> None:
    a = run(nlp, prof, "这个会过敏吗？我家孩子用了脸烂了")
    assert a.weights["safety"] == pytest.approx(3.0)


def test_positive_mentions_weigh_less(nlp: Any, prof: Any) -> None:
    thanks = run(nlp, prof, "退款已经收到了，谢谢")
    angry = run(nlp, prof, "赶紧退款！")
    assert thanks.positive and angry.negative
    assert 0 < thanks.weights["refund"] <= 0.3 * angry.weights["refund"]


def test_gossip_about_elsewhere_weighs_less(nlp: Any, prof: Any) -> None:
    gossip = run(nlp, prof, "上次在别的平台买到假货")
    direct = run(nlp, prof, "你们卖的是假货")
    assert 0 < gossip.weights["fraud"] < direct.weights["fraud"] / 2


def test_instant_combination_needs_two_words(nlp: Any, prof: Any) -> None:
    assert run(nlp, prof, "孩子用了过敏，已经送医了").instant
    assert run(nlp, prof, "孩子吃了上吐下泻，现在在急诊抢救").instant
    assert not run(nlp, prof, "我妈今天送医了").instant  # one word in both categories
    assert not run(nlp, prof, "会过敏吗？要送医吗？").instant  # questions
    assert not run(nlp, prof, "孩子没有过敏，也不用送医").instant


@pytest.mark.parametrize("text", ["", "   ", "😀😀😀", "？？？。。。", "\u200b\u200b", "ok"])
def test_empty_and_symbol_only_messages(nlp: Any, prof: Any, text: str) -> None:
    a = run(nlp, prof, text)
    assert a.hits == [] and a.weights == {} and not a.instant


def test_long_mixed_and_traditional_messages(nlp: Any, prof: Any) -> None:
    long_text = ("今天天气不错，" * 600)[:4096]
    a = run(nlp, prof, long_text)
    assert a.weights == {}
    tail_hit = "好" * 4000 + "骗子"  # beyond max_chars: not analysed (bounded cost)
    assert run(nlp, prof, tail_hit).weights == {}
    trad = run(nlp, prof, "騙子！我要退款，你們賣假貨")
    assert {"fraud", "refund"} <= set(trad.weights)
    mixed = run(nlp, prof, "this shop is a SCAM 骗子 refund now!!! 退款")
    assert {"fraud", "refund"} <= set(mixed.weights)


# ---- config ------------------------------------------------------------------------------------------
def test_config_defaults_and_validation() -> None:
    cfg = CrisisConfig()
    assert cfg.window_minutes == 10 and cfg.level2_score > cfg.level2_down
    with pytest.raises(ValidationError):
        CrisisConfig(level2_down=20)  # down must be below up
    with pytest.raises(ValidationError):
        CrisisConfig(instant_combos=[["safety", "nope"]])
    with pytest.raises(ValidationError):
        CrisisConfig(extra_words={"fraud": [" "]})
    with pytest.raises(ValidationError):
        CrisisConfig(restrict="slow")
    with pytest.raises(ValidationError):
        CrisisConfig(unknown_key=1)
    custom = CrisisConfig(extra_words={"hygiene": ["头发丝"]}, category_weights={"hygiene": 2.0},
                          instant_combos=[["hygiene", "emergency"]])
    assert custom.category_weights["hygiene"] == 2.0


def test_extra_category_is_matched(nlp: Any) -> None:
    cfg = CrisisConfig(extra_words={"hygiene": ["头发丝"]}, category_weights={"hygiene": 2.0})
    p = build_profile(cfg, nlp.normalizer.normalize)
    a = analyze(nlp, p.lexicon, p.analysis, "面包里吃出头发丝，太恶心了")
    assert a.weights["hygiene"] == pytest.approx(2.0)


# ---- window and score --------------------------------------------------------------------------------
def rec(uid: int, mid: int, at: float, weights: dict[str, float] | None = None, negative: bool = True,
        text: str = "x") -> Record:
    return Record(at=at, user_id=uid, name=f"u{uid}", message_id=mid, snippet=text, sentiment=0.1 if negative else 0.7,
                  negative=negative, weights=weights or {}, keywords=tuple(weights or ()))


def test_one_member_is_one_voice() -> None:
    p = SignalParams()
    sig = ChatSignal(1)
    for i in range(40):  # different texts: each counts as a message, but the member is capped
        sig.add(rec(7, i, T0 + i, {"fraud": 2.5, "refund": 1.5, "legal": 2.5}), fingerprint=i + 1)
    snap = sig.snapshot(T0 + 40, p)
    assert snap.risk_members == 1 and snap.raw == p.member_cap
    assert snap.level_for(p) is None


def test_identical_messages_are_duplicates() -> None:
    sig = ChatSignal(1)
    for i in range(30):
        sig.add(rec(7, i, T0 + i, {"fraud": 2.5}), fingerprint=42)
    snap = sig.snapshot(T0 + 30, SignalParams())
    assert snap.messages == 1 and snap.rate < 2


def test_redelivered_message_is_ignored() -> None:
    sig = ChatSignal(1)
    assert sig.add(rec(1, 5, T0), 1)
    assert not sig.add(rec(1, 5, T0), 1)
    assert len(sig.records) == 1


def test_window_forgets_old_messages() -> None:
    p = SignalParams(window=600)
    sig = ChatSignal(1)
    for u in range(5):
        sig.add(rec(u, u, T0, {"fraud": 2.5}), u + 1)
    assert sig.snapshot(T0 + 10, p).risk_members == 5
    assert sig.snapshot(T0 + 601, p).risk_members == 0


def test_baseline_learns_calm_periods_and_damps_chronic_grumbling() -> None:
    p = SignalParams(baseline_tau=600)
    sig = ChatSignal(1)
    mid = 0
    # A busy after-sales chat: 20 messages a minute, two members always grumbling.
    for minute in range(60):
        for k in range(20):
            mid += 1
            weights = {"complaint": 1.0} if k < 2 else None
            sig.add(rec(k, mid, T0 + minute * 60 + k * 3, weights, negative=k < 2), mid)
        snap = sig.snapshot(T0 + minute * 60 + 59, p)
        sig.learn(snap, T0 + minute * 60 + 59, p)
    assert sig.baseline.rate > 15
    assert sig.baseline.score > 0
    assert sig.baseline_dirty
    calm = sig.snapshot(T0 + 3600, p)
    assert calm.surge < 1.05  # the usual rate is not a surge
    assert calm.score < calm.raw


def test_trend_buckets_cover_the_last_hour() -> None:
    sig = ChatSignal(1)
    for i in range(7):
        sig.add(rec(1, i, T0 + i * 600, {"refund": 1.5}), i + 1)
    rows = sig.trend_rows(T0 + 6 * 600)
    assert len(rows) == 6 and rows[-1] == (1, 1, 1)


# ---- level policy -------------------------------------------------------------------------------------
def snap_with(score: float, members: int, severe: int = 0, at: float = T0) -> Any:
    sig = ChatSignal(1)
    s = sig.snapshot(at, SignalParams())
    s.score, s.risk_members, s.severe_members = score, members, severe
    return s


def test_levels_need_score_and_members() -> None:
    p = SignalParams()
    assert next_level(None, snap_with(5, 5), T0, p) is None
    assert next_level(None, snap_with(7, 1), T0, p) is None
    assert next_level(None, snap_with(7, 2), T0, p) == 3
    assert next_level(None, snap_with(16, 3), T0, p) == 2
    assert next_level(None, snap_with(90, 10, severe=0), T0, p) == 2  # a refund wave alone stays at 2
    assert next_level(None, snap_with(41, 8, severe=3), T0, p) == 1
    assert next_level(None, snap_with(1, 1), T0, p, instant=2) == 2


def test_hysteresis_and_dwell() -> None:
    p = SignalParams(min_dwell=600)
    state = LevelState(level=2, since=T0)
    # Below the up threshold but above the down threshold: stays.
    assert next_level(state, snap_with(10, 3), T0 + 900, p) == 2
    # Below down, but not long enough at the level: stays.
    assert next_level(state, snap_with(2, 0), T0 + 300, p) == 2
    # Below down after the dwell: one step down.
    assert next_level(state, snap_with(2, 0), T0 + 700, p) == 3
    # Up is immediate, even within the dwell.
    assert next_level(state, snap_with(50, 9, severe=4), T0 + 10, p) == 1
    # A manual floor stops automatic de-escalation.
    pinned = LevelState(level=2, since=T0, floor=2)
    assert next_level(pinned, snap_with(0, 0), T0 + 99_999, p) == 2


def test_step_closes_after_a_calm_spell() -> None:
    p = SignalParams()
    state = LevelState(level=3, since=T0)
    assert step(state, snap_with(1, 0), T0 + 10, p, auto_close=3600).kind == "none"
    assert state.calm_since == T0 + 10
    assert step(state, snap_with(1, 0), T0 + 1800, p, auto_close=3600).kind == "none"
    # Activity resets the calm spell.
    assert step(state, snap_with(4, 2), T0 + 1900, p, auto_close=3600).kind == "none"
    assert state.calm_since is None
    assert step(state, snap_with(1, 0), T0 + 2000, p, auto_close=3600).kind == "none"
    assert step(state, snap_with(1, 0), T0 + 5700, p, auto_close=3600).kind == "close"
    assert step(LevelState(level=3, since=T0), snap_with(0, 0), T0 + 9e9, p, auto_close=0).kind == "none"


def test_message_links() -> None:
    assert message_link(-1001234567890, None, 42) == "https://t.me/c/1234567890/42"
    assert message_link(-1001234567890, "fanclub", 42) == "https://t.me/fanclub/42"
    assert message_link(-4567, None, 42) is None  # a basic group has no public links


def test_config_example_lists_every_key_with_its_default() -> None:
    import tomllib
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "plugins" / "crisis" / "config.example.toml"
    table = tomllib.loads(path.read_text(encoding="utf-8"))["plugins"]["crisis"]
    assert set(table) == set(CrisisConfig.model_fields)
    example, default = CrisisConfig(**table), CrisisConfig()
    assert {k for k in table if getattr(example, k) != getattr(default, k)} == set()
