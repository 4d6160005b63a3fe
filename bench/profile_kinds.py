"""Where the full bot's time goes, by kind of update: the benchmark traffic fed one update at a time
(no concurrency, so each update's CPU time is its own), every plugin on, batches flushed every 100.

    python -m bench.profile_kinds --n 5000

Prints a table of CPU time per kind (total, share, median, p90) plus the batch flushes, the numbers
behind the analysis in bench/NOTES.md. CPU time (``time.thread_time``), not wall time, so another
process on the machine disturbs it less.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.inprocess import start_app
from bench.traffic import FAQ_QUESTIONS, NEGATIVE, SPAM, generate


def kind_of(raw: dict[str, Any]) -> str:
    if raw.get("chat_member"):
        return "join"
    message = raw.get("message") or {}
    text = message.get("text", "")
    if text == "签到":
        return "签到"
    if text.startswith("/"):
        return "command " + text
    if "sticker" in message or "photo" in message:
        return "sticker/photo"
    if "reply_to_message" in message:
        return "reply"
    if text == SPAM:
        return "spam wave"
    if text in FAQ_QUESTIONS:
        return "FAQ question"
    if text in NEGATIVE:
        return "negative burst"
    return "chatter"


async def profile(n: int, seed: int) -> list[tuple[str, list[float]]]:
    from aiogram.types import Update

    from bot.registry import discover

    token = "123456:BENCH-token-not-real-000000000000"
    traffic = generate(n, seed=seed)
    per_kind: dict[str, list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="qunbot-profile-") as tmp:
        app, clock = await start_app(traffic, token, list(discover()), Path(tmp))
        for start in range(0, len(traffic.updates), 100):
            for raw in traffic.updates[start:start + 100]:
                update = Update.model_validate(raw, context={"bot": app.bot})
                t0 = time.thread_time()
                await app.feed(update)
                per_kind[kind_of(raw)].append(time.thread_time() - t0)
            clock.advance(1)
            t0 = time.thread_time()
            await app.flush()
            per_kind["batch flush (per 100 updates)"].append(time.thread_time() - t0)
        t0 = time.thread_time()
        await app.sender.drain(60)
        per_kind["replies (sender, emulator included)"].append(time.thread_time() - t0)
        await app.stop()
    return sorted(per_kind.items(), key=lambda kv: -sum(kv[1]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    rows = asyncio.run(profile(args.n, args.seed))
    total = sum(sum(v) for _, v in rows)
    print(f"{args.n} updates, {total:.2f} s CPU ({total / args.n * 1e3:.3f} ms per update)\n")
    print("| kind | count | CPU s | share | median ms | p90 ms |")
    print("|---|---|---|---|---|---|")
    for kind, values in rows:
        ordered = sorted(values)
        print(f"| {kind} | {len(values)} | {sum(values):.2f} | {sum(values) / total:.0%} | "
              f"{statistics.median(values) * 1e3:.2f} | {ordered[int(0.9 * (len(ordered) - 1))] * 1e3:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
