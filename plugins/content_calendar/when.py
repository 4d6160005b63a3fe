"""When an entry posts: the ``when`` language and the occurrence generator.

A ``when`` string is a day rule plus a time (``每周一 09:00``), or a 5-field cron expression
(``0 9 * * 1``, standard crontab meaning: 0 and 7 are Sunday). Day rules:

=====================================  ===========================================================
``2026-12-12 20:00``                   once (also ``2026/12/12``, ``2026年12月12日``)
``每天 20:00``                          every day
``每周一 09:00`` ``每周一三五 20:00``      weekly (``每周一至五``, ``周六 10:00``)
``每月1日 10:00`` ``每月1、15号``          monthly (``每月最后一天``); a month without the day is skipped
``每年2月14日 20:00``                   yearly (02-29: leap years only; 2月30日 is rejected)
``工作日 09:00``                         China's official working days (holidays off, 调休 Saturdays on)
``weekdays 09:00`` / ``周末 10:00``      plain Monday-Friday / Saturday-Sunday
``节假日 10:00``                         every official day off (public holidays and 调休 rest days)
``中秋 09:00`` ``中秋当天 早上``           on a festival
``双十一前3天 20:00``                    N days before (``后N天``: after)
``双十一倒计时3天 20:00``                 a countdown: each of the N days before (N, N-1, ... 1)
=====================================  ===========================================================

Times: ``HH:MM``, ``20点``, ``20点半``, ``早上`` (the configured morning time) or ``peak`` / ``高峰``
(the chat's most active hour). Every time is in the target chat's timezone.

An occurrence has a *slot*: its local date and time (``2026-11-11T20:00``), or for ``peak`` only its
date (``2026-11-11Tpeak``), so a chat whose peak hour moves never gets the same day's post twice.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from types import MappingProxyType
from typing import Any

from apscheduler.triggers.cron import CronTrigger

from plugins.content_calendar.festivals import Festival, FestivalCalendar

SCAN_DAYS = 800  # how far a day-by-day rule looks ahead before giving up
CN_DIGITS = MappingProxyType(
    {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
)
WEEKDAY_CHARS = MappingProxyType({"一": 0, "二": 1, "三": 2, "四": 3, "五": 4, "六": 5, "日": 6, "天": 6, "七": 6})
CRON_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
APS_DOW = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class WhenError(ValueError):
    """A ``when`` string that cannot be used; ``msgid`` is a zh_CN message with ``{params}``."""

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(msgid.format(**params))
        self.msgid = msgid
        self.params = params


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    return re.sub(r"\s+", " ", text).strip()


def cn_int(text: str) -> int | None:
    """"3", "三", "十", "十二", "二十" -> int; None when it is not a number."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if not text or any(c not in CN_DIGITS and c != "十" for c in text):
        return None
    if "十" in text:
        head, _, tail = text.partition("十")
        tens = CN_DIGITS.get(head, 1) if head else 1
        ones = CN_DIGITS.get(tail, 0) if tail else 0
        if (head and head not in CN_DIGITS) or (tail and tail not in CN_DIGITS):
            return None
        return tens * 10 + ones
    if len(text) == 1:
        return CN_DIGITS[text]
    return None


# ---- times ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimeSpec:
    peak: bool = False
    morning: bool = False
    hour: int = 0
    minute: int = 0

    def resolve(self, peak: time, morning: time) -> time:
        if self.peak:
            return peak
        if self.morning:
            return morning
        return time(self.hour, self.minute)

    @property
    def label(self) -> str:
        if self.peak:
            return "peak"
        if self.morning:
            return "早上"
        return f"{self.hour:02d}:{self.minute:02d}"


_TIME_RE = re.compile(
    r"(?:^|\s|(?<=[日号天午节末一二三四五六七八九十]))"
    r"(?P<t>\d{1,2}:\d{1,2}|\d{1,2}点半|\d{1,2}点(?:\d{1,2}分?)?|peak|高峰|活跃时段|早上|早晨|上午)$",
    re.IGNORECASE,
)


def parse_clock(text: str) -> time:
    """"20:00" -> time(20, 0); raises WhenError for 24:00, 9:75 and friends."""
    m = re.fullmatch(r"(\d{1,2}):(\d{1,2})", text.strip())
    if not m:
        raise WhenError("无效的时间：{value}（应为 HH:MM）", value=text)
    hour, minute = int(m[1]), int(m[2])
    if hour > 23 or minute > 59:
        raise WhenError("无效的时间：{value}（应为 HH:MM）", value=text)
    return time(hour, minute)


