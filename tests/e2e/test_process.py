"""`qunbot run` as a real process, with aiogram's HTTP client polling the emulator over loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from bot.emulator.http import start_server
from bot.emulator.world import World
from tests.harness import ALICE, BOB, CAROL, GROUP, OTHER_GROUP, TOKEN, populate

ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, base_url: str, extra: str = "") -> Path:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"""
[telegram]
token = "{TOKEN}"
api_server = "{base_url}"
rate_global_per_second = 1000
rate_chat_per_minute = 100000
polling_timeout = 1

[database]
url = "sqlite+aiosqlite:///{tmp_path / 'bot.db'}"

[bot]
owners = [999]
{extra}

# 300 commands from three members in seconds is a flood by design; this test is about delivery.
[plugins.moderation]
enabled = false
""",
        encoding="utf-8",
    )
    return cfg


async def spawn(cfg: Path, log: Path) -> asyncio.subprocess.Process:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUNBOT_")}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", "--config", str(cfg),
        cwd=str(ROOT), env=env, stdout=log.open("ab"), stderr=asyncio.subprocess.STDOUT,
    )


def answered(world: World, chat_id: int) -> Counter[int]:
    counts: Counter[int] = Counter()
    for msg in world.bot_messages(chat_id):
        if msg.get("reply_to_message"):
            counts[msg["reply_to_message"]["message_id"]] += 1
    return counts


async def wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return predicate()


@pytest.mark.slow
async def test_sigterm_during_load_exits_cleanly_and_nothing_is_lost(tmp_path: Path) -> None:
    world = World(token=TOKEN)
    populate(world)
    server = await start_server(world)
    log = tmp_path / "bot.log"
    try:
        proc = await spawn(write_config(tmp_path, server.base_url), log)
        assert await wait_for(lambda: any(c.method == "getUpdates" for c in world.calls), 60), log.read_text()
        sent: list[tuple[int, int]] = []
        for i in range(300):
            chat = GROUP if i % 2 else OTHER_GROUP
            sent.append((chat, world.send_message(chat, (ALICE, BOB, CAROL)[i % 3], "/id")["message_id"]))
        assert await wait_for(lambda: sum(answered(world, GROUP).values()) >= 20, 30)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), timeout=15)
        elapsed = time.monotonic() - t0
        assert code == 0, log.read_text()
        assert elapsed < 10, f"stopping took {elapsed:.1f}s"

        # Restart: what was not confirmed is delivered again; everything gets exactly one answer.
        polls_before = len(world.calls_of("getUpdates"))
        proc = await spawn(write_config(tmp_path, server.base_url), log)
        assert await wait_for(lambda: len(world.calls_of("getUpdates")) > polls_before, 60)
        want = {GROUP: {m for c, m in sent if c == GROUP}, OTHER_GROUP: {m for c, m in sent if c == OTHER_GROUP}}
        assert await wait_for(
            lambda: all(set(answered(world, c)) >= want[c] for c in want), 60
        ), log.read_text()[-3000:]
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
        for chat, ids in want.items():
            counts = answered(world, chat)
            assert set(counts) == ids
            assert all(v == 1 for v in counts.values()), [k for k, v in counts.items() if v > 1]
        text = log.read_text()
        assert TOKEN not in text and TOKEN.split(":")[1] not in text
    finally:
        await server.close()


async def test_invalid_config_is_rejected_with_a_clear_message(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "http://127.0.0.1:9", extra='timezone = "Atlantis/Capital"\n')
    log = tmp_path / "bad.log"
    proc = await spawn(cfg, log)
    code = await asyncio.wait_for(proc.wait(), timeout=60)
    out = log.read_text()
    assert code == 2
    assert "bot.timezone = 'Atlantis/Capital'" in out
    assert TOKEN.split(":")[1] not in out
