"""The points shop: items (TOML + admin commands), coupon-code pools, atomic redemptions.

A redemption is one transaction: the conditional stock decrement (``stock > 0``), the conditional
claim of one unclaimed code (``claimed_by IS NULL``), the ledger debit through
``app.points.change(session=...)`` (conditional ``balance >= price``) and the redemption row, whose
unique (item, member, n-th) constraint enforces the per-member limit and whose unique request
reference (the /redeem message) makes a redelivered command a no-op. Any failure rolls all of it back:
no overselling, no negative balance, no code given twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import retry_locked, upsert
from bot.services.points import InsufficientPoints
from plugins.checkin.config import CheckinConfig
from plugins.checkin.models import (
    ITEM_KINDS,
    KIND_BADGE,
    KIND_COUPON,
    KIND_CUSTOM,
    KIND_MAKEUP,
    KIND_TITLE,
    R_DONE,
    R_FULFILLED,
    R_PENDING,
    CheckinBadge,
    CouponCode,
    Redemption,
    ShopItem,
)
from plugins.checkin.service import R_REDEEM, add_cards, grant_badge, set_title

if TYPE_CHECKING:
    from bot.app import App

MAX_CODE_LEN = 255
MAX_CODES_PER_CALL = 1000


def badge_code(item: ShopItem) -> str:
    return f"shop:{item.code.lower()}"


# ---- items -------------------------------------------------------------------------------------
async def _items(s: AsyncSession, chat_id: int) -> list[ShopItem]:
    return list(await s.scalars(select(ShopItem).where(ShopItem.chat_id == chat_id).order_by(ShopItem.id)))


async def sync_items(app: App, chat_id: int, cfg: CheckinConfig) -> None:
    """Bring the chat's shop table in line with the configured items (only when the config changed).

    New config items are created with their initial stock; existing config items take the new name,
    price, kind and limit but keep their stock (it is consumed); config items removed from the config
    are deactivated. Items an admin added or edited in chat are left alone.
    """
    runtime = app.runtime("checkin")
    fingerprint = json.dumps([i.model_dump() for i in cfg.items], sort_keys=True, ensure_ascii=False)
    if runtime.synced_items.get(chat_id) == fingerprint:
        return
    now = app.clock.now()

    async def tx() -> None:
        async with app.db() as s, s.begin():
            rows = {r.code.lower(): r for r in await _items(s, chat_id)}
            wanted = {i.code.lower(): i for i in cfg.items}
            for key, conf in wanted.items():
                row = rows.get(key)
                if row is None:
                    row = ShopItem(chat_id=chat_id, code=conf.code, name=conf.name, description=conf.description,
                                   price=conf.price, stock=conf.stock, per_member_limit=conf.limit, kind=conf.kind,
                                   payload=conf.payload, active=True, source="config", created_at=now, updated_at=now)
                    s.add(row)
                    await s.flush()
                elif row.source == "config":
                    row.name, row.description, row.price = conf.name, conf.description, conf.price
                    row.per_member_limit, row.kind, row.payload = conf.limit, conf.kind, conf.payload
                    row.updated_at = now
                else:
                    continue
                if conf.codes:
                    await _insert_codes(s, row.id, conf.codes, None, now)
            for key, row in rows.items():
                if row.source == "config" and key not in wanted and row.active:
                    row.active = False
                    row.updated_at = now

    await retry_locked(tx)
    runtime.synced_items[chat_id] = fingerprint


async def _insert_codes(s: AsyncSession, item_id: int, codes: list[str], by: int | None, now: datetime) -> None:
    rows = [{"item_id": item_id, "code": c, "added_by": by, "added_at": now} for c in dict.fromkeys(codes)]
    for start in range(0, len(rows), 200):
        await upsert(s, CouponCode, rows[start:start + 200], ["item_id", "code"])


async def find_item(s: AsyncSession, chat_id: int, token: str) -> ShopItem | None:
    token = token.strip()
    if not token:
        return None
    rows = await s.scalars(
        select(ShopItem)
        .where(ShopItem.chat_id == chat_id, or_(func.lower(ShopItem.code) == token.lower(), ShopItem.name == token))
        .order_by(ShopItem.active.desc(), ShopItem.id)
    )
    return rows.first()


@dataclass(frozen=True)
class ItemView:
    id: int
    code: str
    name: str
    description: str | None
    price: int
    kind: str
    stock: int | None  # None: unlimited
    codes_left: int | None  # coupon items: unclaimed codes
    limit: int

    @property
    def available(self) -> int | None:
        """How many can still be redeemed (None: unlimited)."""
        values = [v for v in (self.stock, self.codes_left) if v is not None]
        return min(values) if values else None


async def list_items(app: App, chat_id: int, *, include_inactive: bool = False) -> list[ItemView]:
    async with app.db() as s:
        items = [i for i in await _items(s, chat_id) if include_inactive or i.active]
        coupon_ids = [i.id for i in items if i.kind == KIND_COUPON]
        left: dict[int, int] = {}
        if coupon_ids:
            rows = await s.execute(
                select(CouponCode.item_id, func.count())
                .where(CouponCode.item_id.in_(coupon_ids), CouponCode.claimed_by.is_(None))
                .group_by(CouponCode.item_id)
            )
            left = {int(i): int(n) for i, n in rows.all()}
    return [
        ItemView(i.id, i.code, i.name, i.description, i.price, i.kind, i.stock,
                 left.get(i.id, 0) if i.kind == KIND_COUPON else None, i.per_member_limit)
        for i in items
    ]


# ---- redeem ------------------------------------------------------------------------------------
@dataclass
class RedeemResult:
    status: str  # ok, duplicate, unknown, sold_out, limit, owned, poor
    item_name: str = ""
    item_code: str = ""
    kind: str = ""
    price: int = 0
    balance: int = 0
    needed: int = 0
    code: str | None = None
    redemption_id: int | None = None
    limit: int = 0


class _Abort(Exception):
    def __init__(self, result: RedeemResult) -> None:
        super().__init__(result.status)
        self.result = result


async def redeem(app: App, chat_id: int, user_id: int, token: str, request_ref: str) -> RedeemResult:
    now = app.clock.now()

    async def tx() -> RedeemResult:
        async with app.db() as s, s.begin():
            done = await s.scalar(
                select(Redemption).where(Redemption.chat_id == chat_id, Redemption.request_ref == request_ref)
            )
            if done is not None:
                return RedeemResult("duplicate", done.item_name, kind=done.kind, price=done.price, code=done.code,
                                    redemption_id=done.id)
            item = await find_item(s, chat_id, token)
            if item is None or not item.active:
                return RedeemResult("unknown")
            base = RedeemResult("ok", item.name, item.code, item.kind, item.price, limit=item.per_member_limit)
            # The stock decrement comes first: on SQLite it takes the write lock, so every read below
            # sees the latest committed state.
            if item.stock is not None:
                res = await s.execute(
                    update(ShopItem).where(ShopItem.id == item.id, ShopItem.stock > 0)
                    .values(stock=ShopItem.stock - 1).execution_options(synchronize_session=False)
                )
                if res.rowcount != 1:  # type: ignore[attr-defined]
                    raise _Abort(_with(base, "sold_out"))
            seq = int(
                await s.scalar(
                    select(func.count()).select_from(Redemption)
                    .where(Redemption.item_id == item.id, Redemption.user_id == user_id)
                ) or 0
            ) + 1
            if item.per_member_limit and seq > item.per_member_limit:
                raise _Abort(_with(base, "limit"))
            if item.kind == KIND_BADGE and await s.get(CheckinBadge, (chat_id, user_id, badge_code(item))):
                raise _Abort(_with(base, "owned"))
            code: str | None = None
            if item.kind == KIND_COUPON:
                code = await _claim_code(s, item.id, user_id, now)
                if code is None:
                    raise _Abort(_with(base, "sold_out"))
            try:
                debit = await app.points.change(chat_id, user_id, -item.price, R_REDEEM,
                                                f"redeem:{chat_id}:{request_ref}", note=item.name[:64], session=s)
            except InsufficientPoints as exc:
                raise _Abort(_with(base, "poor", balance=exc.balance, needed=item.price)) from None
            status = R_PENDING if item.kind == KIND_CUSTOM else R_DONE
            row = Redemption(chat_id=chat_id, item_id=item.id, user_id=user_id, seq=seq, item_name=item.name,
                             kind=item.kind, price=item.price, code=code, status=status, request_ref=request_ref,
                             created_at=now)
            s.add(row)
            await s.flush()
            if item.kind == KIND_BADGE:
                await grant_badge(s, chat_id, user_id, badge_code(item), item.payload or item.name, now)
            elif item.kind == KIND_TITLE:
                await set_title(s, chat_id, user_id, item.payload or item.name, now)
            elif item.kind == KIND_MAKEUP:
                await add_cards(s, chat_id, user_id, 1, now)
            return _with(base, "ok", balance=debit.balance, code=code, redemption_id=row.id)

    for attempt in range(4):
        try:
            return await retry_locked(tx)
        except _Abort as abort:
            return abort.result
        except IntegrityError:
            # A concurrent redeem by the same member took this n-th slot (or the same request):
            # run again on the new state.
            if attempt == 3:
                raise
    raise AssertionError("unreachable")


def _with(base: RedeemResult, status: str, **changes: object) -> RedeemResult:
    result = RedeemResult(**{**base.__dict__, "status": status})
    for key, value in changes.items():
        setattr(result, key, value)
    return result


async def _claim_code(s: AsyncSession, item_id: int, user_id: int, now: datetime) -> str | None:
    for _ in range(5):
        row = (
            await s.execute(
                select(CouponCode.id, CouponCode.code)
                .where(CouponCode.item_id == item_id, CouponCode.claimed_by.is_(None))
                .order_by(CouponCode.id).limit(1)
            )
        ).first()
        if row is None:
            return None
        res = await s.execute(
            update(CouponCode).where(CouponCode.id == row[0], CouponCode.claimed_by.is_(None))
            .values(claimed_by=user_id, claimed_at=now).execution_options(synchronize_session=False)
        )
        if res.rowcount == 1:  # type: ignore[attr-defined]
            return str(row[1])
    return None


# ---- admin -------------------------------------------------------------------------------------
class ShopError(Exception):
    """A user-facing problem with an admin shop command (the message is a zh_CN msgid)."""


async def add_item(
    app: App, chat_id: int, *, code: str, name: str, price: int, kind: str = KIND_CUSTOM, stock: int | None = None,
    stock_given: bool = False, limit: int | None = None, payload: str | None = None,
) -> tuple[ShopItem, bool]:
    """Create or update an item by code; (item, created)."""
    if kind not in ITEM_KINDS:
        raise ShopError("类型只能是 coupon、badge、title、custom 或 makeup。")
    now = app.clock.now()

    async def tx() -> tuple[ShopItem, bool]:
        async with app.db() as s, s.begin():
            row = await find_item(s, chat_id, code)
            if row is not None and row.code.lower() != code.lower():
                row = None  # matched another item's name, not this code
            created = row is None
            if row is None:
                row = ShopItem(chat_id=chat_id, code=code, name=name, price=price, stock=stock,
                               per_member_limit=limit or 0, kind=kind, payload=payload, active=True, source="admin",
                               created_at=now, updated_at=now)
                s.add(row)
            else:
                row.name, row.price, row.kind, row.active, row.source = name, price, kind, True, "admin"
                if stock_given:
                    row.stock = stock
                if limit is not None:
                    row.per_member_limit = limit
                if payload is not None:
                    row.payload = payload
                row.updated_at = now
            await s.flush()
            return row, created

    return await retry_locked(tx)


async def delete_item(app: App, chat_id: int, token: str) -> ShopItem | None:
    async with app.db() as s, s.begin():
        row = await find_item(s, chat_id, token)
        if row is None or not row.active:
            return None
        row.active = False
        row.updated_at = app.clock.now()
        return row


async def set_stock(app: App, chat_id: int, token: str, spec: str) -> ShopItem | None:
    """``spec``: "10" sets, "+5" / "-3" adjusts (never below 0), "不限" / "unlimited" removes the limit."""
    spec = spec.strip().lower()
    async with app.db() as s, s.begin():
        row = await find_item(s, chat_id, token)
        if row is None:
            return None
        if spec in ("不限", "无限", "unlimited", "none", "∞"):
            row.stock = None
        elif spec[:1] in "+-" and spec[1:].isdigit() and len(spec) > 1:
            if row.stock is None:
                raise ShopError("这个商品库存不限，请直接设置一个数量。")
            amount = int(spec[1:])
            if amount > 10**7:
                raise ShopError("数量太大了。")
            if spec[0] == "+":
                await s.execute(update(ShopItem).where(ShopItem.id == row.id).values(stock=ShopItem.stock + amount))
            else:
                await s.execute(
                    update(ShopItem).where(ShopItem.id == row.id)
                    .values(stock=func.max(ShopItem.stock - amount, 0) if _sqlite(s) else
                            func.greatest(ShopItem.stock - amount, 0))
                )
            await s.refresh(row)
        elif spec.isdigit() and int(spec) <= 10**7:
            row.stock = int(spec)
        else:
            raise ShopError("库存请写一个数字（如 10、+5、-3）或“不限”。")
        row.updated_at = app.clock.now()
        return row


def _sqlite(s: AsyncSession) -> bool:
    return s.bind is not None and s.bind.dialect.name == "sqlite"


async def add_codes(app: App, chat_id: int, token: str, codes: list[str], by: int | None) -> tuple[ShopItem, int, int]:
    """Add codes to a coupon item's pool; (item, added, duplicates)."""
    cleaned = [c.strip() for c in codes if c.strip()]
    if not cleaned:
        raise ShopError("没有收到券码。")
    if len(cleaned) > MAX_CODES_PER_CALL:
        raise ShopError("一次最多添加 1000 个券码。")
    if any(len(c) > MAX_CODE_LEN for c in cleaned):
        raise ShopError("券码太长了（最多 255 个字符）。")
    now = app.clock.now()
    async with app.db() as s, s.begin():
        item = await find_item(s, chat_id, token)
        if item is None:
            raise ShopError("没有这个商品。")
        if item.kind != KIND_COUPON:
            raise ShopError("只有 coupon（券码）类型的商品可以添加券码。")
        unique = list(dict.fromkeys(cleaned))
        before = int(await s.scalar(select(func.count()).select_from(CouponCode).where(CouponCode.item_id == item.id))
                     or 0)
        await _insert_codes(s, item.id, unique, by, now)
        after = int(await s.scalar(select(func.count()).select_from(CouponCode).where(CouponCode.item_id == item.id))
                    or 0)
    return item, after - before, len(cleaned) - (after - before)