def _time_spec(token: str) -> TimeSpec:
    low = token.lower()
    if low in ("peak", "高峰", "活跃时段"):
        return TimeSpec(peak=True)
    if low in ("早上", "早晨", "上午"):
        return TimeSpec(morning=True)
    if ":" in token:
        t = parse_clock(token)
        return TimeSpec(hour=t.hour, minute=t.minute)
    m = re.fullmatch(r"(\d{1,2})点(半|(\d{1,2})分?)?", token)
    if not m:
        raise WhenError("无效的时间：{value}（应为 HH:MM）", value=token)
    hour = int(m[1])
    minute = 30 if m[2] == "半" else int(m[3] or 0)
    if hour > 23 or minute > 59:
        raise WhenError("无效的时间：{value}（应为 HH:MM）", value=token)
    return TimeSpec(hour=hour, minute=minute)


# ---- day rules --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DayInfo:
    festival: Festival | None = None
    days_to: int | None = None  # days from this day to the entry's festival (countdown / 前N天)


class DayRule(ABC):
    @abstractmethod
    def days(self, start: date, fc: FestivalCalendar) -> Iterator[tuple[date, DayInfo]]:
        """Matching days on or after ``start``, ascending."""

    def scan(self, start: date, fc: FestivalCalendar) -> Iterator[tuple[date, DayInfo]]:
        for i in range(SCAN_DAYS):
            d = start + timedelta(days=i)
            if self.match(d, fc):
                yield d, DayInfo()

    def match(self, d: date, fc: FestivalCalendar) -> bool:
        return False

    @property
    def festival(self) -> Festival | None:
        return None


@dataclass(frozen=True)
class Once(DayRule):
    day: date

    def days(self, start: date, fc: FestivalCalendar) -> Iterator[tuple[date, DayInfo]]:
        if self.day >= start:
            yield self.day, DayInfo()


@dataclass(frozen=True)
class Daily(DayRule):
    def days(self, start: date, fc: FestivalCalendar) -> Iterator[tuple[date, DayInfo]]:
        return self.scan(start, fc)

    def match(self, d: date, fc: FestivalCalendar) -> bool:
        return True


@dataclass(frozen=True)
class Weekly(DayRule):
    weekdays: frozenset[int]  # 0 = Monday

    def days(self, start: date, fc: FestivalCalendar) -> Iterator[tuple[date, DayInfo]]:
        return self.scan(start, fc)

    def match(self, d: date, fc: FestivalCalendar) -> bool:
        return d.weekday() in self.weekdays


@dataclass(frozen=True)
class Monthly(DayRule):
    monthdays: frozenset[int]  # 1..31; 0 = the last day of the month

    def days(self, start: date, fc: FestivalCalendar) -> Iterator[tuple[date, DayInfo]]:
        return self.scan(start, fc)

    def match(self, d: date, fc: FestivalCalendar) -> bool:
        last = calendar.monthrange(d.year, d.month)[1]
        return d.day in self.monthdays or (0 in self.monthdays and d.day == last)


@dataclass(frozen=True)
class Yearly(DayRule):
    month: int
    day: int

    def days(self, start: date, fc: FestivalCalendar) -> Iterator[tuple[date, DayInfo]]:
        for year in range(start.year, start.year + 9):
            try:
                d = date(year, self.month, self.day)
            except ValueError:
                continue  # 02-29 outside a leap year
            if d >= start:
                yield d, DayInfo()


@dataclass(frozen=True)
class Workdays(DayRule):
    official: bool  # True: China's working days (holidays, 调休); False: Monday-Friday

    def days(self, start: date, fc: FestivalCalendar) -> Iterator[tuple[date, DayInfo]]:
        return self.scan(start, fc)

    def match(self, d: date, fc: FestivalCalendar) -> bool:
        return fc.is_workday(d) if self.official else d.weekday() < 5


@dataclass(frozen=True)
class DaysOff(DayRule):
    def days(self, start: date, fc: FestivalCalendar) -> Iterator[tuple[date, DayInfo]]:
        return self.scan(start, fc)

    def match(self, d: date, fc: FestivalCalendar) -> bool:
        return fc.is_day_off(d)


