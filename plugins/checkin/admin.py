"""Admin commands: /give, /take, /resetpoints (confirm button), /ledger, and the shop's /additem,
/delitem, /stock, /addcodes, /orders, /fulfill."""

from __future__ import annotations

import csv
import html
import io
import re
from typing import TYPE_CHECKING, Any

from aiogram import Router
from aiogram.filters import Filter
from aiogram.methods import SendDocument
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    TelegramObject,
)
from sqlalchemy import select

from bot.db import retry_locked
from bot.models import PointsBalance
from bot.plugin import UsageError
from bot.services.points import InsufficientPoints
from plugins.checkin import service, shop
from plugins.checkin.activity import announce_level
from plugins.checkin.handlers import cfg_of, fmt, name_for, target_of
from plugins.checkin.models import ITEM_KINDS

if TYPE_CHECKING:
    from bot.app import App
    from bot.context import Ctx

RESET_PREFIX = "ck:rp:"
CANCEL_DATA = "ck:rpx"
LEDGER_TEXT_ROWS = 15
LEDGER_FILE_ROWS = 5000

REASON_LABELS = {
    service.R_CHECKIN: "签到", service.R_ACTIVITY: "发言", service.R_INVITE: "邀请", service.R_WEEKLY: "周榜之星",
    service.R_GIVE: "管理员发放", service.R_TAKE: "管理员扣除", service.R_REDEEM: "兑换", service.R_RESET: "清零",
}


def parse_amount(ctx: Ctx, token: str) -> int:
    """A positive whole number of points within the chat's /give limit; UsageError otherwise."""
    cfg = cfg_of(ctx)
    raw = token.strip().replace(",", "").replace("，", "")
    if raw.startswith("+"):
        raw = raw[1:]
    if raw.startswith("-") and raw[1:].isdigit():
        raise UsageError(ctx._("数量必须是正整数（扣分请用 /take）。"))
    if not raw.isdigit():
        raise UsageError(ctx._("数量必须是正整数，例如 /give 10 活动奖励。"))
    amount = int(raw)
    if amount <= 0:
        raise UsageError(ctx._("数量必须大于 0。"))
    if amount > cfg.max_admin_amount:
        raise UsageError(ctx._("一次最多 {n} 积分。").format(n=cfg.max_admin_amount))
    return amount


async def _give_or_take(message: Message, ctx: Ctx, sign: int) -> None:
    assert ctx.chat_id is not None
    uid, rest = await target_of(message, ctx, ctx.args)
    if uid is None:
        if ctx.args.strip().startswith("@"):
            raise UsageError(ctx._("找不到这个成员，请回复他的消息或写用户ID。"))
        raise UsageError()
    amount_token, _, reason = rest.partition(" ")
    if not amount_token:
        raise UsageError()
    amount = parse_amount(ctx, amount_token)
    reason = reason.strip()[:200] or None
    app = ctx.app
    name = await app.members.mention(uid)
    cfg = cfg_of(ctx)
    ref = f"{'give' if sign > 0 else 'take'}:{ctx.chat_id}:{message.message_id}"

    async def tx() -> tuple[bool, int, Any]:
        async with app.db() as s, s.begin():
            r = await app.points.change(ctx.chat_id, uid, sign * amount, service.R_GIVE if sign > 0 else service.R_TAKE,
                                        ref, note=reason, actor_id=ctx.user_id, session=s)
            if not r.applied or sign < 0:
                return r.applied, r.balance, None
            after = service.clamp_earned(r.earned)
            return r.applied, r.balance, service.level_up(cfg, after - amount, after)

    try:
        applied, balance, new_level = await retry_locked(tx)
    except InsufficientPoints as exc:
        ctx.reply(message, ctx._("{name} 只有 {balance} 积分，不能扣除 {n}。").format(name=name, balance=exc.balance,
                                                                          n=amount))
        return
    if not applied:
        return  # a redelivered command
    if sign > 0:
        text = ctx._("已给 {name} 发放 {n} 积分，现有 {balance} 积分。").format(name=name, n=amount, balance=balance)
    else:
        text = ctx._("已扣除 {name} {n} 积分，现有 {balance} 积分。").format(name=name, n=amount, balance=balance)
    if reason:
        text += "\n" + ctx._("原因：{reason}").format(reason=html.escape(reason))
    ctx.reply(message, text)
    if new_level is not None and cfg.level_up_announce:
        await announce_level(app, ctx.chat_id, uid, new_level.level.name)


