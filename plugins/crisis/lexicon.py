"""The risk lexicon and the per-message analysis.

``Lexicon`` compiles the built-in categories plus the ops' extensions into one pyahocorasick automaton
(built once per distinct lexicon config and shared by every chat using it). ``analyze`` runs it over
the normalized text of a message (traditional script, full-width forms and case folded away), then,
only for messages with hits, decides for each hit whether it is negated ("不是骗子", "没有过敏": jieba
tokens of the surrounding text + ``NlpService.negated_spans``), sits in a question ("会过敏吗":
``NlpService.is_question`` on the clause holding the hit) or talks about another shop ("别的平台").
Messages without hits cost one normalization, one automaton pass and one sentiment call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import ahocorasick

if TYPE_CHECKING:
    from bot.nlp import NlpService

# Built-in categories: (weight, words). Words are normalized when the automaton is built.
BUILTIN_CATEGORIES: dict[str, tuple[float, tuple[str, ...]]] = {
    "complaint": (1.0, (
        "投诉", "差评", "给差评", "打差评", "恶评", "太差劲", "差劲", "态度恶劣", "态度极差", "服务太差", "质量太差",
        "垃圾产品", "垃圾质量", "垃圾店", "什么垃圾", "黑店", "坑人", "坑爹", "被坑", "上当", "上当受骗", "没人管",
        "没人理", "不回消息", "不理人", "敷衍", "忽悠", "失望透顶", "太失望", "恶心", "霸王条款", "欺负消费者",
        "智商税", "货不对板", "以次充好", "缺斤少两", "质量问题", "有质量问题",
    )),
    "refund": (1.5, (
        "退款", "退货", "退钱", "退货退款", "不发货", "没发货", "还没发货", "迟迟不发货", "拒绝退款", "不给退",
        "不退款", "拒不退款", "要求退款", "申请退款", "全额退款", "赔偿", "要求赔偿", "赔钱", "退一赔三", "假一赔十",
        "少发", "漏发", "发错货", "破损", "仅退款", "拒收",
    )),
    "legal": (2.5, (
        "315", "12315", "12345", "律师", "起诉", "告你们", "工商", "工商局", "消协", "消费者协会", "市场监管",
        "市场监督管理局", "市监局", "法院", "打官司", "走法律程序", "法律途径", "立案", "仲裁", "报警", "黑猫投诉",
        "举报", "集体诉讼", "记者", "媒体",
    )),
    "safety": (3.0, (
        "过敏", "中毒", "食物中毒", "烂脸", "脸烂", "受伤", "送医", "起疹子", "红疹", "疹子", "红肿", "刺痛",
        "灼伤", "烧伤", "烫伤", "发炎", "溃烂", "化脓", "拉肚子", "腹泻", "呕吐", "上吐下泻", "吃坏肚子", "异物",
        "发霉", "变质", "有毒", "致癌", "激素脸", "重金属超标", "划伤", "割伤", "漏电", "触电", "爆炸", "起火",
        "住院", "急诊", "就医", "过期食品",
    )),
    "fraud": (2.5, (
        "骗子", "骗人", "诈骗", "骗局", "骗钱", "被骗", "假货", "高仿", "山寨货", "冒牌", "曝光", "维权", "割韭菜",
        "跑路", "卷款", "圈钱", "黑心", "无良商家", "虚假宣传", "传销", "杀猪盘", "避雷", "大家别买", "千万别买",
        "都别买", "上热搜", "发微博", "挂你们", "挂出来",
    )),
    # The emergency itself: light on its own, it opens level 2 at once together with a safety word
    # (instant combinations).
    "emergency": (1.0, (
        "报警", "送医", "住院", "急诊", "抢救", "打120", "叫120", "120急救", "救护车", "icu",
        "重症", "昏迷", "休克", "出人命", "死人", "窒息", "打110",
    )),
}  # fmt: skip

# Weight factor of a hit inside a question. Asking "会过敏吗" / "是骗子吗" is not an accusation;
# "退款呢？" / "什么时候发货？" still carries some complaint.
DEFAULT_QUESTION_FACTORS: dict[str, float] = {
    "complaint": 0.3, "refund": 0.3, "legal": 0.25, "safety": 0.1, "fraud": 0.1, "emergency": 0.1,
}  # fmt: skip
DEFAULT_QUESTION_FACTOR = 0.25

# A message about somewhere else or passing on hearsay ("上次在别的平台买到假货", "网上骗子太多了",
# "新闻说某店食物中毒", "有人说这家是骗子") is gossip, not a first-hand accusation against this shop.
DEFAULT_ELSEWHERE_WORDS: tuple[str, ...] = (
    "别的平台", "其他平台", "别家", "别人家", "其他家", "别的店", "其他店", "别的群", "其他群", "外面买", "网上",
    "新闻", "有人说", "听说", "据说", "网传",
)  # fmt: skip

# Clause terminators: the question test looks at the clause holding a hit.
_CLAUSE_END = frozenset("。！？!?\n；;…~,，")
# How much text left of a hit is tokenized to find a negator ("并不是" + a word or two).
_NEG_LEFT = 8
_NEG_RIGHT = 2


def _ascii_alnum(ch: str) -> bool:
    return ch.isascii() and ch.isalnum()


@dataclass(frozen=True)
class Hit:
    word: str
    categories: tuple[str, ...]
    start: int
    end: int
    negated: bool = False
    question: bool = False
    elsewhere: bool = False


@dataclass
class Analysis:
    """What the crisis observer keeps of one message."""

    sentiment: float
    negative: bool
    positive: bool
    hits: list[Hit] = field(default_factory=list)
    # Effective risk weight per category (max over the message's hits in it).
    weights: dict[str, float] = field(default_factory=dict)
    # Keywords that counted (not negated).
    keywords: tuple[str, ...] = ()
    instant: bool = False
    fingerprint: int = 0

    @property
    def risk(self) -> float:
        return sum(self.weights.values())


class Lexicon:
    """Words -> categories in one Aho-Corasick automaton over normalized text."""

    def __init__(
        self,
        categories: Mapping[str, tuple[float, Iterable[str]]],
        normalize: Callable[[str], str] = str.casefold,
    ) -> None:
        self.weights: dict[str, float] = {}
        word_cats: dict[str, list[str]] = {}
        for name, (weight, words) in categories.items():
            self.weights[name] = float(weight)
            for raw in words:
                word = normalize(raw.strip())
                if not word:
                    continue
                cats = word_cats.setdefault(word, [])
                if name not in cats:
                    cats.append(name)
        self.words: dict[str, tuple[str, ...]] = {w: tuple(c) for w, c in word_cats.items()}
        self._automaton: ahocorasick.Automaton | None = None
        if self.words:
            automaton = ahocorasick.Automaton()
            for word, cats in self.words.items():
                automaton.add_word(word, (word, cats))
            automaton.make_automaton()
            self._automaton = automaton

    @classmethod
    def from_config(
        cls,
        category_weights: Mapping[str, float],
        extra_words: Mapping[str, Sequence[str]],
        ignore_words: Sequence[str],
        normalize: Callable[[str], str] = str.casefold,
    ) -> Lexicon:
        ignored = {normalize(w.strip()) for w in ignore_words}
        cats: dict[str, tuple[float, list[str]]] = {}
        for name, (weight, words) in BUILTIN_CATEGORIES.items():
            cats[name] = (category_weights.get(name, weight), [w for w in words if normalize(w) not in ignored])
        for name, words in extra_words.items():
            weight, current = cats.get(name, (category_weights.get(name, 1.0), []))
            cats[name] = (weight, current + [w for w in words if normalize(w.strip()) not in ignored])
        return cls(cats, normalize)

    def __len__(self) -> int:
        return len(self.words)

    def find(self, text: str) -> list[Hit]:
        """Longest non-overlapping matches; a word starting/ending with an ASCII letter or digit must not
        continue an ASCII run ("315" is not found in "12315" or "3150元")."""
        if self._automaton is None or not text:
            return []
        found: list[tuple[int, int, str, tuple[str, ...]]] = []
        n = len(text)
        for end_idx, (word, cats) in self._automaton.iter(text):
            start = end_idx - len(word) + 1
            end = end_idx + 1
            if _ascii_alnum(word[0]) and start > 0 and _ascii_alnum(text[start - 1]):
                continue
            if _ascii_alnum(word[-1]) and end < n and _ascii_alnum(text[end]):
                continue
            found.append((start, end, word, cats))
        if not found:
            return []
        found.sort(key=lambda m: (m[0], -(m[1] - m[0])))
        hits: list[Hit] = []
        last_end = -1
        for start, end, word, cats in found:
            if start < last_end:  # overlaps a longer (or earlier) match
                continue
            hits.append(Hit(word, cats, start, end))
            last_end = end
        return hits


@dataclass(frozen=True)
class AnalysisParams:
    category_weights: Mapping[str, float]
    question_factors: Mapping[str, float]
    instant_combos: tuple[tuple[str, ...], ...]
    negative_threshold: float = 0.35
    positive_threshold: float = 0.6
    neutral_factor: float = 0.7
    positive_factor: float = 0.3
    max_chars: int = 600
    elsewhere_words: tuple[str, ...] = DEFAULT_ELSEWHERE_WORDS
    elsewhere_factor: float = 0.3


def _clause(text: str, start: int, end: int) -> str:
    """The clause holding ``text[start:end]`` with its terminators (so "会过敏吗？" keeps its "？")."""
    left = start
    while left > 0 and text[left - 1] not in _CLAUSE_END:
        left -= 1
    right = end
    n = len(text)
    while right < n and text[right] not in _CLAUSE_END:
        right += 1
    while right < n and text[right] in _CLAUSE_END:
        right += 1
    return text[left:right]


def _is_question(nlp: NlpService, clause: str) -> bool:
    stripped = clause.rstrip()
    # "为什么还不退款！" is a demand, not a question: an exclamation ends it.
    if stripped and stripped[-1] in "!！" and "?" not in stripped and "？" not in stripped:
        return False
    return nlp.is_question(clause)


# Every negator of NlpService.negated_spans (不是, 没有, 并非, 别担心, 无 ...) holds one of these
# characters: without one left of a hit there is nothing to tokenize.
_NEGATOR_CHARS = frozenset("不没非无未别")


def _negated(nlp: NlpService, text: str, hit: Hit) -> bool:
    """Whether the hit's first token sits in a negated span of the tokens around it."""
    left = max(0, hit.start - _NEG_LEFT)
    # Do not look across a clause boundary for the negator.
    for i in range(hit.start - 1, left - 1, -1):
        if text[i] in _CLAUSE_END:
            left = i + 1
            break
    if left == hit.start or _NEGATOR_CHARS.isdisjoint(text[left : hit.start]):
        return False
    snippet = text[left : min(len(text), hit.end + _NEG_RIGHT)]
    tokens = nlp.tokenize(snippet)
    if len(tokens) < 2:
        return False
    # Token offsets in the snippet (tokenize drops whitespace tokens).
    target = hit.start - left
    pos = 0
    index = None
    for i, tok in enumerate(tokens):
        at = snippet.find(tok, pos)
        if at < 0:
            return False
        if at <= target < at + len(tok):
            index = i
            break
        pos = at + len(tok)
    if index is None:
        return False
    return any(s <= index < e for s, e in nlp.negated_spans(tokens))


