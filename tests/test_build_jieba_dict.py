"""scripts/build_jieba_dict.py on a tiny source dictionary, and the format of the shipped one."""

from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bot.nlp import DEFAULT_MAIN_DICT, NlpService

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_jieba_dict", ROOT / "scripts" / "build_jieba_dict.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


SOURCE = """\
的 5000 uj
了 4000 ul
天气 900 n
今天 800 t
东西 700 n
发货 3 v
发货单 3 n
不是 2 c
骗子 2 n
晚安 3 n
T恤 3000 n
後來 50 c
后来 5 c
彩虹糖 3 n
γ射线 40 n
稀有词 3 n
"""


def run(build: ModuleType, tmp_path: Path, name: str, *extra: str) -> dict[str, int]:
    source = tmp_path / "dict.txt"
    source.write_text(SOURCE, encoding="utf-8")
    corpus = tmp_path / "chat.txt"
    corpus.write_text("# a comment line\n+5 小美 晚安\n今天天气好\n", encoding="utf-8")
    out = tmp_path / name
    assert (
        build.main(["--source", str(source), "--words", "4", "--out", str(out), "--corpus", str(corpus), *extra]) == 0
    )
    with gzip.open(out, "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    assert lines == sorted(lines, key=lambda line: line.split(" ")[0])
    return {w: int(f) for w, f in (line.split(" ") for line in lines)}


def test_selection(build: ModuleType, tmp_path: Path) -> None:
    words = run(build, tmp_path, "small.txt.gz")
    # The 4 most frequent matchable words after normalization: normalized text never holds "T".
    assert words["t恤"] == 3000 and "T恤" not in words
    for word in ("的", "了", "天气"):
        assert word in words
    assert "今天" in words and "晚安" in words  # seen in the corpus (crisis-corpus line format: the text only)
    assert words["不是"] == 2 and words["骗子"] == 2  # relied on (negator, crisis lexicon)
    assert words["发货"] == 3 and words["发货单"] == 3  # user-dictionary word and a word holding it
    assert "γ射线" not in words  # jieba never matches a dictionary word on "γ"
    for rare in ("稀有词", "彩虹糖", "东西", "后来", "後來"):
        assert rare not in words


def test_normalized_forms(build: ModuleType) -> None:
    from bot.textnorm import TextNormalizer

    entries = [("後來", 50), ("后来", 5), ("ＡＢ型", 7), ("ab型", 2), ("大象", 9), ("γ射线", 4)]
    # A form that is a word as written keeps its own frequency; other forms take the largest.
    assert build.normalized_dict(entries, TextNormalizer()) == {"后来": 5, "ab型": 2, "大象": 9}
    assert build.normalized_dict([("AB型", 7), ("Ab型", 3)], TextNormalizer()) == {"ab型": 7}


def test_output_is_reproducible(build: ModuleType, tmp_path: Path) -> None:
    run(build, tmp_path, "a.txt.gz")
    run(build, tmp_path, "b.txt.gz")
    assert (tmp_path / "a.txt.gz").read_bytes() == (tmp_path / "b.txt.gz").read_bytes()


def test_compare_reports_agreement(build: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messages = tmp_path / "messages.csv"
    messages.write_text("label,review\n1,今天天气好\n0,稀有词发货单\n", encoding="utf-8")
    run(build, tmp_path, "c.txt.gz", "--compare", str(messages))
    out = capsys.readouterr().out
    assert "compare: 2 messages, segmented identically 0.5000" in out  # 稀有词 is split in the small one


def test_shipped_main_dict_format_and_size() -> None:
    with gzip.open(DEFAULT_MAIN_DICT, "rt", encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    assert 60_000 <= len(lines) <= 100_000
    words = {}
    for line in lines:
        word, freq = line.split(" ")
        words[word] = int(freq)
    assert len(words) == len(lines)
    service = NlpService()
    for word in ("不是", "没有", "退款", "过敏", "骗子", "尺码", "正品", "发货单"):
        assert word in words, word
    assert all(service.normalizer.normalize(w) == w for w in words)
