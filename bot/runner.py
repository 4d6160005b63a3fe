"""Long polling with at-least-once semantics and per-batch commits.

Unlike aiogram's ``start_polling`` (which confirms an update to Telegram as soon as it is fetched),
this loop confirms a batch only after every update in it was processed and the batch transaction
(plugin buffers + processed ids) committed: a crash redelivers the unfinished batch, and the
processed-id ledger makes redelivery harmless. Updates are parsed one by one, so a single malformed
update is logged and skipped instead of wedging the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramUnauthorizedError
from aiogram.methods import GetUpdates
from aiogram.types import Update
from pydantic import ValidationError

from bot.app import App

log = logging.getLogger(__name__)

ALLOWED_UPDATES = [
    "message", "edited_message", "channel_post", "callback_query", "chat_member", "my_chat_member",
    "poll", "poll_answer", "chat_join_request",
]


class RawGetUpdates(GetUpdates):
    """getUpdates returning raw dicts, so each update is validated on its own."""

    __returning__ = list[dict[str, Any]]  # type: ignore[assignment]


def parse_updates(app: App, raw: list[dict[str, Any]]) -> tuple[list[Update], int | None]:
    """Parsed updates plus the highest update_id seen (including unparseable ones)."""
    updates: list[Update] = []
    highest: int | None = None
    for item in raw:
        uid = item.get("update_id") if isinstance(item, dict) else None
        if isinstance(uid, int):
            highest = uid if highest is None else max(highest, uid)
        try:
            updates.append(Update.model_validate(item, context={"bot": app.bot}))
        except ValidationError as exc:
            log.warning("skipping malformed update %s: %s", uid, exc.error_count())
    return updates, highest


async def poll(app: App, *, timeout: int | None = None, limit: int = 100) -> None:
    """Run until ``app.stop_event`` is set. The in-flight batch always finishes and commits."""
    timeout = app.settings.telegram.polling_timeout if timeout is None else timeout
    offset: int | None = None
    backoff = 0.5
    stop = app.stop_event
    while not stop.is_set():
        request = RawGetUpdates(offset=offset, limit=limit, timeout=timeout, allowed_updates=ALLOWED_UPDATES)
        fetch = asyncio.create_task(app.bot(request, request_timeout=int(app.bot.session.timeout + timeout)))
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({fetch, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if fetch not in done:
            # Stopping while idle: nothing fetched is lost, Telegram keeps unconfirmed updates.
            fetch.cancel()
            with contextlib.suppress(BaseException):
                await fetch
            break
        stopper.cancel()
        try:
            raw = fetch.result()
        except TelegramUnauthorizedError:
            log.error("the bot token was rejected by the Bot API server; stopping")
            stop.set()
            break
        except (TelegramNetworkError, TelegramAPIError) as exc:
            log.warning("getUpdates failed (%s); retrying in %.1fs", type(exc).__name__, backoff)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=backoff)
            backoff = min(backoff * 2, 30)
            continue
        backoff = 0.5
        if not raw:
            continue
        updates, highest = parse_updates(app, raw)
        # Shielded: a stop signal never cuts a batch (or its commit) in half.
        await asyncio.shield(_run_batch(app, updates))
        if highest is not None:
            offset = highest + 1
    if offset is not None:
        # Confirm the last processed batch so it is not delivered again after a clean stop.
        with contextlib.suppress(Exception):
            await app.bot(GetUpdates(offset=offset, limit=1, timeout=0, allowed_updates=ALLOWED_UPDATES))


async def _run_batch(app: App, updates: list[Update]) -> None:
    if updates:
        await app.process_batch(updates)
    await app.flush()