def analyze(nlp: NlpService, lexicon: Lexicon, params: AnalysisParams, text: str) -> Analysis:
    """Sentiment, risk hits (with negation and questions) and effective weights of one message."""
    text = text[: params.max_chars]
    norm = nlp.normalizer.normalize(text)
    if not norm or norm.isspace():
        return Analysis(sentiment=0.5, negative=False, positive=False)
    squeezed = nlp.normalizer.strip(norm)
    if not squeezed:  # emoji, punctuation only
        return Analysis(sentiment=0.5, negative=False, positive=False, fingerprint=hash(norm))
    p = nlp.sentiment(norm)
    negative = p < params.negative_threshold
    positive = p >= params.positive_threshold
    result = Analysis(sentiment=p, negative=negative, positive=positive, fingerprint=hash(squeezed))
    raw_hits = lexicon.find(norm)
    if not raw_hits:
        return result
    mood = 1.0 if negative else (params.positive_factor if positive else params.neutral_factor)
    elsewhere = any(w in norm for w in params.elsewhere_words)
    hits: list[Hit] = []
    weights: dict[str, float] = {}
    keywords: list[str] = []
    firm: dict[str, set[str]] = {}  # category -> words of hits that are neither negated nor questions
    for raw in raw_hits:
        negated = _negated(nlp, norm, raw)
        clause = _clause(norm, raw.start, raw.end)
        question = not negated and _is_question(nlp, clause)
        hit = Hit(raw.word, raw.categories, raw.start, raw.end, negated, question, elsewhere and not negated)
        hits.append(hit)
        if negated:
            continue
        keywords.append(hit.word)
        for cat in hit.categories:
            w = params.category_weights.get(cat, 1.0) * mood
            if elsewhere:
                w *= params.elsewhere_factor
            if question:
                w *= params.question_factors.get(cat, DEFAULT_QUESTION_FACTOR)
            elif not elsewhere:
                firm.setdefault(cat, set()).add(hit.word)
            if w > weights.get(cat, 0.0):
                weights[cat] = w
    result.hits = hits
    result.weights = weights
    result.keywords = tuple(dict.fromkeys(keywords))
    if not positive:
        for combo in params.instant_combos:
            if all(cat in firm for cat in combo):
                words = set().union(*(firm[cat] for cat in combo))
                if len(words) >= min(2, len(combo)):
                    result.instant = True
                    break
    return result
