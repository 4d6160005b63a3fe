"""``qunbot faq import FILE --chat ID`` and ``qunbot faq export --chat ID [--format toml|csv]``.

TOML::

    [[faq]]
    keywords = ["发货多久", "几天到"]      # or one string
    synonyms = ["什么时候发货"]           # optional, merged into keywords
    mode = "contains"                     # contains | exact | word | regex (default contains)
    reply = "<b>48小时内</b>发货"          # Telegram HTML
    buttons = [[{ text = "物流查询", url = "https://example.com/track" }]]   # optional rows
    # media_type = "photo", media_file_id = "AgAD..."                      # optional

    [[note]]                              # a note: sent on #name or /get name (TOML only)
    name = "发货"
    reply = "下单后48小时内发货"            # buttons, media_type, media_file_id as above

CSV (UTF-8, header row; Chinese headers 关键词,匹配方式,回复,按钮,同义词 also work)::

    keywords,mode,reply,buttons
    发货多久|几天到,contains,48小时内发货,[物流查询](buttonurl://https://example.com/track)

Keywords of a CSV row are separated by ``|`` (a regex row holds one pattern, ``|`` included).
An import is all or nothing: any invalid row aborts it with every error listed. ``--replace`` removes
the chat's entries and notes first.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from plugins.faq.matcher import EXACT, REGEX, FaqError
from plugins.faq.notes import delete_all_notes, list_notes, name_key, save_note
from plugins.faq.parsing import MODE_ALIASES, PreparedEntry, buttons_to_markup_text, prepare_entry, validate_buttons

FaqConfigGetter = Callable[[int], Awaitable[Any]]
_TOML_KEYS = frozenset({"keywords", "synonyms", "mode", "reply", "buttons", "media_type", "media_file_id"})
_NOTE_KEYS = frozenset({"name", "reply", "buttons", "media_type", "media_file_id"})
_CSV_ALIASES = {
    "keywords": "keywords", "关键词": "keywords", "keyword": "keywords",
    "synonyms": "synonyms", "同义词": "synonyms",
    "mode": "mode", "匹配方式": "mode",
    "reply": "reply", "回复": "reply",
    "buttons": "buttons", "按钮": "buttons",
    "media_type": "media_type", "媒体类型": "media_type",
    "media_file_id": "media_file_id",
}  # fmt: skip


class ImportError_(Exception):
    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


def _mode(raw: Any) -> str:
    text = str(raw or "").strip().lower()
    if not text:
        return "contains"
    if text not in MODE_ALIASES:
        raise FaqError("未知的匹配方式：", f"{raw} (contains, exact, word, regex)")
    return MODE_ALIASES[text]


def _as_list(raw: Any, what: str) -> list[str]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and all(isinstance(x, str) for x in raw):
        return list(raw)
    raise FaqError("格式不对：", what)


def _split(raw: str | None, mode: str) -> list[str]:
    text = (raw or "").strip()
    if not text:
        return []
    if mode == REGEX:
        return [text]
    return [p.strip() for p in text.split("|") if p.strip()]


def _toml_tables(data: dict[str, Any], table: str, keys: frozenset[str]) -> list[tuple[str, dict[str, Any]]]:
    items = data.get(table, [])
    if not isinstance(items, list):
        raise ImportError_([f"TOML: {table} must be [[{table}]] tables"])
    out = []
    for n, item in enumerate(items, 1):
        where = f"[[{table}]] #{n}"
        if not isinstance(item, dict):
            raise ImportError_([f"{where}: not a table"])
        unknown = set(item) - keys
        if unknown:
            raise ImportError_([f"{where}: unknown keys {', '.join(sorted(unknown))}"])
        out.append((where, item))
    return out


def parse_toml(text: str) -> list[tuple[str, dict[str, Any]]]:
    """The [[faq]] tables of a file (``parse_toml_notes`` reads its [[note]] tables)."""
    return _toml_tables(_load_toml(text), "faq", _TOML_KEYS)


def parse_toml_notes(text: str) -> list[tuple[str, dict[str, Any]]]:
    return _toml_tables(_load_toml(text), "note", _NOTE_KEYS)


def _load_toml(text: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ImportError_([f"TOML: {exc}"]) from exc
    extra = set(data) - {"faq", "note"}
    if extra or not (data.get("faq") or data.get("note")):
        raise ImportError_(["TOML: expected [[faq]] or [[note]] tables"
                            + (f" (found {', '.join(sorted(extra))})" if extra else "")])
    return data


def parse_csv(text: str) -> list[tuple[str, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if not reader.fieldnames:
        raise ImportError_(["CSV: empty file"])
    names = {}
    for f in reader.fieldnames:
        key = _CSV_ALIASES.get((f or "").strip().lower())
        if key is None:
            raise ImportError_([f"CSV: unknown column {f!r}"])
        names[f] = key
    if "keywords" not in names.values() or "reply" not in names.values():
        raise ImportError_(["CSV: the header needs keywords and reply columns"])
    out = []
    for row in reader:
        if None in row:
            raise ImportError_([f"CSV line {reader.line_num}: more fields than columns"])
        item = {names[k]: (v or "") for k, v in row.items()}
        if not any(str(v).strip() for v in item.values()):
            continue
        mode_raw = item.get("mode", "")
        try:
            mode = _mode(mode_raw)
        except FaqError:
            mode = str(mode_raw)
        item["keywords"] = _split(item.get("keywords"), mode)
        item["synonyms"] = _split(item.get("synonyms"), mode) if mode != REGEX else []
        out.append((f"CSV line {reader.line_num}", item))
    return out


def _prepare(item: dict[str, Any], keywords: list[str], mode: str, normalize: Callable[[str], str]) -> PreparedEntry:
    """An answer from a file's row or table (raises FaqError), checked as /filter checks one."""
    reply = item.get("reply", "")
    if not isinstance(reply, str):
        raise FaqError("格式不对：", "reply")
    media_type = item.get("media_type") or None
    return prepare_entry(
        keywords, mode, reply, normalize, buttons=validate_buttons(item.get("buttons")),
        media_type=str(media_type) if media_type else None,
        media_file_id=str(item.get("media_file_id") or "") or None,
    )


