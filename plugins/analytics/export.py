"""Exports: members, daily totals, the points ledger and crisis incidents of one chat, as CSV or JSON.

Used by /export in chat and by ``qunbot export --chat ID --what members|daily|ledger|incidents
--format csv|json``. CSV is UTF-8 with a BOM, so Excel opens the Chinese names correctly.
Incidents come from the crisis plugin's ``crisis_incidents`` table, read by name (it does not exist in
an install without that plugin); without it, from this plugin's own record of CrisisChanged events.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text

from bot.models import Chat, Member, PointsBalance, PointsEntry, User
from plugins.analytics import service
from plugins.analytics.models import ChatDay, Incident, MemberDay

if TYPE_CHECKING:
    from bot.app import App
    from plugins.analytics.config import AnalyticsConfig

NAME = "analytics"
WHAT = ("members", "daily", "ledger", "incidents")
FORMATS = ("csv", "json")
MEMBER_COLUMNS = [
    "user_id", "name", "username", "status", "lifecycle", "tier", "score", "joined_at", "left_at",
    "last_message_at", "messages_30d", "active_days_30d", "replies_received_30d", "mentions_received_30d",
    "thanks_30d", "checkins_30d", "points_balance",
]  # fmt: skip
DAILY_COLUMNS = ["day", *service.DAY_FIELDS, "avg_sentiment"]
LEDGER_COLUMNS = ["id", "created_at", "user_id", "delta", "reason", "reference", "actor_id", "note"]
# Columns of crisis_incidents that name members or quote their messages are left out.
INCIDENT_PRIVATE = frozenset({"members", "evidence"})
OWN_INCIDENT_COLUMNS = ["incident_id", "day", "opened_at", "peak_level", "closed_at"]


def _cell(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


async def rows_for(app: App, chat_id: int, what: str, *, days: int | None = None
                   ) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns, rows) of one export."""
    if what == "members":
        return MEMBER_COLUMNS, await _members(app, chat_id)
    if what == "daily":
        return DAILY_COLUMNS, await _daily(app, chat_id, days)
    if what == "ledger":
        return LEDGER_COLUMNS, await _ledger(app, chat_id, days)
    if what == "incidents":
        return await _incidents(app, chat_id)
    raise ValueError(f"unknown export {what!r}")


async def _members(app: App, chat_id: int) -> list[dict[str, Any]]:
    cfg: AnalyticsConfig = await app.chat_config.get(chat_id, NAME)  # type: ignore[assignment]
    tz = (await app.chat_config.chat(chat_id)).tz
    now = app.clock.now()
    today = service.local_day(now, tz)
    async with app.db() as s:
        seg = await service.segment(s, chat_id, now, tz, cfg)
        act = await service.activity(s, chat_id, today - timedelta(days=29), today)
        uids = sorted(seg.facts)
        users: dict[int, Any] = {}
        for i in range(0, len(uids), 400):
            for u in (await s.scalars(select(User).where(User.user_id.in_(uids[i:i + 400])))).all():
                users[u.user_id] = u
        pool = app.points.pool_for(chat_id)
        balances = dict((await s.execute(
            select(PointsBalance.user_id, PointsBalance.balance).where(PointsBalance.pool == pool)
        )).all())
    out = []
    for uid in uids:
        m = seg.facts[uid]
        u = users.get(uid)
        a = act.get(uid) or service.Activity()
        score = seg.scores.get(uid)
        out.append({
            "user_id": uid,
            "name": " ".join(p for p in ((u.first_name if u else ""), (u.last_name if u else None)) if p),
            "username": u.username if u else None,
            "status": m.status, "lifecycle": seg.lifecycle[uid], "tier": seg.tiers.get(uid),
            "score": score.total if score else None,
            "joined_at": m.joined_at, "left_at": m.left_at, "last_message_at": m.last_message_at,
            "messages_30d": a.messages, "active_days_30d": a.active_days, "replies_received_30d": a.replies_received,
            "mentions_received_30d": a.mentions_received, "thanks_30d": a.thanks_received, "checkins_30d": a.checkins,
            "points_balance": int(balances.get(uid, 0)),
        })
    return out


