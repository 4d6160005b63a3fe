"""The points ledger: one append-only table, balances derived in the same transaction.

Every change carries a ``reference`` unique within its pool, so a redelivered update or a retried job
never pays twice. A debit is a conditional UPDATE (``balance + delta >= 0``), atomic on SQLite and
PostgreSQL alike, so concurrent spends can never overdraw. Pools: points are per chat unless ops put
chats into a shared pool (``[points] pools``).

Each balance row also keeps ``earned``: the sum of the pool's entries for that member since their
last reset (reason in ``RESET_REASONS``), spending and refunds (``NOT_EARNED_REASONS``) left out,
unclamped. It is what levels are computed from (the checkin plugin), kept by every write here in the
same statement as the balance, so reading it is O(1) instead of a sum over the member's history.
The rule is by reason, so every caller keeps it exact without doing anything.
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import String, cast, func, literal, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db import retry_locked
from bot.models import PointsBalance, PointsEntry

MAX_DELTA = 10**9
# Spending, refunds of spending and resets do not count as "earned"; a reset restarts the count.
NOT_EARNED_REASONS = frozenset({"redeem", "refund", "reset"})
RESET_REASONS = frozenset({"reset"})


@dataclass(frozen=True)
class _CreditSql:
    """``PointsService.credit``'s statements, built once per dialect (executed with parameter dicts)."""

    entry: Any  # INSERT the ledger row unless its reference is in the pool, RETURNING its id
    entries: Any  # the same for many rows, RETURNING (pool, reference) of those written
    balances: Any  # upsert many balances (+balance, +earned), RETURNING (pool, user_id, earned)
    earning: Any  # upsert the balance, earned += delta, RETURNING (balance, earned)
    spending: Any  # upsert the balance, earned unchanged
    reset: Any  # upsert the balance, earned = 0


def _credit_sql(dialect_insert: Any) -> _CreditSql:
    ledger, balances = PointsEntry.__table__, PointsBalance.__table__

    def upsert_balance(earned: str) -> Any:
        ins = dialect_insert(balances)
        values: dict[str, Any] = {"balance": balances.c.balance + ins.excluded.balance}
        if earned == "add":
            values["earned"] = balances.c.earned + ins.excluded.earned
        elif earned == "zero":
            values["earned"] = 0
        return ins.on_conflict_do_update(index_elements=["pool", "user_id"], set_=values).returning(
            balances.c.balance, balances.c.earned)

    many = dialect_insert(balances)
    return _CreditSql(
        entry=dialect_insert(ledger).on_conflict_do_nothing(index_elements=["pool", "reference"])
        .returning(ledger.c.id),
        entries=dialect_insert(ledger).on_conflict_do_nothing(index_elements=["pool", "reference"])
        .returning(ledger.c.pool, ledger.c.reference),
        balances=many.on_conflict_do_update(index_elements=["pool", "user_id"], set_={
            "balance": balances.c.balance + many.excluded.balance, "earned": balances.c.earned + many.excluded.earned,
        }).returning(balances.c.pool, balances.c.user_id, balances.c.earned),
        earning=upsert_balance("add"), spending=upsert_balance("keep"), reset=upsert_balance("zero"),
    )


_CREDIT_SQL = MappingProxyType({"sqlite": _credit_sql(sqlite_insert), "postgresql": _credit_sql(postgresql_insert)})


def _dialect(session: AsyncSession) -> str:
    bind = session.bind
    return "postgresql" if bind is not None and bind.dialect.name == "postgresql" else "sqlite"


class InsufficientPoints(Exception):
    def __init__(self, balance: int, needed: int) -> None:
        super().__init__(f"balance {balance} < {needed}")
        self.balance = balance
        self.needed = needed


@dataclass(frozen=True)
class PointsResult:
    applied: bool  # False: this reference was already in the ledger (nothing changed)
    balance: int
    delta: int
    earned: int = 0  # PointsBalance.earned after the change (unclamped; see the module docstring)