# ---- delivery and fulfilment -------------------------------------------------------------------
async def undelivered_codes(app: App, user_id: int) -> list[Redemption]:
    async with app.db() as s:
        rows = await s.scalars(
            select(Redemption)
            .where(Redemption.user_id == user_id, Redemption.code.is_not(None), Redemption.delivered_at.is_(None))
            .order_by(Redemption.id)
        )
        return list(rows)


async def mark_delivered(app: App, redemption_ids: list[int]) -> None:
    if not redemption_ids:
        return
    async with app.db() as s, s.begin():
        await s.execute(
            update(Redemption).where(Redemption.id.in_(redemption_ids), Redemption.delivered_at.is_(None))
            .values(delivered_at=app.clock.now())
        )


async def pending_orders(app: App, chat_id: int, limit: int = 20) -> list[Redemption]:
    async with app.db() as s:
        rows = await s.scalars(
            select(Redemption).where(Redemption.chat_id == chat_id, Redemption.status == R_PENDING)
            .order_by(Redemption.id).limit(limit)
        )
        return list(rows)


async def fulfill(app: App, chat_id: int, redemption_id: int, by: int | None) -> Redemption | None:
    """Mark a custom redemption fulfilled; None when there is no pending one with that number."""
    async with app.db() as s, s.begin():
        res = await s.execute(
            update(Redemption)
            .where(Redemption.id == redemption_id, Redemption.chat_id == chat_id, Redemption.status == R_PENDING)
            .values(status=R_FULFILLED, fulfilled_by=by, fulfilled_at=app.clock.now())
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return await s.get(Redemption, redemption_id)


def mask(code: str) -> str:
    """A code as shown in the log chat: enough to identify it, not enough to use it."""
    if len(code) <= 4:
        return "*" * len(code)
    keep = max(2, len(code) // 4)
    return code[:keep] + "*" * (len(code) - 2 * keep) + code[-keep:]