def prepare_items(
    items: Sequence[tuple[str, dict[str, Any]]],
    normalize: Callable[[str], str],
    gettext: Callable[[str], str] = lambda s: s,
) -> list[PreparedEntry]:
    """Validate every item; raises ImportError_ listing every bad one (nothing is imported)."""
    entries: list[PreparedEntry] = []
    errors: list[str] = []
    seen: dict[str, str] = {}
    for where, item in items:
        try:
            mode = _mode(item.get("mode"))
            keywords = _as_list(item.get("keywords"), "keywords") + _as_list(item.get("synonyms"), "synonyms")
            entry = _prepare(item, keywords, mode, normalize)
        except FaqError as exc:
            errors.append(f"{where}: {gettext(exc.message)}{exc.detail}")
            continue
        for norm, kw in zip(entry.norms, entry.keywords, strict=True):
            if norm in seen:
                errors.append(f"{where}: keyword {kw!r} also in {seen[norm]}")
            seen[norm] = where
        entries.append(entry)
    if errors:
        raise ImportError_(errors)
    return entries


@dataclass
class PreparedNote:
    key: str
    name: str
    entry: PreparedEntry  # the content, checked as an FAQ answer is


def prepare_notes(
    items: Sequence[tuple[str, dict[str, Any]]],
    normalize: Callable[[str], str],
    gettext: Callable[[str], str] = lambda s: s,
) -> list[PreparedNote]:
    """Validate every [[note]]; raises ImportError_ listing every bad one (nothing is imported)."""
    notes: list[PreparedNote] = []
    errors: list[str] = []
    seen: dict[str, str] = {}
    for where, item in items:
        name = item.get("name")
        key = name_key(name, normalize) if isinstance(name, str) else None
        if key is None:
            errors.append(f"{where}: name {name!r}: letters, digits, _ and - only, up to 32 characters")
            continue
        if key in seen:
            errors.append(f"{where}: note {name!r} also in {seen[key]}")
            continue
        seen[key] = where
        try:
            entry = _prepare(item, [name.lstrip("#")], EXACT, normalize)
        except FaqError as exc:
            errors.append(f"{where}: {gettext(exc.message)}{exc.detail}")
            continue
        notes.append(PreparedNote(key, name.lstrip("#"), entry))
    if errors:
        raise ImportError_(errors)
    return notes


