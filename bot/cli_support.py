"""Helpers for plugin sub-commands that need the database (``qunbot faq import``, ``qunbot export``)."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from bot.app import App
from bot.settings import load_settings


@asynccontextmanager
async def open_app(args: argparse.Namespace, *, migrate: bool = True) -> AsyncIterator[App]:
    """A started App (no polling, no background jobs, no call to Telegram) over the configured database."""
    settings = load_settings(getattr(args, "config", None))
    if migrate:
        from bot.migrate import upgrade

        await upgrade(settings.database.url)
    app = App(settings)
    await app.start(background=False, contact_telegram=False)
    try:
        yield app
    finally:
        await app.stop(drain_timeout=10)
