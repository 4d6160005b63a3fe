"""Member commands: 签到, 积分 / profile, 排行榜, 补签, the shop, invites; the BotStarted code delivery."""

from __future__ import annotations

import html
import logging
from typing import TYPE_CHECKING

from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.plugin import UsageError
from bot.services.events import BotStarted, CheckedIn
from bot.services.members import display_name
from plugins.checkin import boards, invites, service, shop
from plugins.checkin.config import CheckinConfig
from plugins.checkin.levels import progress_bar
from plugins.checkin.models import KIND_BADGE, KIND_COUPON, KIND_CUSTOM, KIND_MAKEUP, KIND_TITLE

if TYPE_CHECKING:
    from bot.app import App
    from bot.context import Ctx

log = logging.getLogger(__name__)

MEDALS = ("🥇", "🥈", "🥉")
START_PAYLOAD = "codes"


def cfg_of(ctx: Ctx) -> CheckinConfig:
    cfg = ctx.cfg
    assert isinstance(cfg, CheckinConfig)
    return cfg


def fmt(ctx: Ctx, msgid: str, **values: object) -> str:
    """Translate ``msgid`` into the chat's language, then fill in ``{name}`` placeholders."""
    return ctx._(msgid).format(**values)


def sender_id(message: Message, ctx: Ctx) -> int | None:
    """The acting member: None for anonymous admins and channels (they cannot hold points)."""
    if message.sender_chat is not None or message.from_user is None or message.from_user.is_bot:
        return None
    return message.from_user.id


async def name_for(app: App, chat_id: int, user_id: int) -> str:
    """A member's display name (plain text); asks Telegram once for members the bot never saw speak."""
    name = await app.members.name_of(user_id)
    if name != str(user_id):
        return name
    try:
        member = await app.bot.get_chat_member(chat_id=chat_id, user_id=user_id)
    except TelegramAPIError:
        return name
    user = member.user
    app.members.touch(user, None, app.clock.now(), spoke=False)
    return display_name(user.first_name, user.last_name, user.username)


async def target_of(message: Message, ctx: Ctx, args: str) -> tuple[int | None, str]:
    """The member an admin command is about: the replied-to author, else a leading @name / id.

    Returns (user_id or None, the remaining arguments).
    """
    reply = message.reply_to_message
    if reply is not None and reply.from_user is not None and not reply.from_user.is_bot and reply.sender_chat is None:
        return reply.from_user.id, args.strip()
    head, _, rest = args.strip().partition(" ")
    if head.startswith("@") or (head.isdigit() and len(head) >= 5):
        uid = await ctx.app.members.resolve(head)
        return uid, rest.strip()
    return None, args.strip()