@dataclass(frozen=True)
class FestivalDay(DayRule):
    fest: Festival
    offset: int = 0  # -3: three days before; +1: the day after
    countdown: int = 0  # > 0: every day from `countdown` days before to 1 day before

    @property
    def festival(self) -> Festival | None:
        return self.fest

    def days(self, start: date, fc: FestivalCalendar) -> Iterator[tuple[date, DayInfo]]:
        # A post N days *after* a festival needs festival days from N days before ``start``.
        for fday in fc.occurrences(self.fest, start - timedelta(days=max(self.offset, 0))):
            if self.countdown:
                for k in range(self.countdown, 0, -1):
                    d = fday - timedelta(days=k)
                    if d >= start:
                        yield d, DayInfo(self.fest, k)
            else:
                d = fday + timedelta(days=self.offset)
                if d >= start:
                    yield d, DayInfo(self.fest, -self.offset)


# ---- cron -------------------------------------------------------------------------------------------
def _cron_dow(field_: str) -> str:
    """Translate a crontab day-of-week field (0/7 = Sunday) into APScheduler 3 names.

    APScheduler 3's ``from_crontab`` reads 0 as Monday, so ``0 9 * * 1`` would fire on Tuesdays; we expand
    the field ourselves to explicit day names.
    """
    if field_ in ("*", "?"):
        return "*"
    days: set[int] = set()
    for atom in field_.lower().split(","):
        body, _, step_s = atom.partition("/")
        step = int(step_s) if step_s else 1
        if step_s and (not step_s.isdigit() or step < 1):
            raise WhenError("无效的 cron 表达式：{value}", value=field_)

        def num(tok: str) -> int:
            if tok.isdigit() and 0 <= int(tok) <= 7:
                return int(tok) % 7
            if tok[:3] in CRON_DOW_NAMES:
                return CRON_DOW_NAMES.index(tok[:3])
            raise WhenError("无效的 cron 表达式：{value}", value=field_)

        if body in ("*", "?"):
            lo, hi = 0, 6
        elif "-" in body:
            a, b = body.split("-", 1)
            lo, hi = num(a), num(b)
            if b.strip() == "7":
                hi = 7
            if hi < lo:
                raise WhenError("无效的 cron 表达式：{value}", value=field_)
        else:
            lo = hi = num(body)
            if step_s:
                hi = 6
        days.update(d % 7 for d in range(lo, hi + 1, step))
    if not days:
        raise WhenError("无效的 cron 表达式：{value}", value=field_)
    return ",".join(CRON_DOW_NAMES[d] for d in sorted(days))


_CRON_TOKEN = re.compile(r"^[0-9*/,\-?a-zA-Z]+$")


def looks_like_cron(text: str) -> bool:
    parts = text.split()
    return len(parts) == 5 and all(_CRON_TOKEN.match(p) for p in parts) and not re.search(r"\d:\d", text)


def make_cron(expr: str, tz: tzinfo) -> CronTrigger:
    minute, hour, dom, month, dow = expr.split()
    try:
        return CronTrigger(minute=minute, hour=hour, day=dom, month=month, day_of_week=_cron_dow(dow), timezone=tz)
    except WhenError:
        raise WhenError("无效的 cron 表达式：{value}", value=expr) from None
    except (ValueError, TypeError) as exc:
        raise WhenError("无效的 cron 表达式：{value}（{reason}）", value=expr, reason=str(exc)) from None


# ---- occurrences ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Occurrence:
    slot: str
    local: datetime  # aware, in the chat's timezone
    festival: Festival | None = None
    days_to: int | None = None

    @property
    def is_peak(self) -> bool:
        return self.slot.endswith("Tpeak")


