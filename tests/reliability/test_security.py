"""Security: every admin command of every plugin is refused for a non-admin and changes nothing."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.models import ChatPluginSetting, PointsEntry
from tests.harness import ALICE, BOB, GROUP, OTHER_GROUP

MUTATING = (
    "restrictChatMember", "banChatMember", "unbanChatMember", "deleteMessage", "deleteMessages",
    "pinChatMessage", "unpinChatMessage", "sendPoll", "stopPoll", "setChatPermissions", "createChatInviteLink",
    "sendDocument", "sendPhoto",
)


async def _db_fingerprint(h) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with h.app.db() as s:
        settings = await s.scalar(select(func.count()).select_from(ChatPluginSetting))
        ledger = await s.scalar(select(func.count()).select_from(PointsEntry))
    return int(settings or 0), int(ledger or 0)


async def test_every_admin_command_refused_for_members(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness()
    admin_commands = [e for e in h.app.commands.entries() if e.spec.admin or e.spec.owner]
    assert len(admin_commands) >= 5
    target = await h.say(GROUP, BOB, "被回复的消息")
    before = await _db_fingerprint(h)
    refused: list[str] = []
    for entry in admin_commands:
        name = entry.spec.name
        h.clear()
        for text in (f"/{name}", f"/{name} @bob 10 1d 测试 | 选项 | 选项"):
            await h.say(GROUP, ALICE, text, reply_to=target["message_id"])
            h.clock.advance(3)  # stay under anti-flood: this test is about rights, not floods
        effects = [c.method for c in h.calls(*MUTATING)]
        assert effects == [], f"/{name} by a member caused {effects}"
        replies = [m for m in h.world.bot_messages(GROUP) if m.get("reply_to_message")]
        assert replies, f"/{name} by a member got no answer"
        refused.append(name)
    assert await _db_fingerprint(h) == before
    assert h.texts(OTHER_GROUP) == []
    assert len(refused) == len(admin_commands)
