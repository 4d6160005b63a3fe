"""Welcome's hot state in ``app.shared``, so that N webhook workers greet like one bot.

* the chat's **open raid batch** (members waiting for the merged greeting): joins of one chat handled by
  different workers go into one record, read and written under the chat's shared lock;
* when the chat was **last greeted** (the raid window starts from it);
* batch keys already **flushed** (a greet timer that fires again must not greet again);
* **anti-raid mode** until when (moderation's ``RaidModeChanged`` fires in one worker only);
* the chat's **default permissions** (getChat, cached for a few minutes for every worker);
* whether the chat's admins were **told** that captcha needs the restrict right.

Times inside the values come from the App's clock (tests use a fake one); the TTLs only let Redis (or the
in-process backend) forget idle keys, so they are generous. A value that is missing or garbled counts as
absent: at worst a greeting is not merged or a cache is refetched.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
from datetime import UTC, datetime

from bot.shared import SharedState, decode_float
from plugins.welcome.service import Batch

log = logging.getLogger(__name__)

SLACK = 600.0  # seconds a key outlives the moment its value stops mattering
FLUSHED_TTL = 86_400.0  # a greet timer is retried within hours, not days
WARNED_TTL = 30 * 86_400.0  # "told once": a month is as good as forever for a reminder
RAID_FOREVER_TTL = 7 * 86_400.0


class WelcomeState:
    """Typed access to welcome's keys; every method is one or two shared operations."""

    def __init__(self, shared: SharedState) -> None:
        self.shared = shared

    def lock(self, chat_id: int) -> contextlib.AbstractAsyncContextManager[None]:
        """Serialises the captcha/greeting steps of one chat across workers (updates and timers)."""
        return self.shared.lock(f"welcome:chat:{chat_id}")

    # ---- the open raid batch -----------------------------------------------------------------
    async def batch(self, chat_id: int) -> Batch | None:
        raw = await self.shared.get(f"welcome:batch:{chat_id}")
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            return Batch.from_payload(str(data["key"]), datetime.fromtimestamp(float(data["due"]), UTC), data)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("welcome: ignoring a malformed raid batch of %s: %s", chat_id, exc)
            return None

    async def save_batch(self, chat_id: int, batch: Batch, now: datetime) -> None:
        record = {"key": batch.key, "due": batch.due.timestamp(), **batch.payload()}
        ttl = max(0.0, (batch.due - now).total_seconds()) + SLACK
        await self.shared.set(f"welcome:batch:{chat_id}", json.dumps(record, ensure_ascii=False), ttl)

    async def drop_batch(self, chat_id: int) -> None:
        await self.shared.delete(f"welcome:batch:{chat_id}")

    async def take_batch(self, chat_id: int, key: str) -> Batch | None:
        """The chat's open batch if it is the one ``key`` names (it is then closed); else None."""
        batch = await self.batch(chat_id)
        if batch is None or batch.key != key:
            return None
        await self.drop_batch(chat_id)
        return batch

    async def drop_member(self, chat_id: int, user_id: int, now: datetime) -> bool:
        """Leave a member out of the chat's open batch; whether they were in it."""
        batch = await self.batch(chat_id)
        if batch is None:
            return False
        before = len(batch.members)
        batch.members = [m for m in batch.members if m.user_id != user_id]
        if len(batch.members) == before:
            return False
        await self.save_batch(chat_id, batch, now)
        return True

    async def mark_flushed(self, key: str) -> None:
        await self.shared.set(f"welcome:flushed:{key}", "1", FLUSHED_TTL)

    async def was_flushed(self, key: str) -> bool:
        return await self.shared.get(f"welcome:flushed:{key}") is not None

    # ---- greeting cooldown -------------------------------------------------------------------
    async def last_greeting(self, chat_id: int) -> float | None:
        return decode_float(await self.shared.get(f"welcome:greeted:{chat_id}"), allow_infinite=True)

    async def set_last_greeting(self, chat_id: int, at: float, window: float) -> None:
        await self.shared.set(f"welcome:greeted:{chat_id}", repr(at), max(0.0, window) + SLACK)

    # ---- anti-raid mode ----------------------------------------------------------------------
    async def raid_until(self, chat_id: int) -> float:
        """Unix time the chat's anti-raid mode ends (``inf``: until switched off); 0 when off."""
        return decode_float(await self.shared.get(f"welcome:raid:{chat_id}"), allow_infinite=True) or 0.0

    async def set_raid(self, chat_id: int, until: float, now: float) -> None:
        ttl = RAID_FOREVER_TTL if math.isinf(until) else max(0.0, until - now) + SLACK
        await self.shared.set(f"welcome:raid:{chat_id}", repr(until), ttl)

    async def clear_raid(self, chat_id: int) -> None:
        await self.shared.delete(f"welcome:raid:{chat_id}")

    # ---- default permissions -----------------------------------------------------------------
    async def permissions(self, chat_id: int, now: float, max_age: float) -> dict[str, bool] | None:
        raw = await self.shared.get(f"welcome:perms:{chat_id}")
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            fetched = float(data["at"])
            perms = {str(k): bool(v) for k, v in dict(data["perms"]).items()}
        except (KeyError, TypeError, ValueError):
            return None
        return perms if now - fetched < max_age else None

    async def save_permissions(self, chat_id: int, perms: dict[str, bool], now: float, max_age: float) -> None:
        record = json.dumps({"at": now, "perms": perms})
        await self.shared.set(f"welcome:perms:{chat_id}", record, max_age + SLACK)

    # ---- "captcha needs the restrict right" told once ----------------------------------------
    async def warned(self, chat_id: int) -> bool:
        return await self.shared.get(f"welcome:warned:{chat_id}") is not None

    async def set_warned(self, chat_id: int, warned: bool) -> None:
        if warned:
            await self.shared.set(f"welcome:warned:{chat_id}", "1", WARNED_TTL)
        else:
            await self.shared.delete(f"welcome:warned:{chat_id}")
