"""The festival year: China's public holidays, lunar festivals and e-commerce days.

Sources, in order of authority:
- public holidays (元旦, 春节, 清明, 劳动节, 端午, 中秋, 国庆) and the official days off and make-up
  working days (调休) come from the maintained ``holidays`` library (``holidays.China``);
- lunar festivals (腊八, 除夕, 元宵, 七夕, 重阳, and the lunar public holidays when the library has no
  data for a year) are converted with ``lunardate`` (lunar years 1900-2099);
- solar days (520, 618, 双十一, 双十二, 情人节, ...) and "n-th weekday" days (母亲节, 父亲节) are fixed
  rules; ops add their own days in config (``festivals = { "品牌日" = "09-09", "会员日" = "农历03-03" }``).

A ``FestivalCalendar`` caches computed years in the instance (one per plugin runtime; no module state).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import holidays
from lunardate import LunarDate

YEARS_AHEAD = 6


@dataclass(frozen=True)
class Festival:
    key: str  # canonical name used in `when` strings and in the occurrence context
    name: str  # display name ({festival})
    rule: str  # solar:MM-DD | lunar:MM-DD | lunar_eve | qingming | nth:MM:N:WD | date:YYYY-MM-DD
    aliases: tuple[str, ...] = ()
    # The name of this holiday in holidays.China(language="zh_CN") when it is a public holiday.
    official: str | None = None


BUILTIN: tuple[Festival, ...] = (
    Festival("元旦", "元旦", "solar:01-01", ("新年",), official="元旦"),
    Festival("腊八", "腊八节", "lunar:12-08", ("腊八节",)),
    Festival("除夕", "除夕", "lunar_eve", ("大年三十", "年三十", "农历除夕")),
    Festival("春节", "春节", "lunar:01-01", ("过年", "大年初一", "农历新年"), official="春节"),
    Festival("元宵", "元宵节", "lunar:01-15", ("元宵节",)),
    Festival("情人节", "情人节", "solar:02-14", ("214",)),
    Festival("妇女节", "女神节", "solar:03-08", ("女神节", "三八", "38节", "三八节")),
    Festival("清明", "清明节", "qingming", ("清明节",), official="清明节"),
    Festival("劳动节", "劳动节", "solar:05-01", ("五一",), official="劳动节"),
    Festival("520", "520", "solar:05-20", ("五二零", "网络情人节")),
    Festival("母亲节", "母亲节", "nth:05:2:6"),
    Festival("儿童节", "儿童节", "solar:06-01", ("六一",)),
    Festival("618", "618", "solar:06-18", ("六一八", "年中大促")),
    Festival("端午", "端午节", "lunar:05-05", ("端午节",), official="端午节"),
    Festival("父亲节", "父亲节", "nth:06:3:6"),
    Festival("七夕", "七夕", "lunar:07-07", ("七夕节", "中国情人节")),
    Festival("中秋", "中秋节", "lunar:08-15", ("中秋节",), official="中秋节"),
    Festival("国庆", "国庆节", "solar:10-01", ("国庆节",), official="国庆节"),
    Festival("重阳", "重阳节", "lunar:09-09", ("重阳节",)),
    Festival("双十一", "双十一", "solar:11-11", ("双11", "1111", "光棍节")),
    Festival("双十二", "双十二", "solar:12-12", ("双12", "1212")),
    Festival("圣诞", "圣诞节", "solar:12-25", ("圣诞节",)),
)

_MD = re.compile(r"^(\d{1,2})-(\d{1,2})$")
_LUNAR = re.compile(r"^(?:农历|lunar:?)\s*(\d{1,2})-(\d{1,2})$", re.IGNORECASE)
_YMD = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")


class FestivalError(ValueError):
    """A bad festival definition in config; ``problems`` lists each one (msgid, params)."""

    def __init__(self, problems: list[tuple[str, dict[str, Any]]]) -> None:
        super().__init__("; ".join(msgid.format(**params) for msgid, params in problems))
        self.problems = problems


def normalize(text: str) -> str:
    """Full-width to half-width, trimmed, lower-case latin (so "双１１" and "双11" match)."""
    return unicodedata.normalize("NFKC", text).strip().lower()


def parse_rule(spec: str) -> str:
    """Turn a config value into a rule string; raises ValueError(msgid) when it is not a valid day."""
    raw = normalize(spec)
    if m := _LUNAR.match(raw):
        month, day = int(m[1]), int(m[2])
        if not (1 <= month <= 12 and 1 <= day <= 30):
            raise ValueError("农历日期不存在：{value}")
        return f"lunar:{month:02d}-{day:02d}"
    if m := _YMD.match(raw):
        try:
            d = date(int(m[1]), int(m[2]), int(m[3]))
        except ValueError:
            raise ValueError("日期不存在：{value}") from None
        return f"date:{d.isoformat()}"
    if m := _MD.match(raw):
        month, day = int(m[1]), int(m[2])
        try:
            date(2000, month, day)  # a leap year: 02-29 is a valid (every-four-years) day
        except ValueError:
            raise ValueError("日期不存在：{value}") from None
        return f"solar:{month:02d}-{day:02d}"
    raise ValueError("节日日期的格式是 MM-DD、农历MM-DD 或 YYYY-MM-DD：{value}")


def _qingming_estimate(year: int) -> date:
    """清明 by the common formula (21st century); only used where the holidays library has no data."""
    y = year % 100
    day = int(y * 0.2422 + 4.81) - y // 4
    return date(year, 4, day)


def _lunar_to_solar(lyear: int, month: int, day: int) -> date | None:
    try:
        return LunarDate(lyear, month, day).to_solar_date()
    except (ValueError, IndexError, KeyError):
        return None


class FestivalCalendar:
    def __init__(self, extra: Mapping[str, str] | None = None) -> None:
        festivals = list(BUILTIN)
        problems: list[tuple[str, dict[str, Any]]] = []
        taken = {normalize(n) for f in festivals for n in (f.key, f.name, *f.aliases)}
        for name, spec in (extra or {}).items():
            clean = str(name).strip()
            if not clean or len(clean) > 24 or any(c.isspace() for c in clean):
                problems.append(("节日名称不合适：{name}", {"name": name}))
                continue
            try:
                rule = parse_rule(str(spec))
            except ValueError as exc:
                problems.append((f"{{name}}: {exc.args[0]}", {"name": clean, "value": spec}))
                continue
            key = normalize(clean)
            if key in taken:
                # An ops entry may override a built-in day (e.g. their own 618 date): replace it.
                festivals = [f for f in festivals if key not in {normalize(n) for n in (f.key, f.name, *f.aliases)}]
            festivals.append(Festival(clean, clean, rule))
            taken.add(key)
        if problems:
            raise FestivalError(problems)
        self.festivals: tuple[Festival, ...] = tuple(festivals)
        self._by_name: dict[str, Festival] = {}
        for f in self.festivals:
            for n in (f.key, f.name, *f.aliases):
                self._by_name.setdefault(normalize(n), f)
        self._official: dict[int, holidays.HolidayBase] = {}
        self._year: dict[int, dict[date, list[Festival]]] = {}

    # ---- lookup ------------------------------------------------------------------------------------
    def lookup(self, name: str) -> Festival | None:
        return self._by_name.get(normalize(name))

    def names(self) -> list[str]:
        return [f.key for f in self.festivals]

    # ---- official calendar -------------------------------------------------------------------------
    def official(self, year: int) -> holidays.HolidayBase:
        cal = self._official.get(year)
        if cal is None:
            cal = holidays.China(years=year, language="zh_CN")
            self._official[year] = cal
        return cal

    def is_day_off(self, d: date) -> bool:
        """An official public holiday or 调休 rest day (not an ordinary weekend)."""
        return d in self.official(d.year)

    def is_workday(self, d: date) -> bool:
        """China's official working day: Mon-Fri that are not holidays, plus 调休 make-up Saturdays/Sundays."""
        return bool(self.official(d.year).is_working_day(d))

    # ---- dates -------------------------------------------------------------------------------------
    def _compute(self, f: Festival, year: int) -> list[date]:
        kind, _, arg = f.rule.partition(":")
        if f.official is not None:
            found = sorted(d for d, n in self.official(year).items() if n == f.official)
            if found:
                return [found[0]]
        if kind == "solar":
            month, day = (int(x) for x in arg.split("-"))
            try:
                return [date(year, month, day)]
            except ValueError:
                return []  # 02-29 outside a leap year
        if kind == "date":
            d = date.fromisoformat(arg)
            return [d] if d.year == year else []
        if kind == "qingming":
            return [_qingming_estimate(year)]
        if kind == "nth":
            month_s, n_s, wd_s = arg.split(":")
            month, n, wd = int(month_s), int(n_s), int(wd_s)
            first = date(year, month, 1)
            offset = (wd - first.weekday()) % 7
            return [first + timedelta(days=offset + 7 * (n - 1))]
        if kind == "lunar":
            month, day = (int(x) for x in arg.split("-"))
            out = [d for ly in (year - 1, year) if (d := _lunar_to_solar(ly, month, day)) and d.year == year]
            return sorted(set(out))
        if kind == "lunar_eve":
            out = []
            for ly in (year, year + 1):
                new_year = _lunar_to_solar(ly, 1, 1)
                if new_year is not None and (eve := new_year - timedelta(days=1)).year == year:
                    out.append(eve)
            return out
        return []

    def _days(self, year: int) -> dict[date, list[Festival]]:
        table = self._year.get(year)
        if table is None:
            table = {}
            for f in self.festivals:
                for d in self._compute(f, year):
                    table.setdefault(d, []).append(f)
            self._year[year] = table
        return table

    def dates(self, f: Festival, year: int) -> list[date]:
        return sorted(d for d, fs in self._days(year).items() if f in fs)

    def date_of(self, f: Festival, year: int) -> date | None:
        found = self.dates(f, year)
        return found[0] if found else None

    def occurrences(self, f: Festival, start: date, years: int = YEARS_AHEAD) -> Iterator[date]:
        """The festival's dates on or after ``start``, ascending (a few years ahead)."""
        for year in range(start.year, start.year + years):
            for d in self.dates(f, year):
                if d >= start:
                    yield d

    def on(self, d: date) -> list[Festival]:
        return list(self._days(d.year).get(d, ()))

    def next_after(self, d: date) -> tuple[Festival, date] | None:
        """The first festival strictly after ``d``."""
        for year in range(d.year, d.year + 2):
            for day in sorted(self._days(year)):
                if day > d:
                    return self._days(year)[day][0], day
        return None
