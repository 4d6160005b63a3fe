"""The calendar engine: load, arm, fire, deliver, hold and release.

Exactly once, step by step:
1. every (entry, chat) has its *next* occurrence armed as a durable core timer keyed by the occurrence
   (``content_calendar:<entry>:<chat>:<slot>``); arming is idempotent (same key = no-op) and skips slots
   that already have an occurrence row, so re-arming at start or after a reload never duplicates;
2. when the timer fires, the occurrence row is inserted *before* anything is sent; its unique key
   (entry, chat, local slot) lets one process, one attempt, win; a row that exists means "done or being
   done" and the fire does nothing;
3. a send that fails for a transient reason (flood control, network, 5xx) moves the row to ``retry`` and
   raises, so the timer service retries it with backoff; after ``max_attempts`` it is ``failed`` with the
   reason. Permanent errors (bot removed, chat gone, bad file id) fail at once;
4. after downtime the armed timer is overdue: within ``grace_minutes`` it is posted once, older it is
   recorded as ``skipped`` and logged. Either way the next occurrence is armed.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNotFound,
    TelegramUnauthorizedError,
)
from aiogram.methods import GetChatMemberCount, PinChatMessage, SendMessage, SendPhoto, SendVideo, UnpinChatMessage
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, ReplyParameters
from sqlalchemy import event as sa_event
from sqlalchemy import text as sql_text
from sqlalchemy.exc import IntegrityError

from bot.db import retry_locked
from bot.services.events import ActivityHistogramRequested, ChatSettingsChanged, CheckedIn, CrisisChanged
from bot.services.timers import MAX_ATTEMPTS as TIMER_MAX_ATTEMPTS
from bot.services.timers import TimerFire
from plugins.content_calendar import service as svc
from plugins.content_calendar.config import ContentCalendarConfig
from plugins.content_calendar.entries import (
    CalendarLoad,
    Checker,
    Entry,
    Problem,
    compile_entry,
    escape,
    load_calendar,
    render,
    summarize,
    targets,
)
from plugins.content_calendar.festivals import FestivalCalendar
from plugins.content_calendar.when import Occurrence, parse_clock

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.app import App
    from bot.models import Timer
    from plugins.content_calendar.models import CalendarEntry

log = logging.getLogger(__name__)

NAME = "content_calendar"
TIMER = f"{NAME}.fire"
TIMER_PREFIX = f"{NAME}:"
WEEKDAYS = ("星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日")
DELETE_TIMER = "core.delete_message"
STUCK_SECONDS = 600  # a "sending" row older than this belongs to a process that died mid-send


class RetryLater(Exception):
    """Raised from the timer handler so the core timer service retries the send with backoff."""


@dataclass(frozen=True)
class Outcome:
    status: str  # sent, failed, retry, held, skipped, duplicate, gone, paused
    message_id: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class AgendaItem:
    local: datetime
    chat_id: int
    entry: Entry
    occurrence: Occurrence
    peak_source: str | None = None


def timer_key(key: str, chat_id: int, slot: str) -> str:
    return f"{TIMER_PREFIX}{key}:{chat_id}:{slot}"


def is_permanent(exc: BaseException) -> bool:
    """Errors a retry cannot fix: the bot was removed, the chat is gone, the request itself is wrong."""
    return isinstance(
        exc, TelegramForbiddenError | TelegramBadRequest | TelegramNotFound | TelegramUnauthorizedError
        | TelegramEntityTooLarge
    )


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def week_start(local_day: date, tz: ZoneInfo) -> datetime:
    monday = local_day - timedelta(days=local_day.weekday())
    return datetime.combine(monday, time(0), tzinfo=tz)


def build_method(
    entry: Entry, chat_id: int, text: str, *, silent: bool | None = None, reply_to: int | None = None
) -> Any:
    reply = ReplyParameters(message_id=reply_to, allow_sending_without_reply=True) if reply_to else None
    markup = None
    if entry.buttons:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text=t, url=u) for t, u in row] for row in entry.buttons]
        )
    quiet = entry.silent if silent is None else silent
    media = entry.media
    if media is None:
        return SendMessage(chat_id=chat_id, text=text[:4096], reply_markup=markup, disable_notification=quiet or None,
                           reply_parameters=reply)
    kind, ref = media
    caption = text[:1024] or None
    if kind == "photo":
        return SendPhoto(chat_id=chat_id, photo=ref, caption=caption, reply_markup=markup,
                         disable_notification=quiet or None, reply_parameters=reply)
    return SendVideo(chat_id=chat_id, video=ref, caption=caption, reply_markup=markup,
                     disable_notification=quiet or None, reply_parameters=reply)


def agenda(
    entries: Iterable[Entry],
    start: datetime,
    end: datetime,
    fc: FestivalCalendar,
    *,
    chats_of: Any,
    tz_of: Any,
    peak_of: Any,
    morning: time,
    chat: int | None = None,
    limit: int = 2000,
) -> list[AgendaItem]:
    """Every occurrence between ``start`` and ``end`` (pure: no DB, no network)."""
    items: list[AgendaItem] = []
    for entry in entries:
        if not entry.enabled:
            continue
        for chat_id in chats_of(entry):
            if chat is not None and chat_id != chat:
                continue
            tz = tz_of(chat_id)
            peak, source = peak_of(chat_id) if entry.when.uses_peak else (time(0), None)
            for occ in entry.when.between(start, end, tz, fc, peak=peak, morning=morning, limit=limit):
                items.append(AgendaItem(occ.local, chat_id, entry, occ, source))
    items.sort(key=lambda i: (i.local.astimezone(ZoneInfo("UTC")), i.chat_id, i.entry.key))
    return items[:limit]


def resolve_path(path: str, config_path: str | None) -> str:
    if not path:
        return ""
    p = Path(path)
    if not p.is_absolute() and config_path:
        beside = Path(config_path).parent / p
        if beside.exists():
            return str(beside)
    return str(p)


class CalendarRuntime:
    """Per-App state: compiled entries (a cache over the DB), festival calendars, peak hours."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._compiled: dict[str, tuple[Any, Entry | None]] = {}
        self._festivals: dict[tuple[tuple[str, str], ...], FestivalCalendar] = {}
        self._peak: dict[tuple[int, date], tuple[time, str]] = {}
        self.last_load: CalendarLoad | None = None
        self._lock = asyncio.Lock()
        # Streaks from CheckedIn, written in the core's batch transaction rather than a commit per 签到.
        self.pending_streaks: svc.PendingStreaks = {}

    # ---- config helpers ------------------------------------------------------------------------------
    def base_cfg(self) -> ContentCalendarConfig:
        cfg = self.app.chat_config.defaults(NAME)
        assert isinstance(cfg, ContentCalendarConfig)
        return cfg

    async def cfg(self, chat_id: int) -> ContentCalendarConfig:
        cfg = await self.app.chat_config.get(chat_id, NAME)
        assert isinstance(cfg, ContentCalendarConfig)
        return cfg

    def festivals(self, cfg: ContentCalendarConfig | None = None) -> FestivalCalendar:
        # Festivals are global (entries compile once for every chat): the [plugins.content_calendar] table.
        cfg = self.base_cfg() if cfg is None else cfg
        key = tuple(sorted(cfg.festivals.items()))
        fc = self._festivals.get(key)
        if fc is None:
            fc = FestivalCalendar(cfg.festivals)
            self._festivals[key] = fc
        return fc

    def checker(self, *, past_is_error: bool = False, require_targets: bool = True,
                check_chat_tags: bool = True) -> Checker:
        cfg = self.base_cfg()
        settings = self.app.settings
        chat_tags = frozenset(t for sec in settings.chats.values() for t in sec.tags) if check_chat_tags else None
        return Checker(
            festivals=self.festivals(cfg), known_tags=frozenset(cfg.known_tags), chat_tags=chat_tags,
            now=self.app.clock.now(), default_tz=ZoneInfo(settings.bot.timezone), past_is_error=past_is_error,
            require_targets=require_targets, morning=parse_clock(cfg.morning_time),
        )

    def targets(self, entry: Entry) -> list[int]:
        return targets(entry, self.app.chat_config.chats_with_tag)

    # ---- entries -------------------------------------------------------------------------------------
    def compile_row(self, row: CalendarEntry) -> Entry | None:
        stamp = (row.id, row.updated_at, row.active)
        cached = self._compiled.get(row.key)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        check = self.checker(check_chat_tags=False, require_targets=row.source == "file")
        entry, problems = compile_entry(row.spec, check, source=row.source, owner_chat_id=row.owner_chat_id,
                                        db_id=row.id)
        if entry is None:
            log.error("calendar entry %s no longer compiles: %s", row.key, "; ".join(summarize(problems)))
        self._compiled[row.key] = (stamp, entry)
        return entry

    async def entry(self, key: str) -> Entry | None:
        """The active entry (read from the DB: another process may have changed it)."""
        async with self.app.db() as s:
            row = await svc.entry_row(s, key)
        if row is None or not row.active:
            return None
        return self.compile_row(row)

    async def entries(self) -> list[Entry]:
        async with self.app.db() as s:
            rows = await svc.active_entries(s)
        return [e for r in rows if (e := self.compile_row(r)) is not None]

    async def entries_for(self, chat_id: int) -> list[Entry]:
        return [e for e in await self.entries() if chat_id in self.targets(e)]

    # ---- loading the file ----------------------------------------------------------------------------
    async def load_file(self, path: str | None = None) -> CalendarLoad | None:
        """Validate the calendar file and, when it has no errors, make the DB's file entries equal to it.

        All or nothing: a file with any error changes nothing (the entries from the last good load keep
        posting), and the problems are logged and reported.
        """
        path = path or self.resolve_path(self.base_cfg().calendar_file)
        if not path:
            return None
        async with self._lock:
            result = load_calendar(path, self.checker())
            self.last_load = result
            for line in summarize(result.problems):
                log.warning("calendar %s: %s", path, line)
            if not result.ok:
                log.error("calendar %s has %d error(s); keeping the previous entries", path, len(result.errors))
                return result
            now = self.app.clock.now()
            specs = [(e.key, dict(e.raw)) for e in result.entries]

            async def sync() -> tuple[list[str], list[str], list[str]]:
                async with self.app.db() as s, s.begin():
                    return await svc.sync_file_entries(s, specs, now)

            try:
                added, changed, removed = await retry_locked(sync)
            except IntegrityError:  # another process inserted the same new entries a moment ago
                added, changed, removed = await retry_locked(sync)
            for key in removed:
                await self.app.timers.cancel_prefix(f"{TIMER_PREFIX}{key}:")
            log.info("calendar %s loaded: %d entries (%d new, %d changed, %d removed)", path, len(result.entries),
                     len(added), len(changed), len(removed))
            return result

    def resolve_path(self, path: str) -> str:
        """A relative calendar_file is looked up next to the config file, then in the working directory."""
        return resolve_path(path, self.app.settings.source_path)

    # ---- peak hour -----------------------------------------------------------------------------------
    async def peak_time(self, chat_id: int, cfg: ContentCalendarConfig, tz: ZoneInfo) -> tuple[time, str]:
        """The chat's most active hour: (time, "analytics" | "query" | "default"), cached per local day."""
        today = self.app.clock.now().astimezone(tz).date()
        cached = self._peak.get((chat_id, today))
        if cached is not None:
            return cached
        hours: dict[int, int] = {}
        source = "default"
        question = ActivityHistogramRequested(chat_id=chat_id, days=cfg.peak_days)
        try:
            await self.app.events.emit(question)
            hours = {int(h) % 24: int(n) for h, n in question.hours.items()}
            source = "analytics"
        except Exception:
            log.exception("activity histogram request failed for chat %s", chat_id)
        if not hours and cfg.peak_query:
            since = self.app.clock.now() - timedelta(days=cfg.peak_days)
            try:
                async with self.app.db() as s:
                    rows = (await s.execute(sql_text(cfg.peak_query), {"chat_id": chat_id, "since": since})).all()
                hours = {}
                for h, n in rows:
                    hours[int(h) % 24] = hours.get(int(h) % 24, 0) + int(n or 0)
                source = "query"
            except Exception as exc:  # the analytics tables may not exist in this install
                log.info("peak_query failed for chat %s (%s); using peak_default", chat_id, type(exc).__name__)
                hours = {}
        if hours and sum(hours.values()) >= max(1, cfg.peak_min_messages):
            best = max(range(24), key=lambda h: (hours.get(h, 0), -h))
            result = (time(best, 0), source)
        else:
            result = (parse_clock(cfg.peak_default), "default")
        self._peak = {k: v for k, v in self._peak.items() if k[1] == today}
        self._peak[(chat_id, today)] = result
        return result

    # ---- arming --------------------------------------------------------------------------------------
    async def arm(
        self, entry: Entry, chat_id: int, *, after: datetime | None = None, paused: bool | None = None,
        timers: list[Timer] | None = None,
    ) -> Occurrence | None:
        """Arm the next occurrence of ``entry`` in ``chat_id`` (idempotent); returns it, or None.

        A chat where the plugin is switched off stays armed: the fire skips it and arms the next one, so
        switching the plugin back on needs no event. ``paused``/``timers`` let ``arm_all`` prefetch.
        """
        app = self.app
        prefix = f"{TIMER_PREFIX}{entry.key}:{chat_id}:"
        now = app.clock.now()
        target: Occurrence | None = None
        if entry.enabled:
            if paused is None:
                async with app.db() as s:
                    paused = await svc.is_paused(s, entry.key, chat_id)
            if not paused:
                target = await self._next_free(entry, chat_id, max(now, after) if after else now)
        wanted = timer_key(entry.key, chat_id, target.slot) if target else None
        mine = await app.timers.pending(prefix) if timers is None else timers
        for t in mine:
            # Only timers of *future* slots: an overdue one (downtime) or one waiting to retry a send keeps
            # its chance to run.
            if t.key != wanted and _slot_due(t) > now:
                await app.timers.cancel(t.key)
        if target is None or wanted is None:
            return None
        due = target.local.astimezone(ZoneInfo("UTC"))
        existing = next((t for t in mine if t.key == wanted), None) or await app.timers.get(wanted)
        if existing is None or existing.status == "cancelled" or (
            existing.status == "pending" and existing.due_at != due
        ):
            await app.timers.schedule(
                wanted, TIMER, due, chat_id=chat_id, replace=existing is not None,
                payload={"entry": entry.key, "slot": target.slot, "due": due.isoformat()},
            )
        return target

    async def _next_free(self, entry: Entry, chat_id: int, after: datetime) -> Occurrence | None:
        core = await self.app.chat_config.chat(chat_id)
        cfg = await self.cfg(chat_id)
        tz = core.tz
        peak = (await self.peak_time(chat_id, cfg, tz))[0] if entry.when.uses_peak else time(0)
        morning = parse_clock(cfg.morning_time)
        candidates = list(islice(entry.when.iter_from(after, tz, self.festivals(), peak=peak, morning=morning), 30))
        if not candidates:
            return None
        async with self.app.db() as s:
            taken = await svc.existing_slots(s, entry.key, chat_id, [c.slot for c in candidates])
        return next((c for c in candidates if c.slot not in taken), None)

    async def arm_all(self, chat_id: int | None = None) -> int:
        """Arm every (entry, chat); cancel future timers of pairs that no longer exist. Returns armed count."""
        entries = await self.entries()
        pairs = {(e.key, c) for e in entries for c in self.targets(e)}
        now = self.app.clock.now()
        by_pair: dict[tuple[str, int | None], list[Timer]] = {}
        for t in await self.app.timers.pending(TIMER_PREFIX):
            key = (t.payload or {}).get("entry")
            if (key, t.chat_id) not in pairs and _slot_due(t) > now and chat_id is None:
                await self.app.timers.cancel(t.key)
            else:
                by_pair.setdefault((key, t.chat_id), []).append(t)
        async with self.app.db() as s:
            paused = await svc.all_pauses(s)
        armed = 0
        for entry in entries:
            for chat in self.targets(entry):
                if chat_id is not None and chat != chat_id:
                    continue
                try:
                    if await self.arm(entry, chat, paused=(entry.key, chat) in paused,
                                      timers=by_pair.get((entry.key, chat), [])) is not None:
                        armed += 1
                except Exception:
                    log.exception("arming %s in chat %s failed", entry.key, chat)
        return armed

    # ---- firing --------------------------------------------------------------------------------------
    async def fire(self, fire: TimerFire) -> Outcome:
        app = self.app
        key = str(fire.payload.get("entry", ""))
        slot = str(fire.payload.get("slot", ""))
        chat_id = fire.chat_id
        if not key or not slot or chat_id is None:
            log.error("calendar timer %s has a malformed payload", fire.key)
            return Outcome("gone")
        entry = await self.entry(key)
        if entry is None or not entry.enabled or chat_id not in self.targets(entry):
            log.info("calendar entry %s is gone or no longer targets chat %s; slot %s dropped", key, chat_id, slot)
            return Outcome("gone")
        core = await app.chat_config.chat(chat_id)
        cfg = await self.cfg(chat_id)
        tz = core.tz
        fc = self.festivals()
        occ = entry.when.contains(slot, tz, fc, morning=parse_clock(cfg.morning_time))
        if occ is None:
            log.info("calendar slot %s of %s is no longer in its schedule; re-arming", slot, key)
            await self.arm(entry, chat_id)
            return Outcome("gone")
        due = _parse_due(fire.payload.get("due")) or fire.due_at
        occ = Occurrence(occ.slot, due.astimezone(tz), occ.festival, occ.days_to)
        after = datetime.combine(occ.local.date(), time.max, tzinfo=tz) if occ.is_peak else occ.local
        async with app.db() as s:
            if await svc.is_paused(s, key, chat_id):
                return Outcome("paused")
        if not await app.chat_config.enabled(chat_id, NAME):
            log.info("calendar: plugin off in chat %s; %s (%s) not posted", chat_id, key, slot)
            await self.arm(entry, chat_id, after=after)
            return Outcome("paused")
        # Arm the next occurrence first: it does not depend on how this one ends.
        try:
            await self.arm(entry, chat_id, after=after)
        except Exception:
            log.exception("arming the next occurrence of %s in %s failed", key, chat_id)
        return await self.run_occurrence(entry, chat_id, occ, cfg, tz, due=due, attempt=fire.attempt)

    async def holding(self, chat_id: int, cfg: ContentCalendarConfig) -> bool:
        async with self.app.db() as s:
            levels = await svc.crisis_levels(s, chat_id)
        return any(level in cfg.hold_levels for level in levels)

    def held_by_crisis(self, entry: Entry, cfg: ContentCalendarConfig) -> bool:
        return any(tag in cfg.hold_tags for tag in entry.tags)

    async def run_occurrence(
        self, entry: Entry, chat_id: int, occ: Occurrence, cfg: ContentCalendarConfig, tz: ZoneInfo, *,
        due: datetime, attempt: int = 1,
    ) -> Outcome:
        app = self.app
        now = app.clock.now()
        hold = self.held_by_crisis(entry, cfg) and await self.holding(chat_id, cfg)
        async with app.db() as s, s.begin():
            row = await svc.occurrence(s, entry.key, chat_id, occ.slot)
            if row is None:
                if hold:
                    new = await svc.insert_occurrence(s, key=entry.key, chat_id=chat_id, slot=occ.slot, due_at=due,
                                                      status="held", series=entry.series, now=now)
                    status = "held" if new is not None else "duplicate"
                elif now - due > timedelta(minutes=cfg.grace_minutes):
                    late = int((now - due).total_seconds() // 60)
                    new = await svc.insert_occurrence(s, key=entry.key, chat_id=chat_id, slot=occ.slot, due_at=due,
                                                      status="skipped", series=entry.series, now=now,
                                                      error=f"missed by {late} min (grace {cfg.grace_minutes} min)")
                    status = "skipped" if new is not None else "duplicate"
                else:
                    row = await svc.insert_occurrence(s, key=entry.key, chat_id=chat_id, slot=occ.slot, due_at=due,
                                                      status="sending", series=entry.series, now=now, attempts=1)
                    status = "sending" if row is not None else "duplicate"
            elif row.status == "retry":
                if hold:
                    ok = await svc.transition(s, row.id, "retry", "held")
                    status = "held" if ok else "duplicate"
                else:
                    ok = await svc.transition(s, row.id, "retry", "sending", attempts=row.attempts + 1)
                    status = "sending" if ok else "duplicate"
                    row.attempts += 1
            elif row.status == "sending" and now - row.created_at > timedelta(seconds=STUCK_SECONDS):
                # A process died between claiming and finishing: the post may or may not be out. We never
                # risk a double post; we make the unknown visible instead.
                await svc.transition(s, row.id, "sending", "failed",
                                     error="interrupted while sending (process stopped?); not resent")
                status = "duplicate"
            else:
                status = "duplicate"
        if status == "held":
            log.warning("calendar: crisis in chat %s, holding %s (%s)", chat_id, entry.key, occ.slot)
            await self._notify(chat_id, "内容日历：群 {chat} 有危机事件，暂缓发布 {entry}（{slot}）",
                               chat=chat_id, entry=entry.key, slot=occ.slot)
            return Outcome("held")
        if status == "skipped":
            log.warning("calendar: %s in chat %s missed its slot %s by more than %d min after downtime; skipped",
                        entry.key, chat_id, occ.slot, cfg.grace_minutes)
            await self._notify(chat_id, "内容日历：{entry} 在群 {chat} 的 {slot} 错过超过 {grace} 分钟，已跳过",
                               chat=chat_id, entry=entry.key, slot=occ.slot, grace=cfg.grace_minutes)
            return Outcome("skipped")
        if status == "duplicate" or row is None:
            return Outcome("duplicate")
        return await self._send(entry, chat_id, occ, cfg, tz, row.id, row.attempts, attempt)

    async def _send(
        self, entry: Entry, chat_id: int, occ: Occurrence, cfg: ContentCalendarConfig, tz: ZoneInfo, occ_id: int,
        attempts: int, timer_attempt: int,
    ) -> Outcome:
        app = self.app
        try:
            core = await app.chat_config.chat(chat_id)
            text = render(entry.text, await self.values(entry, chat_id, occ, core.language, cfg, tz))
            result, error = await self.call(chat_id, build_method(entry, chat_id, text))
        except Exception as exc:  # a rendering bug must not leave the row in "sending"
            result, error = None, exc
        now = app.clock.now()
        if isinstance(result, Message):
            async with app.db() as s, s.begin():
                await svc.set_fields(s, occ_id, status="sent", message_id=result.message_id, sent_at=now, error=None)
            log.info("calendar: posted %s into %s (%s), message %s", entry.key, chat_id, occ.slot, result.message_id)
            await self._after_post(entry, chat_id, occ_id, result.message_id)
            return Outcome("sent", result.message_id)
        assert error is not None
        reason = describe(error)
        final = is_permanent(error) or attempts >= cfg.max_attempts or timer_attempt >= TIMER_MAX_ATTEMPTS
        async with app.db() as s, s.begin():
            await svc.set_fields(s, occ_id, status="failed" if final else "retry", error=reason)
        if final:
            log.error("calendar: %s could not be posted into %s (%s) after %d attempt(s): %s", entry.key, chat_id,
                      occ.slot, attempts, reason)
            await self._notify(chat_id, "内容日历：{entry} 未能发到群 {chat}（{slot}）：{reason}",
                               chat=chat_id, entry=entry.key, slot=occ.slot, reason=reason)
            return Outcome("failed", error=reason)
        log.warning("calendar: posting %s into %s failed (attempt %d/%d), will retry: %s", entry.key, chat_id,
                    attempts, cfg.max_attempts, reason)
        raise RetryLater(reason)

    async def call(self, chat_id: int, method: Any) -> tuple[Any, BaseException | None]:
        """Send through the chat's FIFO queue (paced) and hand back the result or the error."""

        async def run() -> tuple[Any, BaseException | None]:
            try:
                return await self.app.bot(method), None
            except Exception as exc:
                return None, exc

        result = await self.app.sender.submit(chat_id, run)
        if result is None:
            return None, RuntimeError("send cancelled at shutdown")
        return result

    async def _after_post(self, entry: Entry, chat_id: int, occ_id: int, message_id: int) -> None:
        app = self.app
        if entry.delete_after_hours:
            await app.timers.schedule(
                f"core.delete:{chat_id}:{message_id}", DELETE_TIMER,
                app.clock.now() + timedelta(hours=entry.delete_after_hours), chat_id=chat_id,
                payload={"message_id": message_id},
            )
        if not entry.pin:
            return
        ok, error = await self.call(
            chat_id, PinChatMessage(chat_id=chat_id, message_id=message_id, disable_notification=entry.silent or None)
        )
        if error is not None or not ok:
            log.warning("calendar: could not pin %s in %s: %s", entry.key, chat_id, error and describe(error))
            return
        async with app.db() as s, s.begin():
            await svc.set_fields(s, occ_id, pinned=True)
            previous = await svc.pinned_in_series(s, chat_id, entry.series, occ_id)
            old = [(p.id, p.message_id) for p in previous]
        for pid, mid in old:
            if mid is not None:
                _res, err = await self.call(chat_id, UnpinChatMessage(chat_id=chat_id, message_id=mid))
                if err is not None:
                    log.info("calendar: unpinning message %s in %s failed: %s", mid, chat_id, describe(err))
            async with app.db() as s, s.begin():
                await svc.set_fields(s, pid, pinned=False)

    async def _notify(self, chat_id: int, msgid: str, **params: Any) -> None:
        try:
            cfg = await self.cfg(chat_id)
            if not cfg.notify_log_chat:
                return
            core = await self.app.chat_config.chat(chat_id)
            target = self.app.log_chat_for(core.log_chat_id)
            if target is None:
                return
            text = self.app.i18n.gettext(core.language, msgid).format(
                **{k: html.escape(str(v)) for k, v in params.items()}
            )
            self.app.send_text(target, text, disable_notification=True)
        except Exception:
            log.exception("calendar: log chat notice failed")

    async def notify_load(self, result: CalendarLoad) -> None:
        """Tell the log chat that the calendar file has errors (start or reload)."""
        cfg = self.base_cfg()
        target = self.app.settings.bot.log_chat_id
        if result.ok or not cfg.notify_log_chat or target is None:
            return
        lang = self.app.settings.bot.language
        head = self.app.i18n.gettext(lang, "内容日历：日历文件有错误，仍使用上次成功加载的版本：")
        lines = summarize(result.errors[:15], lambda m: self.app.i18n.gettext(lang, m))
        self.app.send_text(target, html.escape(head + "\n" + "\n".join(lines)), disable_notification=True)

    # ---- template values -----------------------------------------------------------------------------
    async def values(
        self, entry: Entry, chat_id: int, occ: Occurrence, lang: str, cfg: ContentCalendarConfig, tz: ZoneInfo
    ) -> dict[str, str]:
        app = self.app

        def _(text: str) -> str:
            return app.i18n.gettext(lang, text)

        day = occ.local.date()
        fc = self.festivals()
        out: dict[str, str] = {}
        used = entry.variables
        if "date" in used:
            out["date"] = _("{month}月{day}日").format(month=day.month, day=day.day, year=day.year)
        if "weekday" in used:
            out["weekday"] = _(WEEKDAYS[day.weekday()])
        if "time" in used:
            out["time"] = occ.local.strftime("%H:%M")
        if "festival" in used:
            fest = entry.when.festival or occ.festival
            out["festival"] = escape(_(fest.name)) if fest else ""
        if "days_to_festival" in used:
            out["days_to_festival"] = str(abs(occ.days_to)) if occ.days_to is not None else ""
        if "next_festival" in used or "days_to_next_festival" in used:
            nxt = fc.next_after(day)
            out["next_festival"] = escape(_(nxt[0].name)) if nxt else _("（暂无）")
            out["days_to_next_festival"] = str((nxt[1] - day).days) if nxt else "—"
        if "member_count" in used:
            out["member_count"] = await self._member_count(chat_id)
        if "top_members" in used:
            since = week_start(day, tz)
            board = await app.points.leaderboard(chat_id, since=since.astimezone(ZoneInfo("UTC")),
                                                 limit=cfg.top_count)
            lines = [f"{i}. {escape(await app.members.name_of(uid))} {pts}" + _("分")
                     for i, (uid, pts) in enumerate(board, start=1)]
            out["top_members"] = "\n".join(lines) if lines else _("本周还没有人上榜")
        if "streak_leaders" in used:
            since = datetime.combine(day - timedelta(days=1), time(0), tzinfo=tz)
            async with app.db() as s:
                leaders = await svc.streak_leaders(s, chat_id, since.astimezone(ZoneInfo("UTC")), cfg.top_count,
                                                   self.pending_streaks)
            lines = [f"{i}. {escape(await app.members.name_of(uid))} " + _("{n}天").format(n=n)
                     for i, (uid, n) in enumerate(leaders, start=1)]
            out["streak_leaders"] = "\n".join(lines) if lines else _("还没有连续签到记录")
        return out

    async def _member_count(self, chat_id: int) -> str:
        try:
            count = await self.app.bot(GetChatMemberCount(chat_id=chat_id))
            return str(int(count))
        except Exception:
            pass
        try:
            count = await self.app.members.count_present(chat_id)
        except Exception:
            count = 0
        return str(count) if count else "—"

    # ---- crisis --------------------------------------------------------------------------------------
    async def on_crisis(self, event: CrisisChanged) -> None:
        chat_id = event.chat_id
        if chat_id is None:
            return
        cfg = await self.cfg(chat_id)
        before = await self.holding(chat_id, cfg)
        async with self.app.db() as s, s.begin():
            await svc.set_crisis(s, chat_id, event.incident_id, event.level, self.app.clock.now())
        after = await self.holding(chat_id, cfg)
        if after and not before:
            log.warning("calendar: crisis level %s in chat %s: holding entries tagged %s", event.level, chat_id,
                        ", ".join(cfg.hold_tags))
        if before and not after:
            await self.release(chat_id, cfg)

    async def release(self, chat_id: int, cfg: ContentCalendarConfig) -> dict[str, int]:
        """The incident closed: drop or post each held occurrence per its tag's policy."""
        app = self.app
        now = app.clock.now()
        counts = {"posted": 0, "dropped": 0}
        async with app.db() as s:
            rows = await svc.held(s, chat_id)
        for row in rows:
            entry = await self.entry(row.entry_key)
            policy = "drop"
            if entry is not None:
                tags = [t for t in entry.tags if t in cfg.hold_tags]
                policy = cfg.release.get(tags[0], cfg.release_default) if tags else cfg.release_default
            too_old = now - row.due_at > timedelta(hours=cfg.release_max_age_hours)
            if entry is None or policy == "drop" or too_old:
                async with app.db() as s, s.begin():
                    done = await svc.transition(s, row.id, "held", "dropped",
                                                error="crisis: dropped" + (" (too old)" if too_old else ""))
                if done:
                    counts["dropped"] += 1
                    log.info("calendar: dropped held %s (%s) in chat %s", row.entry_key, row.slot, chat_id)
                continue
            async with app.db() as s, s.begin():
                # "retry" is the state a fire picks up and sends; a durable timer does it now.
                done = await svc.transition(s, row.id, "held", "retry")
            if not done:
                continue
            await app.timers.schedule(
                f"{timer_key(row.entry_key, chat_id, row.slot)}:release", TIMER, now, chat_id=chat_id,
                payload={"entry": row.entry_key, "slot": row.slot, "due": row.due_at.isoformat()}, replace=True,
            )
            counts["posted"] += 1
            log.info("calendar: releasing held %s (%s) in chat %s", row.entry_key, row.slot, chat_id)
        if rows:
            await self._notify(chat_id, "内容日历：群 {chat} 的危机已结束：补发 {posted} 条，放弃 {dropped} 条",
                               chat=chat_id, **counts)
        return counts

    # ---- preview / agenda ----------------------------------------------------------------------------
    async def next_occurrence(self, entry: Entry, chat_id: int) -> Occurrence | None:
        return await self._next_free(entry, chat_id, self.app.clock.now())

    async def chat_agenda(self, chat_id: int, days: int) -> list[AgendaItem]:
        core = await self.app.chat_config.chat(chat_id)
        cfg = await self.cfg(chat_id)
        peak = await self.peak_time(chat_id, cfg, core.tz)
        now = self.app.clock.now()
        async with self.app.db() as s:
            paused = await svc.paused_keys(s, chat_id)
        entries = [e for e in await self.entries_for(chat_id) if e.key not in paused]
        return agenda(
            entries, now, now + timedelta(days=days), self.festivals(), chats_of=lambda e: [chat_id],
            tz_of=lambda c: core.tz, peak_of=lambda c: peak, morning=parse_clock(cfg.morning_time), chat=chat_id,
            limit=200,
        )


def _slot_due(timer: Any) -> datetime:
    """When the timer's slot was due (the timer's own due_at moves when a send is retried)."""
    return _parse_due((timer.payload or {}).get("due")) or timer.due_at


def _parse_due(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


# ---- hooks wired in __init__ ------------------------------------------------------------------------
def runtime(app: App) -> CalendarRuntime:
    return CalendarRuntime(app)


async def on_startup(app: App) -> None:
    rt: CalendarRuntime = app.runtime(NAME)
    result = await rt.load_file()
    if result is not None and not result.ok:
        await rt.notify_load(result)
    armed = await rt.arm_all()
    log.info("calendar: %d occurrence(s) armed", armed)


async def on_fire(app: App, fire: TimerFire) -> None:
    rt: CalendarRuntime = app.runtime(NAME)
    await rt.fire(fire)


async def on_crisis(app: App, event: CrisisChanged) -> None:
    rt: CalendarRuntime = app.runtime(NAME)
    await rt.on_crisis(event)


async def on_checked_in(app: App, event: CheckedIn) -> None:
    if event.chat_id is None:
        return
    rt: CalendarRuntime = app.runtime(NAME)
    key = (event.chat_id, event.user_id)
    held = rt.pending_streaks.get(key)
    if held is None or held[1] <= event.at:
        rt.pending_streaks[key] = (event.streak, event.at)


async def flush(app: App, session: AsyncSession) -> None:
    """Write the buffered streaks in the batch transaction; a rollback puts them back for the next flush."""
    rt: CalendarRuntime = app.runtime(NAME)
    if not rt.pending_streaks:
        return
    batch, rt.pending_streaks = rt.pending_streaks, {}

    def requeue(_session: object) -> None:
        for key, value in batch.items():
            held = rt.pending_streaks.get(key)
            if held is None or held[1] < value[1]:
                rt.pending_streaks[key] = value

    sa_event.listen(session.sync_session, "after_rollback", requeue, once=True)
    await svc.write_streaks(session, batch)


async def on_settings_changed(app: App, event: ChatSettingsChanged) -> None:
    if event.chat_id is None or event.plugin not in (NAME, "core"):
        return
    rt: CalendarRuntime = app.runtime(NAME)
    rt._peak = {k: v for k, v in rt._peak.items() if k[0] != event.chat_id}
    await rt.arm_all(event.chat_id)


def problems_text(problems: list[Problem], translate: Any) -> str:
    return "\n".join(html.escape(line) for line in summarize(problems, translate))
