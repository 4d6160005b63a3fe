"""Parsing of /filter arguments, Rose-style URL buttons, reply HTML; validation of entries.

Keyword grammar (after the command), Rose-compatible:
    keyword            one word up to the first space
    "怎么 退货"         quoted: may hold spaces (also “…”, 「…」, ＂…＂)
    (发货多久, 几天到)   several keywords (synonyms) sharing one answer; items may be quoted;
                       separators , ， 、 ；
A mode prefix may stand before any of them, or inside the quotes: ``exact:``, ``word:``,
``regex:``, ``contains:`` (or 精确: 整词: 正则: 包含:; a full-width colon works too). Regex entries
take one pattern (quote it if it holds spaces); there is no list form for them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, MessageEntity
from aiogram.utils.text_decorations import html_decoration

from plugins.faq.matcher import (
    CONTAINS,
    EXACT,
    MAX_KEYWORD_CHARS,
    MODES,
    REGEX,
    REGEX_PREFIX,
    WORD,
    FaqError,
    compile_pattern,
    match_form,
    prepare_pattern,
)

MAX_TEXT_CHARS = 4096
MAX_CAPTION_CHARS = 1024
MAX_KEYWORDS_PER_ENTRY = 50
MAX_BUTTON_ROWS = 20
MAX_BUTTONS = 40
MAX_BUTTON_TEXT = 64
MEDIA_TYPES: tuple[str, ...] = ("photo", "video", "document", "animation", "sticker")

MODE_ALIASES: dict[str, str] = {
    "contains": CONTAINS, "包含": CONTAINS,
    "exact": EXACT, "精确": EXACT,
    "word": WORD, "整词": WORD, "词": WORD,
    "regex": REGEX, "正则": REGEX,
}  # fmt: skip
MODE_LABELS: dict[str, str] = {CONTAINS: "包含", EXACT: "精确", WORD: "整词", REGEX: "正则"}
_PREFIX_RE = re.compile(r"(contains|exact|word|regex|包含|精确|整词|正则|词)[:：]", re.IGNORECASE)
_QUOTES = {'"': '"', "“": "”", "「": "」", "＂": "＂", "『": "』"}
_OPEN_LIST = "(（"
_CLOSE_LIST = ")）"
_SEPARATORS = ",，、;；"


@dataclass
class KeywordSpec:
    mode: str
    keywords: list[str]
    # Index in the parsed string where the text after the keyword spec starts (whitespace skipped).
    rest: int


def _skip_ws(s: str, i: int) -> int:
    while i < len(s) and s[i].isspace():
        i += 1
    return i


def _take_prefix(s: str, i: int) -> tuple[str | None, int]:
    m = _PREFIX_RE.match(s, i)
    if m is None:
        return None, i
    return MODE_ALIASES[m.group(1).lower()], m.end()


def _read_quoted(s: str, i: int) -> tuple[str, int]:
    close = _QUOTES[s[i]]
    end = s.find(close, i + 1)
    if end < 0:
        raise FaqError("引号没有闭合。")
    return s[i + 1 : end], end + 1


def _merge_mode(current: str | None, new: str | None) -> str | None:
    if new is None:
        return current
    if current is not None and current != new:
        raise FaqError("一条自动回复只能有一种匹配方式。")
    return new


def parse_keywords(s: str) -> KeywordSpec:
    """Parse the keyword spec at the start of ``s`` (see the module doc). Raises FaqError."""
    i = _skip_ws(s, 0)
    if i >= len(s):
        raise FaqError("请给出关键词。")
    mode, i = _take_prefix(s, i)
    if i >= len(s) or s[i].isspace():
        raise FaqError("请给出关键词。")
    keywords: list[str] = []
    ch = s[i]
    if ch in _QUOTES:
        word, i = _read_quoted(s, i)
        inner, j = _take_prefix(word, 0)
        mode = _merge_mode(mode, inner)
        keywords.append(word[j:])
    elif ch in _OPEN_LIST and mode != REGEX:
        i += 1
        current: list[str] = []
        closed = False
        while i < len(s):
            ch = s[i]
            if ch in _QUOTES:
                word, i = _read_quoted(s, i)
                inner, j = _take_prefix(word, 0)
                mode = _merge_mode(mode, inner)
                current.append(word[j:])
                continue
            if ch in _SEPARATORS or ch in _CLOSE_LIST:
                item = "".join(current).strip()
                inner, j = _take_prefix(item, 0)
                mode = _merge_mode(mode, inner)
                keywords.append(item[j:].strip())
                current = []
                i += 1
                if ch in _CLOSE_LIST:
                    closed = True
                    break
                continue
            current.append(ch)
            i += 1
        if not closed:
            raise FaqError("括号没有闭合。")
        keywords = [k for k in keywords if k]
        if not keywords:
            raise FaqError("请给出关键词。")
    else:
        start = i
        while i < len(s) and not s[i].isspace():
            i += 1
        keywords.append(s[start:i])
    return KeywordSpec(mode or CONTAINS, keywords, _skip_ws(s, i))


# ---- reply HTML --------------------------------------------------------------------------------
def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def html_slice(text: str, entities: Sequence[MessageEntity] | None, start: int) -> str:
    """Telegram HTML of ``text[start:]`` (trailing whitespace dropped), keeping the formatting
    entities that fall in that part. Offsets of entities are UTF-16 code units."""
    part = text[start:].rstrip()
    if not part:
        return ""
    lo = utf16_len(text[:start])
    hi = lo + utf16_len(part)
    kept: list[MessageEntity] = []
    for ent in entities or ():
        s, e = max(ent.offset, lo), min(ent.offset + ent.length, hi)
        if e <= s:
            continue
        kept.append(ent.model_copy(update={"offset": s - lo, "length": e - s}))
    return html_decoration.unparse(part, kept)


_TAG_RE = re.compile(r"<[^>]*>")


def plain_length(reply_html: str) -> int:
    """Length of the visible text of a Telegram HTML string (tags removed, entities decoded)."""
    return len(html.unescape(_TAG_RE.sub("", reply_html)))


_ALLOWED_TAGS = frozenset(
    {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "tg-spoiler", "span",
     "blockquote", "tg-emoji"}
)


class _HtmlCheck(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _ALLOWED_TAGS:
            self.error = self.error or f"<{tag}>"
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.error = self.error or f"</{tag}>"
            return
        self.stack.pop()


def check_html(reply_html: str) -> None:
    """Refuse HTML Telegram would reject: unknown tags or unbalanced ones."""
    if "<" not in reply_html:
        return
    checker = _HtmlCheck()
    checker.feed(reply_html)
    checker.close()
    if checker.error is None and checker.stack:
        checker.error = f"<{checker.stack[-1]}>"
    if checker.error is not None:
        raise FaqError("回复里的 HTML 标签无效：", checker.error)


# ---- buttons -------------------------------------------------------------------------------------
_BUTTON_RE = re.compile(r"\[([^\[\]\n]{1,200}?)\]\(buttonurl:(?://)?([^\s()]+?)(:same)?\)", re.IGNORECASE)
Buttons = list[list[dict[str, str]]]


def _clean_url(raw: str) -> str:
    url = html.unescape(_TAG_RE.sub("", raw)).strip()
    if url.startswith("//"):
        url = url[2:]
    if "://" not in url and not url.lower().startswith("tg:"):
        url = "https://" + url
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("http", "https", "tg") or len(url) > 512:
        raise FaqError("按钮链接无效：", url[:80])
    return url


def extract_buttons(reply_html: str) -> tuple[str, Buttons]:
    """Pull Rose-style ``[文字](buttonurl://https://…)`` buttons (``:same`` = same row) out of the
    reply HTML; returns the HTML without them and the rows of buttons."""
    rows: Buttons = []
    count = 0

    def take(m: re.Match[str]) -> str:
        nonlocal count
        label = html.unescape(_TAG_RE.sub("", m.group(1))).strip()
        if not label:
            raise FaqError("按钮文字不能为空。")
        if len(label) > MAX_BUTTON_TEXT:
            raise FaqError("按钮文字太长（最多 64 个字符）。")
        button = {"text": label, "url": _clean_url(m.group(2))}
        count += 1
        if m.group(3) and rows:
            rows[-1].append(button)
        else:
            rows.append([button])
        return ""

    cleaned = _BUTTON_RE.sub(take, reply_html)
    if count > MAX_BUTTONS or len(rows) > MAX_BUTTON_ROWS:
        raise FaqError("按钮太多（最多 40 个、20 行）。")
    cleaned = re.sub(r"[ \t]+\n", "\n", cleaned).strip()
    return cleaned, rows


def buttons_markup(rows: Sequence[Sequence[Any]]) -> InlineKeyboardMarkup | None:
    if not rows:
        return None
    keyboard = []
    for row in rows:
        keyboard.append([InlineKeyboardButton(text=str(b[0] if isinstance(b, tuple) else b["text"]),
                                              url=str(b[1] if isinstance(b, tuple) else b["url"])) for b in row])
    return InlineKeyboardMarkup(inline_keyboard=keyboard)


def buttons_to_markup_text(rows: Sequence[Sequence[dict[str, str]]]) -> str:
    """Rose markup of the buttons (for export): one ``[t](buttonurl://u)`` per button."""
    parts: list[str] = []
    for row in rows:
        for n, b in enumerate(row):
            parts.append(f"[{b['text']}](buttonurl://{b['url']}{':same' if n else ''})")
    return "".join(parts)


def validate_buttons(raw: Any) -> Buttons:
    """Buttons from an import file: rows of {text, url} tables, or a Rose markup string."""
    if raw in (None, "", []):
        return []
    if isinstance(raw, str):
        rest, rows = extract_buttons(raw)
        if rest.strip():
            raise FaqError("按钮格式不对：", rest[:80])
        return rows
    if not isinstance(raw, list):
        raise FaqError("按钮格式不对：", type(raw).__name__)
    rows = []
    total = 0
    for row in raw:
        items = row if isinstance(row, list) else [row]
        out = []
        for b in items:
            if not isinstance(b, dict) or not isinstance(b.get("text"), str) or not isinstance(b.get("url"), str):
                raise FaqError("按钮格式不对：", repr(b)[:80])
            label = b["text"].strip()
            if not label or len(label) > MAX_BUTTON_TEXT:
                raise FaqError("按钮文字不能为空，最多 64 个字符。")
            out.append({"text": label, "url": _clean_url(b["url"])})
            total += 1
        if out:
            rows.append(out)
    if total > MAX_BUTTONS or len(rows) > MAX_BUTTON_ROWS:
        raise FaqError("按钮太多（最多 40 个、20 行）。")
    return rows


# ---- a validated entry ------------------------------------------------------------------------------
@dataclass
class PreparedEntry:
    mode: str
    keywords: list[str]
    norms: list[str]
    reply_html: str
    buttons: Buttons = field(default_factory=list)
    media_type: str | None = None
    media_file_id: str | None = None


def keyword_norm(keyword: str, mode: str, normalize: Callable[[str], str]) -> str:
    """The unique key of a keyword: its match form, or ``regex:`` + the prepared pattern."""
    if mode == REGEX:
        return REGEX_PREFIX + prepare_pattern(keyword.strip(), normalize)
    return match_form(normalize(keyword))


def prepare_entry(
    keywords: Sequence[str],
    mode: str,
    reply_html: str,
    normalize: Callable[[str], str],
    *,
    buttons: Buttons | None = None,
    media_type: str | None = None,
    media_file_id: str | None = None,
) -> PreparedEntry:
    """Validate everything about an entry (raises FaqError with a clear reason)."""
    if mode not in MODES:
        raise FaqError("未知的匹配方式：", f"{mode} (contains, exact, word, regex)")
    cleaned = [k.strip() for k in keywords]
    if not cleaned or any(not k for k in cleaned):
        raise FaqError("关键词不能为空。")
    if len(cleaned) > MAX_KEYWORDS_PER_ENTRY:
        raise FaqError("一条自动回复最多 50 个关键词。")
    if mode == REGEX and len(cleaned) != 1:
        raise FaqError("正则模式的一条自动回复只能有一个表达式（用 | 写多个分支）。")
    norms: list[str] = []
    kept: list[str] = []
    for kw in cleaned:
        if mode == REGEX:
            compile_pattern(kw, normalize)
        else:
            if len(kw) > MAX_KEYWORD_CHARS:
                raise FaqError("关键词太长（最多 100 个字符）：", kw[:30] + "…")
            if "|" in kw:
                raise FaqError("关键词里不能有 |：", kw)
        norm = keyword_norm(kw, mode, normalize)
        if not norm or norm == REGEX_PREFIX:
            raise FaqError("关键词不能只有标点、空格或表情：", kw)
        if norm in norms:
            continue
        norms.append(norm)
        kept.append(kw)
    if media_type is not None and media_type not in MEDIA_TYPES:
        raise FaqError("不支持的媒体类型：", media_type)
    if media_type is not None and not media_file_id:
        raise FaqError("媒体回复缺少 file_id。")
    reply_html = (reply_html or "").strip()
    check_html(reply_html)
    limit = MAX_CAPTION_CHARS if media_type else MAX_TEXT_CHARS
    if plain_length(reply_html) > limit:
        raise FaqError("回复太长（文字最多 4096 个字符，媒体说明最多 1024 个字符）。")
    if media_type == "sticker" and reply_html:
        raise FaqError("贴纸不能带文字。")
    if not reply_html and media_type is None:
        raise FaqError("回复内容不能为空。")
    return PreparedEntry(mode, kept, norms, reply_html, list(buttons or []), media_type,
                         media_file_id if media_type else None)
