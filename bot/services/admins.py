"""Who may administer a chat: getChatAdministrators (cached) plus ``[bot].owners``.

The cache is refreshed after a TTL and invalidated by chat_member / my_chat_member updates that touch
an admin. An anonymous admin posts as the chat itself (sender_chat.id == chat.id) and counts as admin.

With several workers (``shared`` given) the list also lives in the shared store, so one
getChatAdministrators per chat and TTL serves every worker, and an invalidation in one worker drops the
list everywhere (the shared entry plus every worker's local copy, by an invalidation message).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ChatMemberAdministrator, ChatMemberOwner

from bot.clock import Clock

if TYPE_CHECKING:
    from bot.shared import SharedState

log = logging.getLogger(__name__)

ADMIN_STATUSES = frozenset({"creator", "administrator"})


@dataclass
class _Entry:
    fetched_at: float
    admins: dict[int, ChatMemberOwner | ChatMemberAdministrator]


class AdminService:
    TOPIC = "admins"

    def __init__(
        self, bot_getter: Callable[[], Bot], owners: Iterable[int], clock: Clock, ttl: float,
        *, shared: SharedState | None = None,
    ) -> None:
        self._bot = bot_getter
        self.owners = frozenset(owners)
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[int, _Entry] = {}
        self._shared = shared
        if shared is not None:
            shared.on_invalidate(self.TOPIC, self._remote_invalidate)

    def is_owner(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.owners

    async def admins(self, chat_id: int) -> dict[int, ChatMemberOwner | ChatMemberAdministrator]:
        entry = self._cache.get(chat_id)
        now = self._clock.time()
        if entry is not None and now - entry.fetched_at < self._ttl:
            return entry.admins
        if self._shared is not None:
            cached = await self._shared_get(chat_id, now)
            if cached is not None:
                return cached.admins
        try:
            members = await self._bot().get_chat_administrators(chat_id)
        except TelegramAPIError as exc:
            log.warning("getChatAdministrators(%s) failed: %s", chat_id, exc)
            # Serve the stale list rather than locking admins out while Telegram hiccups.
            return entry.admins if entry is not None else {}
        admins = {
            m.user.id: m for m in members if isinstance(m, ChatMemberOwner | ChatMemberAdministrator)
        }
        self._cache[chat_id] = _Entry(now, admins)
        if self._shared is not None:
            payload = {"at": now, "admins": [m.model_dump(mode="json", exclude_none=True) for m in admins.values()]}
            await self._shared.set(self._key(chat_id), json.dumps(payload), self._ttl)
        return admins

    # ---- the shared copy (several workers) --------------------------------------------------------
    @staticmethod
    def _key(chat_id: int) -> str:
        return f"admins:{chat_id}"

    async def _shared_get(self, chat_id: int, now: float) -> _Entry | None:
        assert self._shared is not None
        raw = await self._shared.get(self._key(chat_id))
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            at = float(data["at"])
            members = [
                ChatMemberOwner.model_validate(m) if m.get("status") == "creator"
                else ChatMemberAdministrator.model_validate(m)
                for m in data["admins"]
            ]
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("ignoring a bad shared admin list for %s: %s", chat_id, type(exc).__name__)
            return None
        if now - at >= self._ttl:
            return None
        entry = _Entry(at, {m.user.id: m for m in members})
        self._cache[chat_id] = entry
        return entry

    def _remote_invalidate(self, payload: str) -> None:
        if payload == "*":
            self._cache.clear()
        else:
            self._cache.pop(int(payload), None)

    async def is_admin(self, chat_id: int | None, user_id: int | None, sender_chat_id: int | None = None) -> bool:
        if self.is_owner(user_id):
            return True
        if chat_id is None:
            return False
        if sender_chat_id is not None and sender_chat_id == chat_id:
            return True
        if user_id is None:
            return False
        return user_id in await self.admins(chat_id)

    async def bot_member(self, chat_id: int) -> ChatMemberOwner | ChatMemberAdministrator | None:
        bot = self._bot()
        return (await self.admins(chat_id)).get(bot.id)

    async def bot_can(self, chat_id: int, right: str) -> bool:
        """Whether the bot holds an admin right such as ``can_restrict_members`` in the chat."""
        member = await self.bot_member(chat_id)
        if member is None:
            return False
        if isinstance(member, ChatMemberOwner):
            return True
        return bool(getattr(member, right, False))

    def invalidate(self, chat_id: int) -> None:
        self._cache.pop(chat_id, None)
        if self._shared is not None:
            self._shared.delete_soon(self._key(chat_id))
            self._shared.publish_soon(self.TOPIC, str(chat_id))

    def note_status(self, chat_id: int, user_id: int, status: str, old_status: str | None = None) -> None:
        """A chat_member update: drop the cache when someone became or stopped being an admin."""
        entry = self._cache.get(chat_id)
        if entry is None:
            # Several workers: another one may hold (and share) the list this change makes stale.
            if self._shared is not None and (status in ADMIN_STATUSES or old_status in ADMIN_STATUSES):
                self.invalidate(chat_id)
            return
        was_admin = user_id in entry.admins
        if was_admin or status in ADMIN_STATUSES:
            self.invalidate(chat_id)
