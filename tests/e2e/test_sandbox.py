"""The sandbox: the real bot against the emulator, driven by a scripted terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bot.sandbox import run
from bot.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


async def test_sandbox_session_shows_bot_actions(tmp_path: Path) -> None:
    script = iter([":as alice", "/help", ":wait", ":quit"])
    lines: list[str] = []

    async def fake_input(prompt: str) -> str:
        import asyncio

        line = next(script)
        if line == ":wait":
            await asyncio.sleep(2.5)
            return ":who"
        return line

    code = await run(load_settings(data={}), db_path=str(tmp_path / "s.db"), input_func=fake_input,
                     output=lines.append)
    assert code == 0
    out = "\n".join(lines)
    assert "sendMessage" in out and "/help" in out


def test_run_without_token_opens_the_sandbox_and_says_so(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUNBOT_")}
    env["QUNBOT_DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "run"], cwd=str(tmp_path), env=env, input="", capture_output=True,
        text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "沙盒" in proc.stdout and "sandbox" in proc.stdout
