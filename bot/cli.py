"""``qunbot`` command line (also ``python -m bot``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from bot.heap import settle_after_start
from bot.settings import ConfigError, Settings, load_settings

log = logging.getLogger("qunbot")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(getattr(args, "config", None))


async def _run(settings: Settings, early_stop: threading.Event) -> int:
    from bot.app import App
    from bot.migrate import upgrade
    from bot.runner import poll

    await upgrade(settings.database.url)
    app = App(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, app.stop_event.set)
    if early_stop.is_set():
        app.stop_event.set()
    await app.start()
    settle_after_start()
    log.info("qunbot running with plugins: %s", ", ".join(app.plugins))
    try:
        await poll(app)
    finally:
        await app.stop()
    log.info("qunbot stopped")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    early_stop: threading.Event = args.early_stop
    settings = _settings(args)
    if not settings.has_token:
        print("没有配置 Telegram token（[telegram].token）：改为启动本地沙盒。\n"
              "No Telegram token configured: starting the local sandbox instead (qunbot sandbox).\n")
        return cmd_sandbox(args)
    from bot.logs import setup_logging

    setup_logging(args.log_level, [settings.token()])
    if getattr(args, "webhook", False):
        from bot.webhook import cmd_run_webhook

        return cmd_run_webhook(args, settings, early_stop)
    if getattr(args, "workers", None) not in (None, 1):
        raise ConfigError("--workers needs --webhook: Telegram allows only one getUpdates consumer per bot")
    return asyncio.run(_run(settings, early_stop))


def cmd_webhook(args: argparse.Namespace) -> int:
    from bot.webhook import cmd_webhook as run

    return run(args, _settings(args))


def cmd_migrate(args: argparse.Namespace) -> int:
    from bot.migrate import upgrade_sync

    settings = _settings(args)
    upgrade_sync(settings.database.url, args.revision)
    print(f"database at {settings.database.url.split('://')[0]}://… is at revision {args.revision}")
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from bot.chat_config import ChatConfigService
    from bot.clock import Clock
    from bot.registry import discover

    settings = _settings(args)
    plugins = discover()
    ChatConfigService(settings, plugins, None, Clock())  # type: ignore[arg-type]  # validates static layers
    where = settings.source_path or "defaults + environment"
    token = "set" if settings.has_token else "not set (make run opens the sandbox)"
    print(f"config OK ({where}); token {token}; plugins: {', '.join(plugins)}")
    return 0


def cmd_sandbox(args: argparse.Namespace) -> int:
    from bot.sandbox import run

    settings = _settings(args)
    return asyncio.run(run(settings, db_path=getattr(args, "sandbox_db", None)))


def cmd_nlp_eval(args: argparse.Namespace) -> int:
    from bot.nlp_eval import run_eval

    return run_eval(args.file, scorer=args.scorer, limit=args.limit)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qunbot", description="Community operations bot for Telegram fan groups")
    parser.add_argument("--config", "-c", help="config TOML (default: $QUNBOT_CONFIG or ./config.toml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the bot (long polling); applies migrations first")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--webhook", action="store_true",
                   help="receive updates by webhook ([webhook] keys) instead of long polling")
    p.add_argument("--workers", type=int, default=None,
                   help="webhook worker processes on one port (default [webhook] workers; >1 needs Redis and "
                        "PostgreSQL)")
    p.add_argument("--worker-child", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    p.add_argument("revision", nargs="?", default="head")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("check-config", help="validate the configuration and exit")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("sandbox", help="chat with the bot in the terminal against a local Telegram emulator")
    p.add_argument("--config", "-c", default=argparse.SUPPRESS)
    p.add_argument("--sandbox-db", default=None, help="SQLite file for the sandbox (default: a temporary one)")
    p.set_defaults(func=cmd_sandbox)

    from bot.webhook import add_webhook_cli

    add_webhook_cli(sub).set_defaults(func=cmd_webhook)
    nlp = sub.add_parser("nlp", help="NLP tools").add_subparsers(dest="nlp_command", required=True)
    p = nlp.add_parser("eval", help="evaluate the sentiment scorer on a CSV with columns label,review")
    p.add_argument("file")
    p.add_argument("--scorer", default="logreg")
    p.add_argument("--limit", type=int, default=None)
    p.set_defaults(func=cmd_nlp_eval)

    from bot.registry import discover

    try:
        plugins = discover()
    except ConfigError:
        plugins = {}
    for plugin in plugins.values():
        if plugin.cli is not None:
            plugin.cli(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # A stop signal that arrives while we are still starting up must still mean "exit 0".
    early_stop = threading.Event()
    words = list(argv) if argv is not None else sys.argv[1:]
    if "run" in words and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: early_stop.set())
    parser = build_parser()
    args = parser.parse_args(argv)
    args.early_stop = early_stop
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"qunbot: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
