"""End-to-end throughput through the emulator's webhook push mode with 1 and 2 worker processes.

The same seeded Chinese group traffic (bench.traffic, spread over many chats like a brand with many
groups) is queued in the emulator; the workers (real processes on one port, SO_REUSEPORT, sharing one
PostgreSQL database and one Redis) are started; then setWebhook starts the push, and the clock runs
until the emulator has a 2xx for every update. Telegram's per-chat order is kept (one update of a chat
in flight at a time), so throughput needs many chats.

    python -m bench.webhook_bench --n 3000 --chats 100 --workers 1,2 [--plugins all|none]

Needs PostgreSQL on 127.0.0.1:5432 (database ``test`` to create throw-away databases from) and Redis on
127.0.0.1:6379. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.inprocess import percentile, populate_world
from bench.traffic import generate

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456:BENCH-token-not-real-000000000000"
PG = os.environ.get("QUNBOT_BENCH_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("QUNBOT_BENCH_REDIS", "redis://127.0.0.1:6379/14")
SECRET = "bench-secret"


async def child(config: str, plugins: str) -> None:
    from bot.app import App
    from bot.settings import load_settings
    from bot.webhook import serve

    settings = load_settings(config)
    app = App(settings, plugins=[] if plugins == "none" else None)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, app.stop_event.set)
    await serve(app, settings, reuse_port=True)


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _servers_cpu() -> float:
    """CPU seconds used so far by every PostgreSQL and Redis process (they share the 2 cores)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith(("postgres", "redis-server")):
            total += _cpu_seconds(int(entry.name))
    return total


async def _fresh_db() -> str:
    from sqlalchemy import text

    from bot.db import Base, create_engine
    from bot.registry import discover

    name = f"qunbot_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    url = PG.rsplit("/", 1)[0] + "/" + name
    discover()
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()
    return url


async def _drop_db(url: str) -> None:
    from sqlalchemy import text

    from bot.db import create_engine

    admin = create_engine(PG)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    await admin.dispose()


