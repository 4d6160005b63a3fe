"""The FAQ matcher: pure, aiogram-free, no I/O.

One ``ChatMatcher`` per chat holds a pyahocorasick automaton over the *match form* of every literal
keyword (contains, exact and word mode) plus a short fallback list of compiled regexes. It is built
once when a chat's FAQ set is first needed and rebuilt only when the set changes.

Match form (``match_form``): the normalizer's output (NFKC, traditional -> simplified, case-folded)
with punctuation, symbols, emoji and whitespace removed, except that one space is kept between two
ASCII letters/digits so Latin words keep their boundaries: "怎麼 退貨？" -> "怎么退货",
"How  to buy iPhone 15?" -> "how to buy iphone 15".

Which entry wins when several match (one answer per message), highest first:
1. the longest matched keyword (in match-form characters); a keyword equal to the whole message is
   the longest possible, so an ``exact`` hit always wins;
2. on equal length, the stricter mode: exact > word > contains;
3. then the keyword that starts earliest in the message;
4. then the oldest entry (lowest id).
Regex entries are a fallback: they are tried, oldest first, only when no keyword matched.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick

CONTAINS, EXACT, WORD, REGEX = "contains", "exact", "word", "regex"
MODES: tuple[str, ...] = (CONTAINS, EXACT, WORD, REGEX)
_MODE_RANK = {CONTAINS: 1, WORD: 2, EXACT: 3}

# Keywords and patterns
MAX_KEYWORD_CHARS = 100
MAX_PATTERN_CHARS = 200
# Regexes see at most this many characters of a message (a bound on any super-linear pattern).
MAX_REGEX_INPUT = 500
# Validation probe: a pattern slower than this on the probe strings is refused.
PROBE_BUDGET_S = 0.005
REGEX_PREFIX = "regex:"

_NOISE_RE = re.compile(r"[\W_]+")
# A space survives only between two ASCII letters/digits.
_LOOSE_SPACE_RE = re.compile(r"(?<![0-9a-z]) | (?![0-9a-z])")
_ASCII_ALNUM = frozenset("0123456789abcdefghijklmnopqrstuvwxyz")


class FaqError(ValueError):
    """A bad keyword, pattern or reply; ``str(exc)`` is a zh_CN msgid, ``detail`` is appended verbatim."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


def match_form(normalized: str) -> str:
    """Match form of already-normalized text (see the module doc)."""
    s = _NOISE_RE.sub(" ", normalized).strip()
    if " " in s:
        s = _LOOSE_SPACE_RE.sub("", s)
    return s


# ---- regex validation -------------------------------------------------------------------------
try:  # Python 3.11+: the parser behind `re`; used only to inspect a pattern's structure.
    import re._constants as _sre_c
    import re._parser as _sre_p
except ImportError:  # pragma: no cover - older Pythons
    import sre_constants as _sre_c  # type: ignore[no-redef]
    import sre_parse as _sre_p  # type: ignore[no-redef]

_REPEATS = {_sre_c.MAX_REPEAT, _sre_c.MIN_REPEAT} | (
    {_sre_c.POSSESSIVE_REPEAT} if hasattr(_sre_c, "POSSESSIVE_REPEAT") else set()
)
_MAX_UNBOUNDED = 4


def prepare_pattern(pattern: str, normalize_char: Callable[[str], str]) -> str:
    """Normalize the non-ASCII characters of a pattern like message text (traditional and
    full-width forms), escaping what becomes an ASCII metacharacter ("？" -> "\\?")."""
    out: list[str] = []
    for ch in pattern:
        if ch.isascii():
            out.append(ch)
            continue
        norm = normalize_char(ch)
        out.append(re.escape(norm) if norm.isascii() else norm)
    return "".join(out)


