"""SIGKILL the bot in the middle of a load, restart it: every update has its effect exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from bot.emulator.http import start_server
from bot.emulator.world import World
from tests.harness import GROUP, TOKEN

ROOT = Path(__file__).resolve().parents[2]
USERS = list(range(20_001, 20_051))
PER_USER = 100
CHATTER = ["今天天气不错", "这个颜色好看，想要", "刚下单了，坐等发货", "群主辛苦了，感谢分享", "哈哈哈哈哈笑死我了"]


def config(tmp_path: Path, base_url: str) -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[telegram]
token = "{TOKEN}"
api_server = "{base_url}"
rate_global_per_second = 100000
rate_chat_per_minute = 100000
polling_timeout = 1

[database]
url = "sqlite+aiosqlite:///{tmp_path / 'bot.db'}"

[bot]
owners = [999]
flush_interval = 60.0

[plugins.moderation]
flood_enabled = false
""", encoding="utf-8")
    return cfg


async def spawn(cfg: Path, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUNBOT_")}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(cfg), cwd=str(ROOT), env=env,
        stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT,
    )


def confirmed(world: World) -> int:
    return max(world.confirmed_update_ids) if world.confirmed_update_ids else 0


async def wait_until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_sigkill_mid_load_then_restart_applies_every_update_once(tmp_path: Path) -> None:
    world = World(token=TOKEN)
    world.add_chat(GROUP, "粉丝福利群")
    for uid in USERS:
        world.add_user(uid, f"粉丝{uid}", username=f"fan{uid}")
        world.set_member(GROUP, uid, "member")
    server = await start_server(world)
    log = tmp_path / "bot.log"
    cfg = config(tmp_path, server.base_url)
    try:
        proc = await spawn(cfg, log)
        await wait_until(lambda: world.calls_of("getUpdates"), 90, "the bot to poll")
        last = 0
        for i in range(PER_USER):
            for uid in USERS:
                text = "签到" if i == 0 else f"{CHATTER[(i + uid) % len(CHATTER)]} #{i}"
                world.send_message(GROUP, uid, text)
        last = max(u["update_id"] for u in world.pending_updates())
        first = min(u["update_id"] for u in world.pending_updates())
        total = last - first + 1
        await wait_until(lambda: confirmed(world) >= first + total // 3, 120, "a third of the load")
        proc.kill()  # SIGKILL: no flush, no goodbye
        await proc.wait()
        killed_at = confirmed(world)
        assert killed_at < last, "the load finished before the kill; make it bigger"

        proc = await spawn(cfg, log)
        await wait_until(lambda: confirmed(world) >= last, 240, "the rest of the load after restart")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        await server.close()

    db = sqlite3.connect(tmp_path / "bot.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # Check-in: exactly one ledger entry per member (each said 签到 once).
    rows = db.execute("SELECT user_id, COUNT(*) FROM core_points_ledger WHERE reason = 'checkin' GROUP BY user_id")
    assert dict(rows.fetchall()) == dict.fromkeys(USERS, 1)
    # Balances equal the ledger sums: nothing paid twice, nothing lost between the two tables.
    drift = db.execute(
        "SELECT b.user_id FROM core_points_balances b JOIN (SELECT pool, user_id, SUM(delta) s FROM "
        "core_points_ledger GROUP BY pool, user_id) l ON l.pool = b.pool AND l.user_id = b.user_id "
        "WHERE l.s != b.balance"
    ).fetchall()
    assert drift == []
    # Statistics: every message counted exactly once across the crash and the redelivery.
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "analytics_member_days" in tables:
        counted = dict(db.execute(
            "SELECT user_id, SUM(messages) FROM analytics_member_days WHERE chat_id = ? GROUP BY user_id", (GROUP,)
        ).fetchall())
        assert counted == dict.fromkeys(USERS, PER_USER)
    processed = db.execute("SELECT COUNT(*) FROM core_processed_updates WHERE update_id BETWEEN ? AND ?",
                           (first, last)).fetchone()[0]
    assert processed == total