async def _clean_redis(prefix: str) -> None:
    import redis.asyncio as aioredis

    client: Any = aioredis.from_url(REDIS)
    keys = [k async for k in client.scan_iter(match=prefix + "*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def _ready(port: int, count: int, procs: list[Any], timeout: float = 180) -> None:
    import aiohttp

    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
        while len(seen) < count:
            if any(p.returncode is not None for p in procs):
                raise RuntimeError("a worker died at start")
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        seen.add((await resp.json())["worker"])
                        continue
            await asyncio.sleep(0.1)


def spread_evenly(updates: list[dict[str, Any]], chat_ids: list[int]) -> None:
    """Move update i to chat i mod C: the same messages, no chat hotter than another."""
    known = set(chat_ids)

    def remap(node: Any, target: int) -> None:
        if isinstance(node, dict):
            if node.get("id") in known and node.get("type") in ("group", "supergroup"):
                node["id"] = target
            for value in node.values():
                remap(value, target)
        elif isinstance(node, list):
            for value in node:
                remap(value, target)

    for i, update in enumerate(updates):
        remap(update, chat_ids[i % len(chat_ids)])


async def measure(workers: int, n: int, chats: int, plugins: str, seed: int,
                  commit_interval: float = 0.02, spread: str = "even") -> dict[str, Any]:
    import socket

    from bot.emulator.http import start_server
    from bot.emulator.world import World

    traffic = generate(n, seed=seed, chats=chats, users=max(300, chats * 5))
    if spread == "even":
        spread_evenly(traffic.updates, traffic.chats)
    world = World(token=TOKEN)
    populate_world(world, traffic)
    for raw in traffic.updates:
        world.push_update(raw)
    server = await start_server(world)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db_url = await _fresh_db()
    prefix = f"qunbot-bench-{uuid.uuid4().hex[:8]}:"
    procs: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="qunbot-webhook-bench-") as tmp:
        cfg = Path(tmp) / "config.toml"
        cfg.write_text(f"""
[telegram]
token = "{TOKEN}"
api_server = "{server.base_url}"
rate_global_per_second = 100000
rate_chat_per_minute = 100000

[database]
url = "{db_url}"

[redis]
url = "{REDIS}"
prefix = "{prefix}"

[webhook]
host = "127.0.0.1"
port = {port}
path = "/tg"
secret_token = "{SECRET}"
workers = {workers}
commit_interval = {commit_interval}

[bot]
owners = [1]
""", encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("QUNBOT_")}
        try:
            for _ in range(workers):
                procs.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bench.webhook_bench", "--child", "--config", str(cfg), "--plugins", plugins,
                    cwd=str(ROOT), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL))
            await _ready(port, workers, procs)
            cpu0 = {p.pid: _cpu_seconds(p.pid) for p in procs}
            servers0 = _servers_cpu()
            own0 = time.process_time()
            t0 = time.perf_counter()
            await world.call("setWebhook", url=f"http://127.0.0.1:{port}/tg", secret_token=SECRET,
                             max_connections=40)
            while world.pending_updates():
                await asyncio.sleep(0.02)
                if any(p.returncode is not None for p in procs):
                    raise RuntimeError("a worker died")
                if time.perf_counter() - t0 > 1800:
                    raise RuntimeError("not finished in 1800 s")
            elapsed = time.perf_counter() - t0
            emulator_cpu = time.process_time() - own0
            servers_cpu = _servers_cpu() - servers0
            worker_cpu = [round(_cpu_seconds(p.pid) - cpu0[p.pid], 1) for p in procs]
        finally:
            for p in procs:
                if p.returncode is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    await asyncio.wait_for(p.wait(), 30)
                except TimeoutError:
                    p.kill()
            await server.close()
            await _drop_db(db_url)
            await _clean_redis(prefix)
    ok = [d for d in world.webhook_deliveries if d["status"] == 200]
    latencies = [d["seconds"] * 1000 for d in ok]
    return {
        "workers": workers, "n": n, "chats": chats, "spread": spread, "plugins": plugins,
        "commit_interval": commit_interval,
        "seconds": round(elapsed, 2),
        "updates_per_s": round(n / elapsed, 1),
        "post_ms_p50": round(percentile(latencies, 0.5), 1), "post_ms_p95": round(percentile(latencies, 0.95), 1),
        "non_2xx": len(world.webhook_deliveries) - len(ok),
        "bot_sendMessage_calls": len(world.calls_of("sendMessage")),
        "cpu_s_workers": worker_cpu, "cpu_s_emulator": round(emulator_cpu, 1),
        "cpu_s_postgres_redis": round(servers_cpu, 1),
        "cpu_ms_per_update": round((sum(worker_cpu) + emulator_cpu + servers_cpu) * 1000 / n, 2),
    }


async def orchestrate(n: int, chats: int, plugins: str, seed: int, counts: list[int],
                      commit_interval: float, spread: str) -> dict[str, Any]:
    results = [await measure(w, n, chats, plugins, seed, commit_interval, spread) for w in counts]
    out: dict[str, Any] = {"cores": os.cpu_count(), "load_at_start": round(os.getloadavg()[0], 2), "runs": results}
    import statistics

    medians = {w: statistics.median(r["updates_per_s"] for r in results if r["workers"] == w) for w in set(counts)}
    out["median_updates_per_s"] = {str(w): v for w, v in sorted(medians.items())}
    if 1 in medians and 2 in medians:
        out["ratio_2_to_1"] = round(medians[2] / medians[1], 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--chats", type=int, default=100)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--plugins", choices=["all", "none"], default="all")
    parser.add_argument("--workers", default="1,2,1,2,1,2",
                        help="comma-separated worker counts, measured in this order (alternating evens out noise)")
    parser.add_argument("--commit-interval", type=float, default=0.02)
    parser.add_argument("--spread", choices=["even", "natural"], default="even",
                        help="even: update i goes to chat i mod C; natural: the generator's hot chats and bursts")
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--config")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.child:
        asyncio.run(child(args.config, args.plugins))
        return 0
    counts = [int(x) for x in args.workers.split(",")]
    print(json.dumps(asyncio.run(orchestrate(args.n, args.chats, args.plugins, args.seed, counts,
                                                      args.commit_interval, args.spread)), ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
