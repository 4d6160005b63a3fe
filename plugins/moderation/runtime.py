"""Per-App state of the moderation plugin: word automata, caches and the sliding windows.

Nothing here touches the database per message: words, approvals, network bans and raid states are
loaded once at start (``load``) and updated in place by the commands that change them; a chat's
automaton is rebuilt (off the event loop) only when its words or its config changed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from plugins.moderation import service
from plugins.moderation.detectors import FloodWindow, JoinWindow, WaveWindow
from plugins.moderation.matcher import WordEntry, WordMatcher
from plugins.moderation.models import Approved, BannedWord
from plugins.moderation.parsing import Action, ParseError, parse_action

if TYPE_CHECKING:
    from bot.app import App
    from bot.textnorm import TextNormalizer
    from plugins.moderation.config import ModerationConfig

log = logging.getLogger(__name__)

JOIN_CACHE_SIZE = 100_000
FILE_CHECK_SECONDS = 30.0
RULE_ACTIONS = ("delete", "warn", "mute", "ban", "kick")


@dataclass
class _MatcherEntry:
    cfg: Any  # the config object it was built for (held, so identity comparison is safe)
    words_version: int
    file_sig: tuple[str, float] | None
    matcher: WordMatcher


@dataclass
class _FileEntry:
    checked_at: float
    mtime: float
    entries: list[WordEntry]


def parse_word_file(text: str, default: Action) -> tuple[list[WordEntry], list[str]]:
    """Ops file: one word per line, optionally ``word | action``; ``#`` starts a comment line."""
    entries: list[WordEntry] = []
    bad: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, sep, spec = line.rpartition("|") if "|" in line else (line, "", "")
        word = word.strip()
        action = default
        if sep:
            try:
                action = parse_action(spec.strip(), allowed=RULE_ACTIONS)
            except ParseError:
                bad.append(line)
                continue
        if word:
            entries.append(WordEntry(word[:255], action, "file"))
    return entries, bad


