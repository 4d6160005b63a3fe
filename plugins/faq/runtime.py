"""Per-App state of the faq plugin: one matcher per chat (built lazily, rebuilt on change), the
cooldown clock, and the hit / unanswered-question buffers written by ``flush``."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any

from plugins.faq import service
from plugins.faq.matcher import ChatMatcher, match_form, token_bounds

if TYPE_CHECKING:
    from bot.app import App
    from bot.textnorm import TextNormalizer

log = logging.getLogger(__name__)

# Unanswered questions longer than this (match-form characters) are not FAQ material.
MAX_GAP_CHARS = 100
MIN_GAP_CHARS = 2
# Bound the in-memory buffers between two flushes.
MAX_GAP_BUFFER = 5000
MAX_COOLDOWN_KEYS = 20_000


class FaqRuntime:
    def __init__(self, app: App) -> None:
        self.app = app
        self._matchers: dict[int, ChatMatcher] = {}
        self._generation: dict[int, int] = defaultdict(int)
        self._last_answer: dict[tuple[int, int], float] = {}
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
        """Build jieba in a worker thread (about 1 s) so the first word-mode check does not stall."""
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

    def cached(self, chat_id: int) -> ChatMatcher | None:
        return self._matchers.get(chat_id)

    def invalidate(self, chat_id: int) -> None:
        self._generation[chat_id] += 1
        self._matchers.pop(chat_id, None)

    async def refresh(self) -> int:
        """Drop matchers whose chat changed in the database (e.g. by ``qunbot faq import``)."""
        if not self._matchers:
            return 0
        async with self.app.db() as session:
            revs = await service.revisions(session)
        stale = [chat for chat, m in self._matchers.items() if revs.get(chat, 0) != m.revision]
        for chat in stale:
            self.invalidate(chat)
        return len(stale)

    # ---- cooldown ----------------------------------------------------------------------------
    def cooling(self, chat_id: int, entry_id: int, now: float, cooldown: float) -> bool:
        last = self._last_answer.get((chat_id, entry_id))
        return last is not None and now - last < cooldown

    def mark_answered(self, chat_id: int, entry_id: int, now: float) -> None:
        if len(self._last_answer) >= MAX_COOLDOWN_KEYS:
            self.prune_cooldowns(now, 86_400)
        self._last_answer[(chat_id, entry_id)] = now

    def prune_cooldowns(self, now: float, max_age: float) -> None:
        for key in [k for k, t in self._last_answer.items() if now - t >= max_age]:
            del self._last_answer[key]

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