# ---- 签到 --------------------------------------------------------------------------------------
async def cmd_checkin(message: Message, ctx: Ctx) -> None:
    uid = sender_id(message, ctx)
    if uid is None or ctx.chat_id is None:
        ctx.reply(message, ctx._("匿名身份无法签到，请用自己的账号发送“签到”。"), notice=True)
        return
    cfg = cfg_of(ctx)
    r = await service.check_in(ctx.app, cfg, ctx.chat_id, uid, tz=ctx.tz, message_id=message.message_id)
    if r.status == "duplicate":
        # A redelivered 签到: its own effects are committed, but buffers that listeners fill from the
        # event (written by the batch flush) may have died with the process.
        await ctx.app.events.emit(CheckedIn(chat_id=ctx.chat_id, user_id=uid, at=ctx.now(), streak=r.streak,
                                            points=r.points, redelivered=True))
        return
    name = await ctx.app.members.mention(uid)
    if r.status == "already":
        text = ctx._("{name}，你今天已经签到过啦（今天第 {rank} 位），明天再来吧～").format(name=name, rank=r.rank)
        text += "\n" + ctx._("连续签到 {streak} 天 · 总积分 {total}").format(streak=r.streak, total=r.balance)
        ctx.reply(message, text, notice=True)
        return
    assert r.award is not None
    lines = [ctx._("✅ {name} 签到成功！今天第 {rank} 位签到").format(name=name, rank=r.rank)]
    parts = [ctx._("基础 {n}").format(n=r.award.base)]
    if r.award.milestone:
        parts.append(ctx._("连签奖励 {n}").format(n=r.award.milestone))
    if r.award.lucky:
        parts.append(ctx._("🍀 幸运 {n}").format(n=r.award.lucky))
    gained = ctx._("获得 {points} 积分").format(points=r.points)
    lines.append(gained + (f"（{' + '.join(parts)}）" if len(parts) > 1 else ""))
    lines.append(ctx._("连续签到 {streak} 天 · 总积分 {total}").format(streak=r.streak, total=r.balance))
    if r.made_up:
        lines.append(fmt(ctx, "已自动使用 {n} 张补签卡补上漏签，连签不断！（剩余 {cards} 张）", n=r.made_up,
                         cards=r.cards))
    if r.broken:
        lines.append(ctx._("漏签了 {missed} 天，连签从 {old} 天重新开始。").format(missed=r.missed, old=r.broken))
        if 0 < r.missed <= cfg.makeup_grace_days:
            lines.append(fmt(ctx, "今天内发送 /makeup 使用 {n} 张补签卡即可恢复（你有 {cards} 张，可在 /shop 兑换）。",
                             n=r.missed, cards=r.cards))
    if r.badges:
        labels = "、".join(html.escape(service.badge_label(cfg, b)) for b in r.badges)
        lines.append(ctx._("🏅 获得徽章：{badge}").format(badge=labels))
    if r.level_up is not None and cfg.level_up_announce:
        lines.append(ctx._("🎉 升级为「{level}」！").format(level=html.escape(r.level_up.level.name)))
    ctx.reply(message, "\n".join(lines))
    await ctx.app.events.emit(CheckedIn(chat_id=ctx.chat_id, user_id=uid, at=ctx.now(), streak=r.streak,
                                        points=r.points))


async def cmd_makeup(message: Message, ctx: Ctx) -> None:
    uid = sender_id(message, ctx)
    if uid is None or ctx.chat_id is None:
        return
    cfg = cfg_of(ctx)
    r = await service.makeup(ctx.app, cfg, ctx.chat_id, uid, tz=ctx.tz)
    if r.status == "disabled":
        text = ctx._("本群没有开启补签。")
    elif r.status == "nothing":
        text = ctx._("你现在没有需要补签的日子。")
    elif r.status == "too_late":
        text = fmt(ctx, "漏签了 {n} 天，超过了可补签的 {grace} 天，连签无法恢复了。", n=r.days,
                   grace=cfg.makeup_grace_days)
    elif r.status == "no_cards":
        text = fmt(ctx, "补签需要 {n} 张补签卡，你只有 {cards} 张。可以在 /shop 用积分兑换。", n=r.days,
                   cards=r.cards)
    else:
        text = ctx._("✅ 补签成功：用掉 {n} 张补签卡，连续签到 {streak} 天（剩余 {cards} 张）。").format(
            n=r.days, streak=r.streak, cards=r.cards)
        if r.bonus:
            text += "\n" + ctx._("补上的连签达成里程碑，奖励 {n} 积分。").format(n=r.bonus)
        if r.badges:
            labels = "、".join(html.escape(service.badge_label(cfg, b)) for b in r.badges)
            text += "\n" + ctx._("🏅 获得徽章：{badge}").format(badge=labels)
    ctx.reply(message, text)


# ---- 积分 / profile ----------------------------------------------------------------------------
async def render_card(ctx: Ctx, user_id: int) -> str:
    assert ctx.chat_id is not None
    cfg = cfg_of(ctx)
    c = await service.card(ctx.app, cfg, ctx.chat_id, user_id, tz=ctx.tz)
    name = html.escape(await name_for(ctx.app, ctx.chat_id, user_id))
    head = ctx._("<b>{name} 的积分卡</b>").format(name=name)
    if c.title:
        head += f" · 「{html.escape(c.title)}」"
    lines = [head]
    balance = ctx._("💰 积分：{total}").format(total=c.balance)
    if c.rank:
        balance += ctx._("（排名第 {rank}）").format(rank=c.rank)
    lines.append(balance)
    lines.append(ctx._("⭐ 等级：{level}（累计获得 {earned} 积分）").format(level=html.escape(c.level.level.name),
                                                                earned=c.earned))
    if c.level.next is not None:
        lines.append(progress_bar(c.level.progress) + " " + ctx._("距「{next}」还差 {n} 积分").format(
            next=html.escape(c.level.next.name), n=c.level.to_next))
    else:
        lines.append(progress_bar(1.0) + " " + ctx._("已是最高等级"))
    streak = ctx._("🔥 连续签到 {streak} 天（最长 {best} 天）· 累计签到 {days} 天").format(
        streak=c.streak, best=c.best_streak, days=c.total_days)
    streak += " · " + (ctx._("今天已签到") if c.checked_today else ctx._("今天还没签到"))
    lines.append(streak)
    if c.cards:
        lines.append(ctx._("🎫 补签卡：{n} 张").format(n=c.cards))
    if c.badges:
        shown = "、".join(html.escape(label) + (f"×{count}" if count > 1 else "") for label, count in c.badges)
        lines.append(ctx._("🏅 徽章：{badges}").format(badges=shown))
    else:
        lines.append(ctx._("🏅 徽章：还没有，签到就能拿第一枚～"))
    return "\n".join(lines)


