"""Per-App state of the faq plugin: one matcher per chat (built lazily, rebuilt on change), the
cooldown clock, and the hit / unanswered-question buffers written by ``flush``.

Several workers: a change of a chat's entries drops that chat's matcher in every worker (an
invalidation message on ``app.shared``), and the cooldown clock lives in ``app.shared`` so that an
entry answered by one worker is cooling down in all of them. The hit and gap buffers stay per worker
(each worker flushes its own; /faqgaps clear drops them everywhere).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.shared import ALL
from plugins.faq import service
from plugins.faq.matcher import ChatMatcher, match_form, token_bounds
from plugins.faq.notes import NoteData, load_notes

if TYPE_CHECKING:
    from bot.app import App
    from bot.textnorm import TextNormalizer

log = logging.getLogger(__name__)

# Unanswered questions longer than this (match-form characters) are not FAQ material.
MAX_GAP_CHARS = 100
MIN_GAP_CHARS = 2
# Bound the in-memory buffers between two flushes.
MAX_GAP_BUFFER = 5000
# An answer is remembered this long (a cooldown longer than a day is not kept).
COOLDOWN_MEMORY = 86_400.0
# Invalidation topics: a chat's entries changed; a chat's unanswered questions were cleared; the
# revisions the leader's refresh found moved ({chat: revision}).
TOPIC = "faq"
GAPS_TOPIC = "faq_gaps"
REVISIONS_TOPIC = "faq_revisions"


class FaqRuntime:
    def __init__(self, app: App) -> None:
        self.app = app
        self._matchers: dict[int, ChatMatcher] = {}
        self._notes: dict[int, tuple[int, dict[str, NoteData]]] = {}  # chat -> (revision, notes)
        self._generation: dict[int, int] = defaultdict(int)
        # Several workers: each chat's revision at the leader's last refresh (None: not read yet).
        self._revisions: dict[int, int] | None = None
        self.hits: dict[int, tuple[int, datetime]] = {}
        self.gaps: dict[tuple[int, str], list[Any]] = {}
        self._warm_task: asyncio.Task[Any] | None = None

    # ---- text --------------------------------------------------------------------------------
    @property
    def normalizer(self) -> TextNormalizer:
        return self.app.nlp.normalizer

    def normalize(self, text: str) -> str:
        return self.app.nlp.normalizer.normalize(text)

    def forms(self, text: str) -> tuple[str, str]:
        """(match form, normalized text) of a message."""
        normalized = self.app.nlp.normalizer.normalize(text)
        return match_form(normalized), normalized

    def word_bounds(self, form: str) -> set[int]:
        return token_bounds(form, self.app.nlp.tokenize(form))

    def warm_words(self) -> None:
        """Build jieba in a worker thread (about 0.4 s) so the first word-mode check does not stall."""
        if self._warm_task is not None:
            return
        nlp = self.app.nlp

        def build() -> None:
            _ = nlp.tokenizer

        try:
            self._warm_task = asyncio.get_running_loop().create_task(asyncio.to_thread(build))
        except RuntimeError:  # no loop (CLI): jieba is built on first use
            return

    async def wait_warm(self) -> None:
        if self._warm_task is not None:
            try:
                await self._warm_task
            except Exception:
                log.exception("faq: building the jieba tokenizer failed")

    # ---- matchers ----------------------------------------------------------------------------
    async def matcher(self, chat_id: int) -> ChatMatcher:
        m = self._matchers.get(chat_id)
        if m is not None:
            return m
        generation = self._generation[chat_id]
        async with self.app.db() as session:
            entries, revision = await service.load_chat(session, chat_id)
        m = ChatMatcher.build(entries, revision=revision)
        if self._generation[chat_id] == generation:
            self._matchers[chat_id] = m
        if m.has_word_entries:
            self.warm_words()
        return m

    async def notes(self, chat_id: int) -> dict[str, NoteData]:
        """The chat's notes by lookup name (loaded once, dropped with the matcher on any change)."""
        held = self._notes.get(chat_id)
        if held is not None:
            return held[1]
        generation = self._generation[chat_id]
        async with self.app.db() as session:
            loaded, revision = await load_notes(session, chat_id)
        if self._generation[chat_id] == generation:
            self._notes[chat_id] = (revision, loaded)
        return loaded

    def _stale(self, chat_id: int, revision: int) -> bool:
        """Whether the chat's matcher or notes were read at another revision (or are not held)."""
        m = self._matchers.get(chat_id)
        notes = self._notes.get(chat_id)
        return (m is None or m.revision != revision) or (notes is not None and notes[0] != revision)

    def cached(self, chat_id: int) -> ChatMatcher | None:
        return self._matchers.get(chat_id)

    def invalidate(self, chat_id: int) -> None:
        """The chat's entries changed (committed): drop its matcher here and in every other worker."""
        self.forget(chat_id)
        self.app.shared.publish_soon(TOPIC, str(chat_id))

    def forget(self, chat_id: int | None) -> None:
        """Drop this worker's matcher of a chat (None: of every chat)."""
        # Every chat also bumps the generation of a matcher being built right now (it is not cached).
        chats = list(self._generation) if chat_id is None else [chat_id]
        for chat in chats:
            self._generation[chat] += 1
            self._matchers.pop(chat, None)
            self._notes.pop(chat, None)

    def listen(self) -> None:
        """Follow the other workers' changes (called once at start-up)."""
        shared = self.app.shared
        shared.on_invalidate(TOPIC, lambda payload: self.forget(_chat_of(payload)))
        shared.on_invalidate(GAPS_TOPIC, lambda payload: self._forget_gaps(_chat_of(payload)))
        shared.on_invalidate(REVISIONS_TOPIC, self._check_revisions)

    def _check_revisions(self, payload: str) -> None:
        """The leader's refresh read these revisions: drop the matchers built from an older one."""
        if payload == ALL:
            self.forget(None)
            return
        try:
            revisions = {int(chat): int(rev) for chat, rev in json.loads(payload).items()}
        except (ValueError, TypeError, AttributeError):
            log.warning("faq: ignoring a malformed revisions message")
            return
        for chat, revision in revisions.items():
            if self._stale(chat, revision):
                self.forget(chat)  # also voids a matcher being built from older entries

    async def refresh(self) -> int:
        """Drop matchers whose chat changed in the database (e.g. by ``qunbot faq import``).

        Several workers (the job runs in the leader only): the revisions that moved since the leader's
        last refresh (all of them at its first) go to every worker, which drops the matchers built from
        an older revision; one already rebuilt after a /filter is kept."""
        shared = self.app.shared
        if not self._matchers and not self._notes and not shared.distributed:
            return 0
        async with self.app.db() as session:
            revs = await service.revisions(session)
        held = set(self._matchers) | set(self._notes)
        stale = [chat for chat in held if self._stale(chat, revs.get(chat, 0))]
        for chat in stale:
            self.forget(chat)
        if shared.distributed:
            known, self._revisions = self._revisions, revs
            moved = revs if known is None else {c: r for c, r in revs.items() if known.get(c) != r}
            if moved:
                shared.publish_soon(REVISIONS_TOPIC, json.dumps(moved, separators=(",", ":")))
        return len(stale)

    # ---- cooldown ----------------------------------------------------------------------------
    @staticmethod
    def _answered_key(chat_id: int, entry_id: int) -> str:
        return f"faq:answered:{chat_id}:{entry_id}"

    async def cooling(self, chat_id: int, entry_id: int, now: float, cooldown: float) -> bool:
        """Whether the entry answered in the chat (by any worker) less than ``cooldown`` seconds ago."""
        raw = await self.app.shared.get(self._answered_key(chat_id, entry_id))
        try:
            last = float(raw) if raw is not None else None
        except ValueError:  # a malformed shared value counts as no answer
            last = None
        return last is not None and now - last < cooldown

    async def mark_answered(self, chat_id: int, entry_id: int, now: float) -> None:
        await self.app.shared.set(self._answered_key(chat_id, entry_id), repr(now), COOLDOWN_MEMORY)

    # ---- buffers -------------------------------------------------------------------------------
    def count_hit(self, entry_id: int, at: datetime) -> None:
        n, _ = self.hits.get(entry_id, (0, at))
        self.hits[entry_id] = (n + 1, at)

    def log_gap(self, chat_id: int, question: str, sample: str, at: datetime) -> bool:
        if not MIN_GAP_CHARS <= len(question) <= MAX_GAP_CHARS:
            return False
        key = (chat_id, question)
        row = self.gaps.get(key)
        if row is None:
            if len(self.gaps) >= MAX_GAP_BUFFER:
                return False
            self.gaps[key] = [1, sample[:500], at, at]
        else:
            row[0] += 1
            row[1] = sample[:500]
            row[3] = at
        return True

    def pending_gaps(self, chat_id: int) -> dict[str, tuple[int, str]]:
        return {q: (row[0], row[1]) for (c, q), row in self.gaps.items() if c == chat_id}

    def drop_gaps(self, chat_id: int) -> None:
        """/faqgaps clear: drop the chat's buffered questions here and in every other worker."""
        self._forget_gaps(chat_id)
        self.app.shared.publish_soon(GAPS_TOPIC, str(chat_id))

    def _forget_gaps(self, chat_id: int | None) -> None:
        if chat_id is None:
            return  # an outage's "drop everything": buffered questions are data, not a cache
        for key in [k for k in self.gaps if k[0] == chat_id]:
            del self.gaps[key]

    def take(self) -> tuple[dict[int, tuple[int, datetime]], list[dict[str, Any]]]:
        hits, self.hits = self.hits, {}
        gaps, self.gaps = self.gaps, {}
        rows = [
            {"chat_id": c, "question": q, "count": r[0], "sample": r[1], "first_at": r[2], "last_at": r[3]}
            for (c, q), r in gaps.items()
        ]
        return hits, rows

    def give_back(self, hits: dict[int, tuple[int, datetime]], gap_rows: list[dict[str, Any]]) -> None:
        """Merge buffers back after a failed flush so nothing is lost."""
        for eid, (n, at) in hits.items():
            cur_n, cur_at = self.hits.get(eid, (0, at))
            self.hits[eid] = (cur_n + n, max(cur_at, at))
        for r in gap_rows:
            key = (r["chat_id"], r["question"])
            cur = self.gaps.get(key)
            if cur is None:
                self.gaps[key] = [r["count"], r["sample"], r["first_at"], r["last_at"]]
            else:
                cur[0] += r["count"]
                cur[2] = min(cur[2], r["first_at"])


def _chat_of(payload: str) -> int | None:
    """An invalidation payload: a chat id, or None for "every chat" ("*" or anything unreadable)."""
    try:
        return int(payload)
    except ValueError:
        return None
