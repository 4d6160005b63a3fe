"""Calendar entries: the definition ops write (TOML or /schedule add), its validation, its template.

Everything that could fail at 3 a.m. is checked when the entry is loaded: the ``when`` string, the
template's variables and braces, the HTML Telegram will parse, URL buttons, tags and targets. ``compile``
collects *every* problem of an entry (not just the first), and ``load_calendar`` every problem of a file.
"""

from __future__ import annotations

import html
import re
import string
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from html.parser import HTMLParser
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from plugins.content_calendar.festivals import FestivalCalendar
from plugins.content_calendar.when import When, WhenError, parse_when

# Template variables: name -> what it renders (msgid, shown in the README and by /schedule help).
VARIABLES: Mapping[str, str] = MappingProxyType({
    "date": "日期（如 11月11日）",
    "weekday": "星期几",
    "time": "发布时间（如 20:00）",
    "festival": "本条目的节日；否则当天的节日；没有则为空",
    "days_to_festival": "距本条目节日的天数（倒计时）",
    "next_festival": "下一个节日",
    "days_to_next_festival": "距下一个节日的天数",
    "member_count": "群成员数",
    "top_members": "本周积分榜前几名",
    "streak_leaders": "连续签到天数最多的成员",
})
ID_RE = re.compile(r"^[A-Za-z0-9_\-.\u4e00-\u9fff]{1,48}$")
TELEGRAM_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "tg-spoiler", "span",
     "blockquote", "tg-emoji"}
)
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
MAX_DELETE_HOURS = 48  # Telegram lets a bot delete a group message only within 48 hours


@dataclass(frozen=True)
class Problem:
    entry: str  # "id" or "#3" (position in the file) or "" for the file itself
    msgid: str
    params: Mapping[str, Any] = field(default_factory=dict)
    level: Literal["error", "warning"] = "error"

    def text(self, translate: Any = None) -> str:
        msg = translate(self.msgid) if translate is not None else self.msgid
        try:
            return msg.format(**self.params)
        except (KeyError, IndexError, ValueError):
            return msg


class ButtonDef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=64)
    url: str = Field(min_length=1, max_length=2048)


class EntryDef(BaseModel):
    """One entry as written in the calendar file (and as stored in the database)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    when: str
    text: str = ""
    photo: str | None = None
    video: str | None = None
    # A flat list puts one button per row; a list of lists gives the rows.
    buttons: list[ButtonDef | list[ButtonDef]] = Field(default_factory=list)
    chats: list[int] = Field(default_factory=list)
    chat_tags: list[str] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    pin: bool = False
    series: str | None = None
    silent: bool = False
    delete_after_hours: float | None = None
    enabled: bool = True
    starts: date | None = None
    ends: date | None = None


@dataclass(frozen=True)
class Entry:
    key: str
    when: When
    text: str
    variables: frozenset[str]
    photo: str | None
    video: str | None
    buttons: tuple[tuple[tuple[str, str], ...], ...]
    chats: tuple[int, ...]
    chat_tags: tuple[str, ...]
    tags: tuple[str, ...]
    pin: bool
    series: str
    silent: bool
    delete_after_hours: float | None
    enabled: bool
    source: str = "file"  # "file" or "chat"
    owner_chat_id: int | None = None
    db_id: int | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def media(self) -> tuple[str, str] | None:
        if self.photo:
            return "photo", self.photo
        if self.video:
            return "video", self.video
        return None


@dataclass
class Checker:
    """What an entry is validated against."""

    festivals: FestivalCalendar
    known_tags: frozenset[str]
    chat_tags: frozenset[str] | None  # None: not checked
    now: datetime
    default_tz: ZoneInfo
    past_is_error: bool = False
    require_targets: bool = True
    morning: time = time(8)


# ---- templates --------------------------------------------------------------------------------------
def template_fields(text: str) -> tuple[set[str], list[tuple[str, dict[str, Any]]]]:
    """The variables a template uses, and its problems (unknown names, bad braces, format specs)."""
    names: set[str] = set()
    problems: list[tuple[str, dict[str, Any]]] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        return names, [("模板中的花括号不成对（要显示 { 或 } 请写成 {{ 或 }}）", {})]
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name:
            problems.append(("模板变量不能为空 {{}}", {}))
            continue
        if spec or conversion or not name.isidentifier():
            problems.append(("模板变量只写名字，例如 {{date}}：{value}", {"value": "{" + name + "}"}))
            continue
        if name not in VARIABLES:
            problems.append(("未知的模板变量 {{{name}}}（可用：{known}）",
                             {"name": name, "known": ", ".join(VARIABLES)}))
            continue
        names.add(name)
    return names, problems


def render(text: str, values: Mapping[str, str]) -> str:
    """Fill a validated template (values are already HTML-safe)."""
    return text.format_map(dict(values))


class _HtmlCheck(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.problems: list[tuple[str, dict[str, Any]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TELEGRAM_TAGS:
            self.problems.append(("Telegram 不支持的 HTML 标签 <{tag}>（支持 b i u s a code pre blockquote 等）",
                                  {"tag": tag}))
            return
        if tag == "a" and not any(k == "href" and v for k, v in attrs):
            self.problems.append(("<a> 标签缺少 href", {}))
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag not in TELEGRAM_TAGS:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(("HTML 标签没有正确闭合：</{tag}>", {"tag": tag}))
            if tag in self.stack:
                while self.stack and self.stack.pop() != tag:
                    pass
            return
        self.stack.pop()


def check_html(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Problems Telegram's HTML parser would reject: unknown or unclosed tags, bare < and &."""
    problems: list[tuple[str, dict[str, Any]]] = []
    if re.search(r"<(?![a-zA-Z/])", text) or re.search(r"&(?!#?[a-zA-Z0-9]+;)", text):
        problems.append(("文本里的 < 和 & 要写成 &lt; 和 &amp;（HTML 格式）", {}))
    parser = _HtmlCheck()
    parser.feed(text)
    parser.close()
    problems.extend(parser.problems)
    if parser.stack:
        problems.append(("HTML 标签没有闭合：<{tag}>", {"tag": parser.stack[-1]}))
    return problems


