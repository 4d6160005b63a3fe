from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import GetMe, SendMessage

from bot.services.sender import PacingMiddleware, Sender, SlidingWindow

BOT = Bot("123456:TEST-token-for-the-emulator-only")


class FakeTime:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_sliding_window_delay() -> None:
    now = FakeTime()
    window = SlidingWindow(2, 60.0, now)
    assert window.delay() == 0
    window._events.extend([0.0, 1.0])
    assert window.delay() == pytest.approx(60.0)
    now.t = 60.5
    assert window.delay() == 0


async def test_retries_on_retry_after_then_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    mw = PacingMiddleware(global_per_second=1000, chat_per_minute=1000)
    method = SendMessage(chat_id=-1, text="hi")
    attempts = 0

    async def make_request(bot: Any, m: Any) -> str:
        nonlocal attempts
        attempts += 1
        if attempts <= 2:
            raise TelegramRetryAfter(method=m, message="Too Many Requests", retry_after=3)
        return "ok"

    assert await mw(make_request, BOT, method) == "ok"
    assert attempts == 3
    assert sleeps == [3, 3]
    assert mw.retries == 2


async def test_server_and_network_errors_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_sleep(seconds: float) -> None:
        return None

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    mw = PacingMiddleware(max_retries=3)
    attempts = 0

    async def always_fails(bot: Any, m: Any) -> str:
        nonlocal attempts
        attempts += 1
        if attempts % 2:
            raise TelegramServerError(method=m, message="Bad Gateway")
        raise TelegramNetworkError(method=m, message="connection reset")

    with pytest.raises((TelegramServerError, TelegramNetworkError)):
        await mw(always_fails, BOT, GetMe())
    assert attempts == 4
    assert mw.failures == 1


async def test_per_chat_window_paces_group_sends() -> None:
    loop = asyncio.get_running_loop()
    mw = PacingMiddleware(global_per_second=1000, chat_per_minute=3)
    stamps: list[float] = []

    async def record(bot: Any, m: Any) -> str:
        stamps.append(loop.time())
        return "ok"

    # Shrink the window so the test takes milliseconds: 3 per 0.2 s.
    window = mw._chat_window(-5)
    window.period = 0.2
    await asyncio.gather(*(mw(record, BOT, SendMessage(chat_id=-5, text=str(i))) for i in range(6)))
    assert len(stamps) == 6
    assert stamps[3] - stamps[0] >= 0.19
    # Private chats and other groups are not held back by -5's window.
    t0 = loop.time()
    await mw(record, BOT, SendMessage(chat_id=-6, text="x"))
    assert loop.time() - t0 < 0.1


async def test_sender_keeps_order_and_never_raises() -> None:
    sender = Sender()
    out: list[int] = []

    async def ok(i: int) -> int:
        await asyncio.sleep(0.001 * (5 - i))
        out.append(i)
        return i

    async def bad() -> int:
        raise RuntimeError("gone")

    futures = [sender.submit(-1, lambda i=i: ok(i)) for i in range(5)]
    failing = sender.submit(-1, bad)
    assert await asyncio.gather(*futures) == [0, 1, 2, 3, 4]
    assert await failing is None
    assert out == [0, 1, 2, 3, 4]
    assert await sender.drain(1)
    assert sender.failed == 1 and sender.sent == 5


async def test_run_now_keeps_the_chat_order_with_queued_sends() -> None:
    sender = Sender()
    out: list[str] = []

    async def note(name: str, delay: float = 0.0) -> str:
        await asyncio.sleep(delay)
        out.append(name)
        return name

    # Idle chat: runs in the caller's task; what is submitted meanwhile goes after it.
    task = asyncio.ensure_future(sender.run_now(-1, lambda: note("now", 0.02)))
    await asyncio.sleep(0.005)
    later = sender.submit(-1, lambda: note("queued during"))
    assert await task == "now"
    assert await later == "queued during"
    # Busy chat: waits behind the queue like submit.
    first = sender.submit(-1, lambda: note("queued before", 0.02))
    assert await sender.run_now(-1, lambda: note("now again")) == "now again"
    assert await first == "queued before"

    async def bad() -> str:
        raise RuntimeError("gone")

    assert await sender.run_now(-2, bad) is None  # a failure is logged and counted, never raised
    assert out == ["now", "queued during", "queued before", "now again"]
    assert await sender.drain(1)
    assert sender.sent == 4 and sender.failed == 1 and sender.pending == 0


async def test_drain_waits_for_sends_queued_by_sends() -> None:
    sender = Sender()
    done: list[str] = []

    async def second() -> str:
        await asyncio.sleep(0.01)
        done.append("second")
        return "second"

    async def first() -> str:
        sender.submit(-2, second)  # e.g. a send whose success schedules a follow-up in another chat
        done.append("first")
        return "first"

    sender.submit(-1, first)
    assert await sender.drain(2)
    assert done == ["first", "second"]


async def test_deleting_a_message_already_gone_is_not_a_failure(make_harness: Any,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    from aiogram.methods import DeleteMessage, DeleteMessages

    from tests.harness import GROUP

    h = await make_harness(plugins=[])
    sent = await h.app.send_text(GROUP, "很快删除")
    assert sent is not None
    first = await h.app.call(GROUP, DeleteMessage(chat_id=GROUP, message_id=sent.message_id))
    again = await h.app.call(GROUP, DeleteMessage(chat_id=GROUP, message_id=sent.message_id))
    assert first is True and again is False
    # The batch form (auto-deleted notices) too, when every one of them is gone already.
    assert await h.app.call(GROUP, DeleteMessages(chat_id=GROUP, message_ids=[sent.message_id])) is False
    assert h.app.sender.failed == 0
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    # Any other refusal is still a failure, logged.
    assert await h.app.send_text(-100_999_999, "没有这个群") is None
    assert h.app.sender.failed == 1
    assert [r for r in caplog.records if r.levelname == "ERROR"]