async def cmd_give(message: Message, ctx: Ctx) -> None:
    await _give_or_take(message, ctx, +1)


async def cmd_take(message: Message, ctx: Ctx) -> None:
    await _give_or_take(message, ctx, -1)


# ---- /resetpoints ------------------------------------------------------------------------------
async def cmd_resetpoints(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    uid, rest = await target_of(message, ctx, ctx.args)
    if uid is None and rest.lower() not in ("all", "全部", "所有人"):
        raise UsageError()
    if uid is None:
        question = ctx._("⚠️ 确定要把本群所有成员的积分清零吗？此操作不可撤销。")
        target = "all"
    else:
        question = fmt(ctx, "⚠️ 确定要把 {name} 的积分清零吗？此操作不可撤销。", name=await ctx.app.members.mention(uid))
        target = str(uid)
    if ctx.app.points.pool_for(ctx.chat_id) != str(ctx.chat_id):
        question += "\n" + ctx._("注意：本群和其他群共用积分池，清零会影响所有共用的群。")
    markup = InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text=ctx._("确认清零"), callback_data=f"{RESET_PREFIX}{target}"),
        InlineKeyboardButton(text=ctx._("取消"), callback_data=CANCEL_DATA),
    ]])
    ctx.reply(message, question, reply_markup=markup)


async def reset_points(app: App, chat_id: int, target: int | None, ref: str, actor: int | None) -> int:
    """Zero the balance of one member (or everyone in the chat's pool); returns members reset.

    Each member's reset is a ledger entry (reason "reset", reference ``reset:{chat}:{ref}:{user}``),
    so pressing the button twice changes nothing, and levels restart from the reset.
    """
    if target is not None:
        users = [target]
    else:
        async with app.db() as s:
            users = [int(u) for u in await s.scalars(
                select(PointsBalance.user_id).where(PointsBalance.pool == app.points.pool_for(chat_id))
                .order_by(PointsBalance.user_id))]
    count = 0
    for uid in users:
        balance = await app.points.balance(chat_id, uid)
        result = await app.points.change(chat_id, uid, -balance, service.R_RESET, f"reset:{chat_id}:{ref}:{uid}",
                                         actor_id=actor, allow_negative=True)
        count += int(result.applied)
    return count


class ResetButton(Filter):
    async def __call__(self, event: TelegramObject) -> bool:
        return isinstance(event, CallbackQuery) and bool(event.data) and str(event.data).startswith("ck:rp")


async def on_reset_button(query: CallbackQuery, ctx: Ctx) -> None:
    message = query.message
    if ctx.chat_id is None or not isinstance(message, Message):
        await query.answer()
        return
    if not await ctx.is_admin(query.from_user.id):
        await query.answer(ctx._("只有管理员可以操作。"), show_alert=True)
        return
    data = query.data or ""
    if data == CANCEL_DATA:
        await query.answer()
        await ctx.app.bot.edit_message_text(chat_id=message.chat.id, message_id=message.message_id,
                                            text=ctx._("已取消。"))
        return
    target_raw = data[len(RESET_PREFIX):]
    if target_raw != "all" and not target_raw.isdigit():
        await query.answer()
        return
    target = None if target_raw == "all" else int(target_raw)
    count = await reset_points(ctx.app, ctx.chat_id, target, f"m{message.message_id}", query.from_user.id)
    await query.answer(ctx._("已清零"))
    if target is None:
        text = ctx._("✅ 已清零本群 {n} 位成员的积分。").format(n=count)
    else:
        text = ctx._("✅ 已清零 {name} 的积分。").format(name=await ctx.app.members.mention(target))
    await ctx.app.bot.edit_message_text(chat_id=message.chat.id, message_id=message.message_id, text=text)


def make_router() -> Router:
    router = Router(name="checkin")
    router.callback_query.register(on_reset_button, ResetButton())
    return router


