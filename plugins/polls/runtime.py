"""Per-App state of the polls plugin: hot-path lookups and write buffers (no module-level state).

The observer runs on every group message, so everything it needs is in memory: which chats have an
open quiz, lottery keyword or PK, the normalized answers/keywords, who already entered a lottery and
which messages are tagged PK arguments. Joins, poll answers, arguments and reply counts are buffered
here and written by ``flush`` in the core's batch transaction. ``on_startup`` rebuilds it from the
database, so a restart loses nothing that was committed; with several workers, ``sync.reload`` rebuilds
the chats another worker opened or closed a contest in (see plugins/polls/sync.py). What workers must
agree on at once (the live-count edit coalescing, per-contest locks) lives in ``app.shared``.
"""

from __future__ import annotations

import asyncio
import re
import unicodedata
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plugins.polls.models import Contest
from plugins.polls.parsing import fold

if TYPE_CHECKING:
    from bot.app import App

_NOISE = re.compile(r"[\W_]+")
# A tag at the start of a PK message: "#A ...", "＃正方 ...", "[反方] ...", "【B】..."
_BRACKET_TAG = re.compile(r"^[\[【［(（〔]\s*([^\]】］)）〕]{1,40}?)\s*[\]】］)）〕]")
SIDE_WORDS = (("a", "正方", "红方", "甲方"), ("b", "反方", "蓝方", "乙方"))
MEMBER_CACHE_SECONDS = 600.0
MEMBER_CACHE_MAX = 20_000
GONE_MAX = 5_000


def own_normalize(text: str) -> str:
    """Fallback when the NLP normalizer is unavailable: NFKC (width), case-folded, no spaces/punctuation."""
    return _NOISE.sub("", unicodedata.normalize("NFKC", text).casefold())


@dataclass(frozen=True)
class LiveQuiz:
    contest_id: int
    creator_id: int | None
    answers: frozenset[str]


@dataclass(frozen=True)
class LivePk:
    contest_id: int
    message_id: int | None
    # (normalized tag, side), longest first, for prefix matching after "#" or inside brackets.
    tags: tuple[tuple[str, int], ...]


