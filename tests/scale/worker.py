"""A webhook worker process for the scale tests: ``bot.webhook.serve`` (the code ``qunbot run --webhook``
runs) with a chosen plugin set, including the counting test plugin that lives outside ``plugins/``.

    python -m tests.scale.worker --config cfg.toml --plugins counter|none|all
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal

from bot.app import App
from bot.settings import load_settings
from bot.webhook import serve
from tests.scale.support import COUNTER_PLUGIN


async def main(config: str, plugins: str) -> int:
    settings = load_settings(config)
    if plugins == "all":
        app = App(settings)
    elif plugins == "none":
        app = App(settings, plugins=[])
    else:
        app = App(settings, plugin_objects={"scalecount": COUNTER_PLUGIN})
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, app.stop_event.set)
    await serve(app, settings, reuse_port=True)
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--plugins", default="counter")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    raise SystemExit(asyncio.run(main(args.config, args.plugins)))
