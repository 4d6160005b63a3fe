"""State that several workers must share: one small interface, two backends.

``MemoryShared`` (the default, no ``[redis] url``) keeps everything in this process, which is exactly
what one process needs. ``RedisShared`` keeps the hot shared pieces in Redis so that N webhook workers
behave like one bot:

* sliding-window counters (``hit``/``count``) and fixed-window counters (``incr``): flood and spam counts
  that must add up across workers;
* rolling windows of small items (``rolling_add``/``rolling_items``): e.g. the crisis detector's recent
  scored messages;
* a shared GCRA token bucket (``reserve``): Telegram's per-bot and per-chat send limits hold across
  workers (``PacingMiddleware`` uses it);
* a small TTL cache (``get``/``set``/``delete``): the admin-rights cache;
* invalidation messages (``publish``/``on_invalidate``): chat-config and admin caches dropped in every
  worker when one of them changes something;
* per-key mutual exclusion (``lock``): one update of a chat at a time across workers;
* a lease (``lease``/``release_lease``): the scheduler leader (``bot.leader``).

Redis unreachable: every operation falls back to the in-process backend (counters and limits become
per-worker, locks per-process), logs once, and Redis is tried again a second later; when it answers
again that is logged once too and every cache is invalidated (messages may have been missed). Nothing
raises into a handler because Redis is down. docs/scale.md explains how plugins adopt these primitives.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from bot.chat_config import ChatConfigService

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from bot.clock import Clock
    from bot.plugin import Plugin
    from bot.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")
InvalidateCallback = Callable[[str], None]
ALL = "*"  # an invalidation payload meaning "drop everything" (sent after a Redis outage)


def decode_float(raw: str | None, *, allow_infinite: bool = False) -> float | None:
    """A number a plugin stored as text in the shared store; None when absent or malformed (another
    version, a hand edit): NaN always, infinities unless ``allow_infinite`` ("until further notice")."""
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if math.isnan(value) or (math.isinf(value) and not allow_infinite):
        return None
    return value


class LockTimeout(Exception):
    """A per-key lock could not be taken in time (another worker holds it)."""


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` events per ``period`` seconds under ``key`` (a burst of ``limit`` allowed)."""

    key: str
    limit: float
    period: float