@dataclass(frozen=True)
class When:
    text: str
    rule: DayRule | None = None
    time: TimeSpec | None = None
    cron: str | None = None
    starts: date | None = field(default=None, compare=False)
    ends: date | None = field(default=None, compare=False)

    @property
    def is_once(self) -> bool:
        return isinstance(self.rule, Once)

    @property
    def uses_peak(self) -> bool:
        return self.time is not None and self.time.peak

    @property
    def festival(self) -> Festival | None:
        return self.rule.festival if self.rule is not None else None

    def bounded(self, starts: date | None, ends: date | None) -> When:
        return When(self.text, self.rule, self.time, self.cron, starts, ends)

    def iter_from(
        self, after: datetime, tz: tzinfo, fc: FestivalCalendar, *, peak: time, morning: time
    ) -> Iterator[Occurrence]:
        """Occurrences strictly after ``after`` (aware), ascending, in ``tz``."""
        after = after.astimezone(tz)
        if self.starts is not None:
            floor = datetime.combine(self.starts, time(0), tzinfo=tz) - timedelta(microseconds=1)
            after = max(after, floor)
        if self.cron is not None:
            trigger = make_cron(self.cron, tz)
            cursor = after
            for _ in range(100_000):
                nxt = trigger.get_next_fire_time(None, cursor + timedelta(seconds=1))
                if nxt is None:
                    return
                nxt = nxt.astimezone(tz)
                if self.ends is not None and nxt.date() > self.ends:
                    return
                fests = fc.on(nxt.date())
                yield Occurrence(nxt.strftime("%Y-%m-%dT%H:%M"), nxt, fests[0] if fests else None)
                cursor = nxt
            return
        assert self.rule is not None and self.time is not None
        at = self.time.resolve(peak, morning)
        for d, info in self.rule.days(after.date(), fc):
            if self.ends is not None and d > self.ends:
                return
            local = datetime.combine(d, at, tzinfo=tz)
            if local <= after:
                continue
            slot = f"{d.isoformat()}Tpeak" if self.time.peak else f"{d.isoformat()}T{at.hour:02d}:{at.minute:02d}"
            festival = info.festival
            if festival is None:
                fests = fc.on(d)
                festival = fests[0] if fests else None
            yield Occurrence(slot, local, festival, info.days_to)

    def next_after(
        self, after: datetime, tz: tzinfo, fc: FestivalCalendar, *, peak: time, morning: time
    ) -> Occurrence | None:
        return next(self.iter_from(after, tz, fc, peak=peak, morning=morning), None)

    def between(
        self, start: datetime, end: datetime, tz: tzinfo, fc: FestivalCalendar, *, peak: time, morning: time,
        limit: int = 1000,
    ) -> list[Occurrence]:
        out = []
        for occ in self.iter_from(start, tz, fc, peak=peak, morning=morning):
            if occ.local > end or len(out) >= limit:
                break
            out.append(occ)
        return out

    def contains(self, slot: str, tz: tzinfo, fc: FestivalCalendar, *, morning: time) -> Occurrence | None:
        """The occurrence for ``slot`` when the rule (still) produces it, else None."""
        day_s, _, clock = slot.partition("T")
        try:
            day = date.fromisoformat(day_s)
            at = time(0) if clock == "peak" else parse_clock(clock)
        except (ValueError, WhenError):
            return None
        probe_peak = at if clock != "peak" else time(12)
        start = datetime.combine(day, time(0), tzinfo=tz) - timedelta(minutes=1)
        for occ in self.iter_from(start, tz, fc, peak=probe_peak, morning=morning):
            if occ.local.date() > day:
                return None
            if occ.slot == slot:
                return occ
        return None


# ---- parsing ----------------------------------------------------------------------------------------
def _weekday_set(spec: str) -> frozenset[int]:
    spec = spec.replace("星期", "").replace("周", "").replace("礼拜", "")
    spec = re.sub(r"[、,，/ 和及]", "", spec)
    days: set[int] = set()
    i = 0
    while i < len(spec):
        c = spec[i]
        if c not in WEEKDAY_CHARS:
            raise WhenError("无法识别的星期：{value}", value=spec)
        if i + 2 < len(spec) and spec[i + 1] in "至到-~":
            end = spec[i + 2]
            if end not in WEEKDAY_CHARS:
                raise WhenError("无法识别的星期：{value}", value=spec)
            lo, hi = WEEKDAY_CHARS[c], WEEKDAY_CHARS[end]
            if hi < lo:
                raise WhenError("无法识别的星期：{value}", value=spec)
            days.update(range(lo, hi + 1))
            i += 3
            continue
        days.add(WEEKDAY_CHARS[c])
        i += 1
    if not days:
        raise WhenError("无法识别的星期：{value}", value=spec)
    return frozenset(days)


def _check_date(year: int, month: int, day: int, raw: str) -> date:
    if not 1 <= month <= 12:
        raise WhenError("日期不存在：{value}", value=raw)
    try:
        date(2000 if year == 0 else year, month, day)
    except ValueError:
        raise WhenError("日期不存在：{value}", value=raw) from None
    if year == 0:
        return date(2000, month, day)
    return date(year, month, day)


