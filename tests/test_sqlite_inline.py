"""The inline SQLite driver: same results as aiosqlite's thread, and a locked database is waited for
without blocking the event loop (another process holding the write lock, e.g. a CLI import)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.db import create_engine, retry_locked
from bot.sqlite_inline import InlineConnection, inline_creator

metadata = MetaData()
items = Table("items", metadata, Column("id", Integer, primary_key=True), Column("name", String))


async def _engine(path: Path, inline: bool) -> AsyncEngine:
    engine = create_engine(f"sqlite+aiosqlite:///{path}", sqlite_inline=inline)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    return engine


@pytest.mark.parametrize("inline", [True, False])
async def test_same_results_on_both_drivers(tmp_path: Path, inline: bool) -> None:
    engine = await _engine(tmp_path / "a.db", inline)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(items), [{"name": f"n{i}"} for i in range(50)])
        async with engine.connect() as conn:
            rows = (await conn.execute(select(items.c.name).where(items.c.id > 45).order_by(items.c.id))).all()
            mode = (await conn.execute(text("PRAGMA journal_mode"))).scalar_one()
            raw = await conn.get_raw_connection()
            driver = raw.driver_connection
        assert [r.name for r in rows] == ["n45", "n46", "n47", "n48", "n49"]  # ids start at 1
        assert mode == "wal"
        assert isinstance(driver, InlineConnection) is inline
        # A failed transaction rolls back as before.
        with pytest.raises(Exception, match="UNIQUE"):
            async with engine.begin() as conn:
                await conn.execute(insert(items), [{"id": 1000, "name": "x"}, {"id": 1000, "name": "y"}])
        async with engine.connect() as conn:
            assert (await conn.execute(select(items).where(items.c.id == 1000))).first() is None
    finally:
        await engine.dispose()


def _hold_write_lock(path: Path, seconds: float, started: threading.Event) -> None:
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO items (name) VALUES ('other process')")
    started.set()
    time.sleep(seconds)
    other.execute("COMMIT")
    other.close()


async def test_locked_database_is_waited_for_while_the_loop_keeps_serving(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    engine = await _engine(path, True)
    started = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, 0.4, started))
    holder.start()
    started.wait(5)
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    tick_task = asyncio.create_task(ticker())
    try:
        t0 = time.monotonic()
        async with engine.begin() as conn:
            await conn.execute(insert(items).values(name="ours"))
        waited = time.monotonic() - t0
        stop.set()
        await tick_task
        async with engine.connect() as conn:
            names = (await conn.execute(select(items.c.name).order_by(items.c.id))).scalars().all()
    finally:
        holder.join()
        await engine.dispose()
    assert names == ["other process", "ours"]
    assert waited >= 0.3  # it really waited for the other writer...
    assert ticks >= 15  # ...and the loop kept running meanwhile (a blocking wait would give ~1)


async def test_lock_held_past_the_budget_raises_locked_and_retry_locked_recovers(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    await (await _engine(path, True)).dispose()
    short = create_async_engine(f"sqlite+aiosqlite:///{path}", async_creator=inline_creator(str(path), timeout=0.1))
    started = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, 0.5, started))
    holder.start()
    started.wait(5)
    try:
        with pytest.raises(OperationalError, match="locked"):
            async with short.begin() as conn:
                await conn.execute(insert(items).values(name="too early"))

        async def write() -> None:
            async with short.begin() as conn:
                await conn.execute(insert(items).values(name="retried"))

        await retry_locked(write, attempts=6, base_delay=0.05)
        async with short.connect() as conn:
            names = (await conn.execute(select(items.c.name).order_by(items.c.id))).scalars().all()
    finally:
        holder.join()
        await short.dispose()
    assert names == ["other process", "retried"]

