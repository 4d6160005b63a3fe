"""welcome with two workers (two Apps: two memories) sharing PostgreSQL and Redis greets like one bot:
joins of one chat split between the workers merge into one greeting, the raid window's cooldown and
anti-raid mode hold in both, the chat's default permissions are fetched once, admins are told once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.runner import ALLOWED_UPDATES
from bot.services.events import RaidModeChanged
from tests.harness import DAVE, GROUP, LOG_CHAT, Harness
from tests.scale.support import running_pair

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

FANS = list(range(2001, 2007))


@pytest.fixture
async def workers(tmp_path: Path, pg_url: str, redis_prefix: tuple[str, str]) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two workers over one emulated Telegram and one clock; each update goes to the worker we pick."""
    async with running_pair(tmp_path, pg_url, redis_prefix, "welcome") as (a, b):
        a.world.allowed_updates = list(ALLOWED_UPDATES)
        for uid in FANS:
            a.world.add_user(uid, f"粉丝{uid}", username=f"fan{uid}")
        yield a, b


def sends(h: Harness, chat: int = GROUP) -> list[Any]:
    return [c for c in h.calls("sendMessage") if c.params["chat_id"] == chat and c.ok]


def captcha_messages(h: Harness) -> list[Any]:
    return [c for c in sends(h) if c.params.get("reply_markup")]


def button(call: Any) -> str:
    [data] = [b["callback_data"] for row in call.params["reply_markup"]["inline_keyboard"] for b in row]
    return str(data)


async def test_joins_split_between_workers_merge_into_one_greeting(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    await a.join(GROUP, FANS[0])
    assert len(sends(a)) == 1  # greeted at once; the raid window starts now, for both workers
    for i, uid in enumerate(FANS[1:]):
        await (b if i % 2 == 0 else a).join(GROUP, uid)
    assert len(sends(a)) == 1, [c.params["text"][:30] for c in sends(a)]
    assert all(not a.world.can_send(GROUP, uid) for uid in FANS)
    await b.advance(5)  # the window closes: the timer runs on one worker, with every worker's joins
    greetings = sends(a)
    assert len(greetings) == 2 and len(captcha_messages(a)) == 2
    merged = greetings[-1]
    for uid in FANS[1:]:
        assert f"tg://user?id={uid}" in merged.params["text"]
    # One shared challenge: members answer through either worker.
    data = button(merged)
    for i, uid in enumerate(FANS[1:]):
        await (a if i % 2 == 0 else b).press(GROUP, uid, merged.result["message_id"], data)
    assert all(a.world.can_send(GROUP, uid) for uid in FANS[1:])
    assert "reply_markup" not in a.world.message(GROUP, merged.result["message_id"])
    # The next window: the cooldown started by the timer holds on the other worker too.
    a.clock.advance(2)
    a.world.add_user(2100, "迟到的")
    await a.join(GROUP, 2100)
    assert len(sends(a)) == 2
    await a.advance(5)
    assert len(sends(a)) == 3 and "tg://user?id=2100" in sends(a)[-1].params["text"]


async def test_member_leaving_through_the_other_worker_is_left_out(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    start = a.clock.time()
    await a.join(GROUP, FANS[0])
    await b.join(GROUP, FANS[1])
    await a.join(GROUP, FANS[2])
    await b.leave(GROUP, FANS[2])
    await a.advance(5)
    assert len(sends(a)) == 2
    merged = sends(a)[-1]
    assert merged.at >= start + 5  # sent when the window closed, not at B's join
    assert f"tg://user?id={FANS[1]}" in merged.params["text"]
    assert f"tg://user?id={FANS[2]}" not in merged.params["text"]


async def test_raid_mode_seen_by_one_worker_pauses_greetings_on_the_other(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    until = a.clock.now() + timedelta(minutes=10)
    await a.app.events.emit(RaidModeChanged(chat_id=GROUP, on=True, until=until))
    await b.join(GROUP, DAVE)
    await a.join(GROUP, FANS[0])
    assert sends(a) == [] and a.calls("restrictChatMember") == []
    await b.app.events.emit(RaidModeChanged(chat_id=GROUP, on=False))
    await a.join(GROUP, FANS[1])
    assert len(sends(a)) == 1 and f"tg://user?id={FANS[1]}" in sends(a)[0].params["text"]


async def test_raid_mode_ends_on_its_own_in_every_worker(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    until = a.clock.now() + timedelta(minutes=10)
    await b.app.events.emit(RaidModeChanged(chat_id=GROUP, on=True, until=until))
    await a.join(GROUP, DAVE)
    assert sends(a) == []
    a.clock.advance(601)
    await a.join(GROUP, FANS[0])
    assert len(sends(a)) == 1


async def test_default_permissions_fetched_once_for_both_workers(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    a.world.chats[GROUP]["permissions"].update({"can_send_polls": False, "can_invite_users": False})
    await a.join(GROUP, FANS[0])
    first = captcha_messages(a)[-1]
    await b.press(GROUP, FANS[0], first.result["message_id"], button(first))
    a.clock.advance(10)
    await b.join(GROUP, FANS[1])
    second = captcha_messages(a)[-1]
    await a.press(GROUP, FANS[1], second.result["message_id"], button(second))
    assert a.world.can_send(GROUP, FANS[0]) and a.world.can_send(GROUP, FANS[1])
    lifts = [c for c in a.calls("restrictChatMember") if c.params["permissions"].get("can_send_messages")]
    assert len(lifts) == 2 and all(c.params["permissions"]["can_send_polls"] is False for c in lifts)
    assert len([c for c in a.calls("getChat") if c.params["chat_id"] == GROUP]) == 1


async def test_admins_are_told_once_whichever_worker_sees_the_join(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    a.world.set_member(GROUP, a.world.bot_id, "administrator", can_restrict_members=False)
    a.app.admins.invalidate(GROUP)
    b.app.admins.invalidate(GROUP)
    await a.join(GROUP, FANS[0])
    a.clock.advance(10)
    await b.join(GROUP, FANS[1])
    a.clock.advance(10)
    await a.join(GROUP, FANS[2])
    assert a.calls("restrictChatMember") == [] and len(sends(a)) == 3
    warnings = sends(a, LOG_CHAT)
    assert len(warnings) == 1 and "限制成员" in warnings[0].params["text"]
