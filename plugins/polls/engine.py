"""Contest life cycle: open and post, live-count edits (debounced), close, pay, announce, cancel.

Closing is driven by the durable core timer ``polls.close`` (key ``polls:close:<id>``), armed in the
same transaction that creates the contest, so it survives restarts. ``finalize`` is idempotent and is
also what ``/endcontest`` and a quiz win call:

1. open -> closed with the result, by one conditional UPDATE (the result is computed first: stopPoll,
   vote counts, the lottery draw); a second caller finds it closed and reuses the stored result;
2. points, each with a deterministic ledger reference (``pk:<id>:<user>:join|win``,
   ``quiz:<id>:<user>:win``), so paying again changes nothing;
3. the announcement, then ``announced_at``; a failure raises so the timer retries.

Closing, votes, lottery entries (several workers) and live-count edits of one contest run under its
shared lock (``sync.contest_lock``); plugins/polls/sync.py explains how several workers stay in step.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiogram.exceptions import TelegramAPIError
from aiogram.methods import EditMessageText
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.models import Member, User
from bot.services.members import PRESENT
from plugins.polls import service, sync
from plugins.polls.draw import commitment, draw_winners, entrants_digest
from plugins.polls.models import CANCELLED, CLOSED, OPEN, Contest
from plugins.polls.render import (
    Gettext,
    esc,
    kind_name,
    lottery_markup,
    lottery_text,
    pk_markup,
    pk_text,
    poll_summary,
    quiz_text,
    when,
)
from plugins.polls.runtime import PollsRuntime

if TYPE_CHECKING:
    from bot.app import App
    from bot.services.timers import TimerFire
    from plugins.polls.config import PollsConfig

log = logging.getLogger(__name__)

NAME = "polls"
CLOSE_TIMER = f"{NAME}.close"
REFRESH_TIMER = f"{NAME}.refresh"
MEMBER_LOOKUPS_AT_DRAW = 200  # getChatMember calls at most, for entrants the member table does not know


def close_key(contest_id: int) -> str:
    return f"polls:close:{contest_id}"


def rt_of(app: App) -> PollsRuntime:
    rt = app.runtime(NAME)
    assert isinstance(rt, PollsRuntime)
    return rt


async def chat_texts(app: App, chat_id: int) -> tuple[Gettext, ZoneInfo]:
    core = await app.chat_config.chat(chat_id)
    lang = core.language
    return (lambda s: app.i18n.gettext(lang, s)), core.tz


async def cfg_of(app: App, chat_id: int) -> PollsConfig:
    return await app.chat_config.get(chat_id, NAME)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ lifecycle
async def on_startup(app: App) -> None:
    """Rebuild the in-memory state of open contests and make sure each has its close timer."""
    rt = rt_of(app)
    sync.install(app)
    async with app.db() as s:
        contests = await service.open_contests(s)
        entrants = await service.entrants_of(s, [c.id for c in contests if c.kind == "lottery"])
        arguments = await service.arguments_of(s, [c.id for c in contests if c.kind == "pk"])
    for contest in contests:
        rt.track(contest, entrants.get(contest.id))
        await app.timers.schedule(close_key(contest.id), CLOSE_TIMER, contest.closes_at, chat_id=contest.chat_id,
                                  payload={"id": contest.id})
    for arg in arguments:
        rt.arguments[(arg.chat_id, arg.message_id)] = (arg.contest_id, arg.user_id)


async def flush(app: App, session: AsyncSession) -> None:
    """Write buffered joins, poll answers/counts, PK arguments and reply counts (no commit)."""
    await service.write_buffers(session, **rt_of(app).take_buffers())


# ------------------------------------------------------------------------------------------ opening
Poster = Callable[[Contest], Awaitable[tuple[int, str | None] | None]]


async def open_contest(
    app: App,
    *,
    chat_id: int,
    kind: str,
    creator_id: int | None,
    title: str,
    options: Sequence[str],
    data: dict[str, Any],
    closes_at: datetime,
    source_chat_id: int | None,
    source_message_id: int | None,
    post: Poster,
) -> Contest | None:
    """Create the row and its close timer in one transaction, post the message, start tracking it.

    A redelivered command finds the contest it already created and does nothing (or posts it if the
    first attempt died before posting). None when posting failed (the contest is cancelled).
    """
    now = app.clock.now()
    async with app.db() as s, s.begin():
        contest, created = await service.create_contest(
            s, chat_id=chat_id, kind=kind, creator_id=creator_id, title=title, options=options, data=data,
            now=now, closes_at=closes_at, source_chat_id=source_chat_id, source_message_id=source_message_id,
        )
        if created:
            await app.timers.schedule(close_key(contest.id), CLOSE_TIMER, closes_at, chat_id=chat_id,
                                      payload={"id": contest.id}, session=s)
    if not created and (contest.message_id is not None or contest.status != OPEN):
        return contest
    posted = await post(contest)
    if posted is None:
        await cancel(app, contest.id, by=None, quiet=True)
        return None
    message_id, poll_id = posted
    async with app.db() as s, s.begin():
        await service.set_message(s, contest.id, message_id, poll_id)
    contest.message_id, contest.poll_id = message_id, poll_id
    rt = rt_of(app)
    rt.track(contest)
    await sync.edited(app, contest.id, app.clock.time())
    sync.announce(app, chat_id)
    return contest


def forget(app: App, contest: Contest) -> None:
    """Stop serving a closing contest here, and tell the other workers to stop too."""
    rt_of(app).forget(contest)
    sync.forget(app, contest.id)
    sync.announce(app, contest.chat_id)


# ------------------------------------------------------------------------------------------ live counts
async def request_refresh(app: App, contest: Contest) -> None:
    """Edit the live-count message now, or once the edit interval has passed (coalescing).

    At most one edit per message per ``edit_interval_seconds`` (default 3 s, i.e. 20 edits a minute,
    the per-group budget Telegram allows): the first change edits at once; changes within the
    interval arm one durable ``polls.refresh`` timer at last_edit + interval, and that edit shows
    the counts as they are then. The interval is kept across workers (``app.shared``).
    """
    cid = contest.id
    async with sync.contest_lock(app, cid):
        if await sync.pending(app, cid):
            return
        interval = (await cfg_of(app, contest.chat_id)).edit_interval_seconds
        now = app.clock.time()
        last = await sync.last_edit(app, cid)
        if last is None or now - last >= interval:
            await sync.edited(app, cid, now)
            await refresh(app, cid)
            return
        due = last + interval
        await sync.set_pending(app, cid, due, now)
        await app.timers.schedule(f"polls:refresh:{cid}:{int(due * 1000)}", REFRESH_TIMER,
                                  datetime.fromtimestamp(due, UTC), chat_id=contest.chat_id, payload={"id": cid})


async def on_refresh_timer(app: App, fire: TimerFire) -> None:
    cid = int(fire.payload["id"])
    async with sync.contest_lock(app, cid):
        await sync.clear_pending(app, cid)
        await sync.edited(app, cid, app.clock.time())
        await refresh(app, cid)


async def _live_view(app: App, contest: Contest, *, closed: bool = False) -> tuple[str, InlineKeyboardMarkup | None]:
    _, tz = await chat_texts(app, contest.chat_id)
    final = contest.result or {}
    if contest.kind == "pk":
        if closed and "counts" in final:
            counts = list(final["counts"])  # exactly what the result message says
        else:
            async with app.db() as s:
                counts = await service.side_counts(s, contest.id)
        return pk_text(contest, counts, tz, _, closed=closed), None if closed else pk_markup(contest, counts)
    if contest.kind == "lottery":
        entrants = rt_of(app).entrants.get(contest.id)
        if closed and "entrants" in final:
            n = int(final["entrants"])
        elif entrants is None or closed or app.shared.distributed:
            # Several workers write every entry at once (handlers.join_lottery): the database counts them all.
            async with app.db() as s:
                n = len(await service.entrant_ids(s, contest.id))
        else:
            n = len(entrants)
        return lottery_text(contest, n, tz, _, closed=closed), None if closed else lottery_markup(contest, _)
    raise ValueError(contest.kind)


async def refresh(app: App, contest_id: int) -> None:
    """Edit the live-count message (callers hold the contest lock)."""
    await sync.reload(app)
    rt = rt_of(app)
    contest = rt.live.get(contest_id)
    if contest is None or contest.message_id is None or contest.kind not in ("pk", "lottery"):
        return
    text, markup = await _live_view(app, contest)
    remaining = (contest.closes_at - app.clock.now()).total_seconds()
    if await sync.shows(app, contest_id, text, max(0.0, remaining)):
        return  # nothing changed (a switched-back vote): Telegram would answer "message is not modified"
    app.call(contest.chat_id, EditMessageText(chat_id=contest.chat_id, message_id=contest.message_id, text=text,
                                              reply_markup=markup))


async def _edit_final(app: App, contest: Contest, suffix: str = "") -> None:
    if contest.message_id is None or contest.kind not in ("pk", "lottery"):
        return
    text, _markup = await _live_view(app, contest, closed=True)
    await app.call(contest.chat_id, EditMessageText(chat_id=contest.chat_id, message_id=contest.message_id,
                                                    text=text + suffix, reply_markup=None))


# ------------------------------------------------------------------------------------------ closing
async def on_close_timer(app: App, fire: TimerFire) -> None:
    await finalize(app, int(fire.payload["id"]))


async def finalize(app: App, contest_id: int) -> bool:
    """Close (if open), pay and announce; safe to call any number of times. False: nothing to do."""
    live = rt_of(app).live.get(contest_id)
    if live is not None:
        # Live input stops here, and what this worker buffered (joins, answers, arguments, replies) is
        # in the DB from here on. Before the lock: a flush waits for the updates in progress, and one of
        # them may be waiting for this lock (a vote).
        forget(app, live)
        await app.flush()
    async with sync.contest_lock(app, contest_id):
        async with app.db() as s:
            contest = await service.get(s, contest_id)
        if contest is None or contest.status == CANCELLED:
            return False
        if contest.status == OPEN:
            if contest.message_id is None:
                # Never posted (the bot died between creating and posting): nothing to close.
                await cancel(app, contest_id, by=None, quiet=True, locked=True)
                return False
            forget(app, contest)
            result = await _compute(app, contest)
            async with app.db() as s, s.begin():
                await service.close(s, contest_id, result, app.clock.now())
            async with app.db() as s:
                contest = await service.get(s, contest_id)
            assert contest is not None
        elif contest.announced_at is not None:
            return False
        if contest.status != CLOSED:
            return False
        await _pay(app, contest)
        if contest.announced_at is None:
            await _announce(app, contest)
            async with app.db() as s, s.begin():
                await service.mark_announced(s, contest_id, app.clock.now())
        await app.timers.cancel(close_key(contest_id))
        return True


async def cancel(app: App, contest_id: int, *, by: int | None, quiet: bool = False, locked: bool = False) -> bool:
    """open -> cancelled: no result, no points; the message loses its buttons (a poll is stopped)."""
    if not locked:
        async with sync.contest_lock(app, contest_id):
            return await cancel(app, contest_id, by=by, quiet=quiet, locked=True)
    async with app.db() as s, s.begin():
        contest = await service.get(s, contest_id)
        if contest is None or not await service.close(s, contest_id, {"cancelled_by": by}, app.clock.now(),
                                                       status=CANCELLED):
            return False
    forget(app, contest)
    await app.timers.cancel(close_key(contest_id))
    if quiet or contest.message_id is None:
        return True
    _, _tz = await chat_texts(app, contest.chat_id)
    if contest.kind == "poll":
        try:
            await app.bot.stop_poll(chat_id=contest.chat_id, message_id=contest.message_id)
        except TelegramAPIError as exc:
            log.info("stopPoll of cancelled contest %s failed: %s", contest_id, exc)
    elif contest.kind in ("pk", "lottery"):
        await _edit_final(app, contest, "\n" + _("❌ 已取消"))
    elif contest.kind == "quiz":
        text = quiz_text(contest, _, int(contest.data.get("duration", 0))) + "\n" + _("❌ 已取消")
        await app.call(contest.chat_id, EditMessageText(chat_id=contest.chat_id, message_id=contest.message_id,
                                                        text=text))
    return True


async def _compute(app: App, contest: Contest) -> dict[str, Any]:
    if contest.kind == "poll":
        return await _poll_result(app, contest)
    if contest.kind == "pk":
        return await _pk_result(app, contest)
    if contest.kind == "lottery":
        return await _lottery_result(app, contest)
    return {"winner": None}  # a quiz that reached its time: nobody answered right


async def _poll_result(app: App, contest: Contest) -> dict[str, Any]:
    counts: list[int] | None = None
    total = 0
    if contest.message_id is not None:
        try:
            poll = await app.bot.stop_poll(chat_id=contest.chat_id, message_id=contest.message_id)
            counts = [o.voter_count for o in poll.options]
            total = poll.total_voter_count
        except TelegramAPIError as exc:
            # Deleted, or already closed: fall back to the last counts the poll updates brought.
            log.info("stopPoll for contest %s failed: %s", contest.id, exc)
    if counts is None:
        last = contest.result or {}
        counts = list(last.get("counts") or [0] * len(contest.options))
        total = int(last.get("total", sum(counts)))
    result: dict[str, Any] = {"counts": counts, "total": total}
    correct = contest.data.get("correct_option")
    if correct is not None and not contest.data.get("anonymous"):
        async with app.db() as s:
            answers = await service.poll_answers(s, contest.id)
        result["correct_voters"] = [uid for uid, choices in answers if choices == [correct]]
    return result


async def _pk_result(app: App, contest: Contest) -> dict[str, Any]:
    async with app.db() as s:
        voters = await service.voters(s, contest.id)
        best = await service.top_arguments(s, contest.id)
    counts = [0, 0]
    for _uid, side in voters:
        if side in (0, 1):
            counts[side] += 1
    winner = 0 if counts[0] > counts[1] else 1 if counts[1] > counts[0] else None
    return {
        "counts": counts,
        "winner": winner,
        "voters": [[uid, side] for uid, side in voters if side in (0, 1)],
        "arguments": {
            str(side): {"message_id": a.message_id, "user_id": a.user_id, "excerpt": a.excerpt, "replies": a.replies}
            for side, a in best.items()
            if a.replies > 0  # "most replied": an argument nobody answered is not shown
        },
    }


async def _lottery_result(app: App, contest: Contest) -> dict[str, Any]:
    async with app.db() as s:
        entrants = await service.entrant_ids(s, contest.id)
        eligible = await _eligible(app, s, contest, entrants)
    seed = str(contest.data["seed"])
    winners = draw_winners(seed, eligible, int(contest.data.get("winners", 1)))
    return {
        "entrants": len(entrants),
        "eligible": eligible,
        "excluded": len(entrants) - len(eligible),
        "winners": winners,
        "seed": seed,
        "digest": entrants_digest(eligible),
    }


async def _eligible(app: App, s: AsyncSession, contest: Contest, entrants: list[int]) -> list[int]:
    """Entrants minus bots, admins (when configured) and members who are no longer in the chat."""
    if not entrants:
        return []
    chat_id = contest.chat_id
    out: set[int] = set(entrants)
    out.discard(app.bot.id)
    if contest.data.get("exclude_admins", True):
        admins = set(await app.admins.admins(chat_id)) | set(app.admins.owners)
        out -= admins
    bots = await s.scalars(select(User.user_id).where(User.user_id.in_(list(out)), User.is_bot.is_(True)))
    out -= {int(b) for b in bots}
    statuses = dict(
        (await s.execute(select(Member.user_id, Member.status).where(Member.chat_id == chat_id,
                                                                     Member.user_id.in_(list(out))))).all()
    )
    lookups = 0
    for uid in sorted(out):
        status = statuses.get(uid)
        if status is not None:
            if status not in PRESENT:
                out.discard(uid)
            continue
        if lookups >= MEMBER_LOOKUPS_AT_DRAW:
            continue
        lookups += 1
        if not await is_member(app, chat_id, uid, use_cache=False):
            out.discard(uid)
    return sorted(out)


async def is_member(app: App, chat_id: int, user_id: int, *, use_cache: bool = True) -> bool:
    """In the chat now: the member table when it says so, else getChatMember (cached positives)."""
    rt = rt_of(app)
    now = app.clock.time()
    if use_cache and rt.member_cached(chat_id, user_id, now):
        return True
    row = await app.members.get(chat_id, user_id)
    if row is not None and row.status in PRESENT:
        rt.remember_member(chat_id, user_id, now)
        return True
    try:
        member = await app.bot.get_chat_member(chat_id=chat_id, user_id=user_id)
    except TelegramAPIError as exc:
        log.info("getChatMember(%s, %s) failed: %s", chat_id, user_id, exc)
        return False
    status = str(member.status)
    present = status in ("creator", "administrator", "member") or (
        status == "restricted" and bool(getattr(member, "is_member", False))
    )
    if present:
        rt.remember_member(chat_id, user_id, now)
    return present


# ------------------------------------------------------------------------------------------ paying
async def _pay(app: App, contest: Contest) -> None:
    result = contest.result or {}
    payments: list[tuple[int, int, str, str]] = []
    if contest.kind == "pk":
        part = int(contest.data.get("participation", 0))
        bonus = int(contest.data.get("bonus", 0))
        winner = result.get("winner")
        for uid, side in result.get("voters", []):
            if part > 0:
                payments.append((int(uid), part, "pk", f"pk:{contest.id}:{uid}:join"))
            if bonus > 0 and winner is not None and side == winner:
                payments.append((int(uid), bonus, "pk_win", f"pk:{contest.id}:{uid}:win"))
    elif contest.kind == "quiz":
        winner = result.get("winner")
        points = int(contest.data.get("points", 0))
        if winner is not None and points > 0:
            payments.append((int(winner), points, "quiz", f"quiz:{contest.id}:{winner}:win"))
    failed = 0
    for uid, delta, reason, reference in payments:
        try:
            await app.points.change(contest.chat_id, uid, delta, reason, reference, note=f"polls #{contest.id}")
        except Exception:
            failed += 1
            log.exception("paying %s for contest %s failed", reference, contest.id)
    if failed:
        raise RuntimeError(f"{failed} payments of contest {contest.id} failed; the timer will retry")


# ------------------------------------------------------------------------------------------ announcing
async def _announce(app: App, contest: Contest) -> None:
    _, _tz = await chat_texts(app, contest.chat_id)
    result = contest.result or {}
    text: str | None = None
    reply_to = contest.message_id
    if contest.kind == "poll":
        correct_names = None
        if "correct_voters" in result:
            correct_names = [await app.members.mention(uid) for uid in result["correct_voters"]]
        text = poll_summary(contest, result.get("counts", []), int(result.get("total", 0)), _, correct_names)
    elif contest.kind == "pk":
        await _edit_final(app, contest)
        text = await _pk_announcement(app, contest, _)
    elif contest.kind == "lottery":
        await _edit_final(app, contest)
        text = await _lottery_announcement(app, contest, _)
    elif contest.kind == "quiz":
        answers = "、".join(esc(a) for a in contest.data.get("answers", []))
        winner = result.get("winner")
        if winner is None:
            text = _("⏰ 知识竞赛 #{id} 时间到，没有人答对。正确答案：{answer}").format(id=contest.id, answer=answers)
        else:
            reply_to = result.get("message_id") or contest.message_id
            text = _("🎉 恭喜 {who} 答对了知识竞赛 #{id}！正确答案：{answer}，获得 {points} 积分。").format(
                who=await app.members.mention(int(winner)), id=contest.id, answer=answers,
                points=contest.data.get("points", 0),
            )
    if text is None:
        return
    sent = await app.send_text(contest.chat_id, text, reply_to=reply_to)
    if sent is None:
        raise RuntimeError(f"announcing contest {contest.id} failed; the timer will retry")


async def _pk_announcement(app: App, contest: Contest, _: Gettext) -> str:
    result = contest.result or {}
    counts = result.get("counts", [0, 0])
    a, b = contest.options[:2]
    lines = [
        f"🏁 <b>{_('话题PK')} #{contest.id} {_('结果')}</b>",
        f"🔴 {esc(a)} {_('{n} 票').format(n=counts[0])}  vs  🔵 {esc(b)} {_('{n} 票').format(n=counts[1])}",
    ]
    winner = result.get("winner")
    if not sum(counts):
        lines.append(_("没有人投票。"))
    elif winner is None:
        lines.append(_("🤝 平局！"))
    else:
        lines.append(_("🏆 胜方：{side}！").format(side=esc(contest.options[winner])))
    part = int(contest.data.get("participation", 0))
    bonus = int(contest.data.get("bonus", 0))
    if sum(counts) and (part or (bonus and winner is not None)):
        parts = []
        if part:
            parts.append(_("每位参与者 +{n} 积分").format(n=part))
        if bonus and winner is not None:
            parts.append(_("胜方每人再 +{n} 积分").format(n=bonus))
        lines.append("🎁 " + "，".join(parts))
    for side, label in ((0, _("正方")), (1, _("反方"))):
        arg = (result.get("arguments") or {}).get(str(side))
        if not arg:
            continue
        who = await app.members.mention(int(arg["user_id"]))
        lines.append(
            _("💬 {label}最佳论点（{n} 条回复）— {who}：「{text}」").format(
                label=label, n=arg.get("replies", 0), who=who, text=esc(arg.get("excerpt", ""))
            )
        )
    return "\n".join(lines)


async def _lottery_announcement(app: App, contest: Contest, _: Gettext) -> str:
    result = contest.result or {}
    winners: list[int] = [int(w) for w in result.get("winners", [])]
    seed = str(result.get("seed", ""))
    head = f"🎉 <b>{_('抽奖')} #{contest.id} {_('开奖')}</b>：{esc(contest.title)}"
    lines = [head]
    if not winners:
        lines.append(_("没有有效的参与者，本次抽奖作废。"))
    else:
        names = [await app.members.mention(uid) for uid in winners]
        lines.append(_("中奖者：{names}").format(names="、".join(names)))
        wanted = int(contest.data.get("winners", 1))
        if len(winners) < wanted:
            lines.append(_("有效参与人数（{n}）少于名额（{m}），全部有效参与者中奖。").format(n=len(winners), m=wanted))
    lines.append(
        _("有效参与 {n} 人，排除 {k} 人（管理员、机器人或已退群）。").format(
            n=len(result.get("eligible", [])), k=result.get("excluded", 0)
        )
    )
    lines.append(_("种子：") + f"<code>{html.escape(seed)}</code>")
    lines.append(_("sha256(种子)：") + f"<code>{commitment(seed)}</code>"
                 + (" ✅" if commitment(seed) == contest.data.get("commitment") else " ❌"))
    lines.append(_("复核：/lottery_verify {id}").format(id=contest.id))
    return "\n".join(lines)


def describe(contest: Contest, tz: ZoneInfo, _: Gettext) -> str:
    """One line for /contests."""
    title = contest.title if len(contest.title) <= 40 else contest.title[:39] + "…"
    return _("#{id} {kind}「{title}」— {at} 截止").format(
        id=contest.id, kind=kind_name(contest.kind, _), title=esc(title), at=when(contest.closes_at, tz)
    )
