"""Cost of the analytics observer per message, on the project's seeded traffic (bench/traffic.py).

    .venv/bin/python -m plugins.analytics.bench --n 20000

Each message update is parsed (as the dispatcher does), then only ``collector.observe`` is timed, so the
figure is the plugin's own cost on the hot path; an empty observer is timed the same way as a baseline.
Then the buffered counters are flushed once, timed. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


async def run(n: int, seed: int, rounds: int) -> dict[str, Any]:
    from aiogram.types import Update

    from bench.traffic import generate
    from bot.app import App
    from bot.clock import FakeClock
    from bot.db import Base
    from bot.dispatcher import _ctx_for
    from bot.emulator.session import EmulatorSession
    from bot.emulator.world import World
    from bot.settings import load_settings
    from plugins.analytics import collector

    traffic = generate(n, seed=seed)
    token = "123456:BENCH-token-not-real-000000000000"
    with tempfile.TemporaryDirectory(prefix="qunbot-analytics-bench-") as tmp:
        clock = FakeClock(1_795_000_000)
        world = World(token=token, clock=clock.time)
        settings = load_settings(data={
            "telegram": {"token": token}, "database": {"url": f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}"},
            "bot": {"owners": [1]},
        })
        app = App(settings, session=EmulatorSession(world), clock=clock, plugins=["analytics"])
        async with app.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        messages = [u for u in traffic.updates if "message" in u and u["message"]["chat"]["type"] != "private"]
        app.nlp.sentiment("预热")

        async def noop(message: Any, ctx: Any) -> None:
            return None

        result: dict[str, Any] = {"messages": len(messages)}
        for name, fn, every in (("baseline", noop, 0), ("observe", collector.observe, 0),
                                ("observe_sentiment_1_in_10", collector.observe, 10)):
            best: list[float] | None = None
            for _ in range(rounds):
                app.runtime("analytics").take()
                times: list[float] = []
                for raw in messages:
                    message = Update.model_validate(raw, context={"bot": app.bot}).message
                    ctx = await _ctx_for(app, "analytics", message.chat.id, None, None)
                    ctx.cfg = ctx.cfg.model_copy(update={"sentiment_every": every})
                    t0 = time.perf_counter()
                    await fn(message, ctx)
                    times.append(time.perf_counter() - t0)
                if best is None or statistics.fmean(times) < statistics.fmean(best):
                    best = times
            assert best is not None
            result[f"{name}_mean_us"] = round(statistics.fmean(best) * 1e6, 2)
            result[f"{name}_p50_us"] = round(statistics.median(best) * 1e6, 2)
        snap = app.runtime("analytics").take()
        rows = len(snap.members)
        t0 = time.perf_counter()
        async with app.db() as s, s.begin():
            await collector.write(s, snap)
        result["flush_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        result["flush_member_rows"] = rows
        await app.bot.session.close()
        await app.engine.dispose()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=3, help="best of N rounds (the machine is noisy)")
    args = parser.parse_args()
    json.dump(asyncio.run(run(args.n, args.seed, args.rounds)), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