@dataclass(frozen=True)
class Credit:
    """One non-negative award for ``PointsService.credit_many`` (e.g. buffered activity points)."""

    chat_id: int
    user_id: int
    delta: int
    reason: str
    reference: str
    at: datetime | None = None
    note: str | None = None


class PointsService:
    def __init__(
        self, db: async_sessionmaker[AsyncSession], clock: Clock, pools: Mapping[str, Sequence[int]] | None = None
    ) -> None:
        self._db = db
        self._clock = clock
        self._pool_of: dict[int, str] = {}
        for name, chats in (pools or {}).items():
            for chat_id in chats:
                self._pool_of[int(chat_id)] = f"pool:{name}"

    def pool_for(self, chat_id: int) -> str:
        return self._pool_of.get(chat_id, str(chat_id))

    async def change(
        self,
        chat_id: int,
        user_id: int,
        delta: int,
        reason: str,
        reference: str,
        *,
        note: str | None = None,
        actor_id: int | None = None,
        allow_negative: bool = False,
        session: AsyncSession | None = None,
    ) -> PointsResult:
        """Apply one ledger entry. Raises InsufficientPoints when a debit would go below zero.

        With ``session`` the caller owns the transaction (e.g. a redemption that also takes stock);
        otherwise this commits its own, retrying on a locked SQLite database.
        """
        if not isinstance(delta, int) or abs(delta) > MAX_DELTA:
            raise ValueError(f"delta must be an integer within ±{MAX_DELTA}")
        if session is not None:
            return await self._apply(session, chat_id, user_id, delta, reason, reference, note, actor_id,
                                     allow_negative)

        async def tx() -> PointsResult:
            async with self._db() as s:
                try:
                    async with s.begin():
                        return await self._apply(s, chat_id, user_id, delta, reason, reference, note,
                                                 actor_id, allow_negative)
                except IntegrityError:
                    pass
            # The reference is already in the ledger: the change was made before.
            async with self._db() as s:
                balance, earned = await self._balance_row(s, self.pool_for(chat_id), user_id)
            return PointsResult(False, balance, 0, earned)

        return await retry_locked(tx)

    async def _apply(
        self,
        s: AsyncSession,
        chat_id: int,
        user_id: int,
        delta: int,
        reason: str,
        reference: str,
        note: str | None,
        actor_id: int | None,
        allow_negative: bool,
    ) -> PointsResult:
        pool = self.pool_for(chat_id)
        exists = await s.scalar(
            select(PointsEntry.id).where(PointsEntry.pool == pool, PointsEntry.reference == reference)
        )
        if exists is not None:
            balance, earned = await self._balance_row(s, pool, user_id)
            return PointsResult(False, balance, 0, earned)
        if await s.get(PointsBalance, (pool, user_id)) is None:
            s.add(PointsBalance(pool=pool, user_id=user_id, balance=0))
            await s.flush()
        cond = [PointsBalance.pool == pool, PointsBalance.user_id == user_id]
        if delta < 0 and not allow_negative:
            cond.append(PointsBalance.balance + delta >= 0)
        values: dict[str, Any] = {"balance": PointsBalance.balance + delta}
        if reason in RESET_REASONS:
            values["earned"] = 0
        elif reason not in NOT_EARNED_REASONS:
            values["earned"] = PointsBalance.earned + delta
        result = await s.execute(
            update(PointsBalance).where(*cond).values(**values).execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            balance = await self._balance(s, pool, user_id)
            raise InsufficientPoints(balance, -delta)
        s.add(
            PointsEntry(
                pool=pool, chat_id=chat_id, user_id=user_id, delta=delta, reason=reason, reference=reference,
                note=note, actor_id=actor_id, created_at=self._clock.now(),
            )
        )
        await s.flush()
        balance, earned = await self._balance_row(s, pool, user_id)
        return PointsResult(True, balance, delta, earned)

    async def credit(
        self,
        session: AsyncSession,
        chat_id: int,
        user_id: int,
        delta: int,
        reason: str,
        reference: str,
        *,
        note: str | None = None,
        actor_id: int | None = None,
    ) -> PointsResult:
        """One credit (``delta >= 0``) in the caller's transaction, in two statements (a hot path such
        as a check-in): the ledger row (``ON CONFLICT DO NOTHING``: a reference already in the pool
        changes nothing and returns ``applied=False``), then the balance upsert returning the new
        balance and earned total. Same semantics as ``change(session=...)`` for a credit.
        """
        if not isinstance(delta, int) or delta < 0 or delta > MAX_DELTA:
            raise ValueError(f"credit takes an integer within 0..{MAX_DELTA}")
        pool = self.pool_for(chat_id)
        sql = _CREDIT_SQL[_dialect(session)]
        entry = {"pool": pool, "chat_id": chat_id, "user_id": user_id, "delta": delta, "reason": reason,
                 "reference": reference, "note": note, "actor_id": actor_id, "created_at": self._clock.now()}
        if (await session.execute(sql.entry, entry)).scalar() is None:
            balance, earned = await self._balance_row(session, pool, user_id)
            return PointsResult(False, balance, 0, earned)
        if reason in RESET_REASONS:
            stmt, gained = sql.reset, 0
        elif reason in NOT_EARNED_REASONS:
            stmt, gained = sql.spending, 0
        else:
            stmt, gained = sql.earning, delta
        params = {"pool": pool, "user_id": user_id, "balance": delta, "earned": gained}
        balance, earned = (await session.execute(stmt, params)).one()
        return PointsResult(True, int(balance), delta, int(earned))

    async def credit_many(self, session: AsyncSession, credits: Sequence[Credit]) -> list[Credit]:
        """Apply many credits in the caller's transaction (a plugin ``flush``): few statements, no commit.

        Same semantics as ``change`` for each credit: a reference already in the pool's ledger (or
        repeated within the batch) is skipped, and each balance moves by exactly the sum of the rows
        written. Only credits (delta >= 0): debits need ``change``'s conditional UPDATE. Returns the
        credits that were applied.
        """
        applied, _earned = await self.credit_many_earned(session, credits)
        return applied

    async def credit_many_earned(
        self, session: AsyncSession, credits: Sequence[Credit]
    ) -> tuple[list[Credit], dict[tuple[str, int], int]]:
        """``credit_many`` that also returns ``PointsBalance.earned`` after the batch for every (pool,
        user) it credited (e.g. for level-ups), read from the balance upsert's RETURNING: no extra query.

        Two statements for a batch of any size (up to 500 rows each): the ledger rows with
        ``ON CONFLICT DO NOTHING RETURNING`` (the references already in the pool come back missing and
        are skipped), then one upsert of the balances of the rows written.
        """
        by_pool: dict[str, dict[str, Credit]] = defaultdict(dict)
        for c in credits:
            if not isinstance(c.delta, int) or c.delta < 0 or c.delta > MAX_DELTA:
                raise ValueError(f"credit_many takes integer credits within 0..{MAX_DELTA}")
            by_pool[self.pool_for(c.chat_id)].setdefault(c.reference, c)
        now = self._clock.now()
        wanted: list[tuple[str, Credit]] = []
        rows: list[dict[str, object]] = []
        for pool, items in by_pool.items():
            for ref, c in items.items():
                wanted.append((pool, c))
                rows.append({
                    "pool": pool, "chat_id": c.chat_id, "user_id": c.user_id, "delta": c.delta, "reason": c.reason,
                    "reference": ref, "note": c.note, "actor_id": None, "created_at": c.at or now,
                })
        if not rows:
            return [], {}
        sql = _CREDIT_SQL[_dialect(session)]
        written: set[tuple[str, str]] = set()
        for start in range(0, len(rows), 500):
            result = await session.execute(sql.entries, rows[start:start + 500])
            written.update((pool, ref) for pool, ref in result.all())
        applied: list[Credit] = []
        totals: dict[tuple[str, int], int] = defaultdict(int)
        earned: dict[tuple[str, int], int] = defaultdict(int)
        # Members with a reset in this batch: their earned total after it (set, not added).
        earned_reset: dict[tuple[str, int], int] = {}
        for pool, c in wanted:
            if (pool, c.reference) not in written:
                continue
            applied.append(c)
            key = (pool, c.user_id)
            totals[key] += c.delta
            if c.reason in RESET_REASONS:
                earned_reset[key] = 0
            elif c.reason not in NOT_EARNED_REASONS:
                if key in earned_reset:
                    earned_reset[key] += c.delta
                else:
                    earned[key] += c.delta
        if not applied:
            return applied, {}
        balances = [{"pool": p, "user_id": u, "balance": d, "earned": earned.get((p, u), 0)}
                    for (p, u), d in totals.items()]
        after: dict[tuple[str, int], int] = {}
        for start in range(0, len(balances), 500):
            result = await session.execute(sql.balances, balances[start:start + 500])
            after.update(((pool, int(uid)), int(value)) for pool, uid, value in result.all())
        for (pool, user_id), value in earned_reset.items():
            await session.execute(
                update(PointsBalance).where(PointsBalance.pool == pool, PointsBalance.user_id == user_id)
                .values(earned=value).execution_options(synchronize_session=False)
            )
            after[(pool, user_id)] = value
        return applied, after

    async def earned_totals(self, session: AsyncSession, chat_id: int, user_ids: Collection[int]) -> dict[int, int]:
        """``PointsBalance.earned`` of each member of the chat's pool (0 without a balance row), unclamped."""
        ids = sorted(set(user_ids))
        out = dict.fromkeys(ids, 0)
        pool = self.pool_for(chat_id)
        for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
            rows = await session.execute(
                select(PointsBalance.user_id, PointsBalance.earned)
                .where(PointsBalance.pool == pool, PointsBalance.user_id.in_(ids[start:start + 500]))
            )
            for uid, value in rows.all():
                out[int(uid)] = int(value)
        return out

    async def _balance_row(self, s: AsyncSession, pool: str, user_id: int) -> tuple[int, int]:
        row = (await s.execute(
            select(PointsBalance.balance, PointsBalance.earned)
            .where(PointsBalance.pool == pool, PointsBalance.user_id == user_id)
        )).first()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    async def _balance(self, s: AsyncSession, pool: str, user_id: int) -> int:
        value = await s.scalar(
            select(PointsBalance.balance).where(PointsBalance.pool == pool, PointsBalance.user_id == user_id)
        )
        return int(value or 0)

    async def balance(self, chat_id: int, user_id: int, *, session: AsyncSession | None = None) -> int:
        """The member's balance in the chat's pool (0 when they never had points); with ``session``,
        read in the caller's session."""
        if session is not None:
            return await self._balance(session, self.pool_for(chat_id), user_id)
        async with self._db() as s:
            return await self._balance(s, self.pool_for(chat_id), user_id)

    async def has_reference(self, chat_id: int, reference: str) -> bool:
        async with self._db() as s:
            return (
                await s.scalar(
                    select(PointsEntry.id).where(
                        PointsEntry.pool == self.pool_for(chat_id), PointsEntry.reference == reference
                    )
                )
            ) is not None

    async def ledger_sum(self, chat_id: int, user_id: int) -> int:
        async with self._db() as s:
            value = await s.scalar(
                select(func.coalesce(func.sum(PointsEntry.delta), 0)).where(
                    PointsEntry.pool == self.pool_for(chat_id), PointsEntry.user_id == user_id
                )
            )
            return int(value or 0)

    async def leaderboard(
        self,
        chat_id: int,
        *,
        since: datetime | None = None,
        limit: int = 10,
        reasons: Collection[str] | None = None,
        exclude_reasons: Collection[str] | None = None,
    ) -> list[tuple[int, int]]:
        """(user_id, points) best first; ties broken by user id so the order is deterministic.

        Without ``since`` and reason filters this is the balance board; otherwise it sums the ledger
        rows created since ``since`` whose reason is in ``reasons`` / not in ``exclude_reasons``
        (e.g. an "activity this week" board, or "earned this month" leaving out shop spending).
        """
        pool = self.pool_for(chat_id)
        async with self._db() as s:
            if since is None and reasons is None and exclude_reasons is None:
                stmt = (
                    select(PointsBalance.user_id, PointsBalance.balance)
                    # user_id < 0: the pseudonym of a forgotten user (anonymize_user), never on a board.
                    .where(PointsBalance.pool == pool, PointsBalance.balance > 0, PointsBalance.user_id > 0)
                    .order_by(PointsBalance.balance.desc(), PointsBalance.user_id)
                )
            else:
                total = func.sum(PointsEntry.delta)
                cond = [PointsEntry.pool == pool, PointsEntry.user_id > 0]
                if since is not None:
                    cond.append(PointsEntry.created_at >= since)
                if reasons is not None:
                    cond.append(PointsEntry.reason.in_(list(reasons)))
                if exclude_reasons:
                    cond.append(PointsEntry.reason.not_in(list(exclude_reasons)))
                stmt = (
                    select(PointsEntry.user_id, total)
                    .where(*cond)
                    .group_by(PointsEntry.user_id)
                    .having(total > 0)
                    .order_by(total.desc(), PointsEntry.user_id)
                )
            rows = (await s.execute(stmt.limit(limit) if limit else stmt)).all()
            return [(int(u), int(p)) for u, p in rows]

    async def rank(
        self,
        chat_id: int,
        user_id: int,
        *,
        since: datetime | None = None,
        reasons: Collection[str] | None = None,
        exclude_reasons: Collection[str] | None = None,
    ) -> tuple[int, int] | None:
        """(rank, points) of one member on the same board as ``leaderboard``; None when not on it."""
        board = await self.leaderboard(chat_id, since=since, limit=0, reasons=reasons,
                                       exclude_reasons=exclude_reasons)
        for index, (uid, points) in enumerate(board, start=1):
            if uid == user_id:
                return index, points
        return None

    async def anonymize_user(self, user_id: int, *, session: AsyncSession | None = None) -> int:
        """Detach a user's ledger from them ("forget me"): every entry and balance row of ``user_id`` in
        every pool moves to one fresh random negative pseudonym, its note is cleared and its reference
        (which may embed the user id) becomes ``anon:<pseudonym>:<entry id>``; entries the user made as
        actor lose their actor. Pool totals and ``balance == ledger_sum`` stay true for the pseudonym;
        pseudonyms never appear on leaderboards. The pseudonym is not stored, so the link is gone.
        Returns the number of ledger entries moved. With ``session`` the caller owns the transaction.
        """
        pseudonym = -(secrets.randbelow(2**62) + 1)

        async def apply(s: AsyncSession) -> int:
            result = await s.execute(
                update(PointsEntry).where(PointsEntry.user_id == user_id).values(
                    user_id=pseudonym, note=None,
                    reference=literal(f"anon:{pseudonym}:") + cast(PointsEntry.id, String),
                ).execution_options(synchronize_session=False)
            )
            await s.execute(update(PointsEntry).where(PointsEntry.actor_id == user_id).values(actor_id=None)
                            .execution_options(synchronize_session=False))
            await s.execute(update(PointsBalance).where(PointsBalance.user_id == user_id).values(user_id=pseudonym)
                            .execution_options(synchronize_session=False))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

        if session is not None:
            return await apply(session)

        async def tx() -> int:
            async with self._db() as s, s.begin():
                return await apply(s)

        return await retry_locked(tx)

    async def history(self, chat_id: int, user_id: int, limit: int = 100) -> list[PointsEntry]:
        async with self._db() as s:
            rows = await s.scalars(
                select(PointsEntry)
                .where(PointsEntry.pool == self.pool_for(chat_id), PointsEntry.user_id == user_id)
                .order_by(PointsEntry.id.desc())
                .limit(limit)
            )
            return list(rows)