async def _daily(app: App, chat_id: int, days: int | None) -> list[dict[str, Any]]:
    async with app.db() as s:
        first = await s.scalar(select(func.min(ChatDay.day)).where(ChatDay.chat_id == chat_id))
        if first is None:
            return []
        tz = (await app.chat_config.chat(chat_id)).tz
        today = service.local_day(app.clock.now(), tz)
        start = max(first, today - timedelta(days=days - 1)) if days else first
        stats = await service.daily(s, chat_id, start, max(today, start))
    return [{"day": d.day, **{f: getattr(d, f) for f in service.DAY_FIELDS},
             "avg_sentiment": round(d.sentiment, 4) if d.sentiment is not None else None} for d in stats]


async def _ledger(app: App, chat_id: int, days: int | None) -> list[dict[str, Any]]:
    cond = [PointsEntry.chat_id == chat_id]
    if days:
        cond.append(PointsEntry.created_at >= app.clock.now() - timedelta(days=days))
    async with app.db() as s:
        rows = (await s.scalars(select(PointsEntry).where(*cond).order_by(PointsEntry.id))).all()
    return [{c: getattr(e, c) for c in LEDGER_COLUMNS} for e in rows]


async def _incidents(app: App, chat_id: int) -> tuple[list[str], list[dict[str, Any]]]:
    async with app.db() as s:
        # By table name: this plugin never imports the crisis plugin, which may not be installed.
        found = await service.optional_rows(
            s, text("SELECT * FROM crisis_incidents WHERE chat_id = :chat ORDER BY id"), {"chat": chat_id})
        if found is not None:
            keys, result = found
            columns = [k for k in keys if k not in INCIDENT_PRIVATE]
            return columns, [{k: v for k, v in zip(keys, row, strict=True) if k in columns} for row in result]
        rows = (await s.scalars(
            select(Incident).where(Incident.chat_id == chat_id).order_by(Incident.incident_id))).all()
    return OWN_INCIDENT_COLUMNS, [{c: getattr(r, c) for c in OWN_INCIDENT_COLUMNS} for r in rows]


def encode(columns: list[str], rows: list[dict[str, Any]], fmt: str) -> bytes:
    if fmt == "json":
        return json.dumps([{c: _cell(r.get(c)) for c in columns} for r in rows], ensure_ascii=False,
                          indent=2).encode("utf-8")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow(["" if r.get(c) is None else _cell(r.get(c)) for c in columns])
    return out.getvalue().encode("utf-8-sig")


async def chat_known(app: App, chat_id: int) -> bool:
    async with app.db() as s:
        for stmt in (select(Chat.chat_id).where(Chat.chat_id == chat_id),
                     select(ChatDay.chat_id).where(ChatDay.chat_id == chat_id),
                     select(Member.chat_id).where(Member.chat_id == chat_id),
                     select(MemberDay.chat_id).where(MemberDay.chat_id == chat_id),
                     select(PointsEntry.chat_id).where(PointsEntry.chat_id == chat_id)):
            if (await s.scalar(stmt.limit(1))) is not None:
                return True
    return False


async def export_bytes(app: App, chat_id: int, what: str, fmt: str, *, days: int | None = None) -> bytes:
    columns, rows = await rows_for(app, chat_id, what, days=days)
    return encode(columns, rows, fmt)


# ---- qunbot export ---------------------------------------------------------------------------------
def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export a chat's analytics (members, daily totals, points ledger, incidents)")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    p.add_argument("--chat", type=int, required=True, help="the chat id, e.g. -1001234567890")
    p.add_argument("--what", choices=WHAT, required=True)
    p.add_argument("--format", choices=FORMATS, default="csv")
    p.add_argument("--days", type=int, default=None, help="only the last N days (daily, ledger)")
    p.add_argument("--out", "-o", default="-", help="output file (default: standard output)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    return asyncio.run(run_cli(args))


async def run_cli(args: argparse.Namespace, app: App | None = None) -> int:
    if args.days is not None and args.days <= 0:
        print("qunbot export: --days must be positive", file=sys.stderr)
        return 2
    if app is None:
        from bot.cli_support import open_app

        async with open_app(args) as opened:
            return await _run_cli(args, opened)
    return await _run_cli(args, app)


async def _run_cli(args: argparse.Namespace, app: App) -> int:
    if not await chat_known(app, args.chat):
        print(f"qunbot export: no data for chat {args.chat}", file=sys.stderr)
        return 1
    data = await export_bytes(app, args.chat, args.what, args.format, days=args.days)
    if args.out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        with open(args.out, "wb") as fh:
            fh.write(data)
        print(f"wrote {args.out} ({len(data)} bytes)", file=sys.stderr)
    return 0