# ---- export ---------------------------------------------------------------------------------------
def _toml_str(value: str) -> str:
    # JSON string escapes (\" \\ \n \t \uXXXX) are valid TOML basic-string escapes.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def to_toml(rows: Sequence[dict[str, Any]], chat_id: int, notes: Sequence[dict[str, Any]] = ()) -> str:
    lines = [f"# qunbot FAQ export, chat {chat_id}: qunbot faq import FILE --chat {chat_id}", ""]
    for row in [*rows, *notes]:
        if "name" in row:
            lines.append("[[note]]")
            lines.append(f"name = {_toml_str(row['name'])}")
        else:
            lines.append("[[faq]]")
            lines.append("keywords = [" + ", ".join(_toml_str(k) for k in row["keywords"]) + "]")
            lines.append(f"mode = {_toml_str(row['mode'])}")
        lines.append(f"reply = {_toml_str(row['reply'])}")
        if row.get("buttons"):
            rows_txt = [
                "[" + ", ".join(f"{{ text = {_toml_str(b['text'])}, url = {_toml_str(b['url'])} }}" for b in r) + "]"
                for r in row["buttons"]
            ]
            lines.append("buttons = [" + ", ".join(rows_txt) + "]")
        if row.get("media_type"):
            lines.append(f"media_type = {_toml_str(row['media_type'])}")
            lines.append(f"media_file_id = {_toml_str(row['media_file_id'] or '')}")
        lines.append("")
    return "\n".join(lines)


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["keywords", "mode", "reply", "buttons", "media_type", "media_file_id"])
    for row in rows:
        writer.writerow([
            "|".join(row["keywords"]), row["mode"], row["reply"], buttons_to_markup_text(row.get("buttons") or []),
            row.get("media_type") or "", row.get("media_file_id") or "",
        ])
    return buf.getvalue()


# ---- commands ---------------------------------------------------------------------------------------
@asynccontextmanager
async def open_db(args: argparse.Namespace) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], FaqConfigGetter]]:
    """The configured database (migrated) and the chat's merged faq config.

    Lighter than ``bot.cli_support.open_app``: an import or export needs no Telegram connection,
    so no Bot, no getMe and no plugin start-up (the running bot picks the change up by revision).
    """
    from bot.chat_config import ChatConfigService
    from bot.clock import Clock
    from bot.db import create_engine, session_factory
    from bot.migrate import upgrade
    from bot.registry import discover
    from bot.settings import load_settings

    settings = load_settings(getattr(args, "config", None))
    await upgrade(settings.database.url)
    engine = create_engine(settings.database.url)
    db = session_factory(engine)
    chat_config = ChatConfigService(settings, discover(), db, Clock())

    async def faq_config(chat_id: int) -> Any:
        return await chat_config.get(chat_id, "faq")

    try:
        yield db, faq_config
    finally:
        await engine.dispose()


def _format_of(path: str, explicit: str | None) -> str:
    if explicit:
        return explicit
    suffix = Path(path).suffix.lower()
    if suffix in (".toml", ".csv"):
        return suffix[1:]
    raise ImportError_([f"{path}: cannot tell the format; name it .toml or .csv, or pass --format"])