def sample_values() -> dict[str, str]:
    return {name: "X" for name in VARIABLES}


# ---- compiling one entry ----------------------------------------------------------------------------
def _pydantic_problems(label: str, exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            out.append(Problem(label, "未知的键：{key}", {"key": loc}))
        elif err["type"] == "missing":
            out.append(Problem(label, "缺少必填的键：{key}", {"key": loc}))
        else:
            out.append(Problem(label, "{key}：{reason}", {"key": loc, "reason": err["msg"]}))
    return out


def _valid_url(url: str) -> bool:
    return bool(re.match(r"^(https?://[^\s/$.?#][^\s]*|tg://\S+)$", url, re.IGNORECASE))


def compile_entry(
    raw: Mapping[str, Any],
    check: Checker,
    *,
    label: str | None = None,
    source: str = "file",
    owner_chat_id: int | None = None,
    db_id: int | None = None,
) -> tuple[Entry | None, list[Problem]]:
    """Validate one raw entry; returns the entry (None when any *error*) and every problem found."""
    label = label or str(raw.get("id") or "?")
    try:
        d = EntryDef.model_validate(dict(raw))
    except ValidationError as exc:
        return None, _pydantic_problems(label, exc)
    problems: list[Problem] = []

    def bad(msgid: str, level: Literal["error", "warning"] = "error", **params: Any) -> None:
        problems.append(Problem(label, msgid, params, level))

    if not ID_RE.match(d.id):
        bad("id 只能用字母、数字、汉字和 _ - .（最多 48 个字符）：{value}", value=d.id)
    elif source == "file" and d.id.startswith("chat-"):
        bad("以 chat- 开头的 id 留给群里 /schedule add 添加的条目：{value}", value=d.id)

    when: When | None = None
    try:
        when = parse_when(d.when, check.festivals).bounded(d.starts, d.ends)
    except WhenError as exc:
        problems.append(Problem(label, exc.msgid, exc.params))
    if d.starts and d.ends and d.ends < d.starts:
        bad("ends 早于 starts")
    if when is not None and when.is_once:
        first = when.next_after(check.now - timedelta(seconds=1), check.default_tz, check.festivals,
                                peak=time(23, 59), morning=check.morning)
        if first is None:
            bad("时间已经过去：{value}", "error" if check.past_is_error else "warning", value=d.when)
    elif when is not None and d.ends is not None and d.ends < check.now.astimezone(check.default_tz).date():
        bad("ends 已经过去：{value}", "error" if check.past_is_error else "warning", value=str(d.ends))

    # Content.
    if d.photo and d.video:
        bad("photo 和 video 只能选一个")
    media = d.photo or d.video
    if not d.text.strip() and not media:
        bad("条目没有内容：需要 text，或 photo / video")
    names, tproblems = template_fields(d.text)
    for msgid, params in tproblems:
        bad(msgid, **params)
    if not tproblems:
        filled = render(d.text, sample_values())
        for msgid, params in check_html(filled):
            bad(msgid, **params)
        limit = CAPTION_LIMIT if media else TEXT_LIMIT
        if len(filled) > limit:
            bad("内容太长：{n} 个字符（上限 {limit}）", n=len(filled), limit=limit)
    if media and not (re.match(r"^https?://\S+$", media) or re.match(r"^[A-Za-z0-9_\-]{20,}$", media)):
        bad("photo / video 应为 file_id 或 http(s) 链接：{value}", value=media[:60])

    rows: list[tuple[tuple[str, str], ...]] = []
    for item in d.buttons:
        row = item if isinstance(item, list) else [item]
        for b in row:
            if not _valid_url(b.url):
                bad("按钮链接应以 https:// 或 tg:// 开头：{value}", value=b.url)
        rows.append(tuple((b.text, b.url) for b in row))

    # Tags and targets.
    for tag in d.tags:
        if tag not in check.known_tags:
            bad("未知的标签：{tag}（可用：{known}；可在 known_tags 中添加）", tag=tag,
                known=", ".join(sorted(check.known_tags)))
    for tag in d.chat_tags:
        if check.chat_tags is not None and tag not in check.chat_tags:
            bad("没有任何群带有标签 {tag}（在 [chats.<id>] tags 中设置）", tag=tag)
    if check.require_targets and not d.chats and not d.chat_tags:
        bad("没有目标群：写 chats = [群ID] 或 chat_tags = [\"标签\"]")
    if d.delete_after_hours is not None and not 0 < d.delete_after_hours <= MAX_DELETE_HOURS:
        bad("delete_after_hours 应在 0 到 {limit} 之间（Telegram 只允许删除 48 小时内的消息）",
            limit=MAX_DELETE_HOURS)
    if d.series is not None and not ID_RE.match(d.series):
        bad("series 只能用字母、数字、汉字和 _ - .：{value}", value=d.series)

    if any(p.level == "error" for p in problems) or when is None:
        return None, problems
    entry = Entry(
        key=d.id, when=when, text=d.text, variables=frozenset(names), photo=d.photo, video=d.video,
        buttons=tuple(rows), chats=tuple(d.chats), chat_tags=tuple(d.chat_tags), tags=tuple(d.tags), pin=d.pin,
        series=d.series or d.id, silent=d.silent, delete_after_hours=d.delete_after_hours, enabled=d.enabled,
        source=source, owner_chat_id=owner_chat_id, db_id=db_id, raw=d.model_dump(mode="json", exclude_defaults=True),
    )
    return entry, problems


# ---- the calendar file ------------------------------------------------------------------------------
@dataclass
class CalendarLoad:
    entries: list[Entry]
    problems: list[Problem]
    # Entries that were valid but will not be armed (a one-off in the past): warnings only.
    skipped: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.level == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_calendar(text: str, check: Checker) -> CalendarLoad:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return CalendarLoad([], [Problem("", "不是有效的 TOML：{reason}", {"reason": str(exc)})])
    problems: list[Problem] = []
    for key in data:
        if key not in ("entry", "defaults"):
            problems.append(Problem("", "未知的顶层键：{key}（应为 [[entry]] 或 [defaults]）", {"key": key}))
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        problems.append(Problem("", "[defaults] 应该是一个表", {}))
        defaults = {}
    raw_entries = data.get("entry", [])
    if not isinstance(raw_entries, list):
        problems.append(Problem("", "条目应写成 [[entry]]", {}))
        raw_entries = []
    entries: list[Entry] = []
    seen: dict[str, int] = {}
    skipped: list[str] = []
    for index, raw in enumerate(raw_entries, start=1):
        if not isinstance(raw, dict):
            problems.append(Problem(f"#{index}", "条目应该是一个表", {}))
            continue
        merged = {**defaults, **raw}
        ident = str(merged.get("id") or "")
        label = f"{ident} (#{index})" if ident else f"#{index}"
        if ident and ident in seen:
            problems.append(Problem(label, "重复的 id：{id}（第 {first} 条已使用）",
                                    {"id": ident, "first": seen[ident]}))
            continue
        if ident:
            seen[ident] = index
        entry, found = compile_entry(merged, check, label=label)
        problems.extend(found)
        if entry is not None:
            if any(p.level == "warning" and p.msgid.startswith("时间已经过去") for p in found):
                skipped.append(entry.key)
            entries.append(entry)
    return CalendarLoad(entries, problems, skipped)


def load_calendar(path: str | Path, check: Checker) -> CalendarLoad:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        return CalendarLoad([], [Problem("", "找不到日历文件：{path}", {"path": str(p)})])
    except (OSError, UnicodeDecodeError) as exc:
        return CalendarLoad([], [Problem("", "读不了日历文件 {path}：{reason}", {"path": str(p), "reason": str(exc)})])
    return parse_calendar(text, check)


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def targets(entry: Entry, chats_with_tag: Any) -> list[int]:
    """The chats an entry posts into: its ids, the chats carrying its chat tags, its own chat."""
    out: list[int] = list(entry.chats)
    for tag in entry.chat_tags:
        out.extend(chats_with_tag(tag))
    if entry.owner_chat_id is not None and not out:
        out.append(entry.owner_chat_id)
    seen: set[int] = set()
    return [c for c in out if not (c in seen or seen.add(c))]


def summarize(problems: Iterable[Problem], translate: Any = None) -> list[str]:
    out = []
    for p in problems:
        head = f"[{p.entry}] " if p.entry else ""
        mark = "" if p.level == "error" else "(warning) "
        out.append(f"{mark}{head}{p.text(translate)}")
    return out
