"""Pure parsers for the contest commands (no aiogram, no database): durations, times and arguments.

Every parser raises ``ParseError(msgid, **params)`` with a zh_CN message id the handler translates;
``ParseError(None)`` means "show the command's usage".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType

SECOND, MINUTE, HOUR, DAY = 1, 60, 3600, 86_400


def _unit_table() -> MappingProxyType[str, int]:
    table: dict[str, int] = {}
    for names, seconds in (
        (("s", "sec", "secs", "second", "seconds", "秒", "秒钟"), SECOND),
        (("m", "min", "mins", "minute", "minutes", "分", "分钟"), MINUTE),
        (("h", "hr", "hrs", "hour", "hours", "时", "小时", "个小时", "钟头", "个钟头"), HOUR),
        (("d", "day", "days", "天", "日"), DAY),
        (("w", "wk", "week", "weeks", "周", "星期", "个星期", "礼拜", "个礼拜"), 7 * DAY),
        (("mo", "month", "months", "月", "个月"), 30 * DAY),
        (("y", "yr", "yrs", "year", "years", "年"), 365 * DAY),
    ):
        for name in names:
            table[name] = seconds
    return MappingProxyType(table)


_UNITS = _unit_table()

_CN_DIGITS = MappingProxyType(
    {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
)
_UNIT_RE = "|".join(sorted((re.escape(u) for u in _UNITS), key=len, reverse=True))
_PART_RE = re.compile(rf"(\d+(?:\.\d+)?|[零〇一二两三四五六七八九十百]+|半)\s*({_UNIT_RE})")
_LOOKS_LIKE_DURATION = re.compile(r"^\d[\d.]*[a-z\u4e00-\u9fff]+$")
_INT_RE = re.compile(r"^[+-]?\d{1,9}$")
POLL_QUESTION_MAX = 300
POLL_OPTION_MAX = 100
PK_SIDE_MAX = 40
PRIZE_MAX = 100
KEYWORD_MAX = 32
QUIZ_QUESTION_MAX = 1000
QUIZ_ANSWER_MAX = 100


class ParseError(Exception):
    """Bad arguments: ``msgid`` is a zh_CN message (None: show the usage), ``params`` fill it in."""

    def __init__(self, msgid: str | None, **params: object) -> None:
        super().__init__(msgid or "usage")
        self.msgid = msgid
        self.params = params

    def render(self, gettext: Callable[[str], str]) -> str | None:
        if self.msgid is None:
            return None
        return gettext(self.msgid).format(**self.params)


def fold(text: str) -> str:
    """NFKC (full-width -> half-width), case-folded, whitespace removed: for duplicate checks."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text)).casefold()


def _cn_number(text: str) -> int | None:
    if text == "半":
        return None
    if all(ch in _CN_DIGITS for ch in text):
        value = 0
        for ch in text:
            value = value * 10 + _CN_DIGITS[ch]
        return value
    total, current = 0, 0
    for ch in text:
        if ch in _CN_DIGITS:
            current = _CN_DIGITS[ch]
        elif ch == "十":
            total += (current or 1) * 10
            current = 0
        elif ch == "百":
            total += (current or 1) * 100
            current = 0
        else:
            return None
    return total + current


def parse_duration(text: str) -> int | None:
    """Seconds of "30m", "2h", "1d", "1h30m", "30分钟", "两小时", "半小时", "10年"; None if not a duration.

    A bare number is not a duration (ambiguous). Very long values are returned as they are, so the
    caller can answer "too long" instead of "not a duration".
    """
    text = unicodedata.normalize("NFKC", text or "").strip().casefold()
    if not text or len(text) > 40:
        return None
    pos, total, found = 0, 0.0, False
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        m = _PART_RE.match(text, pos)
        if m is None:
            return None
        number, unit = m.group(1), m.group(2)
        if number == "半":
            value = 0.5
        elif number[0].isdigit():
            value = float(number)
        else:
            cn = _cn_number(number)
            if cn is None:
                return None
            value = float(cn)
        total += value * _UNITS[unit]
        found = True
        pos = m.end()
    if not found or total <= 0:
        return None
    return int(total)


def looks_like_duration(token: str) -> bool:
    """A token meant as a duration that did not parse, e.g. "5x" or "3星星" (not plain words)."""
    return bool(_LOOKS_LIKE_DURATION.match(unicodedata.normalize("NFKC", token).casefold()))


def format_duration(seconds: int, gettext: Callable[[str], str] = lambda s: s) -> str:
    """"1天2小时", "30分钟", "45秒" (at most two units)."""
    seconds = max(0, int(seconds))
    parts: list[str] = []
    for size, msgid in ((DAY, "{n}天"), (HOUR, "{n}小时"), (MINUTE, "{n}分钟"), (SECOND, "{n}秒")):
        if seconds >= size:
            n, seconds = divmod(seconds, size)
            parts.append(gettext(msgid).format(n=n))
        if len(parts) == 2:
            break
    return "".join(parts) or gettext("{n}秒").format(n=0)