class SharedState:
    """The interface; see the module docstring. Keys are plain strings, the backend adds its prefix."""

    distributed = False

    async def start(self) -> None:
        """Connect and start background work (the invalidation listener)."""

    async def close(self) -> None:
        """Stop background work and disconnect."""

    # ---- counters and windows ----------------------------------------------------------------
    async def hit(self, key: str, window: float, *, now: float) -> int:
        """Record one event at ``now``; the number of events in (now - window, now]."""
        raise NotImplementedError

    async def count(self, key: str, window: float, *, now: float) -> int:
        """Events recorded under ``key`` in (now - window, now], without adding one."""
        raise NotImplementedError

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        """A fixed-window counter: add ``amount``; the window (and the count) starts with the first add."""
        raise NotImplementedError

    async def rolling_add(self, key: str, item: str, *, now: float, window: float, max_items: int = 10_000) -> None:
        """Append ``item`` at ``now`` to a rolling window; older than ``window`` (or beyond max_items) drops."""
        raise NotImplementedError

    async def rolling_items(self, key: str, *, now: float, window: float) -> list[tuple[float, str]]:
        """(time, item) pairs of the window, oldest first."""
        raise NotImplementedError

    async def rolling_push(
        self, key: str, item: str, *, now: float, window: float, max_items: int = 10_000
    ) -> list[tuple[float, str]]:
        """``rolling_add``, then every (time, item) pair left in the window, oldest first: one round trip
        for "record this and tell me what the window holds" (a flood's message ids)."""
        await self.rolling_add(key, item, now=now, window=window, max_items=max_items)
        return await self.rolling_items(key, now=now, window=window)

    async def log_append(
        self, key: str, item: str, *, after: int, ttl: float, max_items: int = 10_000
    ) -> tuple[int, list[str]]:
        """Append ``item`` to an ordered log every worker replicates; returns (the item's position, the
        items appended after position ``after`` and before it, oldest first). A worker that has read the
        log up to ``after`` publishes its item and catches up with the others' in one round trip, and
        every worker sees the items in the same order. The log keeps its newest ``max_items`` and expires
        ``ttl`` seconds after the last append; an ``after`` beyond the log's position (it expired, or
        Redis was replaced by the fallback) reads everything the log holds."""
        raise NotImplementedError

    async def log_read(self, key: str, *, after: int) -> tuple[int, list[str]]:
        """(the log's position, the items after position ``after``, oldest first), appending nothing."""
        raise NotImplementedError

    async def reset(self, *keys: str) -> None:
        """Forget counters, windows and cache entries under ``keys``."""
        raise NotImplementedError

    # ---- pacing ------------------------------------------------------------------------------
    async def reserve(self, limits: Sequence[RateLimit]) -> float:
        """Reserve the next slot allowed by every limit; seconds to wait before using it."""
        raise NotImplementedError

    # ---- cache -------------------------------------------------------------------------------
    async def get(self, key: str) -> str | None:
        raise NotImplementedError

    async def set(self, key: str, value: str, ttl: float) -> None:
        raise NotImplementedError

    async def delete(self, *keys: str) -> None:
        await self.reset(*keys)

    # ---- invalidation ------------------------------------------------------------------------
    def on_invalidate(self, topic: str, callback: InvalidateCallback) -> None:
        """``callback(payload)`` runs in every worker when anyone publishes on ``topic``
        (payload ``"*"``: drop everything, sent after messages may have been missed)."""
        raise NotImplementedError

    async def publish(self, topic: str, payload: str) -> None:
        raise NotImplementedError

    def publish_soon(self, topic: str, payload: str) -> None:
        """``publish`` from sync code; ``settle`` waits for it."""
        raise NotImplementedError

    def delete_soon(self, *keys: str) -> None:
        """``delete`` from sync code; ``settle`` waits for it."""
        raise NotImplementedError

    async def settle(self) -> None:
        """Wait for background publishes and deletes started with ``*_soon``."""

    # ---- mutual exclusion --------------------------------------------------------------------
    def lock(self, key: str, ttl: float | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        raise NotImplementedError

    # ---- leases ------------------------------------------------------------------------------
    async def lease(self, name: str, token: str, ttl: float) -> bool | None:
        """Take or renew lease ``name`` for ``token``: True held, False held by another, None unknown."""
        raise NotImplementedError

    async def release_lease(self, name: str, token: str) -> None:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------
class KeyedLocks:
    """asyncio locks per key, forgotten when nobody holds or waits for them."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def __call__(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class MemoryShared(SharedState):
    """Everything in this process: today's single-process behaviour, and Redis's fallback.

    ``rate_share`` scales rate limits down (a worker falling back while N workers run gets 1/N).
    """

    distributed = False
    SWEEP_EVERY = 4096

    def __init__(self, *, rate_share: float = 1.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.rate_share = rate_share
        self._mono = monotonic
        self._windows: dict[str, tuple[float, deque[float]]] = {}
        self._counters: dict[str, tuple[float, int]] = {}
        self._rolling: dict[str, tuple[float, deque[tuple[float, str]]]] = {}
        self._logs: dict[str, tuple[float, int, deque[str]]] = {}  # expires, position, items
        self._tat: dict[str, float] = {}
        self._cache: dict[str, tuple[float, str]] = {}
        self._callbacks: dict[str, list[InvalidateCallback]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self.locks = KeyedLocks()
        self._ops = 0
        self._last_now = 0.0

    def _tick(self) -> None:
        self._ops += 1
        if self._ops % self.SWEEP_EVERY:
            return
        # Forget idle keys so a bot in many chats does not grow without bound.
        mono = self._mono()
        now = self._last_now
        self._windows = {k: v for k, v in self._windows.items() if v[1] and now - v[1][-1] < v[0]}
        self._rolling = {k: v for k, v in self._rolling.items() if v[1] and now - v[1][-1][0] < v[0]}
        self._counters = {k: v for k, v in self._counters.items() if v[0] > mono}
        self._cache = {k: v for k, v in self._cache.items() if v[0] > mono}
        self._logs = {k: v for k, v in self._logs.items() if v[0] > mono}
        self._tat = {k: v for k, v in self._tat.items() if v > mono}

    async def hit(self, key: str, window: float, *, now: float) -> int:
        self._tick()
        self._last_now = max(self._last_now, now)
        _, events = self._windows.get(key, (window, deque()))
        while events and events[0] <= now - window:
            events.popleft()
        events.append(now)
        self._windows[key] = (window, events)
        return len(events)

    async def count(self, key: str, window: float, *, now: float) -> int:
        entry = self._windows.get(key)
        if entry is None:
            return 0
        return sum(1 for t in entry[1] if now - window < t <= now)

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        self._tick()
        mono = self._mono()
        expires, value = self._counters.get(key, (0.0, 0))
        if expires <= mono:
            expires, value = mono + ttl, 0
        value += amount
        self._counters[key] = (expires, value)
        return value

    async def rolling_add(self, key: str, item: str, *, now: float, window: float, max_items: int = 10_000) -> None:
        self._tick()
        self._last_now = max(self._last_now, now)
        _, items = self._rolling.get(key, (window, deque()))
        items.append((now, item))
        while items and (items[0][0] <= now - window or len(items) > max_items):
            items.popleft()
        self._rolling[key] = (window, items)

    async def rolling_items(self, key: str, *, now: float, window: float) -> list[tuple[float, str]]:
        entry = self._rolling.get(key)
        if entry is None:
            return []
        return [(t, item) for t, item in entry[1] if now - window < t <= now]

    async def rolling_push(
        self, key: str, item: str, *, now: float, window: float, max_items: int = 10_000
    ) -> list[tuple[float, str]]:
        # rolling_add inlined: this runs for every message of a chat (moderation's flood window).
        self._tick()
        if now > self._last_now:
            self._last_now = now
        entry = self._rolling.get(key)
        if entry is None or entry[0] != window:
            items: deque[tuple[float, str]] = entry[1] if entry is not None else deque()
            self._rolling[key] = (window, items)
        else:
            items = entry[1]
        items.append((now, item))
        edge = now - window
        while items and (items[0][0] <= edge or len(items) > max_items):
            items.popleft()
        return list(items)

    async def log_append(
        self, key: str, item: str, *, after: int, ttl: float, max_items: int = 10_000
    ) -> tuple[int, list[str]]:
        self._tick()
        mono = self._mono()
        entry = self._logs.get(key)
        if entry is None or entry[0] <= mono:
            position, items = 0, deque[str](maxlen=max_items)
        else:
            _, position, items = entry
            if items.maxlen != max_items:
                items = deque(items, maxlen=max_items)
        before = _log_after(position, items, after)
        items.append(item)
        self._logs[key] = (mono + ttl, position + 1, items)
        return position + 1, before

    async def log_read(self, key: str, *, after: int) -> tuple[int, list[str]]:
        entry = self._logs.get(key)
        if entry is None or entry[0] <= self._mono():
            return 0, []
        return entry[1], _log_after(entry[1], entry[2], after)

    async def reset(self, *keys: str) -> None:
        for key in keys:
            for store in (self._windows, self._counters, self._rolling, self._tat, self._cache, self._logs):
                store.pop(key, None)  # type: ignore[attr-defined]

    async def reserve(self, limits: Sequence[RateLimit]) -> float:
        """GCRA: the same algorithm as the Redis script, on this process's monotonic clock."""
        now = self._mono()
        at = now
        params = []
        for lim in limits:
            limit = max(1.0, lim.limit * self.rate_share)
            interval = lim.period / limit
            burst = lim.period - interval
            tat = max(self._tat.get(lim.key, now), now)
            at = max(at, tat - burst)
            params.append((lim.key, interval, tat))
        for key, interval, tat in params:
            self._tat[key] = max(tat, at) + interval
        return max(0.0, at - now)

    async def get(self, key: str) -> str | None:
        entry = self._cache.get(key)
        if entry is None or entry[0] <= self._mono():
            return None
        return entry[1]

    async def set(self, key: str, value: str, ttl: float) -> None:
        self._tick()
        self._cache[key] = (self._mono() + ttl, value)

    def on_invalidate(self, topic: str, callback: InvalidateCallback) -> None:
        self._callbacks.setdefault(topic, []).append(callback)

    def deliver(self, topic: str, payload: str) -> None:
        for callback in self._callbacks.get(topic, ()):
            try:
                callback(payload)
            except Exception:
                log.exception("invalidation callback for %s failed", topic)

    def deliver_all(self) -> None:
        for topic in list(self._callbacks):
            self.deliver(topic, ALL)

    async def publish(self, topic: str, payload: str) -> None:
        self.deliver(topic, payload)

    def publish_soon(self, topic: str, payload: str) -> None:
        self.deliver(topic, payload)

    def delete_soon(self, *keys: str) -> None:
        for key in keys:
            for store in (self._windows, self._counters, self._rolling, self._tat, self._cache, self._logs):
                store.pop(key, None)  # type: ignore[attr-defined]

    def lock(self, key: str, ttl: float | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        return self.locks(key)

    async def lease(self, name: str, token: str, ttl: float) -> bool | None:
        mono = self._mono()
        holder = self._leases.get(name)
        if holder is None or holder[0] == token or holder[1] <= mono:
            self._leases[name] = (token, mono + ttl)
            return True
        return False

    async def release_lease(self, name: str, token: str) -> None:
        holder = self._leases.get(name)
        if holder is not None and holder[0] == token:
            del self._leases[name]



def _log_after(position: int, items: deque[str], after: int) -> list[str]:
    """The items of a log at ``position`` (holding its last ``len(items)``) that come after ``after``."""
    want = len(items) if after > position else min(len(items), position - after)
    return list(itertools.islice(items, len(items) - want, None)) if want > 0 else []


# ---------------------------------------------------------------------------------------------------
_HIT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return redis.call('ZCARD', KEYS[1])
"""

_INCR = """
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v == tonumber(ARGV[1]) or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
"""

# Add to a rolling window: drop what left it, add, cap, refresh the expiry. ARGV: cutoff, score, member,
# ttl ms, max items.
_ROLLING_STEP = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[5])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
"""
_ROLLING_ADD = _ROLLING_STEP + "return 1\n"
_ROLLING_PUSH = _ROLLING_STEP + "return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')\n"

# An ordered log in a sorted set scored by position (members "<position>:<item>", unique). ARGV: after,
# max_items, ttl in ms, [item]. Returns {position, items after ``after`` (before the appended item)}.
_LOG = """
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local position = 0
if top[2] then position = tonumber(top[2]) end
local after = tonumber(ARGV[1])
if after > position then after = 0 end
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. after, '+inf')
if ARGV[4] then
  position = position + 1
  redis.call('ZADD', KEYS[1], position, position .. ':' .. ARGV[4])
  local extra = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[2])
  if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, extra - 1) end
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {position, items}
"""

# GCRA over several keys at once, on Redis's clock (workers' clocks may disagree). ARGV per key:
# emission interval and burst tolerance in ms. Returns the wait in ms before the reserved slot.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local at = now
local tats = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or '0')
  if tat < now then tat = now end
  tats[i] = tat
  if tat - burst > at then at = tat - burst end
end
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tat = tats[i]
  if tat < at then tat = at end
  tat = tat + interval
  redis.call('SET', key, string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end
return string.format('%.3f', at - now)
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_LEASE = """
local v = redis.call('GET', KEYS[1])
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""


class RedisShared(SharedState):
    """The shared backend. ``prefix`` namespaces every key (one Redis for several bots or tests)."""

    distributed = True
    RETRY_AFTER = 1.0  # seconds between attempts while Redis is down
    LOCK_WAIT = 60.0  # give up on a chat lock after this long (the webhook answers 503, Telegram retries)

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "qunbot:",
        workers: int = 1,
        lock_ttl: float = 30.0,
        connect_timeout: float = 0.5,
        op_timeout: float = 1.0,
    ) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self.prefix = prefix
        self.lock_ttl = lock_ttl
        self.local = MemoryShared(rate_share=1.0 / max(1, workers))
        self.client: Any = aioredis.from_url(
            url, decode_responses=True, socket_connect_timeout=connect_timeout, socket_timeout=op_timeout,
            retry=Retry(NoBackoff(), 1), health_check_interval=0,
        )
        self._scripts = {name: self.client.register_script(src) for name, src in (
            ("hit", _HIT), ("incr", _INCR), ("rolling_add", _ROLLING_ADD), ("reserve", _RESERVE),
            ("unlock", _UNLOCK), ("renew", _RENEW), ("lease", _LEASE),
        )}
        self._down_until = 0.0
        self._down = False
        self.outages = 0
        self._seq = itertools.count()
        self._me = f"{os.getpid()}.{uuid.uuid4().hex[:6]}"
        self._background: set[asyncio.Task[Any]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._closing = False
        self._orphans: dict[str, str] = {}

    def k(self, key: str) -> str:
        return self.prefix + key

    # ---- the circuit breaker ------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        return not self._down

    def _mark_down(self, exc: BaseException) -> None:
        self._down_until = time.monotonic() + self.RETRY_AFTER
        if not self._down:
            self._down = True
            self.outages += 1
            log.warning("Redis unreachable (%s): falling back to per-worker limits and locks until it is back",
                        type(exc).__name__)

    def _mark_up(self) -> None:
        if self._down:
            self._down = False
            log.warning("Redis is reachable again: shared limits and locks restored")
            # Invalidation messages sent meanwhile were lost: drop every cache once.
            self.local.deliver_all()
            if self._orphans:
                self._soon(self._release_orphans())

    async def _guard(self, remote: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]) -> T:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import RedisError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        if self._down and time.monotonic() < self._down_until:
            return await fallback()
        try:
            result = await remote()
        except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
            self._mark_down(exc)
            return await fallback()
        except RedisError:
            log.exception("Redis command failed; using the local fallback for it")
            return await fallback()
        if self._down:
            self._mark_up()
        return result

    # ---- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="shared-invalidations")

    async def close(self) -> None:
        self._closing = True
        await self.settle()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
            self._listener = None
        with contextlib.suppress(Exception):
            await self.client.aclose()

    # ---- counters and windows ----------------------------------------------------------------
    def _member(self, now: float) -> str:
        return f"{now:.6f}:{self._me}:{next(self._seq)}"

    async def hit(self, key: str, window: float, *, now: float) -> int:
        async def remote() -> int:
            ttl = math.ceil(window * 1000) + 1000
            return int(await self._scripts["hit"](keys=[self.k(key)], args=[repr(now - window), repr(now),
                                                                            self._member(now), ttl]))

        return await self._guard(remote, lambda: self.local.hit(key, window, now=now))

    async def count(self, key: str, window: float, *, now: float) -> int:
        async def remote() -> int:
            return int(await self.client.zcount(self.k(key), f"({now - window!r}", repr(now)))

        return await self._guard(remote, lambda: self.local.count(key, window, now=now))

    async def incr(self, key: str, ttl: float, amount: int = 1) -> int:
        async def remote() -> int:
            return int(await self._scripts["incr"](keys=[self.k(key)], args=[amount, math.ceil(ttl * 1000)]))

        return await self._guard(remote, lambda: self.local.incr(key, ttl, amount))

    async def rolling_add(self, key: str, item: str, *, now: float, window: float, max_items: int = 10_000) -> None:
        async def remote() -> None:
            await self._scripts["rolling_add"](
                keys=[self.k(key)],
                args=[repr(now - window), repr(now), f"{self._member(now)}|{item}", math.ceil(window * 1000) + 1000,
                      max_items],
            )

        await self._guard(remote, lambda: self.local.rolling_add(key, item, now=now, window=window,
                                                                 max_items=max_items))

    async def rolling_items(self, key: str, *, now: float, window: float) -> list[tuple[float, str]]:
        async def remote() -> list[tuple[float, str]]:
            rows = await self.client.zrangebyscore(self.k(key), f"({now - window!r}", repr(now), withscores=True)
            # A member not written by rolling_add (no "|") is not an item: skipped, never an error.
            return [(float(score), member.partition("|")[2]) for member, score in rows if "|" in member]

        return await self._guard(remote, lambda: self.local.rolling_items(key, now=now, window=window))

    async def rolling_push(
        self, key: str, item: str, *, now: float, window: float, max_items: int = 10_000
    ) -> list[tuple[float, str]]:
        script = self._scripts.get("rolling_push")
        if script is None:
            script = self._scripts["rolling_push"] = self.client.register_script(_ROLLING_PUSH)

        async def remote() -> list[tuple[float, str]]:
            flat = await script(
                keys=[self.k(key)],
                args=[repr(now - window), repr(now), f"{self._member(now)}|{item}", math.ceil(window * 1000) + 1000,
                      max_items],
            )
            pairs = ((str(flat[i]), flat[i + 1]) for i in range(0, len(flat) - 1, 2))
            return [(float(score), member.partition("|")[2]) for member, score in pairs if "|" in member]

        return await self._guard(remote, lambda: self.local.rolling_push(key, item, now=now, window=window,
                                                                         max_items=max_items))

    async def _log(self, key: str, args: list[Any]) -> tuple[int, list[str]]:
        script = self._scripts.get("log")
        if script is None:
            script = self._scripts["log"] = self.client.register_script(_LOG)
        position, items = await script(keys=[self.k(key)], args=args)
        return int(position), [str(member).split(":", 1)[1] for member in items]

    async def log_append(
        self, key: str, item: str, *, after: int, ttl: float, max_items: int = 10_000
    ) -> tuple[int, list[str]]:
        args: list[Any] = [after, max_items, max(1, math.ceil(ttl * 1000)), item]
        return await self._guard(lambda: self._log(key, args),
                                 lambda: self.local.log_append(key, item, after=after, ttl=ttl, max_items=max_items))

    async def log_read(self, key: str, *, after: int) -> tuple[int, list[str]]:
        return await self._guard(lambda: self._log(key, [after, 0, 0]), lambda: self.local.log_read(key, after=after))

    async def reset(self, *keys: str) -> None:
        if not keys:
            return

        async def remote() -> None:
            await self.client.delete(*(self.k(k) for k in keys))

        await self.local.reset(*keys)
        await self._guard(remote, _nothing)

    # ---- pacing ------------------------------------------------------------------------------
    async def reserve(self, limits: Sequence[RateLimit]) -> float:
        async def remote() -> float:
            args: list[Any] = []
            for lim in limits:
                interval = lim.period * 1000 / max(1.0, lim.limit)
                args += [f"{interval:.3f}", f"{lim.period * 1000 - interval:.3f}"]
            wait_ms = await self._scripts["reserve"](keys=[self.k(lim.key) for lim in limits], args=args)
            return max(0.0, float(wait_ms) / 1000)

        return await self._guard(remote, lambda: self.local.reserve(limits))

    # ---- cache -------------------------------------------------------------------------------
    async def get(self, key: str) -> str | None:
        async def remote() -> str | None:
            value = await self.client.get(self.k(key))
            return None if value is None else str(value)

        return await self._guard(remote, lambda: self.local.get(key))

    async def set(self, key: str, value: str, ttl: float) -> None:
        async def remote() -> None:
            await self.client.set(self.k(key), value, px=max(1, math.ceil(ttl * 1000)))

        await self._guard(remote, lambda: self.local.set(key, value, ttl))

    # ---- invalidation ------------------------------------------------------------------------
    @property
    def channel(self) -> str:
        return self.prefix + "invalidate"

    def on_invalidate(self, topic: str, callback: InvalidateCallback) -> None:
        self.local.on_invalidate(topic, callback)

    async def publish(self, topic: str, payload: str) -> None:
        async def remote() -> None:
            await self.client.publish(self.channel, f"{topic}\t{payload}")

        async def fallback() -> None:
            self.local.deliver(topic, payload)

        await self._guard(remote, fallback)

    def _soon(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def publish_soon(self, topic: str, payload: str) -> None:
        self._soon(self.publish(topic, payload))

    def delete_soon(self, *keys: str) -> None:
        self._soon(self.reset(*keys))

    async def settle(self) -> None:
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _listen(self) -> None:
        """Deliver invalidation messages to local callbacks; resubscribe (and drop caches) after an outage."""
        backoff = 0.2
        missed = False
        while not self._closing:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if missed:
                    log.info("invalidation channel resubscribed; dropping caches once")
                    self.local.deliver_all()
                    missed = False
                backoff = 0.2
                while not self._closing:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    topic, _, payload = str(message["data"]).partition("\t")
                    self.local.deliver(topic, payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                missed = True
                if not self._closing:
                    log.debug("invalidation listener: %s", exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    # ---- mutual exclusion --------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def lock(self, key: str, ttl: float | None = None) -> AsyncIterator[None]:
        """The local lock first (order inside this worker, no Redis round trips while waiting here), then
        the Redis lock, renewed while held. Redis down: the local lock alone (degraded, logged once)."""
        ttl = ttl or self.lock_ttl
        async with self.local.locks(key):
            token = await self._acquire(key, ttl)
            renew = asyncio.create_task(self._renew(key, token, ttl)) if token else None
            try:
                yield
            finally:
                if renew is not None:
                    renew.cancel()
                if token is not None:
                    await self._unlock(self.k("lock:" + key), token)

    async def _unlock(self, name: str, token: str) -> None:
        async def failed() -> str:
            return "failed"

        result = await self._guard(lambda: self._scripts["unlock"](keys=[name], args=[token]), failed)
        if result == "failed":
            # Redis went away while we held it: release it when Redis is back, not after its TTL.
            self._orphans[name] = token

    async def _release_orphans(self) -> None:
        orphans, self._orphans = self._orphans, {}
        for name, token in orphans.items():
            await self._unlock(name, token)

    async def _acquire(self, key: str, ttl: float) -> str | None:
        token = f"{self._me}:{next(self._seq)}"
        name = self.k("lock:" + key)
        px = math.ceil(ttl * 1000)
        delay = 0.002
        deadline = time.monotonic() + self.LOCK_WAIT
        degraded: list[bool] = []

        async def remote() -> bool:
            return bool(await self.client.set(name, token, nx=True, px=px))

        async def fallback() -> bool:
            degraded.append(True)
            # The SET may have reached Redis before the connection broke: release it once Redis is back.
            self._orphans.setdefault(name, token)
            return True

        while True:
            if await self._guard(remote, fallback):
                return None if degraded else token
            if time.monotonic() > deadline:
                raise LockTimeout(key)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _renew(self, key: str, token: str, ttl: float) -> None:
        name = self.k("lock:" + key)
        while True:
            await asyncio.sleep(ttl / 3)
            ok = await self._guard(
                lambda: self._scripts["renew"](keys=[name], args=[token, math.ceil(ttl * 1000)]), _none)
            if ok == 0:
                log.warning("lost the lock on %s while holding it (held longer than its TTL?)", key)
                return

    # ---- leases ------------------------------------------------------------------------------
    async def lease(self, name: str, token: str, ttl: float) -> bool | None:
        async def remote() -> bool | None:
            return bool(await self._scripts["lease"](keys=[self.k("lease:" + name)],
                                                     args=[token, math.ceil(ttl * 1000)]))

        return await self._guard(remote, _none)

    async def release_lease(self, name: str, token: str) -> None:
        await self._guard(lambda: self._scripts["unlock"](keys=[self.k("lease:" + name)], args=[token]), _nothing)


async def _nothing() -> None:
    return None


async def _none() -> Any:
    return None


# ---------------------------------------------------------------------------------------------------
class SharedChatConfig(ChatConfigService):
    """ChatConfigService whose cache is dropped in every worker when one of them changes a chat."""

    TOPIC = "chat_config"

    def __init__(
        self,
        settings: Settings,
        plugins: Mapping[str, Plugin],
        db: async_sessionmaker[AsyncSession],
        clock: Clock,
        shared: SharedState,
    ) -> None:
        super().__init__(settings, plugins, db, clock)
        self._shared = shared
        shared.on_invalidate(self.TOPIC, self._remote_invalidate)

    def _remote_invalidate(self, payload: str) -> None:
        ChatConfigService.invalidate(self, None if payload in (ALL, "") else int(payload))

    def invalidate(self, chat_id: int | None = None) -> None:
        super().invalidate(chat_id)
        self._shared.publish_soon(self.TOPIC, ALL if chat_id is None else str(chat_id))


def create_shared(settings: Settings) -> SharedState:
    """``RedisShared`` when ``[redis] url`` is set, else ``MemoryShared``."""
    url = settings.redis.url
    if not url:
        return MemoryShared()
    return RedisShared(url, prefix=settings.redis.prefix, workers=settings.webhook.workers,
                       lock_ttl=settings.redis.lock_ttl)
