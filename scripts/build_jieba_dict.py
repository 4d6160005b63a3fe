"""Build bot/data/jieba_small.txt.gz: the jieba main dictionary the bot ships (see docs/nlp.md).

jieba's bundled dict.txt holds ~349k words; its prefix dict costs ~60 MB of RSS per tokenizer. The bot
tokenizes normalized chat text (simplified script, case-folded, half-width) with the HMM off, so it keeps:

- the ``--words`` most frequent words of dict.txt, after normalizing each word as the bot normalizes text
  (a word that normalization changes, "T恤", "後來", could never match: its normalized form is kept
  instead, unless that form is already a word, whose own frequency then wins);
- every word jieba (full dictionary + user dictionary) cuts out of the ``--corpus`` messages at least
  ``--min-count`` times. dict.txt's frequencies come from news-like text: chat and shop words such as
  晚安, 尺码, 正品, 小姐姐 sit at its floor and would never make a frequency cut;
- every word the bot or its plugins rely on being a token, if jieba knows it: the shipped user dictionary,
  the crisis lexicon and its "elsewhere" words, the negators, complaint and scope-breaking words of
  `bot.nlp`, the question cues, and the pieces jieba cuts each of them into (the frequency the user
  dictionary's words get at run time is computed from those pieces);
- every word that holds one of those words (2+ characters): "发货单", "投诉信", "防晒乳" stay one token,
  so segmentation around the e-commerce and risk vocabulary is jieba's.

Words jieba's segmenter can never produce (characters outside its word pattern) are dropped. Output:
``word freq`` lines sorted by word, gzip with mtime 0: byte-identical for identical input. The shipped
file is built with (~1 min):

    .venv/bin/python scripts/build_jieba_dict.py --corpus /work/shared/data/online_shopping_10_cats.zip \
        --compare tests/data/crisis_corpus.txt

``--compare`` segments the messages of a text file (one per line; "#" lines skipped, crisis-corpus lines
"+<seconds> <member> <text>" give their text), a CSV (column ``review`` or ``text``) or a zip holding such
a CSV, with jieba's dictionary as it ships and with the small one (user dictionary added to both), and
prints how often they agree. ``--corpus`` takes the same formats.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import logging
import random
import re
import sys
import time
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.nlp import (  # noqa: E402
    COMPLAINT_WHEN_NEGATED,
    DEFAULT_MAIN_DICT,
    DEFAULT_USER_DICT,
    QUESTION_CUES,
    RISK_NEGATORS,
    SCOPE_BREAKERS,
    read_user_dict,
)
from bot.textnorm import TextNormalizer  # noqa: E402

DEFAULT_WORDS = 60_000
# jieba's re_han_default: the characters a dictionary word can be matched on.
_MATCHABLE = re.compile(r"^[\u4E00-\u9FD5a-zA-Z0-9+#&\._%\-]+$")
_CORPUS_LINE = re.compile(r"^\+[0-9.]+\s+\S+\s+")


def jieba_dict_path() -> Path:
    import jieba

    return Path(jieba.__file__).resolve().parent / "dict.txt"


def read_jieba_dict(path: Path) -> Iterator[tuple[str, int]]:
    """(word, freq) per line of a jieba dictionary (``word freq [tag]``; plain or gzip)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) >= 2:
                yield parts[0], int(parts[1])


def normalized_dict(entries: Iterable[tuple[str, int]], normalize: TextNormalizer) -> dict[str, int]:
    """Words in their normalized form; a form that is a word as written keeps that word's frequency."""
    own: dict[str, int] = {}
    mapped: dict[str, int] = {}
    for word, freq in entries:
        form = normalize.normalize(word)
        if not _MATCHABLE.match(form):
            continue
        if form == word:
            own[form] = freq
        else:
            mapped[form] = max(freq, mapped.get(form, 0))
    return {**mapped, **own}


def relied_on_words(normalize: TextNormalizer) -> set[str]:
    """Words the bot and its plugins expect to come out of the tokenizer as one token."""
    from plugins.crisis.lexicon import BUILTIN_CATEGORIES, DEFAULT_ELSEWHERE_WORDS

    words: set[str] = {w for w, _, _ in read_user_dict(DEFAULT_USER_DICT)}
    for _, category in BUILTIN_CATEGORIES.values():
        words.update(category)
    words.update(DEFAULT_ELSEWHERE_WORDS)
    words.update(RISK_NEGATORS, COMPLAINT_WHEN_NEGATED, SCOPE_BREAKERS, QUESTION_CUES)
    return {normalize.normalize(w) for w in words}


def tokenizer_for(words: dict[str, int], user_dict: Path | None, normalize: TextNormalizer):  # type: ignore[no-untyped-def]
    """A jieba tokenizer over ``words`` (prefix dict built here, no cache file), user dictionary added."""
    import jieba

    freq: dict[str, int] = {}
    for word, count in words.items():
        freq[word] = count
        for i in range(1, len(word)):
            freq.setdefault(word[:i], 0)
    tok = jieba.Tokenizer()
    tok.FREQ, tok.total, tok.initialized = freq, sum(words.values()), True
    if user_dict is not None:
        for word, count, tag in read_user_dict(user_dict):
            tok.add_word(normalize.normalize(word), count, tag)
    return tok


def corpus_words(messages: Iterable[str], full: dict[str, int], normalize: TextNormalizer) -> Counter[str]:
    """How often each dictionary word comes out of jieba (full dictionary + user dictionary) on ``messages``."""
    full_tok = tokenizer_for(full, DEFAULT_USER_DICT, normalize)
    counts: Counter[str] = Counter()
    for message in messages:
        counts.update(w for w in full_tok.lcut(normalize.normalize(message), HMM=False) if w in full)
    return counts


