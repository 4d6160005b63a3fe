"""Soak: steady traffic for 30 minutes (``pytest -m soak``; not in CI). RSS and the database size are
reported at the start and the end; RSS must not grow beyond what the data itself explains.

    QUNBOT_SOAK_SECONDS=1800 QUNBOT_SOAK_RATE=200 .venv/bin/pytest -m soak -s tests/reliability/test_soak.py
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest
from aiogram.types import Update

from bench.inprocess import populate_world
from bench.traffic import generate
from bot.app import App
from bot.clock import FakeClock
from bot.db import Base
from bot.emulator.session import EmulatorSession
from bot.emulator.world import World
from bot.settings import load_settings

TOKEN = "123456:SOAK-token-not-real-0000000000000"


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.soak
async def test_soak_steady_traffic_keeps_memory_flat(tmp_path: Path) -> None:
    seconds = float(os.environ.get("QUNBOT_SOAK_SECONDS", "1800"))
    rate = float(os.environ.get("QUNBOT_SOAK_RATE", "200"))
    traffic = generate(int(seconds * rate) + 1000, seed=7)
    clock = FakeClock(traffic.updates[0]["message"]["date"] if "message" in traffic.updates[0] else 1_795_000_000)
    world = World(token=TOKEN, clock=clock.time)
    populate_world(world, traffic)
    db = tmp_path / "soak.db"
    settings = load_settings(data={
        "telegram": {"token": TOKEN, "rate_global_per_second": 100000, "rate_chat_per_minute": 100000},
        "database": {"url": f"sqlite+aiosqlite:///{db}"},
        "bot": {"owners": [1], "log_chat_id": traffic.chats[0]},
    })
    app = App(settings, session=EmulatorSession(world), clock=clock)
    async with app.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await app.start(background=False)
    samples: list[tuple[float, float, int]] = [(0.0, rss_mb(), db.stat().st_size)]
    started = time.monotonic()
    next_sample = 60.0
    sent = 0
    try:
        while time.monotonic() - started < seconds:
            tick = time.monotonic()
            batch = traffic.updates[sent:sent + int(rate)]
            if not batch:
                break
            await app.process_batch([Update.model_validate(u, context={"bot": app.bot}) for u in batch])
            await app.flush()
            sent += len(batch)
            clock.advance(1)
            # Keep what the emulator remembers bounded: it is not the bot's memory.
            world.calls.clear()
            if time.monotonic() - started >= next_sample:
                samples.append((time.monotonic() - started, rss_mb(), db.stat().st_size))
                next_sample += 60.0
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    finally:
        await app.stop()
    for at, rss, size in samples:
        print(f"t={at:7.0f}s rss={rss:7.1f} MB db={size / 2**20:7.1f} MB")
    samples.append((time.monotonic() - started, rss_mb(), db.stat().st_size))
    assert len(samples) >= 3
    warm = samples[1][1]  # after the first minute: caches and pools are warm
    assert samples[-1][1] - warm < 60, f"RSS grew from {warm:.0f} to {samples[-1][1]:.0f} MB"