_FEST_RE = re.compile(
    r"^(?P<name>.+?)\s*(?:(?P<same>当天|当日|那天)|前(?P<before>\S+?)天|后(?P<after>\S+?)天|倒计时(?P<count>\S+?)天)?$"
)


def parse_when(text: str, fc: FestivalCalendar) -> When:
    """Parse a ``when`` string; raises WhenError with the reason."""
    raw = normalize(text)
    if not raw:
        raise WhenError("缺少时间表达式")
    if raw.lower().startswith("cron:"):
        expr = normalize(raw[5:])
        if not looks_like_cron(expr):
            raise WhenError("无效的 cron 表达式：{value}", value=expr)
        make_cron(expr, UTC)
        return When(raw, cron=expr)
    if looks_like_cron(raw):
        make_cron(raw, UTC)
        return When(raw, cron=raw)
    m = _TIME_RE.search(raw)
    if not m:
        raise WhenError("缺少或无法识别时间（例如 20:00、20点、早上 或 peak）：{value}", value=raw)
    spec = _time_spec(m["t"])
    head = raw[: m.start("t")].strip()
    return When(raw, _day_rule(head, raw, fc), spec)


def _day_rule(head: str, raw: str, fc: FestivalCalendar) -> DayRule:
    low = head.lower()
    if not head:
        raise WhenError("缺少日期或规则（例如 每天、每周一、2026-12-12）：{value}", value=raw)
    if m := re.fullmatch(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", head):
        return Once(_check_date(int(m[1]), int(m[2]), int(m[3]), head))
    if m := re.fullmatch(r"(\d{4})年(\d{1,2})月(\d{1,2})[日号]", head):
        return Once(_check_date(int(m[1]), int(m[2]), int(m[3]), head))
    if m := re.fullmatch(r"(\d{1,2})月(\d{1,2})[日号]", head):
        _check_date(0, int(m[1]), int(m[2]), head)
        raise WhenError("请写明年份（例如 2026-12-12）或用「每年{value}」", value=head)
    if low in ("每天", "每日", "天天", "daily", "every day", "everyday"):
        return Daily()
    if low in ("工作日", "每个工作日", "每工作日"):
        return Workdays(official=True)
    if low in ("weekdays", "weekday", "周一至周五", "周一到周五"):
        return Workdays(official=False)
    if low in ("周末", "每周末", "weekends", "weekend"):
        return Weekly(frozenset({5, 6}))
    if low in ("节假日", "法定节假日", "假日", "holidays"):
        return DaysOff()
    if m := re.fullmatch(r"(?:每周|每星期|每个星期|每礼拜|周|星期)(.+)", head):
        return Weekly(_weekday_set(m[1]))
    if m := re.fullmatch(r"每月(.+)", head):
        body = m[1]
        if body in ("最后一天", "月底", "月末", "底"):
            return Monthly(frozenset({0}))
        body = re.sub(r"[日号]$", "", body)
        days: set[int] = set()
        for part in re.split(r"[、,，和 ]+", body):
            n = cn_int(re.sub(r"[日号]$", "", part))
            if n is None or not 1 <= n <= 31:
                raise WhenError("每月的日子应为 1-31：{value}", value=head)
            days.add(n)
        return Monthly(frozenset(days))
    if m := re.fullmatch(r"每年(\d{1,2})(?:月|-|/)(\d{1,2})[日号]?", head):
        d = _check_date(0, int(m[1]), int(m[2]), head)
        return Yearly(d.month, d.day)
    if m := _FEST_RE.match(head):
        name = m["name"].strip()
        fest = fc.lookup(name)
        if fest is None:
            if re.search(r"\d{4}|[:：]|每", name):
                raise WhenError("无法识别的时间表达式：{value}", value=raw)
            raise WhenError("不认识的节日：{name}", name=name)
        if m["before"] is not None or m["after"] is not None or m["count"] is not None:
            token = m["before"] or m["after"] or m["count"]
            n = cn_int(token)
            if n is None or not 1 <= n <= 60:
                raise WhenError("天数应为 1-60：{value}", value=head)
            if m["count"] is not None:
                return FestivalDay(fest, countdown=n)
            return FestivalDay(fest, offset=-n if m["before"] is not None else n)
        return FestivalDay(fest)
    raise WhenError("无法识别的时间表达式：{value}", value=raw)

