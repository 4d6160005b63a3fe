"""``Ctx``: what a plugin's handler, guard or observer gets besides the update itself."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from aiogram.types import InlineKeyboardMarkup, Message

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.app import App
    from bot.chat_config import CoreChatConfig
    from bot.plugin import PluginConfig


@dataclass(slots=True)
class Ctx:
    app: App
    plugin: str
    cfg: PluginConfig
    chat: CoreChatConfig
    # The chat the action is about: the group, or the group an admin /connect-ed to from a DM.
    chat_id: int | None
    user_id: int | None
    update_id: int | None = None
    command: str | None = None
    args: str = ""

    def _(self, text: str) -> str:
        """Translate a zh_CN source string into the chat's language."""
        return self.app.i18n.gettext(self.chat.language, text)

    @property
    def runtime(self) -> Any:
        return self.app.runtime(self.plugin)

    @property
    def tz(self) -> ZoneInfo:
        return self.chat.tz

    def now(self) -> datetime:
        return self.app.clock.now()

    def local_now(self) -> datetime:
        return self.app.clock.now().astimezone(self.chat.tz)

    def db(self) -> AsyncSession:
        return self.app.db()

    async def is_admin(self, user_id: int | None = None) -> bool:
        return await self.app.admins.is_admin(self.chat_id, user_id if user_id is not None else self.user_id)

    def reply(
        self,
        message: Message,
        text: str,
        *,
        reply_markup: InlineKeyboardMarkup | None = None,
        notice: bool = False,
        quote: bool = True,
    ) -> asyncio.Future[Message | None]:
        """Send ``text`` (HTML) to the message's chat, as a reply; queued and paced, never raises.

        ``notice=True`` marks a bot notice that deletes itself after the chat's ``notice_ttl``.
        Await the returned future only when the sent message is needed.
        """
        return self.app.send_text(
            message.chat.id,
            text,
            reply_to=message.message_id if quote else None,
            reply_markup=reply_markup,
            delete_after=self.chat.notice_ttl if notice and self.chat.notice_ttl else None,
        )
