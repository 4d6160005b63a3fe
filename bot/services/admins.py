"""Who may administer a chat: getChatAdministrators (cached) plus ``[bot].owners``.

The cache is refreshed after a TTL and invalidated by chat_member / my_chat_member updates that touch
an admin. An anonymous admin posts as the chat itself (sender_chat.id == chat.id) and counts as admin.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import ChatMemberAdministrator, ChatMemberOwner

from bot.clock import Clock

log = logging.getLogger(__name__)

ADMIN_STATUSES = frozenset({"creator", "administrator"})


@dataclass
class _Entry:
    fetched_at: float
    admins: dict[int, ChatMemberOwner | ChatMemberAdministrator]


class AdminService:
    def __init__(self, bot_getter: Callable[[], Bot], owners: Iterable[int], clock: Clock, ttl: float) -> None:
        self._bot = bot_getter
        self.owners = frozenset(owners)
        self._clock = clock
        self._ttl = ttl
        self._cache: dict[int, _Entry] = {}

    def is_owner(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.owners

    async def admins(self, chat_id: int) -> dict[int, ChatMemberOwner | ChatMemberAdministrator]:
        entry = self._cache.get(chat_id)
        now = self._clock.time()
        if entry is not None and now - entry.fetched_at < self._ttl:
            return entry.admins
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
        return admins

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

    def note_status(self, chat_id: int, user_id: int, status: str) -> None:
        """A chat_member update: drop the cache when someone became or stopped being an admin."""
        entry = self._cache.get(chat_id)
        if entry is None:
            return
        was_admin = user_id in entry.admins
        if was_admin or status in ADMIN_STATUSES:
            self.invalidate(chat_id)