# ---- /ledger -----------------------------------------------------------------------------------
async def cmd_ledger(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    uid, _rest = await target_of(message, ctx, ctx.args)
    if uid is None:
        raise UsageError()
    app = ctx.app
    entries = await app.points.history(ctx.chat_id, uid, limit=LEDGER_FILE_ROWS)
    name = await app.members.mention(uid)
    balance = await app.points.balance(ctx.chat_id, uid)
    lines = [fmt(ctx, "📒 {name} 的积分流水（余额 {balance}，共 {n} 条）", name=name, balance=balance, n=len(entries))]
    if not entries:
        lines.append(ctx._("还没有任何记录。"))
    for e in entries[:LEDGER_TEXT_ROWS]:
        when = e.created_at.astimezone(ctx.tz).strftime("%m-%d %H:%M")
        label = ctx._(REASON_LABELS.get(e.reason, e.reason))
        note = f" · {html.escape(e.note[:40])}" if e.note else ""
        lines.append(f"<code>{when} {e.delta:+d}</code> {html.escape(label)}{note}")
    ctx.reply(message, "\n".join(lines))
    if len(entries) > LEDGER_TEXT_ROWS:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["id", "time", "delta", "reason", "reference", "note", "actor_id", "chat_id"])
        for e in entries:
            writer.writerow([e.id, e.created_at.astimezone(ctx.tz).isoformat(), e.delta, e.reason, e.reference,
                             e.note or "", e.actor_id or "", e.chat_id])
        blob = ("\ufeff" + buf.getvalue()).encode()
        app.call(message.chat.id, SendDocument(
            chat_id=message.chat.id,
            document=BufferedInputFile(blob, filename=f"ledger-{ctx.chat_id}-{uid}.csv"),
            caption=ctx._("完整流水（CSV）"),
        ))


# ---- shop admin --------------------------------------------------------------------------------
OPTION_KEYS = {
    "stock": "stock", "库存": "stock", "limit": "limit", "限购": "limit", "kind": "kind", "类型": "kind",
    "desc": "desc", "说明": "desc", "payload": "payload", "内容": "payload",
}
KIND_WORDS = {"coupon": "coupon", "券码": "coupon", "badge": "badge", "徽章": "badge", "title": "title",
              "头衔": "title", "custom": "custom", "人工": "custom", "实物": "custom", "makeup": "makeup",
              "补签卡": "makeup"}


async def cmd_additem(message: Message, ctx: Ctx) -> None:
    """/additem <代号> <价格> <名称…> [库存=10] [限购=1] [类型=coupon|badge|title|custom|makeup]"""
    assert ctx.chat_id is not None
    tokens = ctx.args.split()
    if len(tokens) < 3:
        raise UsageError()
    code, price_raw, rest = tokens[0], tokens[1], tokens[2:]
    if len(code) > 32:
        raise UsageError(ctx._("代号最多 32 个字符。"))
    if not price_raw.isdigit() or int(price_raw) > 1_000_000:
        raise UsageError(ctx._("价格必须是 0 到 1000000 之间的整数。"))
    options: dict[str, str] = {}
    name_words: list[str] = []
    for word in rest:
        key, sep, value = word.partition("=")
        if sep and key.lower() in OPTION_KEYS:
            options[OPTION_KEYS[key.lower()]] = value
        else:
            name_words.append(word)
    name = " ".join(name_words).strip()
    if not name or len(name) > 64:
        raise UsageError(ctx._("请写商品名称（最多 64 个字符）。"))
    kind = KIND_WORDS.get(options.get("kind", "custom").lower())
    if kind is None or kind not in ITEM_KINDS:
        raise UsageError(ctx._("类型只能是 coupon、badge、title、custom 或 makeup。"))
    stock: int | None = None
    if "stock" in options:
        raw = options["stock"]
        if raw in ("不限", "unlimited", "-"):
            stock = None
        elif raw.isdigit() and int(raw) <= 10**7:
            stock = int(raw)
        else:
            raise UsageError(ctx._("库存必须是整数或“不限”。"))
    limit: int | None = None
    if "limit" in options:
        if not options["limit"].isdigit() or int(options["limit"]) > 10**6:
            raise UsageError(ctx._("限购必须是整数（0 表示不限）。"))
        limit = int(options["limit"])
    payload = options.get("payload")
    try:
        item, created = await shop.add_item(ctx.app, ctx.chat_id, code=code, name=name, price=int(price_raw), kind=kind,
                                            stock=stock, stock_given="stock" in options, limit=limit,
                                            payload=payload[:64] if payload else None)
    except shop.ShopError as exc:
        raise UsageError(ctx._(str(exc))) from None
    if "desc" in options:
        async with ctx.app.db() as s, s.begin():
            row = await s.get(shop.ShopItem, item.id)
            if row is not None:
                row.description = options["desc"][:300]
    verb = ctx._("已上架") if created else ctx._("已更新")
    stock_text = ctx._("不限量") if item.stock is None else str(item.stock)
    text = ctx._("{verb}：{name}（代号 <code>{code}</code>）{price} 积分，库存 {stock}").format(
        verb=verb, name=html.escape(item.name), code=html.escape(item.code), price=item.price, stock=stock_text)
    if item.kind == "coupon":
        text += "\n" + fmt(ctx, "这是券码商品，请用 /addcodes {code} 券码1 券码2 … 添加券码。",
                            code=html.escape(item.code))
    ctx.reply(message, text)


