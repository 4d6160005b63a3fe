"""``qunbot calendar validate FILE`` and ``qunbot calendar show --days 14 [--chat ID]``.

Both work offline: no bot token, no network, no database. They read the config (for chat tags, chat
timezones, festivals and known tags) and the calendar file only. ``show`` puts ``peak`` entries at
``peak_default`` (the live bot uses each chat's activity histogram).
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from bot.clock import Clock
from bot.settings import Settings, load_settings

WEEKDAYS_ZH = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


def register(sub: Any) -> None:
    cal = sub.add_parser("calendar", help="content calendar: validate the calendar file, show the agenda")
    cal_sub = cal.add_subparsers(dest="calendar_command", required=True)

    p = cal_sub.add_parser("validate", help="check a calendar file (TOML) and report every problem")
    p.add_argument("file")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    p.add_argument("--strict", action="store_true", help="treat warnings (one-offs already in the past) as errors")
    p.set_defaults(func=cmd_validate)

    p = cal_sub.add_parser("show", help="print the coming posts, per chat, in each chat's timezone")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    p.add_argument("--file", "-f", default=None,
                   help="calendar file (default: [plugins.content_calendar] calendar_file)")
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--chat", type=int, default=None)
    p.set_defaults(func=cmd_show)


def _setup(args: argparse.Namespace) -> tuple[Settings, Any, Any]:
    from plugins.content_calendar.config import ContentCalendarConfig
    from plugins.content_calendar.entries import Checker
    from plugins.content_calendar.festivals import FestivalCalendar
    from plugins.content_calendar.when import parse_clock

    settings = load_settings(getattr(args, "config", None))
    try:
        cfg = ContentCalendarConfig.model_validate(settings.plugins.get("content_calendar", {}))
    except ValidationError as exc:
        raise SystemExit(f"qunbot: invalid [plugins.content_calendar]: {exc}") from None
    chat_tags = frozenset(t for sec in settings.chats.values() for t in sec.tags)
    check = Checker(
        festivals=FestivalCalendar(cfg.festivals), known_tags=frozenset(cfg.known_tags), chat_tags=chat_tags,
        now=Clock().now(), default_tz=ZoneInfo(settings.bot.timezone), morning=parse_clock(cfg.morning_time),
    )
    return settings, cfg, check


def cmd_validate(args: argparse.Namespace) -> int:
    from plugins.content_calendar.entries import load_calendar, summarize

    _settings, _cfg, check = _setup(args)
    result = load_calendar(args.file, check)
    for line in summarize(result.problems):
        print(line)
    errors = len(result.errors)
    warnings = len(result.problems) - errors
    failed = errors > 0 or (args.strict and warnings > 0)
    status = "FAILED" if failed else "OK"
    print(f"{args.file}: {status}: {len(result.entries)} valid entr{'y' if len(result.entries) == 1 else 'ies'}, "
          f"{errors} error(s), {warnings} warning(s)")
    return 1 if failed else 0


def cmd_show(args: argparse.Namespace) -> int:
    from plugins.content_calendar.entries import load_calendar, summarize, targets
    from plugins.content_calendar.jobs import agenda, resolve_path
    from plugins.content_calendar.when import parse_clock

    settings, cfg, check = _setup(args)
    path = args.file or resolve_path(cfg.calendar_file, settings.source_path)
    if not path:
        print("qunbot: no calendar file: pass --file or set [plugins.content_calendar] calendar_file", file=sys.stderr)
        return 2
    if not 1 <= args.days <= 400:
        print("qunbot: --days must be 1-400", file=sys.stderr)
        return 2
    result = load_calendar(path, check)
    if not result.ok:
        for line in summarize(result.errors):
            print(line, file=sys.stderr)
        print(f"{path}: {len(result.errors)} error(s); fix them first (qunbot calendar validate {path})",
              file=sys.stderr)
        return 1

    def chats_with_tag(tag: str) -> list[int]:
        return [cid for cid, sec in settings.chats.items() if tag in sec.tags]

    def tz_of(chat_id: int) -> ZoneInfo:
        sec = settings.chats.get(chat_id)
        return ZoneInfo((sec.timezone if sec and sec.timezone else None) or settings.bot.timezone)

    peak = parse_clock(cfg.peak_default)
    now = check.now
    items = agenda(
        result.entries, now, now + timedelta(days=args.days), check.festivals,
        chats_of=lambda e: targets(e, chats_with_tag), tz_of=tz_of, peak_of=lambda c: (peak, "default"),
        morning=check.morning, chat=args.chat, limit=5000,
    )
    scope = f" for chat {args.chat}" if args.chat is not None else ""
    print(f"Agenda{scope}: next {args.days} day(s) from {now.astimezone(check.default_tz):%Y-%m-%d %H:%M %Z} "
          f"({len(items)} post(s))")
    day = None
    for item in items:
        local = item.local
        if local.date() != day:
            day = local.date()
            print(f"\n{day.isoformat()} {WEEKDAYS_ZH[day.weekday()]}")
        sec = settings.chats.get(item.chat_id)
        title = f" {sec.title}" if sec and sec.title else ""
        peak_note = " (peak≈default)" if item.occurrence.is_peak else ""
        fest = f" [{item.occurrence.festival.name}]" if item.occurrence.festival else ""
        flags = "".join(f for f, on in ((" pin", item.entry.pin), (" silent", item.entry.silent)) if on)
        tags = f" #{' #'.join(item.entry.tags)}" if item.entry.tags else ""
        preview = " ".join(item.entry.text.split())[:50]
        print(f"  {local:%H:%M} {local.tzname()}{peak_note}  chat {item.chat_id}{title}  {item.entry.key}{tags}"
              f"{fest}{flags}  {preview}")
    return 0