@dataclass
class PollsRuntime:
    app: App
    quizzes: dict[int, dict[int, LiveQuiz]] = field(default_factory=dict)  # chat -> contest -> quiz
    keywords: dict[int, dict[str, int]] = field(default_factory=dict)  # chat -> keyword -> lottery
    entrants: dict[int, set[int]] = field(default_factory=dict)  # open lottery -> user ids
    pks: dict[int, dict[int, LivePk]] = field(default_factory=dict)  # chat -> contest -> pk
    arguments: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)  # (chat, msg) -> (pk, author)
    polls: dict[str, int] = field(default_factory=dict)  # native poll id -> contest
    live: dict[int, Contest] = field(default_factory=dict)  # open contests (detached snapshots)
    # write buffers (flushed by the core's batch transaction)
    buf_joins: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    buf_answers: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    buf_arguments: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    buf_replies: Counter[tuple[int, int]] = field(default_factory=Counter)
    buf_poll_counts: dict[int, dict[str, Any]] = field(default_factory=dict)
    member_ok: dict[tuple[int, int], float] = field(default_factory=dict)
    # Coherence with other workers (plugins/polls/sync.py): who we are in invalidation messages, the
    # chats to rebuild from the database (``dirty``: one flag for the message path to test), and the
    # contests forgotten here, which a rebuild must not bring back while they are being closed.
    origin: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    stale: set[int] = field(default_factory=set)
    stale_all: bool = False
    dirty: bool = False
    gone: dict[int, None] = field(default_factory=dict)
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _normalizer: Callable[[str], str] | None = None

    # ---- normalization ---------------------------------------------------------------------------
    def normalize(self, text: str) -> str:
        """Answer/keyword form: the core NLP normalizer's ``squeeze`` (width, case, traditional
        characters, spaces, punctuation), falling back to our own; never empty for non-empty text."""
        norm = self._normalizer
        if norm is None:
            try:
                norm = self.app.nlp.normalizer.squeeze
                norm("测试")
            except Exception:
                norm = own_normalize
            self._normalizer = norm
        out = norm(text)
        return out or fold(text)

    # ---- registration ----------------------------------------------------------------------------
    def track(self, contest: Contest, entrants: set[int] | None = None) -> None:
        """Start serving an open contest from memory."""
        cid, chat = contest.id, contest.chat_id
        data = contest.data or {}
        self.gone.pop(cid, None)
        self.live[cid] = contest
        if contest.kind == "quiz":
            answers = frozenset(self.normalize(a) for a in data.get("answers", []))
            self.quizzes.setdefault(chat, {})[cid] = LiveQuiz(cid, contest.creator_id, answers)
        elif contest.kind == "lottery":
            self.entrants[cid] = set(entrants or ())
            keyword = data.get("keyword")
            if keyword:
                self.keywords.setdefault(chat, {})[self.normalize(keyword)] = cid
        elif contest.kind == "pk":
            tags: dict[str, int] = {}
            for side, words in enumerate(SIDE_WORDS):
                for word in words:
                    tags[word] = side
            for side, name in enumerate(contest.options[:2]):
                key = self.normalize(name)
                if key and key not in tags:
                    tags[key] = side
            ordered = tuple(sorted(tags.items(), key=lambda kv: -len(kv[0])))
            self.pks.setdefault(chat, {})[cid] = LivePk(cid, contest.message_id, ordered)
        elif contest.kind == "poll" and contest.poll_id:
            self.polls[contest.poll_id] = cid

    def forget(self, contest: Contest) -> None:
        """Stop accepting live input for a contest that is closing."""
        cid, chat = contest.id, contest.chat_id
        for table in (self.quizzes, self.pks):
            live = table.get(chat)
            if live is not None:
                live.pop(cid, None)
                if not live:
                    del table[chat]
        words = self.keywords.get(chat)
        if words is not None:
            for key in [k for k, v in words.items() if v == cid]:
                del words[key]
            if not words:
                del self.keywords[chat]
        self.entrants.pop(cid, None)
        self.live.pop(cid, None)
        if contest.poll_id:
            self.polls.pop(contest.poll_id, None)
        if contest.kind == "pk":
            for key in [k for k, v in self.arguments.items() if v[0] == cid]:
                del self.arguments[key]
        self.gone[cid] = None
        while len(self.gone) > GONE_MAX:
            del self.gone[next(iter(self.gone))]

    # ---- other workers ---------------------------------------------------------------------------
    def invalidated(self, payload: str) -> None:
        """An invalidation message: ``<origin>:<chat id>`` (a contest opened or closed there), or ``*``."""
        if payload == "*":
            self.stale_all = self.dirty = True
            return
        origin, _, chat = payload.partition(":")
        if origin == self.origin:
            return  # our own change: this memory has it already
        try:
            self.stale.add(int(chat))
        except ValueError:
            return
        self.dirty = True

    # ---- PK tags ---------------------------------------------------------------------------------
    @staticmethod
    def side_of(text: str, pk: LivePk, normalize: Callable[[str], str]) -> tuple[int, str] | None:
        """(side, argument text) when ``text`` starts with one of the PK's tags."""
        stripped = text.lstrip()
        if not stripped:
            return None
        first = stripped[0]
        if first in "#＃":
            body = stripped[1:].lstrip()
            head = normalize(body[:48])
            for tag, side in pk.tags:
                if head.startswith(tag):
                    cut = _tag_end(body, tag, normalize)
                    following = body[cut:cut + 1]
                    if tag.isascii() and following.isascii() and following.isalnum():
                        continue  # "#apple" is not the tag "#a"
                    return side, body[cut:].strip()
            return None
        m = _BRACKET_TAG.match(stripped)
        if m is None:
            return None
        inner = normalize(m.group(1))
        for tag, side in pk.tags:
            if inner == tag:
                return side, stripped[m.end():].strip()
        return None

    # ---- buffers ---------------------------------------------------------------------------------
    def take_buffers(self) -> dict[str, list[dict[str, Any]]]:
        joins, self.buf_joins = list(self.buf_joins.values()), {}
        answers, self.buf_answers = list(self.buf_answers.values()), {}
        arguments, self.buf_arguments = list(self.buf_arguments.values()), {}
        replies, self.buf_replies = self.buf_replies, Counter()
        counts, self.buf_poll_counts = list(self.buf_poll_counts.values()), {}
        return {
            "joins": joins,
            "answers": answers,
            "arguments": arguments,
            "replies": [{"b_contest": c, "b_message": m, "b_n": n} for (c, m), n in replies.items()],
            "poll_counts": counts,
        }

    def member_cached(self, chat_id: int, user_id: int, now: float) -> bool:
        at = self.member_ok.get((chat_id, user_id))
        return at is not None and now - at < MEMBER_CACHE_SECONDS

    def remember_member(self, chat_id: int, user_id: int, now: float) -> None:
        if len(self.member_ok) >= MEMBER_CACHE_MAX:
            self.member_ok.clear()
        self.member_ok[(chat_id, user_id)] = now


def _tag_end(body: str, tag: str, normalize: Callable[[str], str]) -> int:
    """Where a "#tag" prefix ends in ``body`` (the tag may be written in another width/case)."""
    for cut in range(1, min(len(body), 48) + 1):
        if normalize(body[:cut]) == tag:
            return cut
    return 0
