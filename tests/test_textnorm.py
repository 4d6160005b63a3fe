from __future__ import annotations

import time

import pytest

from bot.textnorm import TextNormalizer


@pytest.fixture(scope="module")
def norm() -> TextNormalizer:
    return TextNormalizer()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("騙子", "骗子"),
        ("這個東西質量太差", "这个东西质量太差"),
        ("ＰＩＡＮ", "pian"),
        ("Ｈｅｌｌｏ\u3000ＷＯＲＬＤ！", "hello world!"),
        ("ABC", "abc"),
        ("①②", "12"),
        ("Straße", "strasse"),
        ("e\u0301", "é"),  # NFC composition
        ("ﾊﾝｶｸ", "ハンカク"),  # half-width katakana
        ("", ""),
    ],
)
def test_normalize(norm: TextNormalizer, raw: str, expected: str) -> None:
    assert norm.normalize(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "骗子", "骗 子", "骗*子", "骗\u200b子", "騙子", "骗\u3000子", "【骗】子！！", "骗\u202e子\u202c", "骗😡子",
        "骗\u0301子",
    ],
)  # fmt: skip
def test_squeeze_variants_compare_equal(norm: TextNormalizer, raw: str) -> None:
    assert norm.squeeze(raw) == "骗子"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＰＩＡＮ", "pian"),
        ("p-i_a.n", "pian"),
        ("😀🎉👍🏻", ""),
        ("\u200b\u200c\u200d\ufeff\u2060", ""),
        ("\u202e\u202d\u200f", ""),
        ("加V：abc123", "加vabc123"),
        ("  \t\n", ""),
    ],
)
def test_squeeze(norm: TextNormalizer, raw: str, expected: str) -> None:
    assert norm.squeeze(raw) == expected


def test_normalize_is_idempotent(norm: TextNormalizer) -> None:
    for raw in ["騙子ＰＩＡＮ！", "Ｅ\u0301", "①優惠券", "😀 hello"]:
        once = norm.normalize(raw)
        assert norm.normalize(once) == once
        assert norm.squeeze(norm.squeeze(raw)) == norm.squeeze(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("骗子", "pianzi"),
        ("騙 子!", "pianzi"),
        ("骗*子", "pianzi"),
        ("ＰＩＡＮ子", "pianzi"),
        ("绿", "lv"),
        ("été", "ete"),
        ("😀", ""),
        ("", ""),
        ("12315", ""),
    ],
)
def test_pinyin(norm: TextNormalizer, raw: str, expected: str) -> None:
    assert norm.pinyin(raw) == expected


def test_long_and_odd_input(norm: TextNormalizer) -> None:
    long_cjk = "質量太差了，要退款！" * 410  # 4,100 characters
    assert len(norm.normalize(long_cjk)) == len(long_cjk)
    assert norm.squeeze(long_cjk) == "质量太差了要退款" * 410
    assert norm.squeeze("😀" * 4096) == ""
    assert norm.squeeze("a\u0300" * 4096) == "à" * 4096
    lone_surrogate = "骗\ud800子"
    assert norm.squeeze(lone_surrogate) == "骗子"
    assert norm.pinyin("骗" * 4096) == "pian" * 4096


def test_normalize_is_fast(norm: TextNormalizer) -> None:
    msg = "這個東西質量太差了，客服也不理人，我要退款！！😡"
    norm.squeeze(msg)
    n = 2000
    t = time.perf_counter()
    for _ in range(n):
        norm.squeeze(msg)
    per_call_us = (time.perf_counter() - t) / n * 1e6
    assert per_call_us < 100  # ~5 µs on the dev machine; generous for a noisy CI


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("骗子", "pianzi"),
        ("騙 子!", "pianzi"),
        ("ＰＩＡＮ子", "pianzi"),
        ("绿", "lv"),
        ("〇", "ling"),
        ("银行", "yinxing"),  # first reading per character, unlike `pinyin`
        ("😀", ""),
        ("", ""),
    ],
)
def test_pinyin_chars(norm: TextNormalizer, raw: str, expected: str) -> None:
    assert norm.pinyin_chars(raw) == expected


def test_pinyin_chars_agrees_with_pinyin_on_common_text(norm: TextNormalizer) -> None:
    msg = "這個東西質量太差了，客服也不理人，我要退款！！😡"
    assert norm.pinyin_chars(msg) == norm.pinyin(msg)
