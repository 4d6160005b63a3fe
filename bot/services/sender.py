"""Outbound calls: pacing within Telegram's limits, bounded retries, fire-and-forget sends.

``PacingMiddleware`` sits on the aiogram session, so every call (a handler's ``answer``, a job's send)
goes through it: it waits for a slot in the global and per-chat windows, honours 429 ``retry_after``,
and retries 5xx and network errors with bounded backoff. ``Sender.submit`` queues a call per chat and
returns at once, so a chat that is being throttled never holds up updates of other chats; a call that
finally fails is logged and resolves to ``None`` instead of raising into a handler.

With several workers (``shared`` given) the windows are a token bucket in the shared store (GCRA in
Redis), so Telegram's per-bot and per-chat limits hold across all workers; Redis unreachable: each
worker falls back to local windows at its share of the limits.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from bot.shared import SharedState

log = logging.getLogger(__name__)

T = TypeVar("T")

# Methods that post something visible in a chat and so count against the per-chat limit.
SEND_METHODS = frozenset(
    {
        "sendMessage", "sendPhoto", "sendVideo", "sendAnimation", "sendDocument", "sendSticker",
        "sendPoll", "sendAudio", "sendVoice", "sendMediaGroup", "copyMessage", "forwardMessage",
        "sendDice", "sendLocation", "sendContact", "sendVenue", "sendVideoNote",
    }
)


class SlidingWindow:
    """At most ``limit`` events in any ``period`` seconds; ``acquire`` waits for a slot."""

    def __init__(self, limit: int, period: float, now: Callable[[], float]) -> None:
        self.limit = max(1, limit)
        self.period = period
        self._now = now
        self._events: deque[float] = deque()
        self._lock = asyncio.Lock()

    def delay(self) -> float:
        now = self._now()
        while self._events and now - self._events[0] >= self.period:
            self._events.popleft()
        if len(self._events) < self.limit:
            return 0.0
        return self.period - (now - self._events[0])

    async def acquire(self) -> None:
        async with self._lock:
            while (wait := self.delay()) > 0:
                await asyncio.sleep(wait)
            self._events.append(self._now())


class PacingMiddleware(BaseRequestMiddleware):
    def __init__(
        self,
        *,
        global_per_second: float = 30,
        chat_per_minute: int = 20,
        max_retries: int = 5,
        base_backoff: float = 0.2,
        max_backoff: float = 10.0,
        now: Callable[[], float] | None = None,
        shared: SharedState | None = None,
    ) -> None:
        loop_time = now or (lambda: asyncio.get_running_loop().time())
        self._now = loop_time
        self._global = SlidingWindow(max(1, round(global_per_second)), 1.0, loop_time)
        self._chat_limit = chat_per_minute
        self._chats: dict[int | str, SlidingWindow] = {}
        self.max_retries = max_retries
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.retries = 0
        self.failures = 0
        self._shared = shared
        self._global_limit = max(1, round(global_per_second))

    async def _shared_slot(self, chat_id: int | str | None, group: bool) -> None:
        from bot.shared import RateLimit

        assert self._shared is not None
        limits = [RateLimit("pace:global", self._global_limit, 1.0)]
        if group:
            limits.insert(0, RateLimit(f"pace:chat:{chat_id}", self._chat_limit, 60.0))
        wait = await self._shared.reserve(limits)
        if wait > 0:
            await asyncio.sleep(wait)

    def _chat_window(self, chat_id: int | str) -> SlidingWindow:
        window = self._chats.get(chat_id)
        if window is None:
            if len(self._chats) > 10_000:
                # Forget idle windows so a bot in many chats does not grow without bound.
                idle = [k for k, w in self._chats.items() if w.delay() == 0 and not w._events]
                for k in idle:
                    del self._chats[k]
            window = SlidingWindow(self._chat_limit, 60.0, self._now)
            self._chats[chat_id] = window
        return window

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        if name in SEND_METHODS:
            chat_id = getattr(method, "chat_id", None)
            # Limits apply to groups; private chats only share the global window.
            group = (isinstance(chat_id, int) and chat_id < 0) or isinstance(chat_id, str)
            if self._shared is not None:
                await self._shared_slot(chat_id, group)
            else:
                if group:
                    await self._chat_window(chat_id).acquire()  # type: ignore[arg-type]
                await self._global.acquire()
        attempt = 0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                if attempt >= self.max_retries:
                    self.failures += 1
                    raise
                self.retries += 1
                log.warning("%s: flood control, retry after %ss", name, exc.retry_after)
                await asyncio.sleep(exc.retry_after)
            except (TelegramServerError, TelegramNetworkError) as exc:
                if attempt >= self.max_retries or name == "getUpdates":
                    self.failures += 1
                    raise
                self.retries += 1
                delay = min(self.max_backoff, self.base_backoff * 2**attempt) * (0.5 + random.random() / 2)
                log.warning("%s failed (%s), retry %d in %.2fs", name, type(exc).__name__, attempt + 1, delay)
                await asyncio.sleep(delay)
            attempt += 1


class Sender:
    """Per-chat FIFO queues of outbound calls; ``drain`` at shutdown waits for them."""

    def __init__(self) -> None:
        self._queues: dict[int | str, asyncio.Queue[tuple[Callable[[], Awaitable[Any]], asyncio.Future[Any]]]] = {}
        # A chat's worker task, or the future of a call running in its caller's task (run_now).
        self._workers: dict[int | str, asyncio.Future[None]] = {}
        self.sent = 0
        self.failed = 0

    def submit(self, chat_id: int | str, call: Callable[[], Awaitable[T]]) -> asyncio.Future[T | None]:
        """Queue ``call`` behind earlier calls to the same chat; the future resolves to its result
        or to None if it finally failed (already logged)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        queue = self._queues.get(chat_id)
        if queue is None:
            queue = asyncio.Queue()
            self._queues[chat_id] = queue
        queue.put_nowait((call, future))
        if chat_id not in self._workers or self._workers[chat_id].done():
            self._workers[chat_id] = loop.create_task(self._work(chat_id, queue))
        return future

    async def run_now(self, chat_id: int | str, call: Callable[[], Awaitable[T]]) -> T | None:
        """``await submit(...)`` for a caller that needs the result before it goes on (a captcha needs
        its restriction and its message id): when nothing is queued or running for the chat, the call
        runs right here instead of being handed to the chat's worker, which costs several turns of the
        event loop (during which other chats' updates run) for the same order."""
        busy = self._workers.get(chat_id)
        if busy is not None and not busy.done():
            return await self.submit(chat_id, call)
        loop = asyncio.get_running_loop()
        holder: asyncio.Future[None] = loop.create_future()  # calls submitted meanwhile queue behind ours
        self._workers[chat_id] = holder
        try:
            return await self._execute(chat_id, call)
        finally:
            if not holder.done():
                holder.set_result(None)
            if self._workers.get(chat_id) is holder:
                del self._workers[chat_id]
                queue = self._queues.get(chat_id)
                if queue is not None and not queue.empty():
                    self._workers[chat_id] = loop.create_task(self._work(chat_id, queue))

    async def _execute(self, chat_id: int | str, call: Callable[[], Awaitable[T]]) -> T | None:
        try:
            result = await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failed += 1
            log.error("send to chat %s failed for good: %s: %s", chat_id, type(exc).__name__, exc)
            return None
        self.sent += 1
        return result

    async def _work(self, chat_id: int | str, queue: asyncio.Queue[Any]) -> None:
        while True:
            try:
                call, future = queue.get_nowait()
            except asyncio.QueueEmpty:
                if self._queues.get(chat_id) is queue and queue.empty():
                    del self._queues[chat_id]
                    self._workers.pop(chat_id, None)
                return
            try:
                result = await self._execute(chat_id, call)
            except asyncio.CancelledError:
                if not future.done():
                    future.set_result(None)
                raise
            else:
                if not future.done():
                    future.set_result(result)
            finally:
                queue.task_done()

    async def settled(self, chat_id: int | str, timeout: float) -> bool:
        """Wait until every call queued for ``chat_id`` so far is done (at most ``timeout`` s)."""
        worker = self._workers.get(chat_id)
        if worker is None or worker.done():
            return True
        _done, pending = await asyncio.wait({worker}, timeout=timeout)
        return not pending

    @property
    def pending(self) -> int:
        return sum(q.qsize() for q in self._queues.values()) + sum(
            1 for t in self._workers.values() if not t.done()
        )

    async def drain(self, timeout: float = 5.0) -> bool:
        """Wait for queued calls, including calls queued by calls that were waited for; True when
        everything went out within ``timeout``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            workers = [t for t in self._workers.values() if not t.done()]
            if not workers:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            await asyncio.wait(workers, timeout=remaining)
        pending = [t for t in self._workers.values() if not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        log.warning("shutdown: %d chats still had queued sends", len(pending))
        return False