class ModerationRuntime:
    def __init__(self, app: App) -> None:
        self.app = app
        self.flood = FloodWindow()
        self.waves = WaveWindow()
        self.joins = JoinWindow()
        self.words: dict[int, list[WordEntry]] = {}  # per chat, from the database
        self.words_version: dict[int, int] = {}
        self.approved: dict[int, set[int]] = {}
        self.gbans: set[int] = set()
        self.raids: dict[int, datetime] = {}
        self.raid_counts: dict[int, int] = {}  # joiners handled during the current raid
        self._join_times: OrderedDict[tuple[int, int], datetime | None] = OrderedDict()
        self._matchers: dict[int, _MatcherEntry] = {}
        self._files: dict[str, _FileEntry] = {}
        self._notes: dict[tuple[int, str], float] = {}
        self.loaded = False

    @property
    def normalizer(self) -> TextNormalizer:
        return self.app.nlp.normalizer

    # ---- start-up ----------------------------------------------------------------------------
    async def load(self) -> None:
        """Read words, approvals, network bans and raid states (once, at start)."""
        now = self.app.clock.now()
        async with self.app.db() as s:
            words = (await s.execute(
                select(BannedWord.chat_id, BannedWord.word, BannedWord.action).order_by(BannedWord.id)
            )).all()
            approvals = (await s.execute(select(Approved.chat_id, Approved.user_id))).all()
            self.gbans = await service.gban_ids(s)
            self.raids = await service.active_raids(s, now)
        by_chat: dict[int, list[WordEntry]] = {}
        actions: dict[str, Action] = {}
        for chat_id, word, spec in words:
            action = actions.get(spec)
            if action is None:
                action = actions[spec] = _safe_action(spec)
            by_chat.setdefault(chat_id, []).append(WordEntry(word, action, "chat"))
        self.words = by_chat
        self.approved = {}
        for chat_id, user_id in approvals:
            self.approved.setdefault(chat_id, set()).add(user_id)
        self._matchers.clear()
        self.loaded = True

    async def ensure_loaded(self) -> None:
        if not self.loaded:
            await self.load()

    # ---- banned words ------------------------------------------------------------------------
    def set_chat_words(self, chat_id: int, rows: list[tuple[str, str]]) -> None:
        """Replace a chat's database words ((word, action) pairs) and invalidate its automaton."""
        actions = {a: _safe_action(a) for a in {a for _w, a in rows}}
        self.words[chat_id] = [WordEntry(w, actions[a], "chat") for w, a in rows]
        self.words_version[chat_id] = self.words_version.get(chat_id, 0) + 1
        self._matchers.pop(chat_id, None)

    def _file_entries(self, path: str | None, default: Action) -> tuple[tuple[str, float] | None, list[WordEntry]]:
        if not path:
            return None, []
        now = self.app.clock.time()
        cached = self._files.get(path)
        if cached is not None and now - cached.checked_at < FILE_CHECK_SECONDS:
            return (path, cached.mtime), cached.entries
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            if cached is None or cached.mtime != -1.0:
                log.warning("moderation blacklist_file %s cannot be read", path)
            self._files[path] = _FileEntry(now, -1.0, [])
            return (path, -1.0), []
        if cached is not None and cached.mtime == mtime:
            cached.checked_at = now
            return (path, mtime), cached.entries
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                entries, bad = parse_word_file(fh.read(), default)
        except OSError:
            entries, bad = [], []
        if bad:
            log.warning("moderation blacklist_file %s: %d lines with an unknown action skipped", path, len(bad))
        self._files[path] = _FileEntry(now, mtime, entries)
        return (path, mtime), entries

    def _file_fresh(self, path: str, sig: tuple[str, float] | None) -> bool:
        """True while the ops file is unchanged (stat-ed at most every FILE_CHECK_SECONDS)."""
        cached = self._files.get(path)
        if cached is None or sig is None or sig != (path, cached.mtime):
            return False
        now = self.app.clock.time()
        if now - cached.checked_at < FILE_CHECK_SECONDS:
            return True
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            mtime = -1.0
        if mtime != cached.mtime:
            return False
        cached.checked_at = now
        return True

    async def matcher(self, chat_id: int, cfg: ModerationConfig) -> WordMatcher | None:
        """The chat's automaton; rebuilt (in a worker thread) when its words or config changed."""
        version = self.words_version.get(chat_id, 0)
        cached = self._matchers.get(chat_id)
        if cached is not None and cached.cfg is cfg and cached.words_version == version and (
            not cfg.blacklist_file or self._file_fresh(cfg.blacklist_file, cached.file_sig)
        ):
            return cached.matcher if cached.matcher.size else None
        default = parse_action(cfg.blacklist_action, allowed=RULE_ACTIONS)
        file_sig, file_entries = self._file_entries(cfg.blacklist_file, default)
        entries = [
            *self.words.get(chat_id, ()),
            *(WordEntry(w, default, "config") for w in cfg.blacklist_words),
            *file_entries,
        ]
        normalizer = self.normalizer
        if len(entries) > 500 or cfg.blacklist_pinyin:
            matcher = await asyncio.to_thread(
                WordMatcher, normalizer, entries, pinyin=cfg.blacklist_pinyin, homophones=cfg.blacklist_homophones
            )
        else:
            matcher = WordMatcher(normalizer, entries, pinyin=cfg.blacklist_pinyin, homophones=cfg.blacklist_homophones)
        self._matchers[chat_id] = _MatcherEntry(cfg, version, file_sig, matcher)
        return matcher if matcher.size else None

    # ---- members -----------------------------------------------------------------------------
    def is_approved(self, chat_id: int, user_id: int) -> bool:
        approved = self.approved.get(chat_id)
        return approved is not None and user_id in approved

    def note_join(self, chat_id: int, user_id: int, at: datetime) -> None:
        self._remember_join(chat_id, user_id, at)

    def _remember_join(self, chat_id: int, user_id: int, at: datetime | None) -> None:
        key = (chat_id, user_id)
        self._join_times[key] = at
        self._join_times.move_to_end(key)
        while len(self._join_times) > JOIN_CACHE_SIZE:
            self._join_times.popitem(last=False)

    async def joined_at(self, chat_id: int, user_id: int) -> datetime | None:
        """When the member (last) joined; None when unknown (a member from before the bot)."""
        key = (chat_id, user_id)
        if key in self._join_times:
            return self._join_times[key]
        row = await self.app.members.get(chat_id, user_id)
        at = row.joined_at if row is not None else None
        self._remember_join(chat_id, user_id, at)
        return at

    # ---- raid mode ---------------------------------------------------------------------------
    def raid_until(self, chat_id: int, now: datetime) -> datetime | None:
        until = self.raids.get(chat_id)
        if until is None:
            return None
        if until <= now:
            return None
        return until

    # ---- "the bot lacks a right" notes, at most one per chat and right per hour ----------------
    def should_note(self, chat_id: int, what: str, every: float = 3600.0) -> bool:
        now = self.app.clock.time()
        last = self._notes.get((chat_id, what))
        if last is not None and now - last < every:
            return False
        self._notes[(chat_id, what)] = now
        return True

    # ---- housekeeping ------------------------------------------------------------------------
    def prune(self) -> None:
        now = self.app.clock.time()
        self.flood.prune(now, 3600.0)
        self.waves.prune(now, 3600.0)
        self.joins.prune(now, 86400.0)
        for key in [k for k, t in self._notes.items() if now - t > 86400]:
            del self._notes[key]


def _safe_action(spec: str) -> Action:
    try:
        return parse_action(spec, allowed=RULE_ACTIONS)
    except ParseError:
        return Action("warn")
