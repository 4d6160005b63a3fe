"""Cost per message of the crisis plugin's observer, and of the sentiment call it makes.

    .venv/bin/python -m bench.crisis_bench            # writes bench/CRISIS_RESULTS.md, prints JSON
    .venv/bin/python -m bench.crisis_bench --quick    # fewer rounds, prints only
    .venv/bin/python -m bench.crisis_bench --quick --redis redis://127.0.0.1:6379/0   # app.shared in Redis

Three figures per workload, each message timed alone (perf_counter_ns):

- ``sentiment``: ``NlpService.sentiment`` (the default logreg scorer) on the message;
- ``analyze``: the plugin's whole analysis (normalize, Aho-Corasick over the risk lexicon, sentiment,
  and for messages with hits the negation and question checks);
- ``observe``: the observer as the pipeline calls it, on a real App (emulated Telegram, SQLite, a fake
  clock moving 2 s per message): analysis, the rolling window, and the level evaluation at most every
  5 s per chat; in the crisis workload this includes opening the incident and queueing the alerts.

Workloads: ``chatter`` is ordinary group chat (tests/data/crisis_corpus.txt's ordinary episodes and
bench.traffic's chatter and FAQ questions); ``crisis`` is the corpus' crisis episodes and bench.traffic's
negative burst. Messages are replayed in order over 8 chats.

``--redis URL``: the observer as one of several webhook workers runs it (``app.shared`` in Redis: the
shared window log, the chat state and lock around each evaluation); prints only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiogram.types import Message
from sqlalchemy import select

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.app import App  # noqa: E402
from bot.clock import FakeClock  # noqa: E402
from bot.context import Ctx  # noqa: E402
from bot.db import Base  # noqa: E402
from bot.emulator.session import EmulatorSession  # noqa: E402
from bot.emulator.world import World  # noqa: E402
from bot.nlp import NlpService  # noqa: E402
from plugins.crisis.config import CrisisConfig  # noqa: E402
from plugins.crisis.lexicon import analyze  # noqa: E402
from plugins.crisis.models import CrisisIncident  # noqa: E402
from plugins.crisis.runtime import CrisisRuntime, build_profile  # noqa: E402
from tests.data.crisis_corpus import load  # noqa: E402
from tests.harness import TOKEN, make_settings  # noqa: E402

try:
    from bench.traffic import CHATTER, FAQ_QUESTIONS, NEGATIVE
except ImportError:  # pragma: no cover
    CHATTER, FAQ_QUESTIONS, NEGATIVE = [], [], []

CHATS = [-1001000000100 - i for i in range(8)]
LOG_CHAT = -1001000000999
START = 1_795_000_000.0


def workloads() -> dict[str, list[tuple[float, int, str, str]]]:
    """(seconds from the start, chat, member label, text) per workload, in time order.

    Each chat replays the corpus episodes with their own timing (rotated, so chats differ), two minutes
    apart, as a real chat would see them; bench.traffic's phrases are appended as one more episode.
    """
    episodes = load()
    ordinary = [e for e in episodes if e.expect not in ("1", "2")]
    crises = [e for e in episodes if e.expect in ("1", "2")]
    extra = [(20.0, f"traffic:{i % 40}", t) for i, t in enumerate(CHATTER + FAQ_QUESTIONS)]
    burst = [(6.0, f"burst:{i}", t) for i, t in enumerate(NEGATIVE)]

    def streams(groups: list[list[tuple[float, str, str]]]) -> list[tuple[float, int, str, str]]:
        out: list[tuple[float, int, str, str]] = []
        for c, chat in enumerate(CHATS):
            t = 0.0
            rotated = groups[c % len(groups):] + groups[: c % len(groups)]
            for g, group in enumerate(rotated):
                t += 120.0
                for delta, member, text in group:
                    t += delta
                    out.append((t, chat, f"{g}:{member}", text))
        return sorted(out, key=lambda m: m[0])

    return {
        "chatter": streams([e.messages for e in ordinary] + [extra]),
        "crisis": streams([e.messages for e in crises] + [burst]),
    }


def summary(ns: list[int]) -> dict[str, float]:
    us = sorted(n / 1000 for n in ns)
    return {
        "n": len(us), "median_us": round(statistics.median(us), 1), "p95_us": round(us[int(len(us) * 0.95) - 1], 1),
        "p99_us": round(us[max(0, int(len(us) * 0.99) - 1)], 1), "mean_us": round(statistics.fmean(us), 1),
    }


def time_each(fn: Callable[[str], Any], texts: list[str], rounds: int) -> list[int]:
    out: list[int] = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        for text in texts:
            t0 = clock()
            fn(text)
            out.append(clock() - t0)
    return out


async def time_observe(
    nlp: NlpService, messages: list[tuple[float, int, str, str]], rounds: int, crisis: dict[str, Any] | None = None,
    redis: str | None = None,
) -> tuple[list[int], dict[str, int]]:
    out: list[int] = []
    with tempfile.TemporaryDirectory() as tmp:
        clock = FakeClock(START)
        world = World(token=TOKEN, clock=clock.time)
        for chat in [*CHATS, LOG_CHAT]:
            world.add_chat(chat, f"粉丝群{-chat % 100}")
        users: dict[str, int] = {}
        for _at, chat, label, _text in messages:
            uid = users.setdefault(label, 100_000 + len(users))
            if label.endswith("团长"):  # the shop's own staff are group admins (ignore_admins)
                world.add_user(uid, "团长")
                world.set_member(chat, uid, "administrator")
        config: dict[str, Any] = {"bot": {"log_chat_id": LOG_CHAT}, "plugins": {"crisis": crisis or {}}}
        prefix = f"qunbot-bench-{os.getpid()}-{time.monotonic_ns()}:"
        if redis:
            config["redis"] = {"url": redis, "prefix": prefix}
        settings = make_settings(f"sqlite+aiosqlite:///{tmp}/bench.db", config)
        app = App(settings, session=EmulatorSession(world), clock=clock, plugins=["crisis"], nlp=nlp)
        async with app.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await app.start(background=False)
        rt = app.runtime("crisis")
        assert isinstance(rt, CrisisRuntime)
        mid = 0
        try:
            for r in range(rounds):
                base = START + r * 86_400.0
                for at, chat, label, text in messages:
                    clock.set(base + at)
                    mid += 1
                    uid = users.setdefault(label, 100_000 + len(users))
                    message = Message.model_validate({
                        "message_id": mid, "date": int(clock.time()), "text": text,
                        "chat": {"id": chat, "type": "supergroup", "title": f"粉丝群{-chat % 100}"},
                        "from": {"id": uid, "is_bot": False, "first_name": label[-6:]},
                    })
                    ctx = Ctx(app=app, plugin="crisis", cfg=await app.chat_config.get(chat, "crisis"),
                              chat=await app.chat_config.chat(chat), chat_id=chat, user_id=uid)
                    t0 = time.perf_counter_ns()
                    await rt.observe(message, ctx)
                    out.append(time.perf_counter_ns() - t0)
                await app.sender.drain(10)
                clock.set(base + 43_200.0)  # let incidents and windows calm down between rounds
                await rt.tick()
                clock.advance(7200)
                await rt.tick()
            await app.sender.drain(10)  # the step-down notes the last ticks queued
            async with app.db() as session:
                levels = list(await session.scalars(select(CrisisIncident.peak_level)))
            alerts = sum(1 for c in world.calls_of("sendMessage") if c.params.get("chat_id") == LOG_CHAT and c.ok)
        finally:
            if redis:
                client: Any = app.shared.client  # type: ignore[attr-defined]
                keys = [k async for k in client.scan_iter(match=prefix + "*")]
                if keys:
                    await client.delete(*keys)
            await app.stop()
    counts = {"incidents": len(levels), "level_2_or_higher": sum(1 for lv in levels if lv <= 2),
              "log_chat_messages": alerts}
    return out, counts


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--redis", default=None, help="run the observer with app.shared in this Redis")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 10)
    nlp = NlpService()
    nlp.warm_up()
    prof = build_profile(CrisisConfig(), nlp.normalizer.normalize)
    results: dict[str, Any] = {}
    for name, messages in workloads().items():
        texts = [t for _at, _c, _m, t in messages]
        time_each(nlp.sentiment, texts, 1)  # warm caches
        hits = sum(1 for t in texts if analyze(nlp, prof.lexicon, prof.analysis, t).hits)
        results[name] = {
            "messages": len(texts), "with_risk_words": hits,
            "sentiment": summary(time_each(nlp.sentiment, texts, rounds)),
            "analyze": summary(time_each(lambda t: analyze(nlp, prof.lexicon, prof.analysis, t), texts, rounds)),
        }
        timings, counts = asyncio.run(time_observe(nlp, messages, max(1, rounds // 2), redis=args.redis))
        results[name]["observe"] = summary(timings)
        results[name]["outcome"] = counts
    machine = (f"{platform.system()} {platform.release()}, {os.cpu_count()} cores, Python "
               f"{platform.python_version()}, load average {os.getloadavg()[0]:.1f}")
    results["machine"] = machine
    if args.redis:
        results["shared"] = "redis"
    if not args.quick and not args.redis:
        lines = [
            "# crisis plugin: cost per message", "",
            "`python -m bench.crisis_bench` (each message timed alone; one run on one machine: compare ratios).",
            f"Machine: {machine}.", "",
            "| workload | messages | with risk words | figure | median µs | p95 µs | p99 µs | mean µs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name in ("chatter", "crisis"):
            r = results[name]
            for fig in ("sentiment", "analyze", "observe"):
                s = r[fig]
                lines.append(f"| {name} | {r['messages']} | {r['with_risk_words']} | {fig} | {s['median_us']} | "
                             f"{s['p95_us']} | {s['p99_us']} | {s['mean_us']} |")
        lines += ["", "Outcome over all rounds (8 chats per round): " + "; ".join(
            f"{name}: {results[name]['outcome']['incidents']} incidents, "
            f"{results[name]['outcome']['level_2_or_higher']} at level 2 or higher, "
            f"{results[name]['outcome']['log_chat_messages']} log-chat messages" for name in ("chatter", "crisis"))]
        lines += ["", "`observe` in the crisis workload includes the rare evaluations that open or move an incident",
                  "(one SQLite transaction and queued alerts): they are the p99 tail, not the typical message."]
        (ROOT / "bench" / "CRISIS_RESULTS.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(json.dumps(results, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