def select(
    full: dict[str, int],
    n: int,
    relied_on: set[str],
    normalize: TextNormalizer,
    corpus: Counter[str] | None = None,
    min_count: int = 1,
) -> dict[str, int]:
    """The ``n`` most frequent words (ties by word), the words seen ``min_count`` times in the corpus
    segmentation, the relied-on words jieba knows and their pieces, and every word holding a relied-on
    word of 2+ characters: "发货单" stays one token, so a word-mode FAQ keyword "发货" or a risk word does
    not match inside it."""
    import ahocorasick

    ranked = sorted(full.items(), key=lambda kv: (-kv[1], kv[0]))
    keep = dict(ranked[:n])
    for word, count in (corpus or {}).items():
        if count >= min_count:
            keep[word] = full[word]
    full_tok = tokenizer_for(full, None, normalize)
    for word in sorted(relied_on):
        for piece in [word, *full_tok.lcut(word, HMM=False)]:
            if piece in full:
                keep[piece] = full[piece]
    automaton = ahocorasick.Automaton()
    for word in relied_on:
        if len(word) >= 2:
            automaton.add_word(word, word)
    automaton.make_automaton()
    for word, freq in full.items():
        if word not in keep and next(automaton.iter(word), None) is not None:
            keep[word] = freq
    return keep


def write(path: Path, words: dict[str, int]) -> bytes:
    text = "".join(f"{w} {f}\n" for w, f in sorted(words.items()))
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    data = buf.getvalue()
    path.write_bytes(data)
    return data


def read_messages(path: Path, limit: int | None) -> list[str]:
    """Messages of a text file, a CSV (review/text column) or a zip holding one CSV; a seeded sample."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            name = next(n for n in zf.namelist() if n.endswith(".csv"))
            raw = zf.read(name).decode("utf-8-sig")
    else:
        raw = path.read_text(encoding="utf-8-sig")
    if path.suffix in (".zip", ".csv"):
        rows = csv.DictReader(io.StringIO(raw))
        messages = [(r.get("review") or r.get("text") or "").strip() for r in rows]
    else:
        lines = [line.strip() for line in raw.splitlines() if not line.startswith("#")]
        # tests/data/crisis_corpus.txt lines are "+<seconds> <member> <text>": keep the text.
        messages = [_CORPUS_LINE.sub("", line) for line in lines]
    messages = [m for m in messages if m]
    random.Random(0).shuffle(messages)
    return messages[:limit]


def compare(messages: list[str], full: dict[str, int], small: dict[str, int], normalize: TextNormalizer) -> None:
    """Print how often the small dictionary segments like the full one (user dictionary in both)."""
    texts = [normalize.normalize(m) for m in messages]
    full_tok = tokenizer_for(full, DEFAULT_USER_DICT, normalize)
    small_tok = tokenizer_for(small, DEFAULT_USER_DICT, normalize)
    same = tp = fp = fn = 0
    timing = {"full": 0.0, "small": 0.0}
    for text in texts:
        segs = []
        for name, tok in (("full", full_tok), ("small", small_tok)):
            t0 = time.perf_counter()
            segs.append(tok.lcut(text, HMM=False))
            timing[name] += time.perf_counter() - t0
        bounds = []
        for seg in segs:
            ends, pos = set(), 0
            for word in seg:
                pos += len(word)
                ends.add(pos)
            bounds.append(ends)
        same += segs[0] == segs[1]
        tp += len(bounds[0] & bounds[1])
        fp += len(bounds[1] - bounds[0])
        fn += len(bounds[0] - bounds[1])
    n = len(texts)
    print(
        f"compare: {n} messages, segmented identically {same / n:.4f}; word boundaries of the small "
        f"dictionary vs the full one: precision {tp / (tp + fp):.4f} recall {tp / (tp + fn):.4f}"
    )
    print(f"compare: µs/message full {timing['full'] / n * 1e6:.1f}  small {timing['small'] / n * 1e6:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=None, help="jieba dictionary (default: jieba's dict.txt)")
    parser.add_argument("--words", type=int, default=DEFAULT_WORDS, help="most frequent words kept")
    parser.add_argument(
        "--corpus",
        type=Path,
        action="append",
        default=[],
        help="messages whose words (as the full dictionary segments them) are kept; repeatable",
    )
    parser.add_argument("--min-count", type=int, default=1, help="times a corpus word must occur to be kept")
    parser.add_argument("--out", type=Path, default=DEFAULT_MAIN_DICT)
    parser.add_argument("--compare", type=Path, default=None, help="messages to compare segmentations on")
    parser.add_argument("--compare-limit", type=int, default=10_000)
    args = parser.parse_args(argv)
    logging.getLogger("jieba").setLevel(logging.WARNING)

    normalize = TextNormalizer()
    source = args.source or jieba_dict_path()
    entries = list(read_jieba_dict(source))
    full = normalized_dict(entries, normalize)
    corpus: Counter[str] = Counter()
    for path in args.corpus:
        corpus += corpus_words(read_messages(path, None), full, normalize)
    small = select(full, args.words, relied_on_words(normalize), normalize, corpus, args.min_count)
    data = write(args.out, small)
    mass = sum(small.values()) / sum(f for _, f in entries)
    print(
        f"{args.out}: {len(small)} of {len(entries)} words ({args.words} most frequent, "
        f"{sum(c >= args.min_count for c in corpus.values())} corpus words, relied-on words), "
        f"{mass:.2%} of the frequency mass, {len(data) / 1024:.0f} KiB"
    )
    if args.compare is not None:
        # Against the dictionary as jieba ships it: what the bot used before.
        compare(read_messages(args.compare, args.compare_limit), dict(entries), small, normalize)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
