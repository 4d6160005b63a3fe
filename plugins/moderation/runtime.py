"""Per-App state of the moderation plugin: word automata and caches; the windows and raid mode in
``app.shared``.

Nothing here touches the database per message: words, approvals and network bans are loaded once at
start (``load``) and updated in place by the commands that change them; a chat's automaton is rebuilt
(off the event loop) only when its words or its config changed. These caches mirror the database, so
with several workers a change is published (``TOPIC``) and every other worker re-reads what changed
before its next judgement. What must add up across workers lives in ``app.shared``: the flood, wave
and join windows (``windows.py``), raid mode and the joiners it caught, members' join times and the
"the bot lacks a right" notes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from bot.shared import decode_float
from plugins.moderation import service
from plugins.moderation.matcher import WordEntry, WordMatcher
from plugins.moderation.models import Approved, BannedWord, RaidState
from plugins.moderation.parsing import Action, ParseError, parse_action
from plugins.moderation.windows import SharedWindows

if TYPE_CHECKING:
    from bot.app import App
    from bot.textnorm import TextNormalizer
    from plugins.moderation.config import ModerationConfig

log = logging.getLogger(__name__)

# Invalidation topic; payload "<origin>|<what>", what = "words:<chat>", "approved:<chat>" or "gbans";
# "*" (sent by the core after a Redis outage) = re-read everything.
TOPIC = "moderation"
FILE_CHECK_SECONDS = 30.0
RULE_ACTIONS = ("delete", "warn", "mute", "ban", "kick")
JOIN_TTL = 3600.0  # a member's join time kept in the shared cache (the database has it too)
RAID_GRACE = 7 * 86400.0  # raid state kept this long past its end, so its (maybe late) timer finds it


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
        self.shared = app.shared
        self.windows = SharedWindows(app.shared)
        self.words: dict[int, list[WordEntry]] = {}  # per chat, from the database
        self.words_version: dict[int, int] = {}
        self.approved: dict[int, set[int]] = {}
        self.gbans: set[int] = set()
        self._matchers: dict[int, _MatcherEntry] = {}
        self._files: dict[str, _FileEntry] = {}
        self._raids_checked: set[int] = set()  # chats whose shared raid state was compared with the database
        # Changes other workers published, not re-read yet: what -> sequence number when it arrived.
        self._stale: dict[str, int] = {}
        self._stale_seq = 0
        self._reload = asyncio.Lock()
        self._origin = uuid.uuid4().hex[:12]  # our own messages come back to us: skip them
        self.loaded = False
        app.shared.on_invalidate(TOPIC, self._on_invalidate)

    @property
    def normalizer(self) -> TextNormalizer:
        return self.app.nlp.normalizer

    # ---- start-up and cross-worker freshness -------------------------------------------------
    async def load(self) -> None:
        """Read words, approvals and network bans (at start, and after a Redis outage)."""
        seen = self._stale_seq
        async with self.app.db() as s:
            words = (await s.execute(
                select(BannedWord.chat_id, BannedWord.word, BannedWord.action).order_by(BannedWord.id)
            )).all()
            approvals = (await s.execute(select(Approved.chat_id, Approved.user_id))).all()
            self.gbans = await service.gban_ids(s)
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
        self._raids_checked.clear()
        self._forget_stale(seen)
        self.loaded = True

    async def ensure_loaded(self) -> None:
        """Loaded, with what other workers changed re-read (a dict check when nothing did)."""
        if self.loaded and not self._stale:
            return
        async with self._reload:
            if not self.loaded:
                await self.load()
            elif self._stale:
                await self._refresh()

    def publish(self, what: str) -> None:
        """Tell the other workers that ``what`` changed (call after the change is committed)."""
        self.shared.publish_soon(TOPIC, f"{self._origin}|{what}")

    def _on_invalidate(self, payload: str) -> None:
        origin, sep, what = payload.partition("|")
        if sep and origin == self._origin:
            return  # our own change, applied here already
        self._stale_seq += 1
        self._stale[what if sep else "*"] = self._stale_seq

    def _forget_stale(self, seen: int) -> None:
        """Drop what was marked before ``seen`` (what arrived while re-reading stays for the next time)."""
        self._stale = {what: seq for what, seq in self._stale.items() if seq > seen}

    async def _refresh(self) -> None:
        seen = self._stale_seq
        wanted: list[tuple[str, int]] = []
        for what in list(self._stale):
            kind, _sep, chat = what.partition(":")
            if kind == "gbans" and not chat:
                wanted.append((kind, 0))
            elif kind in ("words", "approved") and chat.lstrip("-").isdigit():
                wanted.append((kind, int(chat)))
            else:
                await self.load()  # "*" (after a Redis outage) or unknown: everything
                return
        async with self.app.db() as s:
            for kind, chat_id in wanted:
                if kind == "gbans":
                    self.gbans = await service.gban_ids(s)
                elif kind == "words":
                    self.set_chat_words(chat_id, await service.word_pairs(s, chat_id))
                else:
                    self.approved[chat_id] = await service.approved_ids(s, chat_id)
        self._forget_stale(seen)

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

    async def note_join(self, chat_id: int, user_id: int, at: datetime) -> None:
        await self.shared.set(f"mod:joined:{chat_id}:{user_id}", repr(at.timestamp()), JOIN_TTL)

    async def joined_at(self, chat_id: int, user_id: int) -> datetime | None:
        """When the member (last) joined; None when unknown (a member from before the bot). Shared, so a
        join another worker saw counts here; the database answers what the shared cache does not hold."""
        key = f"mod:joined:{chat_id}:{user_id}"
        raw = await self.shared.get(key)
        if raw == "-":
            return None
        stamp = _timestamp(raw)
        if stamp is not None:
            return stamp
        row = await self.app.members.get(chat_id, user_id)
        at = row.joined_at if row is not None else None
        await self.shared.set(key, "-" if at is None else repr(at.timestamp()), JOIN_TTL)
        return at

    # ---- raid mode ---------------------------------------------------------------------------
    # The database row is the durable record; the shared value (its end as a timestamp) is what every
    # worker reads. Changes happen under the chat's raid lock: one worker turns it on or off, once.
    def raid_lock(self, chat_id: int) -> contextlib.AbstractAsyncContextManager[None]:
        return self.shared.lock(f"moderation:raid:{chat_id}")

    async def raid_state(self, chat_id: int) -> datetime | None:
        """The end of the chat's raid mode as recorded (maybe past: its timer has not run yet); None: off."""
        if chat_id not in self._raids_checked:
            # First look since start (or since a Redis outage): the shared value follows the database.
            async with self.raid_lock(chat_id):
                if chat_id not in self._raids_checked:
                    async with self.app.db() as s:
                        row = await s.get(RaidState, chat_id)
                    await self.store_raid(chat_id, row.until if row is not None else None, reset_count=False)
        return await self.raid_value(chat_id)

    async def raid_value(self, chat_id: int) -> datetime | None:
        """``raid_state`` without the first comparison with the database (under ``raid_lock``)."""
        return _timestamp(await self.shared.get(f"mod:raid:{chat_id}"))

    async def raid_until(self, chat_id: int, now: datetime) -> datetime | None:
        """The end of raid mode while it is on, else None."""
        until = await self.raid_state(chat_id)
        return until if until is not None and until > now else None

    async def store_raid(self, chat_id: int, until: datetime | None, *, reset_count: bool = True) -> None:
        """Record raid mode on (until ``until``) or off for every worker; hold ``raid_lock``."""
        key = f"mod:raid:{chat_id}"
        if until is None:
            await self.shared.delete(key)
        else:
            await self.shared.set(key, repr(until.timestamp()), self._raid_ttl(until))
        if reset_count:
            await self.shared.delete(f"mod:raid:n:{chat_id}")
        self._raids_checked.add(chat_id)

    async def count_raid_join(self, chat_id: int, until: datetime) -> None:
        await self.shared.incr(f"mod:raid:n:{chat_id}", self._raid_ttl(until))

    async def raid_caught(self, chat_id: int, until: datetime) -> int:
        """Joiners handled during the raid (read without counting one)."""
        return await self.shared.incr(f"mod:raid:n:{chat_id}", self._raid_ttl(until), 0)

    def _raid_ttl(self, until: datetime) -> float:
        return max(0.0, (until - self.app.clock.now()).total_seconds()) + RAID_GRACE

    # ---- "the bot lacks a right" notes, at most one per chat and right per hour ----------------
    async def should_note(self, chat_id: int, what: str, every: float = 3600.0) -> bool:
        now = self.app.clock.time()
        key = f"mod:note:{chat_id}:{what}"
        last = decode_float(await self.shared.get(key))
        if last is not None and now - last < every:
            return False
        await self.shared.set(key, repr(now), every)
        return True


def _timestamp(raw: str | None) -> datetime | None:
    """A shared timestamp as a UTC datetime; None when absent or malformed."""
    value = decode_float(raw)
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _safe_action(spec: str) -> Action:
    try:
        return parse_action(spec, allowed=RULE_ACTIONS)
    except ParseError:
        return Action("warn")
