"""Commands, buttons, native poll updates and the message observer of the polls plugin."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from aiogram import Router
from aiogram.exceptions import TelegramAPIError
from aiogram.methods import DeleteMessage, SendDocument, SendPoll
from aiogram.types import BufferedInputFile, CallbackQuery, InputPollOption, Message, Poll, PollAnswer

from bot.commands import GROUP_TYPES, connected_chat
from bot.context import Ctx
from bot.plugin import UsageError
from plugins.polls import engine, service, sync
from plugins.polls.config import PollsConfig
from plugins.polls.draw import commitment, draw_winners, entrants_digest, new_seed
from plugins.polls.engine import chat_texts, rt_of
from plugins.polls.models import OPEN, Contest
from plugins.polls.parsing import (
    DAY,
    ParseError,
    check_duration,
    parse_duration,
    parse_id,
    parse_lottery,
    parse_pk,
    parse_poll,
    parse_quiz,
)
from plugins.polls.render import (
    PREFIX,
    esc,
    kind_name,
    lottery_markup,
    lottery_text,
    pk_markup,
    pk_text,
    quiz_text,
    when,
)

log = logging.getLogger(__name__)

MATCH_MAX_CHARS = 200  # longer messages are never a quiz answer or a lottery keyword
EXCERPT_MAX = 120


# ------------------------------------------------------------------------------------------ helpers
def _fail(ctx: Ctx, exc: ParseError) -> UsageError:
    return UsageError(exc.render(ctx._))


async def _target(message: Message, ctx: Ctx) -> tuple[int, PollsConfig] | None:
    """The group a contest goes to (this group, or the one connected with /connect in a DM), after the
    "who may start" check and the open-contests limit; None when refused (the user was told why)."""
    app = ctx.app
    if message.chat.type in GROUP_TYPES:
        chat_id = message.chat.id
    else:
        connected = await connected_chat(app, ctx.user_id)
        if connected is None:
            ctx.reply(message, ctx._("请在群里使用这个命令，或先在私聊中用 /connect 群ID 连接你管理的群。"))
            return None
        if not await app.chat_config.enabled(connected, engine.NAME):
            ctx.reply(message, ctx._("这个群没有开启活动功能。"))
            return None
        chat_id = connected
    cfg = await engine.cfg_of(app, chat_id)
    sender_chat = message.sender_chat.id if message.sender_chat else None
    if cfg.who_can_start == "admins" and not await app.admins.is_admin(chat_id, ctx.user_id, sender_chat):
        ctx.reply(message, ctx._("只有管理员可以发起活动。"), notice=True)
        return None
    async with app.db() as s:
        if await service.by_source(s, message.chat.id, message.message_id) is not None:
            return None  # a redelivered command: the contest exists already
        open_now = await service.count_open(s, chat_id)
    if open_now >= cfg.max_open_per_chat:
        ctx.reply(
            message,
            ctx._("本群进行中的活动已达上限（{max} 个），请先用 /endcontest 编号 结束一些。").format(
                max=cfg.max_open_per_chat
            ),
            notice=True,
        )
        return None
    return chat_id, cfg


def _duration(ctx: Ctx, cfg: PollsConfig, given: int | None, default: str) -> int:
    seconds = given if given is not None else parse_duration(default) or 3600
    try:
        check_duration(seconds, cfg.min_duration_seconds, cfg.max_duration_days * DAY, ctx._)
    except ParseError as exc:
        raise _fail(ctx, exc) from None
    return seconds


def _posted(result: Message | None, *, poll: bool = False) -> tuple[int, str | None] | None:
    if result is None:
        return None
    return result.message_id, (result.poll.id if poll and result.poll else None)


def _confirm(message: Message, ctx: Ctx, chat_id: int, contest: Contest | None) -> None:
    if contest is None:
        ctx.reply(message, ctx._("发布失败：请确认机器人在群里有发消息（和发投票）的权限。"))
    elif message.chat.id != chat_id:
        done = ctx._("已在群里发布 {kind} #{id}。")
        ctx.reply(message, done.format(kind=kind_name(contest.kind, ctx._), id=contest.id))


# ------------------------------------------------------------------------------------------ /poll
async def cmd_poll(message: Message, ctx: Ctx) -> None:
    target = await _target(message, ctx)
    if target is None:
        return
    chat_id, cfg = target
    try:
        spec = parse_poll(ctx.args, max_options=cfg.max_poll_options, anonymous_default=cfg.poll_anonymous_default)
    except ParseError as exc:
        raise _fail(ctx, exc) from None
    seconds = _duration(ctx, cfg, spec.duration, cfg.poll_default_duration)
    app = ctx.app
    data = {"anonymous": spec.anonymous, "multiple": spec.multiple, "correct_option": spec.correct_option}

    async def post(contest: Contest) -> tuple[int, str | None] | None:
        method = SendPoll(
            chat_id=chat_id,
            question=spec.question,
            question_parse_mode=None,
            options=[InputPollOption(text=o, text_parse_mode=None) for o in spec.options],
            is_anonymous=spec.anonymous,
            type="quiz" if spec.correct_option is not None else "regular",
            allows_multiple_answers=spec.multiple,
            correct_option_id=spec.correct_option,
        )
        return _posted(await app.call(chat_id, method), poll=True)

    contest = await engine.open_contest(
        app, chat_id=chat_id, kind="poll", creator_id=ctx.user_id, title=spec.question, options=spec.options,
        data=data, closes_at=ctx.now() + timedelta(seconds=seconds), source_chat_id=message.chat.id,
        source_message_id=message.message_id, post=post,
    )
    _confirm(message, ctx, chat_id, contest)
    if contest is not None and message.chat.id == chat_id:
        _, tz = await chat_texts(app, chat_id)
        ctx.reply(
            message,
            ctx._("📊 投票 #{id} 已发布，{at} 截止。管理员可用 /endcontest {id} 提前结束。").format(
                id=contest.id, at=when(contest.closes_at, tz)
            ),
            notice=True,
        )


# ------------------------------------------------------------------------------------------ /pk
async def cmd_pk(message: Message, ctx: Ctx) -> None:
    target = await _target(message, ctx)
    if target is None:
        return
    chat_id, cfg = target
    try:
        spec = parse_pk(ctx.args)
    except ParseError as exc:
        raise _fail(ctx, exc) from None
    seconds = _duration(ctx, cfg, spec.duration, cfg.pk_default_duration)
    app = ctx.app
    _, tz = await chat_texts(app, chat_id)
    data = {"participation": cfg.pk_participation_points, "bonus": cfg.pk_win_bonus, "arguments": cfg.pk_arguments}

    async def post(contest: Contest) -> tuple[int, str | None] | None:
        sent = await app.send_text(chat_id, pk_text(contest, [0, 0], tz, _), reply_markup=pk_markup(contest, [0, 0]))
        return _posted(sent)

    contest = await engine.open_contest(
        app, chat_id=chat_id, kind="pk", creator_id=ctx.user_id, title=f"{spec.side_a} vs {spec.side_b}",
        options=[spec.side_a, spec.side_b], data=data, closes_at=ctx.now() + timedelta(seconds=seconds),
        source_chat_id=message.chat.id, source_message_id=message.message_id, post=post,
    )
    _confirm(message, ctx, chat_id, contest)


# ------------------------------------------------------------------------------------------ /lottery
async def cmd_lottery(message: Message, ctx: Ctx) -> None:
    target = await _target(message, ctx)
    if target is None:
        return
    chat_id, cfg = target
    app = ctx.app
    _, tz = await chat_texts(app, chat_id)
    now = ctx.now()
    try:
        spec = parse_lottery(ctx.args, now.astimezone(tz), max_winners=cfg.lottery_max_winners)
    except ParseError as exc:
        raise _fail(ctx, exc) from None
    given = spec.duration if spec.at is None else int((spec.at - now).total_seconds())
    if spec.at is not None and given <= 0:
        raise UsageError(ctx._("开奖时间已经过去了。"))
    seconds = _duration(ctx, cfg, given, "1h")
    try:
        headcount = await app.bot.get_chat_member_count(chat_id=chat_id)
    except TelegramAPIError:
        headcount = None
    if headcount is not None:
        # The bot never takes part, nor (by default) the admins.
        left_out = len(await app.admins.admins(chat_id) | {app.bot.id: None}) if cfg.lottery_exclude_admins else 1
        possible = max(0, headcount - left_out)
        if spec.winners > possible:
            raise UsageError(
                ctx._("中奖名额（{n}）不能多于可参与的群成员数（{m}）。").format(n=spec.winners, m=possible)
            )
    await sync.reload(app)
    rt = rt_of(app)
    if spec.keyword and rt.normalize(spec.keyword) in rt.keywords.get(chat_id, {}):
        raise UsageError(ctx._("本群已有进行中的抽奖在用这个口令：{keyword}").format(keyword=esc(spec.keyword)))
    seed = new_seed()
    data = {
        "winners": spec.winners, "keyword": spec.keyword, "seed": seed, "commitment": commitment(seed),
        "exclude_admins": cfg.lottery_exclude_admins,
    }

    async def post(contest: Contest) -> tuple[int, str | None] | None:
        sent = await app.send_text(chat_id, lottery_text(contest, 0, tz, _), reply_markup=lottery_markup(contest, _))
        return _posted(sent)

    contest = await engine.open_contest(
        app, chat_id=chat_id, kind="lottery", creator_id=ctx.user_id, title=spec.prize, options=[], data=data,
        closes_at=now + timedelta(seconds=seconds), source_chat_id=message.chat.id,
        source_message_id=message.message_id, post=post,
    )
    _confirm(message, ctx, chat_id, contest)


# ------------------------------------------------------------------------------------------ /quiz
async def cmd_quiz(message: Message, ctx: Ctx) -> None:
    target = await _target(message, ctx)
    if target is None:
        return
    chat_id, cfg = target
    try:
        spec = parse_quiz(ctx.args)
    except ParseError as exc:
        raise _fail(ctx, exc) from None
    points = spec.points if spec.points is not None else cfg.quiz_default_points
    if not 0 <= points <= cfg.quiz_max_points:
        raise UsageError(ctx._("积分应在 0 到 {max} 之间。").format(max=cfg.quiz_max_points))
    seconds = _duration(ctx, cfg, spec.duration, cfg.quiz_default_duration)
    app = ctx.app
    _, _tz = await chat_texts(app, chat_id)
    hint = ""
    if message.chat.id == chat_id:
        # The command shows the answer: delete it when the bot may, else suggest setting quizzes in a DM.
        if await app.admins.bot_can(chat_id, "can_delete_messages"):
            app.call(chat_id, DeleteMessage(chat_id=chat_id, message_id=message.message_id))
        else:
            hint = "\n" + _("（机器人没有删除消息的权限，出题的命令可能暴露了答案；可以私聊机器人 /connect 后出题。）")
    data = {"answers": list(spec.answers), "points": points, "duration": seconds}

    async def post(contest: Contest) -> tuple[int, str | None] | None:
        return _posted(await app.send_text(chat_id, quiz_text(contest, _, seconds) + hint))

    contest = await engine.open_contest(
        app, chat_id=chat_id, kind="quiz", creator_id=ctx.user_id, title=spec.question, options=[], data=data,
        closes_at=ctx.now() + timedelta(seconds=seconds), source_chat_id=message.chat.id,
        source_message_id=message.message_id, post=post,
    )
    _confirm(message, ctx, chat_id, contest)


# ------------------------------------------------------------------------------------------ admin
async def cmd_contests(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    async with ctx.db() as s:
        contests = await service.open_contests(s, ctx.chat_id)
    if not contests:
        ctx.reply(message, ctx._("本群目前没有进行中的活动。"), notice=True)
        return
    lines = ["<b>" + ctx._("进行中的活动") + "</b>"]
    lines += [engine.describe(c, ctx.tz, ctx._) for c in contests]
    ctx.reply(message, "\n".join(lines))


async def _own_contest(message: Message, ctx: Ctx) -> Contest | None:
    contest_id = parse_id(ctx.args)
    if contest_id is None:
        raise UsageError()
    async with ctx.db() as s:
        contest = await service.get(s, contest_id)
    if contest is None or contest.chat_id != ctx.chat_id:
        ctx.reply(message, ctx._("没有找到活动 #{id}。").format(id=contest_id), notice=True)
        return None
    if contest.status != OPEN:
        ctx.reply(message, ctx._("活动 #{id} 已经结束了。").format(id=contest_id), notice=True)
        return None
    return contest


async def cmd_endcontest(message: Message, ctx: Ctx) -> None:
    contest = await _own_contest(message, ctx)
    if contest is None:
        return
    if not await engine.finalize(ctx.app, contest.id):
        ctx.reply(message, ctx._("活动 #{id} 已经结束了。").format(id=contest.id), notice=True)


async def cmd_cancelcontest(message: Message, ctx: Ctx) -> None:
    contest = await _own_contest(message, ctx)
    if contest is None:
        return
    if await engine.cancel(ctx.app, contest.id, by=ctx.user_id):
        ctx.reply(message, ctx._("已取消{kind} #{id}，不发积分、不开奖。").format(
            kind=kind_name(contest.kind, ctx._), id=contest.id))
    else:
        ctx.reply(message, ctx._("活动 #{id} 已经结束了。").format(id=contest.id), notice=True)


async def cmd_lottery_verify(message: Message, ctx: Ctx) -> None:
    contest_id = parse_id(ctx.args)
    if contest_id is None:
        raise UsageError()
    async with ctx.db() as s:
        contest = await service.get(s, contest_id)
    in_group = message.chat.type in GROUP_TYPES
    # In a private chat: only for members of the draw's group (the entrant list names them).
    if (
        contest is not None and not in_group and ctx.user_id is not None
        and not await engine.is_member(ctx.app, contest.chat_id, ctx.user_id)
    ):
        contest = None
    if contest is None or contest.kind != "lottery" or (in_group and contest.chat_id != message.chat.id):
        ctx.reply(message, ctx._("没有找到抽奖 #{id}。").format(id=contest_id), notice=True)
        return
    promised = str(contest.data.get("commitment", ""))
    if contest.status == OPEN:
        ctx.reply(message, ctx._("抽奖 #{id} 尚未开奖。公证承诺 sha256(种子)：").format(id=contest_id)
                  + f"\n<code>{promised}</code>")
        return
    result = contest.result or {}
    if "seed" not in result:
        ctx.reply(message, ctx._("抽奖 #{id} 已取消，没有开奖。").format(id=contest_id), notice=True)
        return
    seed = str(result["seed"])
    eligible = [int(u) for u in result.get("eligible", [])]
    announced = [int(u) for u in result.get("winners", [])]
    again = draw_winners(seed, eligible, int(contest.data.get("winners", 1)))
    ok_commit = commitment(seed) == promised
    ok_draw = again == announced
    ids = ",".join(str(u) for u in eligible)
    lines = [
        "🔍 <b>" + ctx._("抽奖 #{id} 复核").format(id=contest_id) + "</b>",
        ctx._("种子：") + f"<code>{esc(seed)}</code>",
        ctx._("sha256(种子)：") + f"<code>{commitment(seed)}</code> "
        + (ctx._("✅ 与开始时公布的承诺一致") if ok_commit else ctx._("❌ 与承诺不一致")),
        ctx._("有效参与者 {n} 人（按 ID 排序）：").format(n=len(eligible)) + f"<code>{ids or '-'}</code>",
        ctx._("名单摘要 sha256：") + f"<code>{entrants_digest(eligible)}</code>",
        ctx._("重新计算的中奖者：") + f"<code>{','.join(str(u) for u in again) or '-'}</code> "
        + (ctx._("✅ 与公布结果一致") if ok_draw else ctx._("❌ 与公布结果不一致")),
        ctx._("算法：material = 种子 + \":\" + 逗号连接的排序后 ID；第 k 位（k 从 0 开始）取 "
              "int(sha256(material + \":\" + k)) 对剩余人数取余，从剩余名单中取出该位置的人。"),
    ]
    text = "\n".join(lines)
    if len(text) <= 3900:
        ctx.reply(message, text)
        return
    blob = json.dumps({"lottery": contest_id, "seed": seed, "commitment": promised, "entrants": eligible,
                       "winners": announced}, ensure_ascii=False)
    short = "\n".join(lines[:3] + lines[4:])
    ctx.app.call(message.chat.id, SendDocument(
        chat_id=message.chat.id, caption=short[:1000],
        document=BufferedInputFile(blob.encode(), filename=f"lottery-{contest_id}.json"),
    ))


# ------------------------------------------------------------------------------------------ buttons
def parse_callback(data: str | None) -> tuple[str, int, int | None] | None:
    """("v", contest, side) for a PK vote, ("j", contest, None) for a lottery join; None if malformed."""
    if not data or len(data) > 64:
        return None
    parts = data.split(":")
    if len(parts) < 3 or parts[0] != PREFIX or not parts[2].isdigit() or len(parts[2]) > 18:
        return None
    if parts[1] == "v" and len(parts) == 4 and parts[3] in ("0", "1"):
        return "v", int(parts[2]), int(parts[3])
    if parts[1] == "j" and len(parts) == 3:
        return "j", int(parts[2]), None
    return None


async def is_ours(query: CallbackQuery) -> bool:
    return bool(query.data) and query.data.startswith(PREFIX + ":")  # type: ignore[union-attr]


async def _answer(query: CallbackQuery, text: str, alert: bool = False) -> None:
    try:
        await query.answer(text, show_alert=alert)
    except TelegramAPIError as exc:
        log.info("answerCallbackQuery failed: %s", exc)


async def on_button(query: CallbackQuery, ctx: Ctx) -> None:
    app = ctx.app
    parsed = parse_callback(query.data)
    message = query.message
    if parsed is None or message is None:
        await _answer(query, ctx._("无效的按钮。"), alert=True)
        return
    action, contest_id, side = parsed
    async with app.db() as s:
        contest = await service.get(s, contest_id)
    kind = "pk" if action == "v" else "lottery"
    if (
        contest is None or contest.kind != kind or contest.chat_id != message.chat.id
        or contest.message_id != message.message_id
    ):
        await _answer(query, ctx._("无效的按钮。"), alert=True)
        return
    if contest.status != OPEN or contest.closes_at <= ctx.now():
        await _answer(query, ctx._("这个活动已经结束了。"), alert=True)
        return
    user = query.from_user
    app.members.touch(user, None, ctx.now(), spoke=False)  # so results can name members who never spoke
    if user.is_bot or not await engine.is_member(app, contest.chat_id, user.id):
        await _answer(query, ctx._("只有本群成员可以参与。"), alert=True)
        return
    await sync.reload(app)
    if action == "v":
        assert side is not None
        async with sync.contest_lock(app, contest_id), app.db() as s, s.begin():  # not while it is being closed
            vote = await service.pk_vote(s, contest_id, user.id, side, ctx.now())
        if vote is None:
            await _answer(query, ctx._("这个活动已经结束了。"), alert=True)
            return
        name = contest.options[side]
        if vote.outcome == "same":
            await _answer(query, ctx._("你已经支持「{side}」了。").format(side=name))
            return
        text = ctx._("已改投「{side}」。") if vote.outcome == "switched" else ctx._("已投给「{side}」。")
        await _answer(query, text.format(side=name))
        await engine.request_refresh(app, rt_of(app).live.get(contest_id) or contest)
        return
    if contest.data.get("exclude_admins", True) and await app.admins.is_admin(contest.chat_id, user.id):
        await _answer(query, ctx._("管理员不参与本次抽奖。"), alert=True)
        return
    rt = rt_of(app)
    joined = await join_lottery(ctx, contest_id, user.id, "button")
    if joined is None:
        await _answer(query, ctx._("这个活动已经结束了。"), alert=True)
    elif joined:
        await _answer(query, ctx._("参与成功！祝你好运 🍀"))
        await engine.request_refresh(app, rt.live.get(contest_id) or contest)
    else:
        await _answer(query, ctx._("你已经参与过了。"))


async def join_lottery(ctx: Ctx, contest_id: int, user_id: int, source: str) -> bool | None:
    """Add an entrant in memory and buffer the row (written by the batch flush).

    False: already in; None: the draw is no longer open (it is being drawn or was cancelled).
    Several workers: the row is written at once, under the contest's lock, so the database knows who
    is in whichever worker they entered through, and an entry never lands after the draw read them."""
    app = ctx.app
    rt = rt_of(app)
    entrants = rt.entrants.get(contest_id)
    if app.shared.distributed:
        if entrants is not None and user_id in entrants:
            return False
        async with sync.contest_lock(app, contest_id), app.db() as s, s.begin():
            joined = await service.enter(s, contest_id, user_id, source, ctx.now())
        if joined is not None and entrants is not None:
            entrants.add(user_id)
        return joined
    if entrants is None:
        return None
    if user_id in entrants:
        return False
    entrants.add(user_id)
    now = ctx.now()
    rt.buf_joins[(contest_id, user_id)] = {
        "contest_id": contest_id, "user_id": user_id, "choice": None, "choices": None, "source": source,
        "created_at": now, "updated_at": now,
    }
    return True


# ------------------------------------------------------------------------------------------ native polls
async def known_poll(poll: Poll, ctx: Ctx) -> bool:
    await sync.reload(ctx.app)
    return poll.id in rt_of(ctx.app).polls


async def known_answer(answer: PollAnswer, ctx: Ctx) -> bool:
    await sync.reload(ctx.app)
    return answer.poll_id in rt_of(ctx.app).polls


async def on_poll(poll: Poll, ctx: Ctx) -> None:
    rt = rt_of(ctx.app)
    contest_id = rt.polls.get(poll.id)
    if contest_id is not None:
        rt.buf_poll_counts[contest_id] = {
            "contest_id": contest_id, "counts": [o.voter_count for o in poll.options],
            "total": poll.total_voter_count,
        }


async def on_poll_answer(answer: PollAnswer, ctx: Ctx) -> None:
    rt = rt_of(ctx.app)
    contest_id = rt.polls.get(answer.poll_id)
    if contest_id is None or answer.user is None:
        return
    ids = [int(i) for i in answer.option_ids]
    now = ctx.now()
    ctx.app.members.touch(answer.user, None, now, spoke=False)  # so the result can name the voter
    rt.buf_answers[(contest_id, answer.user.id)] = {
        "contest_id": contest_id, "user_id": answer.user.id, "choice": ids[0] if ids else None, "choices": ids,
        "source": "poll", "created_at": now, "updated_at": now,
    }


# ------------------------------------------------------------------------------------------ observer
async def observe(message: Message, ctx: Ctx) -> None:
    """Every group message: quiz answers, lottery keywords, PK arguments and replies to them.

    Nothing to do (no open quiz, keyword lottery or PK in the chat) costs a flag test and three dict
    lookups. Joins, arguments and reply counts go to buffers; only a quiz win touches the database at
    once (and, with several workers, a lottery entry).
    """
    rt = rt_of(ctx.app)
    if rt.dirty:  # another worker opened or closed a contest
        await sync.reload(ctx.app)
    chat_id = message.chat.id
    quizzes = rt.quizzes.get(chat_id)
    keywords = rt.keywords.get(chat_id)
    pks = rt.pks.get(chat_id)
    if quizzes is None and keywords is None and pks is None:
        return
    user = message.from_user
    if user is None or user.is_bot or message.sender_chat is not None:
        return
    text = message.text or message.caption
    if not text or text[0] == "/":
        return
    if pks is not None:
        await _observe_pk(ctx, message, text, user.id, chat_id)
    if (quizzes is None and keywords is None) or len(text) > MATCH_MAX_CHARS:
        return
    norm = rt.normalize(text)
    if keywords is not None:
        contest_id = keywords.get(norm)
        if contest_id is not None:
            contest = rt.live.get(contest_id)
            excluded = (
                contest is not None and contest.data.get("exclude_admins", True)
                and await ctx.app.admins.is_admin(chat_id, user.id)
            )
            if not excluded and await join_lottery(ctx, contest_id, user.id, "keyword") and contest is not None:
                await engine.request_refresh(ctx.app, contest)
    if quizzes is not None:
        for quiz in list(quizzes.values()):
            if norm in quiz.answers and user.id != quiz.creator_id:
                await _win_quiz(ctx, quiz.contest_id, user.id, message.message_id)
                break


async def _observe_pk(ctx: Ctx, message: Message, text: str, user_id: int, chat_id: int) -> None:
    rt = rt_of(ctx.app)
    reply = message.reply_to_message
    if reply is not None:
        tracked = rt.arguments.get((chat_id, reply.message_id))
        if tracked is None and ctx.app.shared.distributed:
            tracked = await _shared_argument(ctx, chat_id, reply.message_id)
        if tracked is not None and tracked[1] != user_id:
            rt.buf_replies[(tracked[0], reply.message_id)] += 1
    first = text.lstrip()[:1]
    if first not in ("#", "＃", "[", "【", "［", "(", "（", "〔"):
        return
    live = rt.pks.get(chat_id) or {}
    pk = None
    if reply is not None:
        pk = next((p for p in live.values() if p.message_id == reply.message_id), None)
    if pk is None and live:
        pk = live[max(live)]  # the newest open PK of the chat
    if pk is None:
        return
    contest = rt.live.get(pk.contest_id)
    if contest is None or not contest.data.get("arguments", True):
        return
    found = rt.side_of(text, pk, rt.normalize)
    if found is None:
        return
    side, argument = found
    key = (chat_id, message.message_id)
    if key in rt.arguments:
        return
    rt.arguments[key] = (pk.contest_id, user_id)
    if ctx.app.shared.distributed:
        # Replies to it may reach other workers before they could read it from the database.
        ttl = max(0.0, (contest.closes_at - ctx.now()).total_seconds()) + sync.SLACK
        await ctx.app.shared.set(f"polls:arg:{chat_id}:{message.message_id}", f"{pk.contest_id}:{user_id}", ttl)
    rt.buf_arguments[key] = {
        "contest_id": pk.contest_id, "message_id": message.message_id, "chat_id": chat_id, "side": side,
        "user_id": user_id, "excerpt": (argument or text.strip())[:EXCERPT_MAX], "replies": 0,
        "created_at": ctx.now(),
    }


async def _shared_argument(ctx: Ctx, chat_id: int, message_id: int) -> tuple[int, int] | None:
    """(contest, author) of a PK argument another worker saw being tagged; None if it is not one."""
    raw = await ctx.app.shared.get(f"polls:arg:{chat_id}:{message_id}")
    contest, _, author = (raw or "").partition(":")
    if not (contest.isdigit() and author.isdigit()) or int(contest) not in rt_of(ctx.app).live:
        return None
    tracked = rt_of(ctx.app).arguments[(chat_id, message_id)] = (int(contest), int(author))
    return tracked


async def _win_quiz(ctx: Ctx, contest_id: int, user_id: int, message_id: int) -> None:
    app = ctx.app
    rt = rt_of(app)
    contest = rt.live.get(contest_id)
    if contest is None:
        return
    engine.forget(app, contest)  # nobody else can match it from now on
    try:
        async with app.db() as s, s.begin():
            won = await service.claim_quiz(s, contest_id, user_id, message_id, ctx.now())
    except Exception:
        rt.track(contest)  # the claim did not happen: keep the quiz open for the next answer
        raise
    if won:
        await engine.finalize(app, contest_id)


# ------------------------------------------------------------------------------------------ router
def make_router() -> Router:
    router = Router(name=engine.NAME)
    router.callback_query.register(on_button, is_ours)
    router.poll.register(on_poll, known_poll)
    router.poll_answer.register(on_poll_answer, known_answer)
    return router
