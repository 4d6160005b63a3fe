"""``qunbot sandbox``: the real bot against the local emulator, with a terminal chat.

The emulator's HTTP server runs in this process; the bot polls it through aiogram's real HTTP
client exactly as it would poll Telegram. Time is the sandbox clock, which ``:clock +2m`` moves, so
captcha timeouts and scheduled posts can be seen without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path

from bot.clock import Clock
from bot.settings import Settings


class CallableClock(Clock):
    def __init__(self, source: Callable[[], float]) -> None:
        self._source = source

    def time(self) -> float:
        return self._source()


async def run(settings: Settings, *, db_path: str | None = None, input_func=None, output=None) -> int:  # type: ignore[no-untyped-def]
    from bot.app import SANDBOX_TOKEN, App
    from bot.emulator.http import start_server
    from bot.emulator.sandbox import SANDBOX_OWNER, SandboxClock, build_sandbox_world, run_sandbox
    from bot.logs import setup_logging
    from bot.migrate import upgrade
    from bot.runner import poll
    from bot.settings import load_settings

    setup_logging("WARNING")
    clock = SandboxClock()
    world = build_sandbox_world(token=SANDBOX_TOKEN, clock=clock)
    server = await start_server(world)
    tmp = None
    if db_path is None:
        tmp = tempfile.TemporaryDirectory(prefix="qunbot-sandbox-")
        db_path = str(Path(tmp.name) / "sandbox.db")
    data = settings.model_dump(mode="python", exclude={"source_path"})
    data["telegram"] = {**data["telegram"], "token": SANDBOX_TOKEN, "api_server": server.base_url,
                        "polling_timeout": 1}
    data["database"] = {**data["database"], "url": f"sqlite+aiosqlite:///{db_path}"}
    data["bot"] = {**data["bot"], "owners": sorted({*data["bot"]["owners"], SANDBOX_OWNER})}
    sandbox_settings = load_settings(data=data)
    await upgrade(sandbox_settings.database.url)
    app = App(sandbox_settings, clock=CallableClock(clock))
    await app.start()
    poller = asyncio.create_task(poll(app))
    print(f"沙盒已启动（本地模拟的 Telegram：{server.base_url}）。输入 :help 查看用法。")
    try:
        await run_sandbox(world, input_func=input_func, output=output)
    finally:
        app.stop_event.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(poller, timeout=10)
        await app.stop()
        await server.close()
        if tmp is not None:
            tmp.cleanup()
    return 0
