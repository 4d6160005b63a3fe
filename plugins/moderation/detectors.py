"""The detection rules: flood per member, spam waves per chat, joins per chat (anti-raid).

The classes here are the in-process models of these windows: pure Python, no I/O, driven by timestamps
handed in (the App clock), so the unit tests and ``bench/moderation_bench.py`` pin the rules with them.
The running bot keeps the same windows in ``app.shared`` (``windows.py``, with the helpers below), so
that every webhook worker counts the same messages and joins.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

WAVE_SCAN_LIMIT = 200  # recent messages compared per message (bounds the cost in busy chats)
_DIGITS_RE = re.compile(r"\d+")


class FloodWindow:
    """Per (chat, member): message times and ids; trips when more than ``limit`` fall in ``seconds``."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[int, int], deque[tuple[float, int]]] = {}

    def hit(
        self, chat_id: int, user_id: int, message_id: int, t: float, limit: int, seconds: float
    ) -> list[int] | None:
        """Record one message; the ids of the flood when it trips (the window is then reset)."""
        key = (chat_id, user_id)
        dq = self._by_key.get(key)
        if dq is None:
            dq = self._by_key[key] = deque()
        dq.append((t, message_id))
        while dq and t - dq[0][0] > seconds:
            dq.popleft()
        if len(dq) > limit:
            ids = [m for _, m in dq]
            dq.clear()
            return ids
        # Never hold more than needed to decide.
        while len(dq) > limit + 1:
            dq.popleft()
        return None

    def prune(self, now: float, max_age: float) -> None:
        stale = [k for k, dq in self._by_key.items() if not dq or now - dq[-1][0] > max_age]
        for k in stale:
            del self._by_key[k]

    def __len__(self) -> int:
        return len(self._by_key)


def shingles(text: str) -> frozenset[str]:
    if len(text) < 3:
        return frozenset((text,))
    return frozenset(text[i : i + 2] for i in range(len(text) - 1))


def similarity(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


def wave_key(squeezed: str) -> str:
    """What copies of a wave are compared on: the squeezed text without digits (spammers vary numbers)."""
    return _DIGITS_RE.sub("", squeezed)


def similar_keys(
    key: str, grams: frozenset[str], other_key: str, grams_of: Callable[[str], frozenset[str]], threshold: float
) -> bool:
    """Same key, or lengths close enough and Jaccard similarity of bigrams at least ``threshold``
    (``grams_of(other_key)`` is only computed when the lengths allow a match)."""
    if key == other_key:
        return True
    la, lb = len(key), len(other_key)
    if min(la, lb) < threshold * max(la, lb):
        return False
    return similarity(grams, grams_of(other_key)) >= threshold


@dataclass
class _WaveEntry:
    t: float
    user_id: int
    message_id: int
    key: str
    grams: frozenset[str]


@dataclass
class _Cluster:
    t: float  # last seen
    key: str
    grams: frozenset[str]
    users: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class WaveHit:
    """A spam wave: every (user_id, message_id) to delete and the members to penalize."""

    copies: list[tuple[int, int]]
    new: bool  # True when this message started the wave (else a late copy of a known wave)


class WaveWindow:
    """Same or near-same text from several members within a window: a spam wave.

    Texts are compared on their squeezed form with digits removed (spammers vary numbers), first by
    exact key, then by Jaccard similarity of character bigrams against at most WAVE_SCAN_LIMIT recent
    messages of similar length. Once a wave is known, later copies hit at once for the window.
    """

    def __init__(self) -> None:
        self._chats: dict[int, deque[_WaveEntry]] = {}
        self._clusters: dict[int, list[_Cluster]] = {}

    @staticmethod
    def _similar(key: str, grams: frozenset[str], other_key: str, other: frozenset[str], threshold: float) -> bool:
        return similar_keys(key, grams, other_key, lambda _key: other, threshold)

    def hit(
        self, chat_id: int, user_id: int, message_id: int, squeezed: str, t: float, *, members: int,
        seconds: float, threshold: float, min_chars: int,
    ) -> WaveHit | None:
        key = wave_key(squeezed)
        if len(key) < min_chars:
            return None
        grams = shingles(key)
        entries = self._chats.get(chat_id)
        if entries is None:
            entries = self._chats[chat_id] = deque()
        while entries and t - entries[0].t > seconds:
            entries.popleft()
        clusters = self._clusters.get(chat_id)
        if clusters:
            clusters[:] = [c for c in clusters if t - c.t <= seconds]
            for cluster in clusters:
                if self._similar(key, grams, cluster.key, cluster.grams, threshold):
                    cluster.t = t
                    cluster.users.add(user_id)
                    return WaveHit([(user_id, message_id)], new=False)
        matched: list[_WaveEntry] = []
        for scanned, entry in enumerate(reversed(entries)):
            if scanned >= WAVE_SCAN_LIMIT:
                break
            if self._similar(key, grams, entry.key, entry.grams, threshold):
                matched.append(entry)
        users = {e.user_id for e in matched} | {user_id}
        if len(users) < members:
            entries.append(_WaveEntry(t, user_id, message_id, key, grams))
            return None
        ids = {id(e) for e in matched}
        self._chats[chat_id] = deque(e for e in entries if id(e) not in ids)
        self._clusters.setdefault(chat_id, []).append(_Cluster(t, key, grams, users))
        copies = [(e.user_id, e.message_id) for e in reversed(matched)] + [(user_id, message_id)]
        return WaveHit(copies, new=True)

    def prune(self, now: float, max_age: float) -> None:
        for chat_id in list(self._chats):
            entries = self._chats[chat_id]
            while entries and now - entries[0].t > max_age:
                entries.popleft()
            if not entries:
                del self._chats[chat_id]
        for chat_id in list(self._clusters):
            alive = [c for c in self._clusters[chat_id] if now - c.t <= max_age]
            if alive:
                self._clusters[chat_id] = alive
            else:
                del self._clusters[chat_id]


class JoinWindow:
    """Joins per chat: trips when more than ``limit`` joins fall within ``seconds``."""

    def __init__(self) -> None:
        self._chats: dict[int, deque[float]] = {}

    def hit(self, chat_id: int, t: float, limit: int, seconds: float) -> bool:
        dq = self._chats.get(chat_id)
        if dq is None:
            dq = self._chats[chat_id] = deque()
        dq.append(t)
        while dq and t - dq[0] > seconds:
            dq.popleft()
        while len(dq) > limit + 1:
            dq.popleft()
        return len(dq) > limit

    def reset(self, chat_id: int) -> None:
        self._chats.pop(chat_id, None)

    def prune(self, now: float, max_age: float) -> None:
        for chat_id in [c for c, dq in self._chats.items() if not dq or now - dq[-1] > max_age]:
            del self._chats[chat_id]