async def cmd_delitem(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    token = ctx.args.strip()
    if not token:
        raise UsageError()
    item = await shop.delete_item(ctx.app, ctx.chat_id, token)
    if item is None:
        ctx.reply(message, ctx._("没有这个商品：{item}").format(item=html.escape(token[:32])))
        return
    ctx.reply(message, ctx._("已下架：{item}（兑换记录保留）。").format(item=html.escape(item.name)))


async def cmd_stock(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    args = ctx.args.split()
    if not args:
        await shop.sync_items(ctx.app, ctx.chat_id, cfg_of(ctx))
        items = await shop.list_items(ctx.app, ctx.chat_id, include_inactive=True)
        lines = ["📦 <b>" + ctx._("库存") + "</b>"]
        for item in items:
            stock = ctx._("不限") if item.stock is None else str(item.stock)
            line = f"<code>{html.escape(item.code)}</code> {html.escape(item.name)} — {stock}"
            if item.codes_left is not None:
                line += ctx._("（未发券码 {n}）").format(n=item.codes_left)
            lines.append(line)
        if not items:
            lines.append(ctx._("商城里还没有商品。"))
        ctx.reply(message, "\n".join(lines))
        return
    if len(args) != 2:
        raise UsageError()
    try:
        item = await shop.set_stock(ctx.app, ctx.chat_id, args[0], args[1])
    except shop.ShopError as exc:
        raise UsageError(ctx._(str(exc))) from None
    if item is None:
        ctx.reply(message, ctx._("没有这个商品：{item}").format(item=html.escape(args[0][:32])))
        return
    stock = ctx._("不限") if item.stock is None else str(item.stock)
    ctx.reply(message, ctx._("「{item}」库存：{stock}").format(item=html.escape(item.name), stock=stock))


CODE_SPLIT = re.compile(r"[\s,，;；]+")


async def cmd_addcodes(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    head, _, rest = ctx.args.strip().partition(" ")
    if "\n" in head:
        head, _, more = head.partition("\n")
        rest = more + " " + rest
    codes = [c for c in CODE_SPLIT.split(rest) if c]
    if not head or not codes:
        raise UsageError()
    try:
        item, added, duplicates = await shop.add_codes(ctx.app, ctx.chat_id, head, codes, ctx.user_id)
    except shop.ShopError as exc:
        raise UsageError(ctx._(str(exc))) from None
    text = ctx._("「{item}」新增 {n} 个券码").format(item=html.escape(item.name), n=added)
    if duplicates:
        text += ctx._("，{n} 个重复已忽略").format(n=duplicates)
    ctx.reply(message, text + ctx._("。"))


async def cmd_orders(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    rows = await shop.pending_orders(ctx.app, ctx.chat_id)
    if not rows:
        ctx.reply(message, ctx._("没有待发放的兑换。"))
        return
    lines = ["📋 <b>" + ctx._("待发放的兑换") + "</b>"]
    for r in rows:
        who = await name_for(ctx.app, ctx.chat_id, r.user_id)
        lines.append(f"#{r.id} {html.escape(r.item_name)} — {html.escape(who)}")
    lines.append(ctx._("发放后发送 /fulfill 编号"))
    ctx.reply(message, "\n".join(lines))


async def cmd_fulfill(message: Message, ctx: Ctx) -> None:
    assert ctx.chat_id is not None
    raw = ctx.args.strip().lstrip("#")
    if not raw.isdigit():
        raise UsageError()
    row = await shop.fulfill(ctx.app, ctx.chat_id, int(raw), ctx.user_id)
    if row is None:
        ctx.reply(message, ctx._("没有编号为 #{id} 的待发放兑换。").format(id=html.escape(raw)))
        return
    ctx.reply(message, ctx._("✅ 订单 #{id} 已发放：{name} 兑换的「{item}」。").format(
        id=row.id, name=await ctx.app.members.mention(row.user_id), item=html.escape(row.item_name)))
