"""What one small statement costs on each layer between the bot and SQLite (bench/NOTES.md).

    python -m bench.statement_cost [--n 3000]

The same primary-key SELECT through raw ``sqlite3``, SQLAlchemy Core on a synchronous engine, and the
bot's own engine (``bot.db.create_engine``: SQLite in the event loop's thread) by ``run_sync``,
``AsyncConnection.execute`` and ``AsyncSession.execute``. CPU time per statement, one run, printed as a
table: compare the rows, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Connection, Integer, MetaData, Table, bindparam, select
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.orm import Session

from bot.db import create_engine, session_factory

METADATA = MetaData()
ROWS = Table("rows", METADATA, Column("a", Integer, primary_key=True), Column("b", Integer))
QUERY = select(ROWS).where(ROWS.c.a == bindparam("a"))
KEYS = 100


def per_statement(n: int, run: Callable[[int], Any]) -> float:
    """µs of CPU per call of ``run`` (after a warm-up)."""
    for i in range(200):
        run(i)
    t0 = time.thread_time()
    for i in range(n):
        run(i)
    return (time.thread_time() - t0) / n * 1e6


async def measure(n: int, path: Path) -> list[tuple[str, float]]:
    rows: list[tuple[str, float]] = []
    raw = sqlite3.connect(path)
    rows.append(("raw sqlite3", per_statement(
        n, lambda i: raw.execute("SELECT a, b FROM rows WHERE a = ?", (i % KEYS,)).fetchone())))
    raw.close()

    sync_engine = create_sync_engine(f"sqlite:///{path}")
    with sync_engine.connect() as conn:
        rows.append(("SQLAlchemy Core, synchronous engine", per_statement(
            n, lambda i: conn.execute(QUERY, {"a": i % KEYS}).first())))
    sync_engine.dispose()

    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    db = session_factory(engine)
    async with db() as session, session.begin():
        conn_async = await session.connection()

        def in_one_greenlet(conn: Connection) -> float:
            return per_statement(n, lambda i: conn.execute(QUERY, {"a": i % KEYS}).first())

        rows.append(("SQLAlchemy async, statements in one greenlet (run_sync)",
                     await conn_async.run_sync(in_one_greenlet)))
        rows.append(("AsyncConnection.execute", await timed_async(
            n, lambda i: conn_async.execute(QUERY, {"a": i % KEYS}))))
        rows.append(("AsyncSession.execute (what the services use)", await timed_async(
            n, lambda i: session.execute(QUERY, {"a": i % KEYS}))))
    await engine.dispose()
    return rows


async def timed_async(n: int, call: Callable[[int], Any]) -> float:
    for i in range(200):
        (await call(i)).first()
    t0 = time.thread_time()
    for i in range(n):
        (await call(i)).first()
    return (time.thread_time() - t0) / n * 1e6


def create_rows(path: Path) -> None:
    engine = create_sync_engine(f"sqlite:///{path}")
    METADATA.create_all(engine)
    with Session(engine) as session, session.begin():
        session.execute(ROWS.insert(), [{"a": i, "b": i} for i in range(KEYS)])
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qunbot-statements-") as tmp:
        path = Path(tmp) / "statements.db"
        create_rows(path)
        rows = asyncio.run(measure(args.n, path))
    print(f"{args.n} primary-key SELECTs per path\n")
    print("| path | µs per statement |")
    print("|---|---|")
    for label, micros in rows:
        print(f"| {label} | {micros:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