def _check_tree(items: Any, under_repeat: bool, counter: list[int]) -> None:
    for op, av in items:
        if op in _REPEATS:
            lo, hi, sub = av
            repeats = hi > 1
            if repeats and hi == _sre_c.MAXREPEAT:
                counter[0] += 1
            if repeats and lo != hi and under_repeat:
                raise FaqError("正则表达式含有嵌套的重复（如 (a+)+），可能极慢，已拒绝。")
            if repeats and _has_ambiguous_branch(sub):
                raise FaqError("正则表达式在重复里有可能重叠的分支（如 (a|ab)*），可能极慢，已拒绝。")
            _check_tree(sub, under_repeat or repeats, counter)
        elif op == _sre_c.SUBPATTERN:
            _check_tree(av[-1], under_repeat, counter)
        elif op == _sre_c.BRANCH:
            for branch in av[1]:
                _check_tree(branch, under_repeat, counter)
        elif op in (_sre_c.ASSERT, _sre_c.ASSERT_NOT):
            _check_tree(av[1], under_repeat, counter)
        elif op in (_sre_c.GROUPREF, _sre_c.GROUPREF_EXISTS):
            raise FaqError("正则表达式不支持反向引用。")
        elif hasattr(_sre_c, "ATOMIC_GROUP") and op == _sre_c.ATOMIC_GROUP:
            _check_tree(av, under_repeat, counter)


def _has_ambiguous_branch(items: Any) -> bool:
    """An alternation directly under a repeat whose branches do not all start with distinct literals."""
    for op, av in items:
        if op == _sre_c.SUBPATTERN:
            if _has_ambiguous_branch(av[-1]):
                return True
        elif op == _sre_c.BRANCH:
            firsts: list[int] = []
            for branch in av[1]:
                if not branch or branch[0][0] != _sre_c.LITERAL:
                    return True
                firsts.append(branch[0][1])
            if len(set(firsts)) != len(firsts):
                return True
    return False


def _probe_bases(pattern: str) -> list[str]:
    literals = sorted({ch for ch in pattern if ch.isalnum()})[:8]
    return ["a", "1", " ", "中", "".join(literals) or "a", *literals]


def _probe(compiled: re.Pattern[str], pattern: str) -> None:
    """Time the pattern on growing adversarial strings; stop at the first one over budget, so a
    super-linear pattern costs at most a few budgets before it is refused."""
    bases = _probe_bases(pattern)
    for size in (10, 20, 40, 80):
        for base in bases:
            for probe in ((base * size)[:size], (base * size)[:size] + "!"):
                started = time.perf_counter()
                compiled.search(probe)
                if time.perf_counter() - started > PROBE_BUDGET_S:
                    raise FaqError("正则表达式在测试文本上太慢，已拒绝。")


def compile_pattern(pattern: str, normalize_char: Callable[[str], str] | None = None) -> re.Pattern[str]:
    """Validate and compile a regex keyword. Raises FaqError with a clear reason.

    Guards: length limit, no backreferences, no nested variable-width repeats ((a+)+, (\\w+\\s?)*), no
    ambiguous alternation under a repeat ((a|ab)*), at most 4 unbounded repeats, and a timing probe
    on adversarial strings; at run time a regex sees at most MAX_REGEX_INPUT characters.
    """
    pattern = pattern.strip()
    if not pattern:
        raise FaqError("正则表达式不能为空。")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise FaqError("正则表达式太长（最多 200 个字符）。")
    prepared = prepare_pattern(pattern, normalize_char) if normalize_char else pattern
    try:
        compiled = re.compile(prepared, re.IGNORECASE)
        tree = _sre_p.parse(prepared, re.IGNORECASE)
    except re.error as exc:
        raise FaqError("正则表达式有误：", f"{exc.msg} (pos {exc.pos})") from exc
    except (RecursionError, OverflowError) as exc:
        raise FaqError("正则表达式太复杂。") from exc
    counter = [0]
    _check_tree(tree, False, counter)
    if counter[0] > _MAX_UNBOUNDED:
        raise FaqError("正则表达式里无上限的重复太多（最多 4 个）。")
    if compiled.search(""):
        raise FaqError("这个正则表达式能匹配空消息，会回复所有消息，已拒绝。")
    _probe(compiled, pattern)
    return compiled


# ---- the matcher -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EntryData:
    """What answering needs, cached with the automaton (no DB query per message)."""

    id: int
    mode: str
    keywords: tuple[str, ...]
    norms: tuple[str, ...]
    reply_html: str
    buttons: tuple[tuple[tuple[str, str], ...], ...] = ()
    media_type: str | None = None
    media_file_id: str | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    entry: EntryData
    keyword: str  # match form (or the pattern for regex)
    start: int = 0