async def cmd_points(message: Message, ctx: Ctx) -> None:
    uid = sender_id(message, ctx)
    if uid is None:
        ctx.reply(message, ctx._("匿名身份没有积分。"), notice=True)
        return
    ctx.reply(message, await render_card(ctx, uid))


async def cmd_profile(message: Message, ctx: Ctx) -> None:
    uid, _rest = await target_of(message, ctx, ctx.args)
    if uid is None:
        if ctx.args.strip():
            raise UsageError(ctx._("找不到这个成员。请回复他的消息发送 /profile，或写 @用户名 / 用户ID。"))
        raise UsageError()
    ctx.reply(message, await render_card(ctx, uid))


# ---- 排行榜 ------------------------------------------------------------------------------------
def _board_title(ctx: Ctx, kind: str, period: str) -> str:
    kinds = {"points": ctx._("积分榜"), "streak": ctx._("连签榜"), "activity": ctx._("活跃榜")}
    periods = {"week": ctx._("本周"), "month": ctx._("本月"), "all": ctx._("总榜")}
    if kind == "streak" and period == "all":
        return ctx._("连签榜 · 当前连续签到")
    if kind == "streak":
        return kinds[kind] + " · " + periods[period] + ctx._("签到天数")
    return kinds[kind] + " · " + periods[period]


def _unit(ctx: Ctx, kind: str) -> str:
    return ctx._("天") if kind == "streak" else ctx._("分")


