"""Per-App state of the crisis plugin and everything that acts on it.

The observer path (``observe``) is in memory: analyse the message (cached automaton per lexicon
config), append it to the chat's window, and at most every ``eval_seconds`` per chat (or at once for
an instant combination) compute the score and the level. Only a level change touches the database
(one transaction: incident, timeline, outbox rows) and the network (queued sends). Running aggregates
of open incidents and learned baselines are written by ``flush`` in the core's batch transaction.

Several workers (``app.shared`` in Redis): ``sync`` shares the window, the chat's state and the
incident's version (plugins/crisis/sync.py), decisions take the chat's shared lock, and each worker
adds to the incident's aggregates what it observed (``flush`` merges deltas into the row).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import math
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.methods import EditMessageText
from aiogram.types import ChatPermissions, InlineKeyboardMarkup, Message
from sqlalchemy.exc import IntegrityError

from bot.models import Chat
from bot.services.events import CrisisChanged
from bot.shared import ALL
from plugins.crisis import render, service
from plugins.crisis.config import CrisisConfig
from plugins.crisis.lexicon import AnalysisParams, Lexicon, analyze
from plugins.crisis.signal import ChatSignal, LevelState, Record, SignalParams, Snapshot, is_calm, step
from plugins.crisis.sync import TOPIC, ChatState, CrisisSync

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from bot.app import App
    from bot.context import Ctx
    from plugins.crisis.models import CrisisIncident

log = logging.getLogger(__name__)

NAME = "crisis"
MAX_PROFILES = 512
MAX_INCIDENT_MEMBERS = 300
MEDIA_PERMISSIONS = (
    "can_send_audios", "can_send_documents", "can_send_photos", "can_send_videos", "can_send_video_notes",
    "can_send_voice_notes", "can_send_polls", "can_send_other_messages", "can_add_web_page_previews",
)  # fmt: skip


@dataclass(frozen=True)
class Profile:
    """What a config compiles to: the automaton and the numeric parameters."""

    lexicon: Lexicon
    analysis: AnalysisParams
    signal: SignalParams


@dataclass
class OpenIncident:
    id: int
    chat_id: int
    state: LevelState
    opened_at: float
    trigger: str
    acked: bool = False
    peak_score: float = 0.0
    messages: int = 0
    members: dict[int, str] = field(default_factory=dict)
    keywords: Counter[str] = field(default_factory=Counter)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    dirty: bool = False
    # What this worker noted since its last flush (several workers add their deltas to the row).
    new_messages: int = 0
    new_members: dict[int, str] = field(default_factory=dict)
    new_keywords: Counter[str] = field(default_factory=Counter)
    fresh_evidence: bool = False  # set by this worker since its last flush

    def note(self, record: Record) -> None:
        """A risk or negative message while the incident is open."""
        self.messages += 1
        self.new_messages += 1
        if record.weights and len(self.members) < MAX_INCIDENT_MEMBERS:
            self.members.setdefault(record.user_id, record.name)
            self.new_members.setdefault(record.user_id, record.name)
        self.keywords.update(record.keywords)
        self.new_keywords.update(record.keywords)
        self.dirty = True

    def take_new(self) -> tuple[int, dict[int, str], Counter[str]]:
        new = (self.new_messages, self.new_members, self.new_keywords)
        self.new_messages, self.new_members, self.new_keywords = 0, {}, Counter()
        return new

    def give_back(self, new: tuple[int, dict[int, str], Counter[str]]) -> None:
        """A flush that failed: its deltas go out with the next one."""
        self.new_messages += new[0]
        for uid, name in new[1].items():
            self.new_members.setdefault(uid, name)
        self.new_keywords.update(new[2])
        self.dirty = True

    def adopt(self, old: OpenIncident) -> None:
        """Re-read from the database: keep what this worker noted and has not flushed yet."""
        self.messages += old.new_messages
        for uid, name in old.new_members.items():
            if len(self.members) < MAX_INCIDENT_MEMBERS:
                self.members.setdefault(uid, name)
        self.keywords.update(old.new_keywords)
        self.new_messages, self.new_members, self.new_keywords = old.new_messages, old.new_members, old.new_keywords
        if old.dirty:
            self.peak_score = max(self.peak_score, old.peak_score)
            self.dirty = True
        if old.fresh_evidence:
            self.evidence, self.fresh_evidence = old.evidence, True


def signal_params(cfg: CrisisConfig) -> SignalParams:
    return SignalParams(
        window=cfg.window_minutes * 60, member_cap=cfg.member_cap, negative_voice=cfg.negative_voice,
        min_member_risk=cfg.min_member_risk, surge_weight=cfg.surge_weight,
        negative_share_weight=cfg.negative_share_weight, baseline_tau=cfg.baseline_hours * 3600,
        rate_floor=cfg.rate_floor_per_minute, baseline_score_cap=cfg.baseline_score_cap,
        up=(cfg.level1_score, cfg.level2_score, cfg.level3_score),
        members=(cfg.level1_members, cfg.level2_members, cfg.level3_members),
        level1_severe=cfg.level1_severe_members, severe=frozenset(cfg.severe_categories),
        down=(cfg.level1_down, cfg.level2_down, cfg.level3_down), min_dwell=cfg.min_dwell_minutes * 60,
    )


def analysis_params(
    cfg: CrisisConfig, lexicon: Lexicon, normalize: Callable[[str], str] = str.casefold,
) -> AnalysisParams:
    return AnalysisParams(
        category_weights=dict(lexicon.weights),
        question_factors=dict(cfg.question_factors),
        instant_combos=tuple(tuple(c) for c in cfg.instant_combos),
        negative_threshold=cfg.negative_threshold, positive_threshold=cfg.positive_threshold,
        neutral_factor=cfg.neutral_factor, positive_factor=cfg.positive_factor, max_chars=cfg.max_chars,
        elsewhere_words=tuple(normalize(w) for w in cfg.elsewhere_words), elsewhere_factor=cfg.elsewhere_factor,
    )


def build_profile(cfg: CrisisConfig, normalize: Callable[[str], str], lexicon: Lexicon | None = None) -> Profile:
    """Compile a config (the lexicon may be shared between configs with the same words)."""
    if lexicon is None:
        lexicon = Lexicon.from_config(cfg.category_weights, cfg.extra_words, cfg.ignore_words, normalize)
    return Profile(lexicon, analysis_params(cfg, lexicon, normalize), signal_params(cfg))


def _lexicon_key(cfg: CrisisConfig) -> tuple[Any, ...]:
    return (
        tuple(sorted(cfg.category_weights.items())),
        tuple(sorted((k, tuple(v)) for k, v in cfg.extra_words.items())),
        tuple(sorted(cfg.ignore_words)),
    )


class CrisisRuntime:
    def __init__(self, app: App) -> None:
        self.app = app
        self.signals: dict[int, ChatSignal] = {}
        self.incidents: dict[int, OpenIncident] = {}
        self._profiles: dict[int, tuple[CrisisConfig, Profile]] = {}
        self._lexicons: dict[tuple[Any, ...], Lexicon] = {}
        self._locks: dict[int, asyncio.Lock] = {}
        self._inflight: set[int] = set()
        self.warm_task: asyncio.Task[None] | None = None
        self.started = False
        # Several workers: the shared window, chat state and incident versions (None: one process).
        self.sync: CrisisSync | None = CrisisSync(app.shared) if app.shared.distributed else None
        self._stale: set[int] = set()  # chats whose open incident another worker changed
        self._stale_all = False  # after a Redis outage: every open incident
        # Admin ids per chat, refreshed in the background (the observer never waits for the network
        # except once, the first time a risky message arrives in a chat).
        self._admin_ids: dict[int, tuple[float, frozenset[int]]] = {}
        self._admin_tasks: dict[int, asyncio.Task[None]] = {}
        # Log chats (global and per-chat from the TOML): ops quoting complaints there are not a crisis.
        settings = app.settings
        self.log_chats: frozenset[int] = frozenset(
            cid for cid in [settings.bot.log_chat_id, *(c.log_chat_id for c in settings.chats.values())]
            if cid is not None
        )

    # ---- config -> profile (automaton built once per distinct lexicon config) ------------------
    def profile(self, cfg: CrisisConfig) -> Profile:
        entry = self._profiles.get(id(cfg))
        if entry is not None and entry[0] is cfg:
            return entry[1]
        key = _lexicon_key(cfg)
        lexicon = self._lexicons.get(key)
        if lexicon is None:
            lexicon = Lexicon.from_config(cfg.category_weights, cfg.extra_words, cfg.ignore_words,
                                          self.app.nlp.normalizer.normalize)
            if len(self._lexicons) >= 64:
                self._lexicons.clear()
            self._lexicons[key] = lexicon
        profile = build_profile(cfg, self.app.nlp.normalizer.normalize, lexicon)
        if len(self._profiles) >= MAX_PROFILES:
            self._profiles.clear()
        # Holding the config object keeps its id from being reused by another object.
        self._profiles[id(cfg)] = (cfg, profile)
        return profile

    def _lock(self, chat_id: int) -> asyncio.Lock:
        lock = self._locks.get(chat_id)
        if lock is None:
            lock = self._locks[chat_id] = asyncio.Lock()
        return lock

    @contextlib.asynccontextmanager
    async def _chat(
        self, chat_id: int, cfg: CrisisConfig | None = None, *, save: bool = True,
    ) -> AsyncIterator[ChatSignal]:
        """The chat's lock around a decision, yielding its signal. Several workers: the lock is shared,
        the window has every worker's messages and the incident, the baseline and the last evaluation
        are read from the shared chat state first and written back after (``save``)."""
        if self.sync is None:
            async with self._lock(chat_id):
                yield self.signal(chat_id)
            return
        if cfg is None:
            cfg = await self.cfg(chat_id)
        async with self.app.shared.lock(f"crisis:{chat_id}"):
            sig = self.signal(chat_id)
            await self.sync.catch_up(sig, self.app.clock.time(), cfg.window_minutes * 60)
            version = await self._load_state(chat_id, sig)
            before = self._incident_key(chat_id)
            yield sig
            if save:
                await self._save_state(chat_id, sig, version, changed=self._incident_key(chat_id) != before)

    # ---- several workers: the shared chat state -------------------------------------------------------
    def _incident_key(self, chat_id: int) -> tuple[Any, ...] | None:
        inc = self.incidents.get(chat_id)
        return None if inc is None else (inc.id, inc.state.level, inc.state.since, inc.state.floor, inc.acked)

    async def _load_state(self, chat_id: int, sig: ChatSignal) -> int:
        """Adopt the chat's shared state; re-read the incident when another worker changed it."""
        assert self.sync is not None
        state = await self.sync.read_state(chat_id)
        if state is None:  # never shared, expired or garbled: the database knows the incident
            await self._reload_incident(chat_id)
            return self.sync.versions.get(chat_id, 0)
        if state.last_eval is not None:
            sig.last_eval = state.last_eval
        if state.baseline is not None:
            b = sig.baseline
            b.rate, b.negative_share, b.score, b.samples, b.updated_at = state.baseline
        if self.sync.versions.get(chat_id) != state.version or chat_id in self._stale or self._stale_all:
            await self._reload_incident(chat_id)
            self.sync.versions[chat_id] = state.version
        inc = self.incidents.get(chat_id)
        if inc is not None:
            inc.state.calm_since = state.calm_since if state.incident == inc.id else None
        return state.version

    async def _save_state(self, chat_id: int, sig: ChatSignal, version: int, *, changed: bool) -> None:
        assert self.sync is not None
        if changed:
            version += 1
            self.app.shared.publish_soon(TOPIC, str(chat_id))  # the observers of the other workers
        self.sync.versions[chat_id] = version
        inc = self.incidents.get(chat_id)
        b = sig.baseline
        learned = b.samples > 0
        await self.sync.write_state(chat_id, ChatState(
            version=version, last_eval=sig.last_eval if math.isfinite(sig.last_eval) else None,
            baseline=(b.rate, b.negative_share, b.score, b.samples, b.updated_at) if learned else None,
            incident=inc.id if inc is not None else None, calm_since=inc.state.calm_since if inc is not None else None,
        ))

    async def _reload_incident(self, chat_id: int) -> None:
        async with self.app.db() as s:
            row = await service.open_for_chat(s, chat_id)
        self._stale.discard(chat_id)
        self._adopt(chat_id, row)

    async def _reload_all(self) -> None:
        """After a Redis outage (invalidations may be lost): every open incident from the database."""
        self._stale_all = False
        async with self.app.db() as s:
            rows = await service.all_open(s)
        self._stale.clear()
        open_chats = {row.chat_id for row in rows}
        for chat_id in [c for c in self.incidents if c not in open_chats]:
            self._adopt(chat_id, None)
        for row in rows:
            self._adopt(row.chat_id, row)

    def _adopt(self, chat_id: int, row: CrisisIncident | None) -> None:
        old = self.incidents.pop(chat_id, None)
        if row is None:
            return
        inc = self._from_row(row)
        if old is not None and old.id == inc.id:
            inc.adopt(old)
        self.incidents[chat_id] = inc
        sig = self.signal(chat_id)
        sig.title = sig.title or row.chat_title

    def _remote_change(self, payload: str) -> None:
        """Another worker changed a chat's incident: re-read it before using it."""
        if payload == ALL:
            self._stale_all = True
            return
        try:
            self._stale.add(int(payload))
        except ValueError:
            self._stale_all = True

    async def _current_incident(self, chat_id: int) -> OpenIncident | None:
        """The open incident (several workers: re-read when another worker changed it)."""
        if self._stale_all:
            await self._reload_all()
        if chat_id in self._stale:
            await self._reload_incident(chat_id)
        return self.incidents.get(chat_id)

    def signal(self, chat_id: int) -> ChatSignal:
        sig = self.signals.get(chat_id)
        if sig is None:
            sig = self.signals[chat_id] = ChatSignal(chat_id)
        return sig

    async def cfg(self, chat_id: int) -> CrisisConfig:
        cfg = await self.app.chat_config.get(chat_id, NAME)
        assert isinstance(cfg, CrisisConfig)
        return cfg

    async def tr(self, chat_id: int) -> tuple[render.Tr, ZoneInfo]:
        core = await self.app.chat_config.chat(chat_id)
        lang = core.language
        return (lambda s: self.app.i18n.gettext(lang, s)), core.tz

    def now(self) -> datetime:
        return self.app.clock.now()

    # ---- start-up -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Load open incidents and baselines, then retry alerts left unsent."""
        async with self.app.db() as s:
            open_rows = await service.all_open(s)
            baselines = await service.load_baselines(s)
        for b in baselines:
            sig = self.signal(b.chat_id)
            sig.baseline.rate, sig.baseline.negative_share, sig.baseline.score = b.rate, b.negative_share, b.score
            sig.baseline.samples = b.samples
            sig.baseline.updated_at = b.updated_at.timestamp()
        for row in open_rows:
            self.incidents[row.chat_id] = self._from_row(row)
            sig = self.signal(row.chat_id)
            sig.title = sig.title or row.chat_title
        if self.sync is not None:
            self.app.shared.on_invalidate(TOPIC, self._remote_change)
            # The core drops its admin lists everywhere on a change: drop this copy too.
            self.app.shared.on_invalidate("admins", self._forget_admins)
        self.started = True
        await self.retry_outbox()

    @staticmethod
    def _from_row(row: CrisisIncident) -> OpenIncident:
        return OpenIncident(
            id=row.id, chat_id=row.chat_id,
            state=LevelState(level=row.level, since=row.level_since.timestamp(), floor=row.floor_level,
                             peak=row.peak_level),
            opened_at=row.opened_at.timestamp(), trigger=row.trigger, acked=row.acked_at is not None,
            peak_score=row.peak_score or 0.0, messages=row.messages or 0,
            members={int(k): str(v) for k, v in (row.members or {}).items()},
            keywords=Counter({str(k): int(v) for k, v in (row.keywords or {}).items()}),
            evidence=list(row.evidence or []),
        )

    # ---- observer --------------------------------------------------------------------------------
    async def observe(self, message: Message, ctx: Ctx) -> None:
        user = message.from_user
        if user is None or user.is_bot or message.is_automatic_forward:
            return
        chat = message.chat
        if message.sender_chat is not None:
            return  # anonymous admin or a channel speaking: the brand's own voice
        text = message.text or message.caption
        if not text or text[0] == "/":
            return
        app = self.app
        if chat.id in self.log_chats:
            return  # ops talking about a crisis in the log chat are not one
        cfg = ctx.cfg
        assert isinstance(cfg, CrisisConfig)
        prof = self.profile(cfg)
        a = analyze(app.nlp, prof.lexicon, prof.analysis, text)
        if a.weights and cfg.ignore_admins and await self.is_admin(chat.id, user.id):
            a.weights, a.keywords, a.instant, a.negative = {}, (), False, False
        now = app.clock.time()
        at = min(now, message.date.timestamp()) if message.date else now
        if now - at > prof.signal.window:
            return  # a backlog delivered late is history, not a burst
        sig = self.signal(chat.id)
        if chat.title:
            sig.title = chat.title
        sig.username = chat.username
        name = user.full_name or user.username or str(user.id)
        record = Record(
            at=at, user_id=user.id, name=name, message_id=message.message_id, snippet=text[:200],
            sentiment=a.sentiment, negative=a.negative, weights=a.weights, keywords=a.keywords,
        )
        if self.sync is not None:
            # One round trip: our message into the shared window, the other workers' into ours.
            await self.sync.publish(sig, record, a.fingerprint, now, prof.signal.window)
            await self.sync.register(chat.id, now)
            inc = await self._current_incident(chat.id)
        else:
            inc = self.incidents.get(chat.id)
        if not sig.add(record, a.fingerprint):
            return  # redelivered
        if inc is not None and not record.duplicate and (record.weights or record.negative):
            inc.note(record)
        if a.instant:
            await self.evaluate(chat.id, cfg, instant=cfg.instant_level)
        elif record.weights and not record.duplicate and now - sig.last_eval >= cfg.eval_seconds:
            # Only a risky message can raise the level; everything else (stepping down, closing,
            # learning the baseline) is the periodic tick's job, off the message path.
            await self.evaluate(chat.id, cfg, due=cfg.eval_seconds)

    async def is_admin(self, chat_id: int, user_id: int) -> bool:
        """Owner or admin of the chat, from a per-chat list refreshed in the background."""
        if self.app.admins.is_owner(user_id):
            return True
        entry = self._admin_ids.get(chat_id)
        if entry is None:
            await self._refresh_admins(chat_id)
            entry = self._admin_ids.get(chat_id)
        elif (self.app.clock.time() - entry[0] >= self.app.settings.bot.admin_cache_ttl
              and chat_id not in self._admin_tasks):
            task = asyncio.get_running_loop().create_task(self._refresh_admins(chat_id))
            self._admin_tasks[chat_id] = task
            task.add_done_callback(lambda _t, c=chat_id: self._admin_tasks.pop(c, None))
        return entry is not None and user_id in entry[1]

    async def _refresh_admins(self, chat_id: int) -> None:
        try:
            admins = await self.app.admins.admins(chat_id)
        except Exception:  # keep the old list (or none) and try again after the TTL
            log.warning("crisis: could not refresh the admins of chat %s", chat_id)
            admins = dict.fromkeys(self._admin_ids.get(chat_id, (0.0, frozenset()))[1])
        self._admin_ids[chat_id] = (self.app.clock.time(), frozenset(admins))

    def _forget_admins(self, payload: str) -> None:
        if payload == ALL:
            self._admin_ids.clear()
            return
        with contextlib.suppress(ValueError):
            self._admin_ids.pop(int(payload), None)

    async def stop(self) -> None:
        tasks = [t for t in [self.warm_task, *self._admin_tasks.values()] if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- evaluation --------------------------------------------------------------------------------
    async def evaluate(
        self, chat_id: int, cfg: CrisisConfig, *, instant: int | None = None, due: float | None = None,
    ) -> int | None:
        """Score the window and move the chat's incident; returns the level after (None: no incident).

        ``due``: several workers, evaluate only if no worker did in the last ``due`` seconds (the
        caller saw this worker's last evaluation only)."""
        if self.sync is not None and due is not None and not await self._due(chat_id, due):
            inc = self.incidents.get(chat_id)
            return inc.state.level if inc else None
        async with self._chat(chat_id, cfg) as sig:
            p = self.profile(cfg).signal
            now = self.app.clock.time()
            if self.sync is not None and due is not None and now - sig.last_eval < due:
                inc = self.incidents.get(chat_id)
                return inc.state.level if inc else None
            sig.last_eval = now
            snap = sig.snapshot(now, p, cfg.evidence_messages)
            inc = self.incidents.get(chat_id)
            move = step(inc.state if inc else None, snap, now, p, instant=instant,
                        auto_close=cfg.auto_close_minutes * 60)
            if inc is None:
                if move.kind == "open" and move.level is not None:
                    by_score = snap.level_for(p)
                    trigger = "instant" if instant is not None and (by_score or 4) > move.level else "score"
                    await self._open(chat_id, cfg, snap, move.level, trigger)
                elif is_calm(snap, p):
                    sig.learn(snap, now, p)
                inc = self.incidents.get(chat_id)
                return inc.state.level if inc else None
            if snap.score > inc.peak_score:
                inc.peak_score = snap.score
                inc.dirty = True
            level_after = move.level if move.kind == "change" else inc.state.level
            if snap.evidence and level_after is not None and level_after <= cfg.alert_level:
                inc.evidence = render.evidence_rows(snap.evidence)
                inc.fresh_evidence = inc.dirty = True
            if move.kind == "change" and move.level is not None:
                await self._change(inc, cfg, snap, move.level)
            elif move.kind == "close":
                await self._close(inc, cfg, by=None, reason="auto")
                return None
            return inc.state.level

    async def _due(self, chat_id: int, due: float) -> bool:
        """Several workers: whether the chat's last evaluation (by any worker) is ``due`` seconds old."""
        assert self.sync is not None
        state = await self.sync.read_state(chat_id)
        last = state.last_eval if state is not None else None
        if last is not None:
            self.signal(chat_id).last_eval = last
        return last is None or self.app.clock.time() - last >= due

    async def _name_chat(self, sig: ChatSignal) -> None:
        """Several workers: the title of a chat whose messages all went to other workers (for alerts)."""
        if sig.title or self.sync is None:
            return
        async with self.app.db() as s:
            chat = await s.get(Chat, sig.chat_id)
        if chat is not None:
            sig.title, sig.username = chat.title or "", chat.username

    async def view(self, chat_id: int, cfg: CrisisConfig) -> tuple[ChatSignal, OpenIncident | None]:
        """The chat's signal and open incident for /crisis status (several workers: brought up to date)."""
        if self.sync is not None:
            async with self._chat(chat_id, cfg, save=False):
                pass
        return self.signal(chat_id), self.incidents.get(chat_id)

    def _seed(self, inc: OpenIncident, sig: ChatSignal) -> None:
        for r in sig.records:
            if not r.duplicate and (r.weights or r.negative):
                inc.note(r)

    async def _open(
        self, chat_id: int, cfg: CrisisConfig, snap: Snapshot, level: int, trigger: str, *, actor_id: int | None = None,
    ) -> None:
        sig = self.signal(chat_id)
        await self._name_chat(sig)
        now = self.now()
        detail = {"score": snap.score, "members": snap.risk_members, "messages": snap.messages}
        try:
            async with self.app.db() as s, s.begin():
                row = await service.open_incident(s, chat_id, sig.title, level, trigger, now, score=snap.score,
                                                  detail=detail, actor_id=actor_id)
                if actor_id is not None:  # a manual escalation pins the level
                    row.floor_level = level
                    await service.add_timeline(s, row.id, now, "action", level=level, actor_id=actor_id,
                                               detail={"action": "escalate"})
                inc = self._from_row(row)
                self._seed(inc, sig)
                inc.evidence = render.evidence_rows(snap.evidence)
                service.store_aggregates(row, messages=inc.messages, members=inc.members, keywords=inc.keywords,
                                         evidence=inc.evidence, peak_score=snap.score, now=now)
                inc.take_new()  # the row holds the seed already
                inc.state.floor = row.floor_level
                outbox = await self._announce(s, inc, cfg, snap, level, None, actor_id=actor_id)
        except IntegrityError:
            # Another process opened one (or memory was lost): adopt it.
            async with self.app.db() as s:
                row = await service.open_for_chat(s, chat_id)
            if row is not None:
                self.incidents[chat_id] = self._from_row(row)
            return
        self.incidents[chat_id] = inc
        log.warning("crisis: incident #%s opened in chat %s at level %s (score %.1f)", inc.id, chat_id, level,
                    snap.score)
        self._dispatch(outbox)
        await self.app.events.emit(CrisisChanged(chat_id=chat_id, incident_id=inc.id, level=level, old_level=None,
                                                 at=now))
        if level == 1:
            self._submit_measures(inc.id, chat_id, cfg)

    async def _change(
        self, inc: OpenIncident, cfg: CrisisConfig, snap: Snapshot, level: int, *, actor_id: int | None = None,
        floor: int | None = None,
    ) -> None:
        await self._name_chat(self.signal(inc.chat_id))
        now = self.now()
        async with self.app.db() as s, s.begin():
            row = await service.get_incident(s, inc.id)
            if row is None or row.status != "open":
                self.incidents.pop(inc.chat_id, None)
                return
            old = await service.set_level(s, row, level, now, actor_id=actor_id, floor=floor,
                                          detail={"score": snap.score, "members": snap.risk_members})
            outbox = await self._announce(s, inc, cfg, snap, level, old, actor_id=actor_id)
        inc.state.moved(level, now.timestamp())
        if floor is not None:
            inc.state.floor = floor
        log.warning("crisis: incident #%s in chat %s: level %s -> %s", inc.id, inc.chat_id, old, level)
        self._dispatch(outbox)
        await self.app.events.emit(CrisisChanged(chat_id=inc.chat_id, incident_id=inc.id, level=level, old_level=old,
                                                 at=now))
        if level == 1 and old != 1:
            self._submit_measures(inc.id, inc.chat_id, cfg)
        elif old == 1 and level != 1:
            self._submit_lift(inc.id, inc.chat_id)

    async def _announce(
        self, s: Any, inc: OpenIncident, cfg: CrisisConfig, snap: Snapshot, level: int, old: int | None, *,
        actor_id: int | None = None,
    ) -> list[tuple[int, int]]:
        """Queue (in the outbox, in the same transaction) what a new level says; returns (row id, dest)."""
        app = self.app
        chat_id = inc.chat_id
        dest = app.log_chat_for((await app.chat_config.chat(chat_id)).log_chat_id)
        _, tz = await self.tr(chat_id)
        sig = self.signal(chat_id)
        now = self.now()
        queued: list[tuple[int, int]] = []
        going_up = old is None or level < old
        # The first alert of an incident reads as a new alert even when it grew from an unannounced watch.
        first_alert = old is None or inc.state.peak > cfg.alert_level
        if dest is None:
            log.warning("crisis: no log chat configured; incident #%s level %s not announced", inc.id, level)
        if going_up and level <= cfg.alert_level and dest is not None:
            manual = await app.members.name_of(actor_id) if actor_id else None
            text = render.alert_text(
                _, incident_id=inc.id, level=level, old_level=None if first_alert else old, title=sig.title,
                chat_id=chat_id, username=sig.username, snap=snap, window_minutes=cfg.window_minutes,
                trend=sig.trend_rows(snap.at),
                opened_at=datetime.fromtimestamp(inc.opened_at, UTC), tz=tz, trigger=inc.trigger,
                manual_by=render.esc(manual) if manual else None,
            )
            markup = render.alert_markup(_, inc.id, ack=not inc.acked, level=level)
            row = await service.enqueue(s, chat_id=chat_id, dest_chat_id=dest, kind="alert", text=text, now=now,
                                        incident_id=inc.id, markup=markup)
            queued.append((row.id, dest))
            await service.add_timeline(s, inc.id, now, "action", level=level,
                                       detail={"action": "alert", "dest": dest})
            if level == 1 and cfg.dm_owners and app.admins.owners:
                dm = render.dm_text(_, incident_id=inc.id, title=sig.title, chat_id=chat_id, alert=text)
                for owner in sorted(app.admins.owners):
                    row = await service.enqueue(s, chat_id=chat_id, dest_chat_id=owner, kind="dm", text=dm, now=now,
                                                incident_id=inc.id)
                    queued.append((row.id, owner))
                await service.add_timeline(s, inc.id, now, "action", level=level,
                                           detail={"action": "dm_owners", "owners": sorted(app.admins.owners)})
        elif not going_up and old is not None and old <= cfg.alert_level and dest is not None:
            text = render.down_text(_, incident_id=inc.id, level=level, old_level=old, title=sig.title,
                                    chat_id=chat_id, score=snap.score)
            row = await service.enqueue(s, chat_id=chat_id, dest_chat_id=dest, kind="note", text=text, now=now,
                                        incident_id=inc.id, silent=True)
            queued.append((row.id, dest))
        return queued

    async def _close(
        self, inc: OpenIncident, cfg: CrisisConfig, *, by: int | None, reason: str, note: str | None = None,
    ) -> bool:
        app = self.app
        now = self.now()
        _, tz = await self.tr(inc.chat_id)
        async with app.db() as s, s.begin():
            row = await service.get_incident(s, inc.id, for_update=self.sync is not None)
            if row is None or not await service.resolve(s, row, now, by=by, reason=reason, note=note):
                self.incidents.pop(inc.chat_id, None)
                return False
            if self.sync is None:
                service.store_aggregates(row, messages=inc.messages, members=inc.members, keywords=inc.keywords,
                                         evidence=inc.evidence, peak_score=inc.peak_score, now=now)
            else:  # the row holds the other workers' notes: add ours
                messages, members, keywords = inc.take_new()
                service.add_aggregates(row, messages=messages, members=members, keywords=keywords,
                                       evidence=inc.evidence if inc.fresh_evidence else [],
                                       peak_score=inc.peak_score, now=now)
            rows = await service.timeline(s, inc.id)
            dest = app.log_chat_for((await app.chat_config.chat(inc.chat_id)).log_chat_id)
            queued: list[tuple[int, int]] = []
            if dest is not None and (row.peak_level <= cfg.alert_level or cfg.summary_for_watch or by is not None):
                names = await self._names({r.actor_id for r in rows if r.actor_id} | {row.acked_by, by})
                text = render.summary_text(_, inc=row, rows=rows, tz=tz, names=names,
                                           calm_minutes=cfg.auto_close_minutes)
                out = await service.enqueue(s, chat_id=inc.chat_id, dest_chat_id=dest, kind="summary", text=text,
                                            now=now, incident_id=inc.id, silent=by is None)
                queued.append((out.id, dest))
            alerts = await service.alert_messages(s, inc.id)
            measures = dict(row.measures or {})
            acked_by, acked_at = row.acked_by, row.acked_at
        self.incidents.pop(inc.chat_id, None)
        log.warning("crisis: incident #%s in chat %s closed (%s)", inc.id, inc.chat_id, reason)
        self._dispatch(queued)
        who = await app.members.name_of(by) if by is not None else None
        line = render.resolved_line(_, render.esc(who) if who else None, now, tz)
        if acked_by is not None and acked_at is not None:
            acker = render.esc(await app.members.name_of(acked_by))
            line = render.ack_line(_, acker, acked_at, tz) + "\n" + line
        for alert in alerts:
            self._edit_alert(alert.dest_chat_id, alert.message_id, alert.text, line, None)  # type: ignore[arg-type]
        await app.events.emit(CrisisChanged(chat_id=inc.chat_id, incident_id=inc.id, level=None,
                                            old_level=inc.state.level, at=now))
        if measures.get("permissions") is not None:
            self._submit_lift(inc.id, inc.chat_id)
        return True

    async def _names(self, ids: set[int | None]) -> dict[int, str]:
        out: dict[int, str] = {}
        for uid in ids:
            if uid is not None:
                out[uid] = await self.app.members.name_of(uid)
        return out

    # ---- manual actions (commands and log-chat buttons) ----------------------------------------------
    async def acknowledge(self, chat_id: int, user_id: int, incident_id: int | None = None) -> str:
        """'ok' | 'already' | 'none'."""
        async with self._chat(chat_id):
            inc = self.incidents.get(chat_id)
            if inc is None or (incident_id is not None and inc.id != incident_id):
                return "none"
            now = self.now()
            async with self.app.db() as s, s.begin():
                row = await service.get_incident(s, inc.id)
                if row is None:
                    return "none"
                done = await service.acknowledge(s, row, user_id, now)
                alerts = await service.alert_messages(s, inc.id) if done else []
            if not done:
                inc.acked = True
                return "already"
            inc.acked = True
            _, tz = await self.tr(chat_id)
            line = render.ack_line(_, render.esc(await self.app.members.name_of(user_id)), now, tz)
            for alert in alerts:
                markup = render.alert_markup(_, inc.id, ack=False, level=inc.state.level)
                self._edit_alert(alert.dest_chat_id, alert.message_id, alert.text, line, markup)  # type: ignore[arg-type]
            return "ok"

    async def resolve(self, chat_id: int, user_id: int, incident_id: int | None = None, note: str | None = None) -> str:
        cfg = await self.cfg(chat_id)
        async with self._chat(chat_id, cfg):
            inc = self.incidents.get(chat_id)
            if inc is None or (incident_id is not None and inc.id != incident_id):
                return "none"
            return "ok" if await self._close(inc, cfg, by=user_id, reason="manual", note=note) else "none"

    async def escalate(self, chat_id: int, user_id: int, incident_id: int | None = None) -> tuple[str, int | None]:
        """One level up (manual floor). ('ok', level) | ('top', 1) | ('none', None). Without an open incident
        a manual escalation opens one at level 2."""
        cfg = await self.cfg(chat_id)
        async with self._chat(chat_id, cfg) as sig:
            inc = self.incidents.get(chat_id)
            if incident_id is not None and (inc is None or inc.id != incident_id):
                return "none", None
            p = self.profile(cfg).signal
            now = self.app.clock.time()
            snap = sig.snapshot(now, p, cfg.evidence_messages)
            if inc is None:
                await self._open(chat_id, cfg, snap, 2, "manual", actor_id=user_id)
                return ("ok", 2) if chat_id in self.incidents else ("none", None)
            if inc.state.level == 1:
                return "top", 1
            level = inc.state.level - 1
            await self._change(inc, cfg, snap, level, actor_id=user_id, floor=level)
            return "ok", level

    # ---- measures (level 1) ---------------------------------------------------------------------------
    def _submit_measures(self, incident_id: int, chat_id: int, cfg: CrisisConfig) -> None:
        if cfg.restrict == "off" and not cfg.holding_statement:
            return
        self.app.sender.submit(chat_id, lambda: self._apply_measures(incident_id, chat_id))

    def _submit_lift(self, incident_id: int, chat_id: int) -> None:
        self.app.sender.submit(chat_id, lambda: self._lift_measures(incident_id, chat_id))

    async def _record_action(self, incident_id: int, action: str, ok: bool, **extra: Any) -> None:
        async with self.app.db() as s, s.begin():
            await service.add_timeline(s, incident_id, self.now(), "action",
                                       detail={"action": action, "ok": ok, **extra})

    async def _apply_measures(self, incident_id: int, chat_id: int) -> None:
        app = self.app
        cfg = await self.cfg(chat_id)
        async with app.db() as s:
            row = await service.get_incident(s, incident_id)
        if row is None or row.status != "open" or row.level != 1:
            return
        measures = dict(row.measures or {})
        if cfg.restrict != "off" and measures.get("permissions") is None:
            ok = True
            try:
                chat = await app.bot.get_chat(chat_id)
                current = chat.permissions or ChatPermissions(can_send_messages=True)
                saved = current.model_dump(exclude_none=True)
                new = dict(saved)
                for key in MEDIA_PERMISSIONS:
                    new[key] = False
                if cfg.restrict == "all":
                    new["can_send_messages"] = False
                await app.bot.set_chat_permissions(chat_id, ChatPermissions(**new),
                                                   use_independent_chat_permissions=True)
                measures["permissions"] = saved
                measures["restrict"] = cfg.restrict
            except TelegramAPIError as exc:
                ok = False
                log.warning("crisis: restricting chat %s failed: %s", chat_id, exc)
            await self._record_action(incident_id, "restrict", ok, mode=cfg.restrict)
        if cfg.holding_statement and measures.get("holding_message_id") is None:
            ok = True
            try:
                sent = await app.bot.send_message(chat_id, html.escape(cfg.holding_statement_text, quote=False))
                measures["holding_message_id"] = sent.message_id
            except TelegramAPIError as exc:
                ok = False
                measures["holding_message_id"] = 0  # do not repeat a statement that failed
                log.warning("crisis: holding statement in chat %s failed: %s", chat_id, exc)
            await self._record_action(incident_id, "statement", ok)
        async with app.db() as s, s.begin():
            row = await service.get_incident(s, incident_id)
            if row is not None:
                row.measures = measures

    async def _lift_measures(self, incident_id: int, chat_id: int) -> None:
        app = self.app
        async with app.db() as s:
            row = await service.get_incident(s, incident_id)
        if row is None:
            return
        measures = dict(row.measures or {})
        saved = measures.get("permissions")
        if saved is None or (row.status == "open" and row.level == 1):
            return
        ok = True
        try:
            await app.bot.set_chat_permissions(chat_id, ChatPermissions(**saved),
                                               use_independent_chat_permissions=True)
        except TelegramAPIError as exc:
            if "not_modified" not in str(exc).lower():
                ok = False
                log.warning("crisis: lifting the restriction of chat %s failed: %s", chat_id, exc)
        await self._record_action(incident_id, "unrestrict", ok)
        if ok:
            measures["permissions"] = None
            measures["lifted"] = True
            async with app.db() as s, s.begin():
                row = await service.get_incident(s, incident_id)
                if row is not None:
                    row.measures = measures

    # ---- outbox -------------------------------------------------------------------------------------
    def _dispatch(self, queued: list[tuple[int, int]]) -> None:
        """Send freshly queued rows; older pending rows of the same destination go first."""
        dests = list(dict.fromkeys(dest for _row, dest in queued))
        for dest in dests:
            self.app.sender.submit(dest, lambda dest=dest: self._send_pending(dest))  # type: ignore[misc]

    async def _send_pending(self, dest: int) -> None:
        async with self.app.db() as s:
            rows = await service.pending_outbox(s, dest_chat_id=dest)
        for row in rows:
            if not await self._send(row.id):
                break  # the destination fails: keep the order, retry later

    async def retry_outbox(self) -> int:
        """The retry job: submit pending rows that are due, per destination, oldest first."""
        async with self.app.db() as s:
            rows = await service.pending_outbox(s, self.now(), limit=500)
        dests = list(dict.fromkeys(r.dest_chat_id for r in rows))
        for dest in dests:
            self.app.sender.submit(dest, lambda dest=dest: self._send_pending(dest))  # type: ignore[misc]
        return len(rows)

    async def _send(self, row_id: int) -> bool:
        if row_id in self._inflight:
            return True
        self._inflight.add(row_id)
        try:
            if self.sync is None:
                return await self._send_row(row_id)
            # Several workers: the one that queued the row and the leader's retry job may both try it.
            async with self.app.shared.lock(f"crisis:outbox:{row_id}"):
                return await self._send_row(row_id)
        finally:
            self._inflight.discard(row_id)

    async def _send_row(self, row_id: int) -> bool:
        async with self.app.db() as s:
            row = await s.get(service.CrisisOutbox, row_id)
        if row is None or row.status != service.PENDING:
            return True
        markup = InlineKeyboardMarkup.model_validate(row.markup) if row.markup else None
        try:
            sent = await self.app.bot.send_message(row.dest_chat_id, row.text, reply_markup=markup,
                                                   disable_notification=True if row.silent else None)
        except Exception as exc:  # network errors too: the row stays pending
            cfg = await self.cfg(row.chat_id)
            # A DM to an owner who never started the bot (or blocked it) will not start working by itself.
            permanent = isinstance(exc, TelegramForbiddenError) and row.dest_chat_id > 0
            async with self.app.db() as s, s.begin():
                status = await service.mark_failed(s, row_id, f"{type(exc).__name__}: {exc}", self.now(),
                                                   max_attempts=cfg.outbox_max_attempts, permanent=permanent)
            log.warning("crisis: %s #%s to %s failed (%s): %s", row.kind, row_id, row.dest_chat_id, status, exc)
            return permanent
        async with self.app.db() as s, s.begin():
            await service.mark_sent(s, row_id, sent.message_id, self.now())
        return True

    def _edit_alert(
        self, dest: int, message_id: int, text: str, line: str, markup: dict[str, Any] | None,
    ) -> None:
        method = EditMessageText(
            chat_id=dest, message_id=message_id, text=(text + "\n\n" + line)[:4096],
            reply_markup=InlineKeyboardMarkup.model_validate(markup) if markup else None,
        )
        self.app.call(dest, method)

    # ---- periodic -------------------------------------------------------------------------------------
    async def tick(self) -> None:
        """Evaluate chats nobody wrote in lately (de-escalation and closing need no new messages).

        Several workers (the job runs in the leader): also the chats whose incident or messages are on
        the other workers; a chat's window is caught up (one read) only when something may be in it."""
        now = self.app.clock.time()
        chats = [*self.incidents, *self.signals]
        if self.sync is not None:
            if self._stale_all:
                await self._reload_all()
            for chat_id in list(self._stale):
                await self._reload_incident(chat_id)
            active = await self.sync.active_chats(now)
            chats = [*self.incidents, *active, *(c for c, sig in self.signals.items() if sig.records)]
        for chat_id in list(dict.fromkeys(chats)):
            try:
                cfg = await self.cfg(chat_id)
                if not cfg.enabled:
                    if chat_id in self.incidents:  # switched off in this chat: do not leave the incident hanging
                        async with self._chat(chat_id, cfg):
                            inc = self.incidents.get(chat_id)
                            if inc is not None:
                                await self._close(inc, cfg, by=None, reason="disabled")
                    continue
                sig = self.signals.get(chat_id)
                if self.sync is not None:
                    sig = self.signal(chat_id)
                    await self.sync.catch_up(sig, now, cfg.window_minutes * 60)
                if chat_id not in self.incidents and (sig is None or sig.idle(now, cfg.window_minutes * 60)):
                    continue
                if sig is None or now - sig.last_eval >= cfg.eval_seconds:
                    await self.evaluate(chat_id, cfg, due=cfg.eval_seconds)
            except Exception:
                log.exception("crisis: evaluating chat %s failed", chat_id)

    # ---- flush (inside the core's batch transaction) -----------------------------------------------
    async def flush(self, session: Any) -> None:
        now = self.now()
        rows = []
        taken: list[tuple[OpenIncident, tuple[int, dict[int, str], Counter[str]], bool]] = []
        for inc in list(self.incidents.values()):
            if not inc.dirty:
                continue
            inc.dirty = False
            fresh, inc.fresh_evidence = inc.fresh_evidence, False
            new = inc.take_new()
            if self.sync is None:  # one process: its totals are the incident's
                rows.append({"id": inc.id, "messages": inc.messages, "members": dict(inc.members),
                             "keywords": dict(inc.keywords), "evidence": list(inc.evidence),
                             "peak_score": inc.peak_score, "at": now})
            else:  # several workers: each adds what it noted
                taken.append((inc, new, fresh))
                rows.append({"id": inc.id, "messages": new[0], "members": new[1], "keywords": new[2],
                             "evidence": list(inc.evidence) if fresh else [], "peak_score": inc.peak_score,
                             "at": now})
        if rows and self.sync is None:
            await service.write_aggregates(session, rows)
        elif rows:
            try:
                await service.merge_aggregates(session, rows)
            except BaseException:
                for inc, new, fresh in taken:
                    inc.give_back(new)
                    inc.fresh_evidence = inc.fresh_evidence or fresh
                raise
        baselines = []
        for sig in self.signals.values():
            if not sig.baseline_dirty:
                continue
            sig.baseline_dirty = False
            b = sig.baseline
            baselines.append({"chat_id": sig.chat_id, "rate": b.rate, "negative_share": b.negative_share,
                              "score": b.score, "samples": b.samples, "updated_at": now})
        if baselines:
            await service.save_baselines(session, baselines)
