"""One scheduler leader among the workers.

Recurring jobs (APScheduler) and the durable timer loop run in exactly one worker: the one holding the
``scheduler`` lease (``SharedState.lease``: Redis ``SET NX PX`` with a token, renewed every ttl/3). A
leader that dies stops renewing; its lease expires after at most ``ttl`` and a candidate, trying every
ttl/3, takes over: failover within ttl + ttl/3 (20 s with the default 15 s). A clean stop releases the
lease at once. Redis unreachable: the leader keeps leading until its lease could have expired (then it
steps down), candidates wait; so two leaders never overlap by more than a clock's drift. Timers are
also claimed row by row in the database (``bot.services.timers``), so even an overlap never fires one
twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable

from bot.shared import SharedState

log = logging.getLogger(__name__)

LEASE = "scheduler"


class Leadership:
    def __init__(
        self,
        shared: SharedState,
        *,
        ttl: float,
        on_gain: Callable[[], Awaitable[None]],
        on_lose: Callable[[], Awaitable[None]],
        name: str = LEASE,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared = shared
        self.ttl = ttl
        self.name = name
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._on_gain = on_gain
        self._on_lose = on_lose
        self._mono = monotonic
        self.is_leader = False
        self.terms = 0
        self._last_renewal = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self._run(), name="leadership")
        return self._task

    async def _gain(self) -> None:
        self.is_leader = True
        self.terms += 1
        log.info("this worker is now the scheduler leader (%s)", self.token)
        try:
            await self._on_gain()
        except Exception:
            log.exception("starting the scheduler failed")

    async def _lose(self, why: str) -> None:
        self.is_leader = False
        log.warning("this worker is no longer the scheduler leader: %s", why)
        try:
            await self._on_lose()
        except Exception:
            log.exception("stopping the scheduler failed")

    async def tick(self) -> None:
        """One round: take or renew the lease and act on the answer."""
        held = await self.shared.lease(self.name, self.token, self.ttl)
        now = self._mono()
        if held is True:
            self._last_renewal = now
            if not self.is_leader:
                await self._gain()
        elif held is False:
            if self.is_leader:
                await self._lose("another worker holds the lease")
        elif self.is_leader and now - self._last_renewal > self.ttl * 0.8:
            # Unknown (Redis down): our lease may be about to expire; step down before anyone can take it.
            await self._lose("the lease could not be renewed")

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.tick()
            except Exception:
                log.exception("leader election round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.ttl / 3)

    async def stop(self, *, release: bool = True) -> None:
        """Stop campaigning; a leader stops its jobs and (``release``) frees the lease for a prompt failover."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
        if self.is_leader:
            await self._lose("stopping")
            if release:
                with contextlib.suppress(Exception):
                    await self.shared.release_lease(self.name, self.token)

    async def abandon(self) -> None:
        """Stop without releasing (what a crash looks like to the others); for tests."""
        self._stop.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._task = None