async def cmd_top(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    parsed = boards.parse_args(ctx.args)
    if parsed is None:
        raise UsageError()
    kind, period = parsed
    cfg = cfg_of(ctx)
    uid = sender_id(message, ctx)
    rows, mine = await boards.top(ctx.app, ctx.chat_id, kind, period, now=ctx.now(), tz=ctx.tz, limit=cfg.top_size,
                                  user_id=uid)
    unit = _unit(ctx, kind)
    lines = ["🏆 <b>" + _board_title(ctx, kind, period) + "</b>"]
    if not rows:
        lines.append(ctx._("还没有人上榜，快来签到吧！"))
    for index, (who, value) in enumerate(rows, start=1):
        badge = MEDALS[index - 1] if index <= len(MEDALS) else f"{index}."
        lines.append(f"{badge} {html.escape(await name_for(ctx.app, ctx.chat_id, who))} — {value} {unit}")
    if uid is not None:
        if mine is None:
            lines.append(ctx._("你还没有上榜。"))
        else:
            lines.append(fmt(ctx, "你的排名：第 {rank} 名（{value} {unit}）", rank=mine[0], value=mine[1],
                             unit=unit))
    ctx.reply(message, "\n".join(lines))


# ---- shop --------------------------------------------------------------------------------------
def _kind_label(ctx: Ctx, kind: str) -> str:
    return {
        KIND_COUPON: ctx._("券码"), KIND_BADGE: ctx._("徽章"), KIND_TITLE: ctx._("头衔"),
        KIND_CUSTOM: ctx._("实物/人工发放"), KIND_MAKEUP: ctx._("补签卡"),
    }.get(kind, kind)


async def cmd_shop(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    await shop.sync_items(ctx.app, ctx.chat_id, cfg_of(ctx))
    items = await shop.list_items(ctx.app, ctx.chat_id)
    lines = ["🛒 <b>" + ctx._("积分商城") + "</b>"]
    if not items:
        lines.append(ctx._("商城里还没有商品。"))
    for item in items:
        available = item.available
        if available is None:
            stock = ctx._("不限量")
        elif available == 0:
            stock = ctx._("已兑完")
        else:
            stock = ctx._("剩 {n} 件").format(n=available)
        line = ctx._("• <b>{name}</b>（代号 <code>{code}</code>，{kind}）— {price} 积分 · {stock}").format(
            name=html.escape(item.name), code=html.escape(item.code), kind=_kind_label(ctx, item.kind),
            price=item.price, stock=stock)
        if item.limit:
            line += " · " + ctx._("每人限 {n} 件").format(n=item.limit)
        if item.description:
            line += "\n  " + html.escape(item.description)
        lines.append(line)
    if items:
        lines.append(ctx._("兑换：/redeem 代号，例如 /redeem {code}").format(code=html.escape(items[0].code)))
    uid = sender_id(message, ctx)
    if uid is not None:
        lines.append(ctx._("你的积分：{total}").format(total=await ctx.app.points.balance(ctx.chat_id, uid)))
    ctx.reply(message, "\n".join(lines))


def deep_link(app: App) -> str | None:
    return f"https://t.me/{app.bot_username}?start={START_PAYLOAD}" if app.bot_username else None


async def _dm_code(app: App, user_id: int, chat_id: int, item_name: str, code: str) -> bool:
    """Send a code privately; True when Telegram accepted the message."""
    if not await app.members.has_started(user_id):
        return False
    chat = await app.chat_config.chat(chat_id)
    msgid = "🎁 你兑换的「{item}」券码：<code>{code}</code>\n请妥善保存，不要分享给他人。"
    text = app.i18n.gettext(chat.language, msgid).format(item=html.escape(item_name), code=html.escape(code))
    sent = await app.send_text(user_id, text)
    return sent is not None


async def cmd_redeem(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    token = ctx.args.strip()
    if not token:
        raise UsageError()
    uid = sender_id(message, ctx)
    if uid is None:
        ctx.reply(message, ctx._("匿名身份无法兑换，请用自己的账号。"), notice=True)
        return
    cfg = cfg_of(ctx)
    app = ctx.app
    await shop.sync_items(app, ctx.chat_id, cfg)
    r = await shop.redeem(app, ctx.chat_id, uid, token, f"m{message.message_id}")
    name = html.escape(r.item_name)
    if r.status == "duplicate":
        return
    if r.status == "unknown":
        ctx.reply(message, fmt(ctx, "没有这个商品：{item}。发送 /shop 查看可兑换的商品。",
                               item=html.escape(token[:32])))
        return
    if r.status == "sold_out":
        ctx.reply(message, ctx._("「{item}」已经兑完了。").format(item=name))
        return
    if r.status == "limit":
        ctx.reply(message, ctx._("「{item}」每人限兑 {n} 件，你已经兑换过了。").format(item=name, n=r.limit))
        return
    if r.status == "owned":
        ctx.reply(message, ctx._("你已经拥有徽章「{item}」了。").format(item=name))
        return
    if r.status == "poor":
        ctx.reply(message, ctx._("积分不足：「{item}」需要 {price} 积分，你现在只有 {balance} 积分。").format(
            item=name, price=r.price, balance=r.balance))
        return
    head = ctx._("✅ 兑换成功：{item}（-{price} 积分，剩余 {balance} 积分）").format(item=name, price=r.price,
                                                                         balance=r.balance)
    markup = None
    if r.kind == KIND_COUPON and r.code is not None and r.redemption_id is not None:
        if await _dm_code(app, uid, ctx.chat_id, r.item_name, r.code):
            await shop.mark_delivered(app, [r.redemption_id])
            tail = ctx._("券码已私信发给你，请查收。")
        else:
            link = deep_link(app)
            if link:
                tail = ctx._("请点击下方按钮启动机器人，券码会私信发给你。")
                button = InlineKeyboardButton(text=ctx._("🎁 领取券码"), url=link)
                markup = InlineKeyboardMarkup(inline_keyboard=[[button]])
            else:
                tail = ctx._("请私聊机器人发送 /start，券码会私信发给你。")
    elif r.kind == KIND_BADGE:
        tail = ctx._("徽章已加到你的积分卡上。")
    elif r.kind == KIND_TITLE:
        tail = ctx._("头衔已显示在你的积分卡上。")
    elif r.kind == KIND_MAKEUP:
        tail = ctx._("补签卡已到账，漏签时会自动使用（也可发送 /makeup）。")
    else:
        tail = ctx._("已通知管理员发放，订单号 #{id}。").format(id=r.redemption_id)
    ctx.reply(message, head + "\n" + tail, reply_markup=markup)
    await log_redemption(ctx, uid, r)


async def log_redemption(ctx: Ctx, user_id: int, r: shop.RedeemResult) -> None:
    cfg = cfg_of(ctx)
    target = ctx.app.log_chat_for(ctx.chat.log_chat_id)
    if not cfg.shop_log or target is None or ctx.chat_id is None:
        return
    member = await ctx.app.members.mention(user_id)
    text = fmt(
        ctx,
        "🛒 兑换 #{id}｜群 <code>{chat}</code>｜{member}（<code>{uid}</code>）"
        "｜{item}｜-{price} 积分，余额 {balance}",
        id=r.redemption_id, chat=ctx.chat_id, member=member, uid=user_id, item=html.escape(r.item_name),
        price=r.price, balance=r.balance)
    if r.code:
        text += ctx._("｜券码 {code}").format(code=html.escape(shop.mask(r.code)))
    if r.kind == KIND_CUSTOM:
        text += "\n" + ctx._("需要管理员发放，完成后在群里发送 /fulfill {id}").format(id=r.redemption_id)
    ctx.app.send_text(target, text)


async def on_bot_started(app: App, event: BotStarted) -> None:
    """Deliver the coupon codes a member redeemed before they had started the bot."""
    pending = await shop.undelivered_codes(app, event.user_id)
    delivered = []
    for redemption in pending:
        if redemption.code and await _dm_code(app, event.user_id, redemption.chat_id, redemption.item_name,
                                              redemption.code):
            delivered.append(redemption.id)
    await shop.mark_delivered(app, delivered)


# ---- invites -----------------------------------------------------------------------------------
async def cmd_invite(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    uid = sender_id(message, ctx)
    if uid is None or message.from_user is None:
        return
    cfg = cfg_of(ctx)
    name = message.from_user.full_name or str(uid)
    link = await invites.link_for(ctx.app, ctx.chat_id, uid, name)
    if link is None:
        ctx.reply(message, ctx._("机器人没有“邀请成员”的权限，暂时无法生成邀请链接，请联系管理员。"))
        return
    text = fmt(
        ctx,
        "{name}，这是你的专属邀请链接：\n{link}\n"
        "好友通过它入群、完成验证并留满 {hours} 小时，你将获得 {points} 积分。",
        name=await ctx.app.members.mention(uid), link=html.escape(link), hours=f"{cfg.invite_hold_hours:g}",
        points=cfg.invite_points)
    ctx.reply(message, text)


async def cmd_invites(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    cfg = cfg_of(ctx)
    lines = ["🤝 <b>" + ctx._("邀请榜") + "</b>"]
    rows = await boards.invite_board(ctx.app, ctx.chat_id)
    if not rows:
        lines.append(ctx._("还没有成功的邀请。发送 /invite 获取你的专属链接！"))
    for index, (uid, count) in enumerate(rows[: cfg.top_size], start=1):
        badge = MEDALS[index - 1] if index <= len(MEDALS) else f"{index}."
        lines.append(ctx._("{badge} {name} — {n} 人").format(
            badge=badge, name=html.escape(await name_for(ctx.app, ctx.chat_id, uid)), n=count))
    uid = sender_id(message, ctx)
    if uid is not None:
        mine = await invites.stats(ctx.app, ctx.chat_id, uid)
        rank = boards.rank_in(rows, uid)
        line = ctx._("你已成功邀请 {n} 人，{pending} 人在考察期").format(n=mine["rewarded"], pending=mine["pending"])
        if rank:
            line += ctx._("，排名第 {rank}").format(rank=rank[0])
        lines.append(line + ctx._("。"))
    ctx.reply(message, "\n".join(lines))
