"""Time source for the whole bot.

Every piece of code asks the App's clock instead of calling ``time.time()`` so that tests can move
time forward (captcha timeouts, streaks across midnight, warn expiry) without sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, tzinfo


class Clock:
    """Wall clock."""

    def time(self) -> float:
        return time.time()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), UTC)

    def local(self, tz: tzinfo) -> datetime:
        return self.now().astimezone(tz)


class FakeClock(Clock):
    """A clock that only moves when told to (tests, the sandbox)."""

    def __init__(self, start: float | datetime | None = None) -> None:
        if start is None:
            start = time.time()
        if isinstance(start, datetime):
            start = start.timestamp()
        self._now = float(start)

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float | timedelta) -> None:
        if isinstance(seconds, timedelta):
            seconds = seconds.total_seconds()
        self._now += seconds

    def set(self, when: float | datetime) -> None:
        self._now = when.timestamp() if isinstance(when, datetime) else float(when)