def check_duration(seconds: int, min_seconds: int, max_seconds: int, gettext: Callable[[str], str]) -> None:
    if seconds < min_seconds:
        raise ParseError("时长至少为 {min}。", min=format_duration(min_seconds, gettext))
    if seconds > max_seconds:
        raise ParseError("时长不能超过 {max}。", max=format_duration(max_seconds, gettext))


def _tokens_with_positions(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(0), m.start(), m.end()) for m in re.finditer(r"\S+", text)]


# ------------------------------------------------------------------------------------------ polls
_ANON = frozenset({"anon", "anonymous", "匿名"})
_PUBLIC = frozenset({"public", "实名", "公开"})
_MULTI = frozenset({"multi", "multiple", "多选"})
_QUIZ_FLAG = re.compile(r"^(?:quiz|测验|答案)[=:：](.*)$", re.IGNORECASE)
_TIME_FLAG = re.compile(r"^(?:time|duration|时长|截止)[=:：](.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class PollSpec:
    question: str
    options: tuple[str, ...]
    anonymous: bool
    multiple: bool
    correct_option: int | None  # 0-based; None: a regular poll
    duration: int | None  # seconds; None: the configured default


def parse_poll(args: str, *, max_options: int = 10, anonymous_default: bool = False) -> PollSpec:
    text = (args or "").replace("｜", "|").strip()
    if not text:
        raise ParseError(None)
    if "|" in text:
        head, *options = (p.strip() for p in text.split("|"))
    elif "\n" in text:
        head, *options = (p.strip() for p in text.split("\n"))
    else:
        head, options = text, []
    anonymous, multiple, quiz_raw, duration = anonymous_default, False, None, None
    question = head
    for token, start, _end in _tokens_with_positions(head):
        low = unicodedata.normalize("NFKC", token).casefold()
        if low in _ANON:
            anonymous = True
        elif low in _PUBLIC:
            anonymous = False
        elif low in _MULTI:
            multiple = True
        elif (m := _QUIZ_FLAG.match(low)) is not None:
            quiz_raw = m.group(1).strip()
        elif (m := _TIME_FLAG.match(low)) is not None:
            duration = parse_duration(m.group(1))
            if duration is None:
                raise ParseError("时长格式不对：{value}（例如 30m、2h、1d、30分钟）", value=m.group(1))
        elif (d := parse_duration(low)) is not None:
            duration = d
        else:
            question = head[start:].strip()
            break
    else:
        question = ""
    while options and not options[-1]:
        options.pop()  # a trailing "|" is harmless
    if not question:
        raise ParseError("问题不能为空。")
    if len(question) > POLL_QUESTION_MAX:
        raise ParseError("问题最多 {max} 个字符。", max=POLL_QUESTION_MAX)
    if any(not o for o in options):
        raise ParseError("选项不能为空。")
    if len(options) < 2:
        raise ParseError("至少需要两个选项，用 | 分隔，例如：/poll 问题 | 选项1 | 选项2")
    if len(options) > max_options:
        raise ParseError("选项最多 {max} 个。", max=max_options)
    seen: set[str] = set()
    for option in options:
        if len(option) > POLL_OPTION_MAX:
            raise ParseError("每个选项最多 {max} 个字符。", max=POLL_OPTION_MAX)
        key = fold(option)
        if key in seen:
            raise ParseError("选项重复：{option}", option=option)
        seen.add(key)
    correct: int | None = None
    if quiz_raw is not None:
        if not quiz_raw.isdigit() or not 1 <= int(quiz_raw) <= len(options):
            raise ParseError("测验模式的正确选项应是 1 到 {n} 之间的序号。", n=len(options))
        if multiple:
            raise ParseError("测验模式只能单选。")
        correct = int(quiz_raw) - 1
    return PollSpec(question, tuple(options), anonymous, multiple, correct, duration)


# ------------------------------------------------------------------------------------------ PK
_PK_SEP = re.compile(r"\s+(?:vs\.?|v\.s\.|对|pk)\s+", re.IGNORECASE)
_PK_SEP_TIGHT = re.compile(r"vs\.?", re.IGNORECASE)


@dataclass(frozen=True)
class PkSpec:
    side_a: str
    side_b: str
    duration: int | None


def _take_duration_token(tokens: list[str]) -> int | None:
    """Pop a trailing duration ("2h", or "10 years" as two tokens) when more than that is left."""
    if len(tokens) < 2:
        return None
    if len(tokens) >= 3 and re.fullmatch(r"[\d.]+", tokens[-2]):
        seconds = parse_duration(tokens[-2] + tokens[-1])
        if seconds is not None:
            del tokens[-2:]
            return seconds
    last = tokens[-1]
    seconds = parse_duration(last)
    if seconds is not None:
        tokens.pop()
        return seconds
    if looks_like_duration(last):
        raise ParseError("时长格式不对：{value}（例如 30m、2h、1d、30分钟）", value=last)
    return None


def parse_pk(args: str) -> PkSpec:
    text = (args or "").replace("｜", "|").strip()
    if not text:
        raise ParseError(None)
    duration: int | None = None
    if "|" in text:
        text, _, tail = text.partition("|")
        tail = tail.strip()
        if tail:
            duration = parse_duration(tail)
            if duration is None:
                raise ParseError("时长格式不对：{value}（例如 30m、2h、1d、30分钟）", value=tail)
        text = text.strip()
    parts = _PK_SEP.split(text, maxsplit=1)
    if len(parts) != 2:
        parts = _PK_SEP_TIGHT.split(text, maxsplit=1)
    if len(parts) != 2:
        raise ParseError(None)
    side_a, side_b = parts[0].strip(), parts[1].strip()
    if duration is None:
        tokens = side_b.split()
        duration = _take_duration_token(tokens)
        if duration is not None:
            side_b = " ".join(tokens)
    if not side_a or not side_b or parse_duration(side_b) is not None:
        raise ParseError("两边的观点都不能为空，例如：/pk 甜粽子 vs 咸粽子 2h")
    if max(len(side_a), len(side_b)) > PK_SIDE_MAX:
        raise ParseError("每边的观点最多 {max} 个字符。", max=PK_SIDE_MAX)
    if fold(side_a) == fold(side_b):
        raise ParseError("两边的观点不能相同。")
    return PkSpec(side_a, side_b, duration)


# ------------------------------------------------------------------------------------------ times
_HM = re.compile(r"^(\d{1,2})[:：](\d{2})$")
_HM_CN = re.compile(r"^(\d{1,2})点(?:(\d{1,2})分?|半)?$")
_DATE = re.compile(r"^(?:(\d{4})[-/.])?(\d{1,2})[-/.](\d{1,2})$")
_DAY_WORDS = MappingProxyType({"今天": 0, "今晚": 0, "明天": 1, "明晚": 1, "后天": 2})


def _clock_time(token: str) -> tuple[int, int] | None:
    token = unicodedata.normalize("NFKC", token)
    m = _HM.match(token)
    if m is not None:
        hour, minute = int(m.group(1)), int(m.group(2))
    else:
        m = _HM_CN.match(token)
        if m is None:
            return None
        hour = int(m.group(1))
        minute = 30 if token.endswith("半") else int(m.group(2) or 0)
    if hour > 23 or minute > 59:
        return None
    return hour, minute


def parse_when(tokens: list[str], now_local: datetime) -> tuple[datetime, int] | None:
    """An absolute time at the start of ``tokens``: (aware datetime, tokens used) or None.

    Forms: "20:00" (the next 20:00), "明天20:00" / "明天 20:00", "11-20 20:00", "2026-11-20 20:00",
    "2026-11-20T20:00". Durations are not handled here.
    """
    if not tokens:
        return None
    first = unicodedata.normalize("NFKC", tokens[0])
    if "T" in first and _DATE.match(first.split("T", 1)[0]):
        a, b = first.split("T", 1)
        return _with_date(a, b, now_local, 1)
    hm = _clock_time(first)
    if hm is not None:
        at = now_local.replace(hour=hm[0], minute=hm[1], second=0, microsecond=0)
        if at <= now_local:
            at += timedelta(days=1)
        return at, 1
    for word, days in _DAY_WORDS.items():
        if first.startswith(word):
            rest = first[len(word):]
            used = 1
            if not rest and len(tokens) > 1:
                rest, used = tokens[1], 2
            hm = _clock_time(rest)
            if hm is None:
                return None
            day = (now_local + timedelta(days=days)).date()
            at = datetime(day.year, day.month, day.day, hm[0], hm[1], tzinfo=now_local.tzinfo)
            return at, used
    if _DATE.match(first) and len(tokens) > 1:
        return _with_date(first, tokens[1], now_local, 2)
    return None


def _with_date(date_text: str, time_text: str, now_local: datetime, used: int) -> tuple[datetime, int] | None:
    m = _DATE.match(date_text)
    hm = _clock_time(time_text)
    if m is None or hm is None:
        return None
    year = int(m.group(1)) if m.group(1) else now_local.year
    try:
        at = datetime(year, int(m.group(2)), int(m.group(3)), hm[0], hm[1], tzinfo=now_local.tzinfo)
    except ValueError:
        return None
    if not m.group(1) and at <= now_local:
        try:
            at = at.replace(year=year + 1)
        except ValueError:
            return None
    return at, used


# ------------------------------------------------------------------------------------------ lottery
_WINNERS = re.compile(r"^(\d{1,6})(?:人|名|个|份)?$")


@dataclass(frozen=True)
class LotterySpec:
    prize: str
    winners: int
    duration: int | None  # seconds from now, or
    at: datetime | None  # an absolute time (aware, chat time zone)
    keyword: str | None


def parse_lottery(args: str, now_local: datetime, *, max_winners: int = 100) -> LotterySpec:
    tokens = (args or "").split()
    if len(tokens) < 3:
        raise ParseError(None)
    best: tuple[int, int | None, datetime | None, int] | None = None
    bad_time: str | None = None
    for i in range(len(tokens) - 2, 0, -1):
        if not _WINNERS.match(unicodedata.normalize("NFKC", tokens[i])):
            continue
        rest = tokens[i + 1:]
        seconds = parse_duration(rest[0])
        if seconds is not None:
            best = (i, seconds, None, 1)
        else:
            when = parse_when(rest, now_local)
            if when is not None:
                best = (i, None, when[0], when[1])
        if best is not None:
            break
        bad_time = bad_time or rest[0]
    if best is None:
        if bad_time is not None:
            raise ParseError("开奖时间格式不对：{value}（例如 30m、2h、1d、20:00、明天20:00）", value=bad_time)
        raise ParseError(None)
    i, seconds, at, used = best
    prize = " ".join(tokens[:i])
    winners = int(_WINNERS.match(unicodedata.normalize("NFKC", tokens[i])).group(1))  # type: ignore[union-attr]
    rest = tokens[i + 1 + used:]
    keyword = " ".join(rest) or None
    if len(prize) > PRIZE_MAX:
        raise ParseError("奖品名称最多 {max} 个字符。", max=PRIZE_MAX)
    if not 1 <= winners <= max_winners:
        raise ParseError("中奖名额应在 1 到 {max} 之间。", max=max_winners)
    if keyword is not None:
        if keyword.startswith("/"):
            raise ParseError("口令不能以 / 开头。")
        if len(keyword) > KEYWORD_MAX:
            raise ParseError("口令最多 {max} 个字符。", max=KEYWORD_MAX)
    return LotterySpec(prize, winners, seconds, at, keyword)


# ------------------------------------------------------------------------------------------ quiz
@dataclass(frozen=True)
class QuizSpec:
    question: str
    answers: tuple[str, ...]
    points: int | None
    duration: int | None


def _points_or_duration(token: str, points: int | None, duration: int | None) -> tuple[int | None, int | None, bool]:
    if _INT_RE.match(token) and points is None:
        return int(token), duration, True
    seconds = parse_duration(token)
    if seconds is not None and duration is None:
        return points, seconds, True
    return points, duration, False


def parse_quiz(args: str) -> QuizSpec:
    text = (args or "").replace("｜", "|").strip()
    if "|" not in text:
        raise ParseError(None)
    question, answer, *extra = (p.strip() for p in text.split("|"))
    points: int | None = None
    duration: int | None = None
    if extra:
        for token in " ".join(extra).split():
            points, duration, ok = _points_or_duration(token, points, duration)
            if not ok:
                if looks_like_duration(token) or parse_duration(token) is not None:
                    raise ParseError("时长格式不对：{value}（例如 30m、2h、1d、30分钟）", value=token)
                raise ParseError("无法识别：{value}（应为积分数或时长）", value=token)
    else:
        tokens = answer.split()
        for _ in range(2):
            if len(tokens) < 2:
                break
            points, duration, ok = _points_or_duration(tokens[-1], points, duration)
            if not ok:
                if looks_like_duration(tokens[-1]):
                    raise ParseError("时长格式不对：{value}（例如 30m、2h、1d、30分钟）", value=tokens[-1])
                break
            tokens.pop()
        answer = " ".join(tokens)
    if not question:
        raise ParseError("问题不能为空。")
    if len(question) > QUIZ_QUESTION_MAX:
        raise ParseError("问题最多 {max} 个字符。", max=QUIZ_QUESTION_MAX)
    answers = tuple(a.strip() for a in re.split(r"[/／]", answer) if a.strip())
    if not answers:
        raise ParseError("答案不能为空。")
    if any(len(a) > QUIZ_ANSWER_MAX for a in answers):
        raise ParseError("答案最多 {max} 个字符。", max=QUIZ_ANSWER_MAX)
    return QuizSpec(question, answers, points, duration)


def parse_id(args: str) -> int | None:
    token = (args or "").strip().lstrip("#")
    return int(token) if token.isdigit() and len(token) < 18 else None
