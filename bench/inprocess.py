"""One in-process benchmark variant, run in its own process so its RSS is its own.

    python -m bench.inprocess --variant full|bare|without:<plugin>|only:<plugin> --n 20000

Prints one JSON line: updates/s, p50/p99 per-update latency, peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.traffic import Traffic, generate
from bot.heap import settle_after_start


def populate_world(world: Any, traffic: Traffic) -> None:
    for uid in traffic.users:
        world.add_user(uid, f"粉丝{uid % 1000}", username=f"fan{uid}")
    for chat_id in traffic.chats:
        world.add_chat(chat_id, f"品牌粉丝群{-chat_id % 100}")
        for uid in traffic.users:
            world.set_member(chat_id, uid, "member")
    for update in traffic.updates:
        member = update.get("chat_member")
        if member:
            u = member["new_chat_member"]["user"]
            if u["id"] not in world.users:
                world.add_user(u["id"], u["first_name"], username=u.get("username"))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_bare(traffic: Traffic, token: str) -> dict[str, Any]:
    from aiogram import Bot, Dispatcher, Router
    from aiogram.types import Message, Update

    from bot.emulator.session import EmulatorSession
    from bot.emulator.world import World

    world = World(token=token)
    bot = Bot(token, session=EmulatorSession(world))
    dp = Dispatcher()
    router = Router()

    @router.message()
    async def noop(message: Message) -> None:
        return None

    dp.include_router(router)
    settle_after_start()  # the same process settings as qunbot's, so the ratio compares the code
    latencies: list[float] = []
    t_start = time.perf_counter()
    for raw in traffic.updates:
        t0 = time.perf_counter()
        update = Update.model_validate(raw, context={"bot": bot})
        await dp.feed_update(bot, update)
        latencies.append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - t_start
    await bot.session.close()
    return {"seconds": elapsed, "latencies": latencies}


async def start_app(traffic: Traffic, token: str, plugins: list[str] | None, workdir: Path) -> tuple[Any, Any]:
    """(app, fake clock): the bot on an emulated Telegram that knows the traffic's chats and users, a
    fresh SQLite file, NLP warm, the heap settled as `qunbot run` leaves it."""
    from bot.app import App
    from bot.clock import FakeClock
    from bot.db import Base
    from bot.emulator.session import EmulatorSession
    from bot.emulator.world import World
    from bot.settings import load_settings

    clock = FakeClock(traffic.updates[0].get("message", {}).get("date", 1_795_000_000))
    world = World(token=token, clock=clock.time)
    populate_world(world, traffic)
    settings = load_settings(data={
        "telegram": {"token": token, "rate_global_per_second": 100000, "rate_chat_per_minute": 100000},
        "database": {"url": f"sqlite+aiosqlite:///{workdir / 'bench.db'}"},
        "bot": {"owners": [1], "log_chat_id": traffic.chats[0]},
    })
    app = App(settings, session=EmulatorSession(world), clock=clock, plugins=plugins)
    async with app.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await app.start(background=False)
    if any(p in app.plugins for p in ("crisis", "faq", "moderation", "analytics")):
        app.nlp.warm_up()
        app.nlp.tokenize("预热一下分词器")
        app.nlp.sentiment("预热一下情感模型")
    settle_after_start()  # as `qunbot run` does after start-up
    return app, clock


async def run_full(traffic: Traffic, token: str, plugins: list[str] | None, workdir: Path) -> dict[str, Any]:
    from aiogram.types import Update

    app, clock = await start_app(traffic, token, plugins, workdir)
    from collections import defaultdict

    from bot.app import update_chat_key

    latencies: list[float] = []

    async def timed(group: list[Update]) -> None:
        for update in group:
            t0 = time.perf_counter()
            await app.feed(update)
            latencies.append(time.perf_counter() - t0)

    t_start = time.perf_counter()
    # The runner's way: batches of 100 (one getUpdates), chats concurrently, each chat in order,
    # then one commit for the batch.
    for start in range(0, len(traffic.updates), 100):
        parsed = [Update.model_validate(raw, context={"bot": app.bot}) for raw in traffic.updates[start:start + 100]]
        groups: dict[int | str, list[Update]] = defaultdict(list)
        for update in parsed:
            groups[update_chat_key(update)].append(update)
        await asyncio.gather(*(timed(g) for g in groups.values()))
        clock.advance(1)
        await app.flush()
    await app.sender.drain(60)
    elapsed = time.perf_counter() - t_start
    plugins_loaded = list(app.plugins)
    await app.stop()
    return {"seconds": elapsed, "latencies": latencies, "plugins": plugins_loaded,
            "sent": app.sender.sent, "send_failed": app.sender.failed}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", default="full")
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    token = "123456:BENCH-token-not-real-000000000000"
    traffic = generate(args.n, seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="qunbot-bench-") as tmp:
        if args.variant == "bare":
            result = asyncio.run(run_bare(traffic, token))
        else:
            from bot.registry import discover

            everything = list(discover())
            if args.variant == "full":
                plugins = everything
            elif args.variant == "core":
                plugins = []
            elif args.variant.startswith("without:"):
                plugins = [p for p in everything if p != args.variant.split(":", 1)[1]]
            elif args.variant.startswith("only:"):
                plugins = [args.variant.split(":", 1)[1]]
            else:
                raise SystemExit(f"unknown variant {args.variant}")
            result = asyncio.run(run_full(traffic, token, plugins, Path(tmp)))
    lat = result.pop("latencies")
    out = {
        "variant": args.variant,
        "n": len(traffic.updates),
        "seconds": round(result.pop("seconds"), 3),
        "p50_ms": round(statistics.median(lat) * 1000, 3),
        "p99_ms": round(percentile(lat, 0.99) * 1000, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        **result,
    }
    out["updates_per_s"] = round(out["n"] / out["seconds"], 1)
    json.dump(out, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
