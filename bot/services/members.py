"""Who is (and was) in which chat, and what their names are.

Names and "last message" times change on every message, so they are buffered in memory and written
in the batch flush; joins and leaves are rare and written at once, which also makes them the place
where the two Telegram signals for one join (a ``chat_member`` update and a ``new_chat_members``
message) are reduced to one ``MemberJoined`` event.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import datetime

from aiogram.types import User as TgUser
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.clock import Clock
from bot.db import retry_locked, upsert
from bot.models import Chat, Member, User

PRESENT = frozenset({"member", "restricted", "administrator", "creator"})
SEEN_RESOLUTION = 300.0  # seconds


@dataclass(frozen=True)
class JoinResult:
    new: bool  # False: this join was already recorded (the other signal, or a redelivery)
    rejoined: bool


def display_name(first_name: str | None, last_name: str | None = None, username: str | None = None) -> str:
    name = " ".join(p for p in (first_name, last_name) if p).strip()
    return name or (f"@{username}" if username else "?")


def mention_html(user_id: int, name: str) -> str:
    return f'<a href="tg://user?id={user_id}">{html.escape(name)}</a>'


class MemberDirectory:
    def __init__(self, db: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._known: dict[int, tuple[str | None, str, str | None, bool, str | None]] = {}
        self._user_buf: dict[int, dict[str, object]] = {}
        self._seen_buf: dict[tuple[int, int], datetime] = {}
        # When each member's last_message_at was last buffered: the column is kept to within
        # SEEN_RESOLUTION (segments look at days), so a chatty member costs one row per window,
        # not one per batch.
        self._seen_written: dict[tuple[int, int], float] = {}
        self._chats_known: dict[int, tuple[str, str | None, str | None]] = {}
        self._chat_buf: dict[int, dict[str, object]] = {}

    def touch_chat(self, chat_id: int, chat_type: str, title: str | None, username: str | None, at: datetime) -> None:
        """Note a chat the bot is in (no I/O); written to core_chats in the batch flush."""
        info = (chat_type, title, username)
        if self._chats_known.get(chat_id) != info:
            self._chats_known[chat_id] = info
            self._chat_buf[chat_id] = {"chat_id": chat_id, "type": chat_type, "title": title, "username": username,
                                       "updated_at": at}

    def known_chats(self) -> list[int]:
        return list(self._chats_known)

    def touch(self, user: TgUser, chat_id: int | None, at: datetime, *, spoke: bool = True) -> None:
        """Note a user seen in a chat (no I/O)."""
        info = (user.username, user.first_name or "", user.last_name, bool(user.is_bot), user.language_code)
        if self._known.get(user.id) != info:
            self._known[user.id] = info
            self._user_buf[user.id] = {
                "user_id": user.id, "username": user.username, "first_name": user.first_name or "",
                "last_name": user.last_name, "is_bot": bool(user.is_bot), "language_code": user.language_code,
                "updated_at": at,
            }
        if chat_id is not None and spoke:
            key = (chat_id, user.id)
            stamp = at.timestamp()
            if stamp - self._seen_written.get(key, float("-inf")) >= SEEN_RESOLUTION:
                self._seen_written[key] = stamp
                self._seen_buf[key] = at

    async def flush(self, session: AsyncSession) -> None:
        chats, self._chat_buf = list(self._chat_buf.values()), {}
        await upsert(session, Chat, chats, ["chat_id"], ["type", "title", "username", "updated_at"])
        users, self._user_buf = list(self._user_buf.values()), {}
        seen, self._seen_buf = self._seen_buf, {}
        await upsert(session, User, users, ["user_id"],
                     ["username", "first_name", "last_name", "is_bot", "language_code", "updated_at"])
        rows = [
            {"chat_id": c, "user_id": u, "status": "member", "first_seen_at": at, "last_message_at": at,
             "join_count": 0}
            for (c, u), at in seen.items()
        ]
        await upsert(session, Member, rows, ["chat_id", "user_id"], ["last_message_at"])

    async def record_join(
        self, chat_id: int, user: TgUser, at: datetime, *, invite_link: str | None = None,
        invited_by: int | None = None,
    ) -> JoinResult:
        self.touch(user, None, at)
        # A (re)join starts a new membership: the next message must be recorded at once.
        self._seen_written.pop((chat_id, user.id), None)

        async def tx() -> JoinResult:
            async with self._db() as s, s.begin():
                row = await s.get(Member, (chat_id, user.id))
                if row is None:
                    s.add(Member(chat_id=chat_id, user_id=user.id, status="member", first_seen_at=at, joined_at=at,
                                 join_count=1, invited_by=invited_by, invite_link=invite_link))
                    return JoinResult(True, False)
                already_in = (
                    row.status in PRESENT and row.joined_at is not None
                    and (row.left_at is None or row.left_at < row.joined_at)
                )
                if already_in:
                    # The second signal of the same join: fill in what it knows that the first did not.
                    row.invite_link = row.invite_link or invite_link
                    row.invited_by = row.invited_by or invited_by
                    return JoinResult(False, row.join_count > 1)
                rejoined = row.join_count > 0 or row.left_at is not None
                row.status = "member"
                row.joined_at = at
                row.join_count += 1
                row.invite_link = invite_link
                row.invited_by = invited_by
                row.verified_at = None
                return JoinResult(True, rejoined)

        return await retry_locked(tx)

    async def record_leave(self, chat_id: int, user_id: int, at: datetime, status: str = "left") -> bool:
        async def tx() -> bool:
            async with self._db() as s, s.begin():
                row = await s.get(Member, (chat_id, user_id))
                if row is None:
                    s.add(Member(chat_id=chat_id, user_id=user_id, status=status, first_seen_at=at, left_at=at,
                                 join_count=0))
                    return True
                if row.status not in PRESENT:
                    if status == "kicked" and row.status == "left":
                        row.status = status
                    return False
                row.status = status
                row.left_at = at
                return True

        return await retry_locked(tx)

    async def set_status(self, chat_id: int, user_id: int, status: str) -> None:
        async with self._db() as s, s.begin():
            row = await s.get(Member, (chat_id, user_id))
            if row is not None:
                row.status = status

    async def mark_verified(self, chat_id: int, user_id: int, at: datetime) -> None:
        async with self._db() as s, s.begin():
            row = await s.get(Member, (chat_id, user_id))
            if row is not None and row.verified_at is None:
                row.verified_at = at

    async def get(self, chat_id: int, user_id: int) -> Member | None:
        async with self._db() as s:
            return await s.get(Member, (chat_id, user_id))

    async def user(self, user_id: int) -> User | None:
        async with self._db() as s:
            return await s.get(User, user_id)

    async def name_of(self, user_id: int) -> str:
        known = self._known.get(user_id)
        if known is not None:
            return display_name(known[1], known[2], known[0])
        row = await self.user(user_id)
        return display_name(row.first_name, row.last_name, row.username) if row else str(user_id)

    async def mention(self, user_id: int) -> str:
        return mention_html(user_id, await self.name_of(user_id))

    async def resolve(self, token: str) -> int | None:
        """A user id from "@username" or a numeric id (as typed after an admin command)."""
        token = token.strip()
        if token.lstrip("-").isdigit():
            return int(token)
        if token.startswith("@") and len(token) > 1:
            name = token[1:].lower()
            for uid, info in self._known.items():
                if info[0] and info[0].lower() == name:
                    return uid
            async with self._db() as s:
                return await s.scalar(select(User.user_id).where(func.lower(User.username) == name).limit(1))
        return None

    async def mark_started(self, user_id: int) -> None:
        async with self._db() as s, s.begin():
            row = await s.get(User, user_id)
            if row is not None:
                row.started_bot = True
            else:
                s.add(User(user_id=user_id, first_name="", started_bot=True, updated_at=self._clock.now()))

    async def has_started(self, user_id: int) -> bool:
        row = await self.user(user_id)
        return bool(row and row.started_bot)

    async def count_present(self, chat_id: int) -> int:
        async with self._db() as s:
            return int(
                await s.scalar(
                    select(func.count()).select_from(Member).where(
                        Member.chat_id == chat_id, Member.status.in_(PRESENT)
                    )
                ) or 0
            )
