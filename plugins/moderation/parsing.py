"""Pure parsers: durations ("10m", "2小时", "半天") and penalty actions ("mute 1d", "禁言1天").

No I/O, no state: fuzzed with hypothesis. Errors are ``ParseError`` with a short code the handlers
turn into a Chinese usage reply.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

# Telegram treats a restriction shorter than 30 s or longer than 366 days as permanent, so a typed
# duration outside this range would silently mean "forever": it is refused instead.
MIN_SECONDS = 30
MAX_SECONDS = 366 * 86400

_UNITS: dict[str, int] = {}
for _names, _secs in (
    (("s", "sec", "secs", "second", "seconds", "秒", "秒钟"), 1),
    (("m", "min", "mins", "minute", "minutes", "分", "分钟"), 60),
    (("h", "hr", "hrs", "hour", "hours", "时", "小时", "个小时", "钟头", "个钟头", "个钟"), 3600),
    (("d", "day", "days", "天", "日"), 86400),
    (("w", "wk", "week", "weeks", "周", "个周", "星期", "个星期", "礼拜", "个礼拜"), 7 * 86400),
):
    for _n in _names:
        _UNITS[_n] = _secs

_CN_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_NUM = r"(?:\d{1,9}(?:\.\d{1,3})?|[零一二两三四五六七八九十]{1,4}|半)"
_UNIT = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_PART_RE = re.compile(rf"\s*({_NUM})\s*({_UNIT})\s*")


class ParseError(ValueError):
    """``code``: "empty", "format" or "range"."""

    def __init__(self, code: str, text: str = "") -> None:
        super().__init__(f"{code}: {text!r}")
        self.code = code
        self.text = text


def _cn_number(token: str) -> float | None:
    if token == "半":
        return 0.5
    if token[0].isdigit():
        return float(token)
    if "十" not in token:
        if len(token) != 1:
            return None
        return float(_CN_DIGITS[token])
    head, _, tail = token.partition("十")
    if "十" in tail or len(head) > 1 or len(tail) > 1:
        return None
    tens = _CN_DIGITS[head] if head else 1
    ones = _CN_DIGITS[tail] if tail else 0
    return float(tens * 10 + ones)


def _clean(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip().casefold()


def parse_duration(text: str, *, min_seconds: int = MIN_SECONDS, max_seconds: int = MAX_SECONDS) -> timedelta:
    """"30s", "10m", "2h", "1d", "1w", "1h30m", "10分钟", "2小时", "1天", "1周", "两天", "半小时".

    Raises ``ParseError("empty"|"format"|"range")``.
    """
    s = _clean(text)
    if not s:
        raise ParseError("empty", text)
    if len(s) > 40:
        raise ParseError("format", text)
    total = 0.0
    pos = 0
    while pos < len(s):
        m = _PART_RE.match(s, pos)
        if m is None or m.end() == pos:
            raise ParseError("format", text)
        value = _cn_number(m.group(1))
        if value is None:
            raise ParseError("format", text)
        total += value * _UNITS[m.group(2)]
        pos = m.end()
    if total != total or total < min_seconds or total > max_seconds:  # NaN-proof
        raise ParseError("range", text)
    return timedelta(seconds=int(total))


def looks_like_duration(token: str) -> bool:
    """True when the token is meant as a duration (starts with a digit or parses as one).

    "/mute 10x" is a malformed duration (usage reply); "/mute 一直刷屏" is a reason.
    """
    s = _clean(token)
    if not s:
        return False
    if s[0].isdigit():
        return True
    try:
        parse_duration(s, min_seconds=0, max_seconds=10**12)
    except ParseError:
        return False
    return True


# ---- actions -------------------------------------------------------------------------------------

KINDS = ("notice", "delete", "warn", "mute", "ban", "kick")
_KIND_NAMES: dict[str, str] = {
    "notice": "notice", "none": "notice", "提醒": "notice", "通知": "notice",
    "delete": "delete", "del": "delete", "删除": "delete", "删": "delete",
    "warn": "warn", "警告": "warn",
    "mute": "mute", "禁言": "mute",
    "ban": "ban", "封禁": "ban", "封": "ban",
    "kick": "kick", "踢出": "kick", "踢": "kick",
}  # fmt: skip
_KIND_RE = re.compile(
    "^(" + "|".join(sorted((re.escape(k) for k in _KIND_NAMES), key=len, reverse=True)) + r")[\s:：=]*(.*)$"
)


@dataclass(frozen=True)
class Action:
    """What to do to a member: notice (only a warn), delete, warn (ladder), mute, ban, kick.

    ``seconds`` is the mute/ban length; None means permanent.
    """

    kind: str
    seconds: int | None = None

    @property
    def rank(self) -> tuple[int, float]:
        """Severity for picking the stronger of two actions."""
        order = {"delete": 0, "notice": 0, "warn": 0, "mute": 1, "kick": 2, "ban": 3}[self.kind]
        length = float("inf") if self.seconds is None else float(self.seconds)
        return (order, length if self.kind in ("mute", "ban") else 0.0)

    def __str__(self) -> str:
        if self.seconds is None:
            return self.kind
        return f"{self.kind} {format_seconds_short(self.seconds)}"


def format_seconds_short(seconds: int) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_action(text: str, *, allowed: tuple[str, ...] = KINDS) -> Action:
    """"mute 1h", "mute:1d", "禁言1天", "ban", "ban 7d", "kick", "delete", "warn", "notice".

    Raises ``ParseError("format"|"range")``; a kind outside ``allowed`` is a "format" error.
    """
    s = _clean(text)
    m = _KIND_RE.match(s)
    if m is None:
        raise ParseError("format", text)
    kind = _KIND_NAMES[m.group(1)]
    if kind not in allowed:
        raise ParseError("format", text)
    rest = m.group(2).strip()
    if not rest:
        return Action(kind)
    if kind not in ("mute", "ban"):
        raise ParseError("format", text)
    return Action(kind, int(parse_duration(rest).total_seconds()))