@dataclass
class ChatMatcher:
    entries: dict[int, EntryData] = field(default_factory=dict)
    automaton: Any = None
    regexes: list[tuple[re.Pattern[str], EntryData]] = field(default_factory=list)
    has_word_entries: bool = False
    revision: int = 0

    @classmethod
    def build(
        cls,
        entries: Iterable[EntryData],
        *,
        compile_regex: Callable[[str], re.Pattern[str]] | None = None,
        revision: int = 0,
    ) -> ChatMatcher:
        compile_regex = compile_regex or _compile_stored
        m = cls(revision=revision)
        automaton = ahocorasick.Automaton()
        words = 0
        for entry in sorted(entries, key=lambda e: e.id):
            m.entries[entry.id] = entry
            if entry.mode == REGEX:
                for norm in entry.norms:
                    try:
                        m.regexes.append((compile_regex(norm.removeprefix(REGEX_PREFIX)), entry))
                    except FaqError:
                        continue  # validated when stored; a pattern that no longer compiles is skipped
                continue
            if entry.mode == WORD:
                m.has_word_entries = True
            for norm in entry.norms:
                if not norm or norm in automaton:
                    continue
                automaton.add_word(
                    norm,
                    (entry, norm, len(norm), _MODE_RANK.get(entry.mode, 1),
                     norm[0] in _ASCII_ALNUM, norm[-1] in _ASCII_ALNUM),
                )
                words += 1
        if words:
            automaton.make_automaton()
            m.automaton = automaton
        return m

    def __len__(self) -> int:
        return len(self.entries)

    def match(
        self,
        form: str,
        normalized: str,
        word_bounds: Callable[[str], set[int]] | None = None,
    ) -> Hit | None:
        """The winning entry for a message, given its match form and its normalized text.

        ``word_bounds(form)`` returns the token boundary offsets of ``form`` (jieba); it is called
        only when a word-mode keyword hit could win.
        """
        best: tuple[int, int, int, int] | None = None
        best_hit: Hit | None = None
        automaton = self.automaton
        if automaton is not None and form:
            n = len(form)
            last = n - 1
            pending: list[tuple[tuple[int, int, int, int], int, int, EntryData, str]] | None = None
            for end, (entry, norm, length, rank, ascii_start, ascii_end) in automaton.iter(form):
                start = end - length + 1
                if rank == 3:  # exact: the keyword must be the whole message
                    if start or end != last:
                        continue
                else:
                    if ascii_start and start and form[start - 1] in _ASCII_ALNUM:
                        continue
                    if ascii_end and end != last and form[end + 1] in _ASCII_ALNUM:
                        continue
                key = (length, rank, -start, -entry.id)
                if rank == 2:  # word: verify with jieba later, only if it could win
                    if pending is None:
                        pending = []
                    pending.append((key, start, end + 1, entry, norm))
                    continue
                if best is None or key > best:
                    best, best_hit = key, Hit(entry, norm, start)
            if pending:
                contenders = sorted((p for p in pending if best is None or p[0] > best), key=lambda p: p[0],
                                    reverse=True)
                if contenders and word_bounds is not None:
                    bounds = word_bounds(form)
                    for key, start, stop, entry, norm in contenders:
                        if start in bounds and stop in bounds:
                            best, best_hit = key, Hit(entry, norm, start)
                            break
        if best_hit is None and self.regexes:
            text = normalized[:MAX_REGEX_INPUT]
            for rx, entry in self.regexes:
                if rx.search(text) is not None:
                    return Hit(entry, rx.pattern, 0)
        return best_hit


def _compile_stored(pattern: str) -> re.Pattern[str]:
    """Stored patterns were validated (and prepared) when saved: compile without the probe."""
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise FaqError("正则表达式有误：", str(exc)) from exc


def token_bounds(form: str, tokens: Sequence[str]) -> set[int]:
    """Offsets in ``form`` where a token starts or ends (tokens are jieba words of ``form``)."""
    bounds = {0, len(form)}
    pos = 0
    for tok in tokens:
        idx = form.find(tok, pos)
        if idx < 0:
            continue
        bounds.add(idx)
        pos = idx + len(tok)
        bounds.add(pos)
    return bounds
