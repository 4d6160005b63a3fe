"""NLP service: normalization, jieba tokenization, sentiment, question and negation helpers.

One `NlpService` is built per `App` and shared by handlers and plugins. Nothing here keeps
module-level mutable state: the jieba tokenizer, the sentiment model and the scorers live on the
instance and are created lazily (or eagerly by `warm_up()` at start-up).

The default sentiment scorer (`"logreg"`) is a logistic regression over characters, character
bigrams and negated characters of the squeezed text, trained by scripts/train_sentiment.py on
online_shopping_10_cats and shipped as bot/data/sentiment.json.gz. Scoring is pure-Python dict
lookups: no numpy, no snownlp, and no jieba (character features matched jieba words + bigrams on
the dev split at a fifth of the cost; see docs/nlp.md).
Stock SnowNLP is available as `"snownlp"` for comparison; it is imported only when selected.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import math
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.textnorm import TextNormalizer

if TYPE_CHECKING:  # pragma: no cover
    import jieba

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_USER_DICT = DATA_DIR / "userdict.txt"
# jieba's main dictionary cut to the words chat text needs (scripts/build_jieba_dict.py, docs/nlp.md):
# 78k of jieba's 349k words, a tokenizer of ~14 MB instead of ~63 MB.
DEFAULT_MAIN_DICT = DATA_DIR / "jieba_small.txt.gz"
DEFAULT_MODEL_PATH = DATA_DIR / "sentiment.json.gz"
MODEL_FORMAT = "qunbot-sentiment-logreg"

DEFAULT_SCORER = "logreg"
SCORER_NAMES: tuple[str, ...] = ("logreg", "snownlp")

# Longer texts are scored on their first MAX_SENTIMENT_CHARS characters, as in training (99.9% of
# the training reviews are shorter).
MAX_SENTIMENT_CHARS = 1000

# Sentiment features: the 3 characters after one of these also give a "!"+char feature.
SENTIMENT_NEGATORS: frozenset[str] = frozenset("不没别未")
SENTIMENT_NEGATION_WINDOW = 3

# Risk-word negation (crisis plugin): "不是骗子", "没有过敏", "不会跑路", "并非假货".
RISK_NEGATORS: frozenset[str] = frozenset(
    {
        "不是", "并不是", "并非", "绝非", "没有", "并没有", "从来没有", "从没", "没", "不会", "并不会",
        "绝不会", "不算", "不像", "没什么", "不存在", "不怕", "别担心", "不用担心", "不担心", "无",
        "未",
    }
)  # fmt: skip
# Words whose negation is itself a complaint ("没有退款" = no refund was given), never negated.
COMPLAINT_WHEN_NEGATED: frozenset[str] = frozenset(
    {
        "退款", "退货", "发货", "到货", "收到", "回复", "回应", "处理", "解决", "售后", "客服", "补发",
        "换货", "赔偿", "理", "理人", "人理", "消息", "动静", "结果", "下文", "答复", "说法", "给",
        "退", "发",
    }
)  # fmt: skip
NEGATION_WINDOW = 2
# Tokens that end a negation scope early.
SCOPE_BREAKERS: frozenset[str] = frozenset({"但是", "可是", "但", "而是", "就是", "却", "然而", "不过"})

_QUESTION_FINALS = frozenset("?吗呢么嘛吧")
QUESTION_CUES: tuple[str, ...] = (
    "怎么", "怎样", "咋", "多久", "多长时间", "多少", "为什么", "为啥", "什么时候", "啥时候", "几时", "哪里",
    "哪儿", "在哪", "哪个", "哪家", "能不能", "可不可以", "可以吗", "行不行", "是不是", "有没有", "会不会",
    "要不要", "如何", "请问", "几天", "什么意思", "啥意思", "干嘛", "何时",
)  # fmt: skip


def is_question(text: str) -> bool:
    """Heuristic: ends with ?/？ or 吗/呢/么/嘛/吧 (ignoring trailing emoji, spaces, ~ and !),
    or contains a question cue (怎么, 多久, 为什么, 什么时候, 哪里, 能不能, 可以吗 ...).

    Works on raw or normalized text; `NlpService.is_question` normalizes first (traditional script).
    """
    if not text:
        return False
    text = text.replace("？", "?")
    end = len(text)
    while end and not (text[end - 1].isalnum() or text[end - 1] == "?"):
        end -= 1
    if end and text[end - 1] in _QUESTION_FINALS:
        return True
    return any(cue in text for cue in QUESTION_CUES)


def negated_indices(tokens: Sequence[str], window: int = NEGATION_WINDOW) -> set[int]:
    """Indices of tokens negated by a preceding RISK_NEGATORS token within `window` tokens.

    The scope stops at punctuation and at contrast words (但是, 而是 ...). Words in
    COMPLAINT_WHEN_NEGATED are never marked ("没有退款" stays a complaint).
    """
    negated: set[int] = set()
    n = len(tokens)
    for i, tok in enumerate(tokens):
        if tok not in RISK_NEGATORS:
            continue
        for j in range(i + 1, min(i + 1 + window, n)):
            nxt = tokens[j]
            if not nxt.strip() or not any(ch.isalnum() for ch in nxt) or nxt in SCOPE_BREAKERS:
                break
            if nxt in RISK_NEGATORS:
                break  # double negation or a new negator: let that one speak
            if nxt in COMPLAINT_WHEN_NEGATED:
                continue
            negated.add(j)
    return negated


def negated_spans(tokens: Sequence[str], window: int = NEGATION_WINDOW) -> list[tuple[int, int]]:
    """Half-open token index ranges ``(start, end)`` that are negated (see `negated_indices`).

    ``negated_spans(["不是", "骗子"]) == [(1, 2)]``; a risk word at index k is negated when
    ``any(s <= k < e for s, e in spans)``.
    """
    spans: list[tuple[int, int]] = []
    for idx in sorted(negated_indices(tokens, window)):
        if spans and spans[-1][1] == idx:
            spans[-1] = (spans[-1][0], idx + 1)
        else:
            spans.append((idx, idx + 1))
    return spans


def sentiment_features(squeezed: str) -> set[str]:
    """Binary features of the sentiment model for squeezed text (`TextNormalizer.squeeze`).

    Characters, "#"+character bigrams, and "!"+character for the SENTIMENT_NEGATION_WINDOW
    characters after a negator (不/没/别/未): "不太好" -> {不, 太, 好, #不太, #太好, !太, !好}.
    Shared by the run-time scorer and the training script.
    """
    feats = set(squeezed)
    n = len(squeezed)
    for i in range(n - 1):
        feats.add("#" + squeezed[i : i + 2])
    if not feats.isdisjoint(SENTIMENT_NEGATORS):
        for i, ch in enumerate(squeezed):
            if ch in SENTIMENT_NEGATORS:
                for j in range(i + 1, min(i + 1 + SENTIMENT_NEGATION_WINDOW, n)):
                    feats.add("!" + squeezed[j])
    return feats


@runtime_checkable
class SentimentScorer(Protocol):
    """Anything that maps text to P(positive) in [0, 1]."""

    name: str

    def score(self, text: str) -> float: ...


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-min(z, 50.0)))
    e = math.exp(max(z, -50.0))
    return e / (1.0 + e)


class LogRegScorer:
    """Logistic regression over `sentiment_features`, loaded from a gzipped JSON model.

    Needs no jieba: the features are characters of the squeezed text, so a message costs one
    normalization plus ~100 dict lookups.
    """

    name = "logreg"

    def __init__(self, normalizer: TextNormalizer | None = None, model_path: str | Path | None = None) -> None:
        self._normalizer = normalizer or TextNormalizer()
        self.model_path = Path(model_path) if model_path else DEFAULT_MODEL_PATH
        self._weights: dict[str, float] | None = None
        self._bias = 0.0
        self.meta: dict[str, Any] = {}
        self._lock = threading.Lock()

    def load(self) -> None:
        """Read the model (idempotent). Raises FileNotFoundError/ValueError for a bad model file."""
        if self._weights is not None:
            return
        with self._lock:
            if self._weights is not None:
                return
            with gzip.open(self.model_path, "rt", encoding="utf-8") as fh:
                model = json.load(fh)
            if not isinstance(model, dict) or model.get("format") != MODEL_FORMAT:
                raise ValueError(f"{self.model_path}: not a {MODEL_FORMAT} model")
            self._bias = float(model["bias"])
            self.meta = dict(model.get("meta", {}))
            self._weights = {str(k): float(v) for k, v in model["weights"].items()}

    @property
    def n_features(self) -> int:
        self.load()
        assert self._weights is not None
        return len(self._weights)

    def score_features(self, feats: set[str]) -> float:
        if self._weights is None:
            self.load()
        get = self._weights.get  # type: ignore[union-attr]
        z = self._bias
        hit = False
        for feat in feats:
            w = get(feat)
            if w is not None:
                z += w
                hit = True
        return _sigmoid(z) if hit else 0.5

    def score_tokens(self, tokens: Sequence[str]) -> float:
        """Score jieba tokens of a text (as `NlpService.tokenize` returns them)."""
        return self.score("".join(tokens))

    def score(self, text: str) -> float:
        if not text:
            return 0.5
        return self.score_features(sentiment_features(self._normalizer.squeeze(text[:MAX_SENTIMENT_CHARS])))


class SnowNlpScorer:
    """Stock `SnowNLP(text).sentiments` (~5.6 ms/message, +400 MB RSS on import): comparison only."""

    name = "snownlp"

    def __init__(self) -> None:
        self._snownlp: Callable[[str], Any] | None = None

    def score(self, text: str) -> float:
        if self._snownlp is None:
            from snownlp import SnowNLP  # lazy: loads every snownlp model

            self._snownlp = SnowNLP
        if not text or not text.strip():
            return 0.5
        try:
            return float(self._snownlp(text).sentiments)
        except ZeroDivisionError:  # snownlp fails on text without any word it can segment
            return 0.5

    def score_tokens(self, tokens: Sequence[str]) -> float:
        return self.score("".join(tokens))


def create_scorer(
    name: str,
    *,
    normalizer: TextNormalizer | None = None,
    model_path: str | Path | None = None,
) -> SentimentScorer:
    """Build a scorer by name; ValueError listing SCORER_NAMES for an unknown name."""
    if name == "logreg":
        return LogRegScorer(normalizer, model_path)
    if name == "snownlp":
        return SnowNlpScorer()
    raise ValueError(f"unknown sentiment scorer {name!r}; valid names: {', '.join(SCORER_NAMES)}")


def import_jieba() -> Any:
    """``import jieba`` without the pkg_resources import jieba does only to locate its data files.

    pkg_resources costs ~5 MB and ~0.15 s; without it jieba opens its files next to its modules, which
    is where they are for any non-zipped install. Another module may still import pkg_resources later.
    """
    if "jieba" in sys.modules or "pkg_resources" in sys.modules:
        import jieba

        return jieba
    sys.modules["pkg_resources"] = None  # type: ignore[assignment]  # makes `import pkg_resources` raise
    try:
        import jieba
    finally:
        if sys.modules.get("pkg_resources", 0) is None:
            del sys.modules["pkg_resources"]
    return jieba


def load_main_dict(tok: jieba.Tokenizer, path: str | Path) -> None:
    """Fill ``tok`` with the prefix dict of a jieba-format dictionary (plain or .gz), without the cache
    file ``Tokenizer.initialize`` keeps in the temp directory (shared by every user of the machine, and
    trusted when newer than the dictionary): the shipped dictionary builds in ~0.4 s without it."""
    path = Path(path)
    fh = gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115 - gen_pfdict closes it
    with tok.lock:
        tok.FREQ, tok.total = tok.gen_pfdict(fh)
        tok.dictionary = str(path)
        tok.initialized = True


def read_user_dict(path: str | Path) -> list[tuple[str, int | None, str | None]]:
    """Parse a jieba-style user dictionary: ``word [freq] [tag]`` per line, ``#`` comments."""
    entries: list[tuple[str, int | None, str | None]] = []
    with open(path, encoding="utf-8-sig") as fh:
        for raw in fh:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            word, freq, tag = parts[0], None, None
            for extra in parts[1:3]:
                if extra.isdigit():
                    freq = int(extra)
                else:
                    tag = extra
            entries.append((word, freq, tag))
    return entries


class NlpService:
    """Normalizer + private jieba tokenizer + sentiment scorer, built once per App."""

    def __init__(
        self,
        scorer: str = DEFAULT_SCORER,
        user_dict: str | Path | None = None,
        model_path: str | Path | None = None,
        *,
        normalizer: TextNormalizer | None = None,
        main_dict: str | Path | None = None,
    ) -> None:
        """``main_dict``: jieba main dictionary (default the shipped DEFAULT_MAIN_DICT; jieba's own
        dict.txt gives the full ~349k words for ~50 MB more)."""
        if scorer not in SCORER_NAMES:
            raise ValueError(f"unknown sentiment scorer {scorer!r}; valid names: {', '.join(SCORER_NAMES)}")
        self.normalizer: TextNormalizer = normalizer or TextNormalizer()
        self.scorer_name = scorer
        self.user_dict = Path(user_dict) if user_dict else None
        self.main_dict = Path(main_dict) if main_dict else DEFAULT_MAIN_DICT
        self.model_path = Path(model_path) if model_path else None
        self._tokenizer: jieba.Tokenizer | None = None
        self._scorer: SentimentScorer | None = None
        self._lock = threading.Lock()

    # --- jieba
    @property
    def tokenizer(self) -> jieba.Tokenizer:
        """The private, initialized jieba tokenizer (built on first use: ~0.4 s, ~14 MB)."""
        tok = self._tokenizer
        if tok is None:
            with self._lock:
                if self._tokenizer is None:
                    self._tokenizer = self._build_tokenizer()
                tok = self._tokenizer
        return tok

    def _build_tokenizer(self) -> jieba.Tokenizer:
        jieba = import_jieba()
        logging.getLogger("jieba").setLevel(logging.WARNING)  # jieba logs init chatter to stderr
        tok = jieba.Tokenizer()
        load_main_dict(tok, self.main_dict)
        for path in (DEFAULT_USER_DICT, self.user_dict):
            if path is None:
                continue
            for word, freq, tag in read_user_dict(path):
                tok.add_word(self.normalizer.normalize(word), freq, tag)
        return tok

    def tokenize(self, text: str) -> list[str]:
        """Jieba words (HMM off) of the normalized text, whitespace tokens dropped."""
        norm = self.normalizer.normalize(text)
        if not norm:
            return []
        return [w for w in self.tokenizer.lcut(norm, HMM=False) if not w.isspace()]

    # --- sentiment
    @property
    def scorer(self) -> SentimentScorer:
        sc = self._scorer
        if sc is None:
            with self._lock:
                if self._scorer is None:
                    self._scorer = create_scorer(
                        self.scorer_name, normalizer=self.normalizer, model_path=self.model_path
                    )
                sc = self._scorer
        return sc

    def sentiment(self, text: str) -> float:
        """P(positive) in [0, 1]; 0.5 when the text carries no known feature."""
        return self.scorer.score(text)

    def sentiment_tokens(self, tokens: Sequence[str]) -> float:
        """Like `sentiment` for callers that already hold `tokenize(text)`."""
        sc = self.scorer
        by_tokens = getattr(sc, "score_tokens", None)
        if by_tokens is not None:
            return float(by_tokens(tokens))
        return sc.score("".join(tokens))

    # --- helpers
    def is_question(self, text: str) -> bool:
        return is_question(self.normalizer.normalize(text))

    def negated_spans(self, tokens: Sequence[str]) -> list[tuple[int, int]]:
        return negated_spans(tokens)

    # --- lifecycle
    def warm_up(self) -> None:
        """Build the tokenizer and load the model now (call once at start-up, off the event loop)."""
        _ = self.tokenizer
        sc = self.scorer
        load = getattr(sc, "load", None)
        if load is not None:
            load()

    async def warm_up_async(self) -> None:
        """`warm_up` in a worker thread, so the event loop keeps serving while jieba loads."""
        await asyncio.to_thread(self.warm_up)
