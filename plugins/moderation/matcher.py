"""Banned-word matching: normalized text against a pyahocorasick automaton (built once per chat).

Words are literal, never patterns. A word of letters and digits is matched on the ``squeeze``d message
(trad -> simp, full-width -> half-width, case-folded, spaces, punctuation, emoji and zero-width
characters removed), so "骗 子", "骗*子", "骗\u200b子" and "騙子" all hit "骗子". A word that itself contains
symbols ("a.*b", "[x]+", "🔞福利") is matched literally on the normalized message with only whitespace
and invisible characters removed: "a.*b" hits "A .* B" but never "axxb" or "ab".
Optional pinyin matching catches spelled-out evasions ("pianzi", "Pian Zi"): the word's pinyin letters
are looked for in the Latin letters of the message (at least ``MIN_PINYIN`` of them, to avoid noise).
With homophones on, sound-alike characters ("骗紫") are caught too: the message is converted to pinyin
syllables and the word's syllables must match whole syllables (so "pian zi" never matches inside
"... pian" + "zi ..." of two unrelated words). That costs a pypinyin call per message: off by default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import ahocorasick

from plugins.moderation.parsing import Action

MIN_PINYIN = 4
_CJK_RE = re.compile(r"[\u3400-\u9fff]")
# Whitespace and invisible characters (zero-width, joiners, direction marks, variation selectors).
_INVISIBLE_RE = re.compile(
    r"[\s\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    r"\u3164\ufe00-\ufe0f\ufeff]+"
)


class Normalizer(Protocol):
    def normalize(self, text: str) -> str: ...
    def strip(self, normalized: str) -> str: ...
    def pinyin(self, text: str) -> str: ...


@dataclass(frozen=True)
class WordEntry:
    word: str  # as the admin typed it
    action: Action
    origin: str = "chat"  # chat | config | file


@dataclass(frozen=True)
class Hit:
    entry: WordEntry
    via: str  # text | symbols | pinyin


def _syllable_key(syllables: list[str]) -> str:
    return " " + " ".join(syllables) + " "


def visible(normalized: str) -> str:
    return _INVISIBLE_RE.sub("", normalized)


def word_form(normalizer: Normalizer, word: str) -> tuple[str, bool]:
    """(key, literal): the squeezed form for plain words; the visible normalized form for words with
    symbols (literal=True). The key is "" for a word of only whitespace/invisible characters."""
    normalized = normalizer.normalize(word)
    squeezed = normalizer.strip(normalized)
    shown = visible(normalized)
    if squeezed == shown:
        return squeezed, False
    return shown, True


def word_key(normalizer: Normalizer, word: str) -> str:
    """The form a word is stored (one entry per key) and matched under."""
    return word_form(normalizer, word)[0]


def _automaton(pairs: Iterable[tuple[str, WordEntry]]) -> Any | None:
    auto = ahocorasick.Automaton()
    count = 0
    for key, entry in pairs:
        existing = auto.get(key, None)
        # Two words with one key (骗子 and 騙子): keep the stronger action.
        if existing is None or entry.action.rank > existing.action.rank:
            auto.add_word(key, entry)
            count += 1 if existing is None else 0
    if count == 0:
        return None
    auto.make_automaton()
    return auto


class WordMatcher:
    """Immutable after construction; ``match`` is safe to call from any task."""

    def __init__(
        self, normalizer: Normalizer, entries: Iterable[WordEntry], *, pinyin: bool = False,
        homophones: bool = False,
    ) -> None:
        self._norm = normalizer
        self.entries = list(entries)
        text_pairs: list[tuple[str, WordEntry]] = []
        symbol_pairs: list[tuple[str, WordEntry]] = []
        pinyin_pairs: list[tuple[str, WordEntry]] = []
        homophone_pairs: list[tuple[str, WordEntry]] = []
        self._syllables: Callable[[str], list[str]] | None = None
        if homophones:
            from pypinyin import lazy_pinyin  # ~1 s on first import; the matcher is built off the loop

            self._syllables = lazy_pinyin
        for entry in self.entries:
            key, literal = word_form(normalizer, entry.word)
            if not key:
                continue
            if literal:
                symbol_pairs.append((key, entry))
                continue
            text_pairs.append((key, entry))
            if (pinyin or homophones) and _CJK_RE.search(key):
                py = normalizer.pinyin(key)
                if len(py) >= MIN_PINYIN:
                    if pinyin:
                        pinyin_pairs.append((py, entry))
                    if self._syllables is not None:
                        homophone_pairs.append((_syllable_key(self._syllables(key)), entry))
        self._text = _automaton(text_pairs)
        self._symbols = _automaton(symbol_pairs)
        self._pinyin = _automaton(pinyin_pairs)
        self._homophones = _automaton(homophone_pairs)
        self.size = len(self.entries)

    @staticmethod
    def _best(auto: Any, text: str, via: str, best: Hit | None) -> Hit | None:
        for _end, entry in auto.iter(text):
            if best is None or entry.action.rank > best.entry.action.rank:
                best = Hit(entry, via)
        return best

    def match(self, text: str) -> Hit | None:
        """The matched word with the strongest action, or None."""
        if not text:
            return None
        normalized = self._norm.normalize(text)
        return self.match_parts(normalized, self._norm.strip(normalized))

    def match_parts(self, normalized: str, squeezed: str) -> Hit | None:
        """``match`` for callers that already hold ``normalize(text)`` and its ``strip``."""
        best: Hit | None = None
        if self._text is not None and squeezed:
            best = self._best(self._text, squeezed, "text", best)
        if self._symbols is not None:
            best = self._best(self._symbols, visible(normalized), "symbols", best)
        if self._pinyin is not None and squeezed:
            # Spelled-out pinyin ("pianzi") is already in the squeezed text: no conversion needed.
            latin = squeezed if squeezed.isascii() else "".join(ch for ch in squeezed if "a" <= ch <= "z")
            if len(latin) >= MIN_PINYIN:
                best = self._best(self._pinyin, latin, "pinyin", best)
        if self._homophones is not None and self._syllables is not None and best is None and squeezed \
                and _CJK_RE.search(squeezed):
            best = self._best(self._homophones, _syllable_key(self._syllables(squeezed)), "pinyin", best)
        return best