async def _import(args: argparse.Namespace) -> int:
    from bot.clock import Clock
    from bot.textnorm import TextNormalizer
    from plugins.faq import service
    from plugins.faq.config import FaqConfig

    try:
        fmt = _format_of(args.file, args.format)
        text = Path(args.file).read_text(encoding="utf-8-sig")
        normalize = TextNormalizer().normalize
        items = parse_toml(text) if fmt == "toml" else parse_csv(text)
        entries = prepare_items(items, normalize)
        notes = prepare_notes(parse_toml_notes(text), normalize) if fmt == "toml" else []
    except OSError as exc:
        print(f"qunbot faq import: {exc}", file=sys.stderr)
        return 1
    except ImportError_ as exc:
        print(f"qunbot faq import: {len(exc.errors)} error(s), nothing imported:", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(f"{args.file}: {len(entries)} entries and {len(notes)} notes are valid (dry run, nothing imported)")
        return 0
    async with open_db(args) as (db, faq_config):
        cfg = await faq_config(args.chat)
        assert isinstance(cfg, FaqConfig)
        try:
            now = Clock().now()
            async with db() as session, session.begin():
                result = await service.import_entries(
                    session, args.chat, entries, replace=args.replace, by=None, now=now,
                    max_entries=cfg.max_entries, max_regex=cfg.max_regex,
                )
                if args.replace:
                    await delete_all_notes(session, args.chat)
                for note in notes:
                    e = note.entry
                    await save_note(session, args.chat, note.key, note.name, e.reply_html, e.buttons, e.media_type,
                                    e.media_file_id, by=None, now=now)
        except FaqError as exc:
            print(f"qunbot faq import: {exc.message}{exc.detail} (nothing imported)", file=sys.stderr)
            return 1
    print(f"chat {args.chat}: {result.created} created, {result.updated} updated"
          + (f", {len(notes)} notes saved" if notes else "")
          + (f", {result.removed} removed first (--replace)" if args.replace else ""))
    return 0


async def _export(args: argparse.Namespace) -> int:
    from plugins.faq import service

    async with open_db(args) as (db, _), db() as session:
        rows = service.export_rows(await service.list_entries(session, args.chat))
        notes = [_note_row(n) for n in await list_notes(session, args.chat)]
    out = to_toml(rows, args.chat, notes) if args.format == "toml" else to_csv(rows)
    if args.output and args.output != "-":
        Path(args.output).write_text(out, encoding="utf-8")
        print(f"chat {args.chat}: {len(rows)} entries written to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(out)
    return 0


def _note_row(note: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"name": note.name, "reply": note.reply_html}
    if note.buttons:
        row["buttons"] = note.buttons
    if note.media_type:
        row["media_type"], row["media_file_id"] = note.media_type, note.media_file_id
    return row


def cmd_import(args: argparse.Namespace) -> int:
    return asyncio.run(_import(args))


def cmd_export(args: argparse.Namespace) -> int:
    return asyncio.run(_export(args))


def register(sub: Any) -> None:
    faq = sub.add_parser("faq", help="FAQ auto-reply: import / export entries")
    faq_sub = faq.add_subparsers(dest="faq_command", required=True)

    p = faq_sub.add_parser("import", help="load FAQ entries of a chat from a TOML or CSV file")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    p.add_argument("file")
    p.add_argument("--chat", type=int, required=True, help="the group's chat id (e.g. -1001234567890)")
    p.add_argument("--format", choices=["toml", "csv"], default=None, help="default: from the file name")
    p.add_argument("--replace", action="store_true", help="delete the chat's current entries first")
    p.add_argument("--dry-run", action="store_true", help="only validate the file")
    p.set_defaults(func=cmd_import)

    p = faq_sub.add_parser("export", help="write a chat's FAQ entries as TOML or CSV")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    p.add_argument("--chat", type=int, required=True)
    p.add_argument("--format", choices=["toml", "csv"], default="toml")
    p.add_argument("--output", "-o", default=None, help="file to write (default: standard output)")
    p.set_defaults(func=cmd_export)
