"""Cost of a 签到 and of the activity flush, on a database with history (a measuring script, not a test).

    .venv/bin/python -m plugins.checkin.bench [--members 200] [--history 100] [--rounds 20]

Seeds ``--members`` members in one chat, each with ``--history`` ledger rows (days of activity), then:

- ``checkin_service``: ``service.check_in`` for every member (their first 签到 ever: a badge too), timed;
- ``already``: a second 签到 the same day (service call);
- ``checkin_service_day2``: the next day's 签到 of every member (the common case: the streak goes on);
- ``checkin_update``: a 签到 message through the whole pipeline (``app.feed``: dispatcher, command
  table, reply queued), on day 3, timed;
- ``activity_flush_100``: ``--rounds`` times, 100 buffered activity awards (100 members) written by
  the plugin's ``activity.flush`` in its own transaction (credit_many, level-up checks, commit), timed;
- ``app_flush_100``: the same through the core batch transaction (``app.flush()``: every plugin's
  flush, the member directory, the processed update ids), timed.

Figures are per call in ms: wall (median, p90, max) and the process's CPU time (median; every thread,
the SQLite driver's included), which a busy shared machine disturbs much less. Compare runs by ratios.
Prints one JSON line.
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

CHAT = -1001000000001
TOKEN = "123456:BENCH-token-not-real-000000000000"
START = 1_795_000_000  # 2026-11-18 ~15:06 Asia/Shanghai


class Timer:
    """Wall time per call, and CPU time of the process (every thread: the SQLite driver's too), which
    the other users of a busy machine disturb much less."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def __enter__(self) -> Timer:
        self._t0, self._c0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall.append(time.perf_counter() - self._t0)
        self.cpu.append(time.process_time() - self._c0)

    def stats(self) -> dict[str, float]:
        ordered = sorted(self.wall)
        return {
            "median_ms": round(statistics.median(ordered) * 1000, 3),
            "p90_ms": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] * 1000, 3),
            "max_ms": round(ordered[-1] * 1000, 3),
            "cpu_median_ms": round(statistics.median(self.cpu) * 1000, 3),
            "n": len(ordered),
        }


async def run(members: int, history: int, rounds: int) -> dict[str, Any]:
    from aiogram.types import Update

    from bot.app import App
    from bot.clock import FakeClock
    from bot.db import Base
    from bot.emulator.session import EmulatorSession
    from bot.emulator.world import World
    from bot.services.points import Credit
    from bot.settings import load_settings
    from plugins.checkin import activity, service
    from plugins.checkin.activity import CheckinRuntime
    from plugins.checkin.levels import local_day

    users = [200_000 + i for i in range(members)]
    with tempfile.TemporaryDirectory(prefix="qunbot-checkin-bench-") as tmp:
        clock = FakeClock(START)
        world = World(token=TOKEN, clock=clock.time)
        world.add_chat(CHAT, "品牌粉丝群")
        for uid in users:
            world.add_user(uid, f"粉丝{uid % 1000}", username=f"fan{uid}")
            world.set_member(CHAT, uid, "member")
        settings = load_settings(data={
            "telegram": {"token": TOKEN, "rate_global_per_second": 100000, "rate_chat_per_minute": 100000},
            "database": {"url": f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"},
            "bot": {"owners": [1], "timezone": "Asia/Shanghai"},
        })
        app = App(settings, session=EmulatorSession(world), clock=clock, plugins=["checkin"])
        async with app.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await app.start(background=False)
        cfg = await app.chat_config.get(CHAT, "checkin")
        chat = await app.chat_config.chat(CHAT)
        tz = chat.tz

        # History: ``history`` activity rows per member, written in big batches.
        t0 = time.perf_counter()
        batch: list[Credit] = []
        for day in range(history):
            for uid in users:
                batch.append(Credit(CHAT, uid, 1, service.R_ACTIVITY, f"hist:{uid}:{day}"))
            if len(batch) >= 20_000:
                async with app.db() as s, s.begin():
                    await app.points.credit_many(s, batch)
                batch = []
        if batch:
            async with app.db() as s, s.begin():
                await app.points.credit_many(s, batch)
        result: dict[str, Any] = {"members": members, "history_rows_per_member": history,
                                  "seed_s": round(time.perf_counter() - t0, 1)}

        timer = Timer()
        for uid in users:
            with timer:
                r = await service.check_in(app, cfg, CHAT, uid, tz=tz, message_id=1)
            assert r.status == "ok", r.status
        result["checkin_service"] = timer.stats()

        timer = Timer()
        for uid in users:
            with timer:
                r = await service.check_in(app, cfg, CHAT, uid, tz=tz, message_id=2)
            assert r.status == "already", r.status
        result["already"] = timer.stats()

        clock.advance(86_400)
        timer = Timer()
        for uid in users:
            with timer:
                r = await service.check_in(app, cfg, CHAT, uid, tz=tz, message_id=3)
            assert r.status == "ok" and r.streak == 2, r
        result["checkin_service_day2"] = timer.stats()

        clock.advance(86_400)
        timer = Timer()
        for index, uid in enumerate(users):
            raw = {"update_id": 10_000 + index, "message": {
                "message_id": 10_000 + index, "date": int(clock.time()),
                "chat": {"id": CHAT, "type": "supergroup", "title": "品牌粉丝群"},
                "from": {"id": uid, "is_bot": False, "first_name": f"粉丝{uid % 1000}"}, "text": "签到"}}
            update = Update.model_validate(raw, context={"bot": app.bot})
            with timer:
                await app.feed(update)
        result["checkin_update"] = timer.stats()
        await app.flush()
        await app.sender.drain(60)

        runtime: CheckinRuntime = app.runtime("checkin")
        for name in ("activity_flush_100", "app_flush_100"):
            timer = Timer()
            for round_no in range(rounds):
                clock.advance(120)
                now = clock.time()
                day = local_day(clock.now(), tz)
                for uid in users[:100]:
                    assert runtime.note_message(CHAT, uid, f"{name}第{round_no}轮发言{uid}", now, day, cfg)
                with timer:
                    if name == "app_flush_100":
                        await app.flush()
                    else:
                        async with app.db() as s, s.begin():
                            await activity.flush(app, s)
                assert not runtime.pending
            result[name] = timer.stats()
        await app.sender.drain(60)
        await app.stop()
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--history", type=int, default=100, help="ledger rows per member before the run")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    json.dump(asyncio.run(run(args.members, args.history, args.rounds)), sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
