"""End-to-end benchmark: the same traffic through the emulator's HTTP Bot API via getUpdates, for
qunbot and for a minimal aiogram bot, each in its own process, in the same run.

    python -m bench.e2e --n 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.inprocess import populate_world
from bench.traffic import generate
from bot.heap import settle_after_start

TOKEN = "123456:BENCH-token-not-real-000000000000"
ROOT = Path(__file__).resolve().parents[1]


async def child_qunbot(api: str, workdir: Path) -> None:
    from bot.app import App
    from bot.db import Base
    from bot.runner import poll
    from bot.settings import load_settings

    settings = load_settings(data={
        "telegram": {"token": TOKEN, "api_server": api, "rate_global_per_second": 100000,
                     "rate_chat_per_minute": 100000, "polling_timeout": 1},
        "database": {"url": f"sqlite+aiosqlite:///{workdir / 'e2e.db'}"},
        "bot": {"owners": [1]},
    })
    app = App(settings)
    async with app.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    nlp = app.nlp
    warm = getattr(nlp, "warm_up", None)
    if warm is not None:
        result = warm()
        if asyncio.iscoroutine(result):
            await result
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, app.stop_event.set)
    await app.start()
    settle_after_start()  # as `qunbot run` does
    try:
        await poll(app)
    finally:
        await app.stop()


async def child_baseline(api: str) -> None:
    from aiogram import Bot, Dispatcher, Router
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.types import Message

    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api)))
    dp = Dispatcher()
    router = Router()

    @router.message()
    async def noop(message: Message) -> None:
        return None

    dp.include_router(router)
    settle_after_start()  # the same process settings as qunbot's, so the ratio compares the code
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    task = asyncio.create_task(dp.start_polling(bot, polling_timeout=1, handle_signals=False))
    await stop.wait()
    await dp.stop_polling()
    await task


async def measure(kind: str, n: int, seed: int) -> dict[str, Any]:
    from bot.emulator.http import start_server
    from bot.emulator.world import World

    traffic = generate(n, seed=seed)
    world = World(token=TOKEN)
    populate_world(world, traffic)
    for raw in traffic.updates:
        world.push_update(raw)
    last_id = traffic.updates[-1]["update_id"]
    server = await start_server(world)
    with tempfile.TemporaryDirectory(prefix="qunbot-e2e-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUNBOT_")}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.e2e", "--child", kind, "--api", server.base_url, "--workdir", tmp,
            cwd=str(ROOT), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        try:
            while not world.calls_of("getUpdates"):
                await asyncio.sleep(0.02)
            t0 = time.perf_counter()
            # Done when the bot has confirmed the last update (asked for an offset past it).
            while not (world.confirmed_update_ids and max(world.confirmed_update_ids) >= last_id):
                await asyncio.sleep(0.02)
                if proc.returncode is not None:
                    raise RuntimeError(f"{kind} bot died: {(await proc.stderr.read()).decode()[-2000:]}")
                if time.perf_counter() - t0 > 900:
                    raise RuntimeError(f"{kind} bot did not finish in 900 s")
            elapsed = time.perf_counter() - t0
            peak_rss_mb = _peak_rss_mb(proc.pid)
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 30)
                except TimeoutError:
                    proc.kill()
        await server.close()
    sends = len(world.calls_of("sendMessage"))
    return {"kind": kind, "n": n, "seconds": round(elapsed, 3), "updates_per_s": round(n / elapsed, 1),
            "bot_sendMessage_calls": sends, "peak_rss_mb": peak_rss_mb}


def _peak_rss_mb(pid: int) -> float | None:
    """The bot process's own peak RSS (VmHWM), without the emulator and the traffic it holds."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


async def orchestrate(n: int, seed: int) -> dict[str, Any]:
    baseline = await measure("baseline", n, seed)
    qunbot = await measure("qunbot", n, seed)
    return {"baseline": baseline, "qunbot": qunbot,
            "ratio": round(qunbot["updates_per_s"] / baseline["updates_per_s"], 3)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--child", choices=["qunbot", "baseline"])
    parser.add_argument("--api")
    parser.add_argument("--workdir")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.child == "qunbot":
        asyncio.run(child_qunbot(args.api, Path(args.workdir)))
        return 0
    if args.child == "baseline":
        asyncio.run(child_baseline(args.api))
        return 0
    print(json.dumps(asyncio.run(orchestrate(args.n, args.seed)), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
