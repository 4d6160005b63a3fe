"""Several workers: how the crisis runtime shares a chat's state through ``app.shared``.

One process needs none of this (``CrisisRuntime.sync`` is None): its ``ChatSignal`` sees every message.
With N webhook workers each sees about 1/N of a chat's messages, so:

- **The window** is an ordered log per chat (``log_append``): the observer appends each analysed
  message and, in the same round trip, gets the messages the other workers appended since it last
  read. Every worker's ``ChatSignal`` is thus a replica of one window holding every worker's messages
  in one order (the same duplicates, the same counters), and the score is the one a single process
  would compute, whichever worker computes it. A message without risk words travels as five numbers;
  one with risk words also carries what the evidence and the voices need (name, snippet, weights).
- **The chat's state** (``crisis:state:<chat>``, a small JSON value read and written under the chat's
  shared lock by every evaluation): when the chat was last evaluated (the ``eval_seconds`` throttle
  holds across workers), the learned baseline, the open incident's id and calm-since time, and a
  version bumped by every change of the incident: a worker whose copy is older re-reads the incident
  from the database (an invalidation message also tells the observers at once).
- **The active chats** (``crisis:active``, a rolling window of chat ids each worker adds a chat to at
  most once a minute): the leader's tick (de-escalation, closing, baseline learning) also evaluates
  chats whose messages all went to other workers.

Redis unreachable: ``app.shared`` falls back to the worker's memory (its own messages only, as a
single process that sees part of the chat); a missing or garbled value counts as absent.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from plugins.crisis.signal import MAX_RECORDS, ChatSignal, Record

if TYPE_CHECKING:
    from bot.shared import SharedState

ACTIVE_KEY = "crisis:active"
REGISTER_EVERY = 60.0  # seconds between two registrations of a chat by one worker
ACTIVE_WINDOW = 900.0  # the active-chats window (a new leader reads it whole)
LOG_SLACK = 120.0  # the log outlives the chat's window by this much after its last message
STATE_TTL = 7 * 86_400.0  # the chat state outlives a quiet week (the baseline is also in the database)
TOPIC = "crisis"  # invalidation: a chat's open incident changed


def log_key(chat_id: int) -> str:
    return f"crisis:log:{chat_id}"


def state_key(chat_id: int) -> str:
    return f"crisis:state:{chat_id}"


def encode_record(record: Record, fingerprint: int) -> str:
    row: list[Any] = [record.at, record.user_id, record.message_id, int(record.negative), fingerprint]
    if record.weights:
        row += [round(record.sentiment, 4), record.name, record.snippet, record.weights, list(record.keywords)]
    return json.dumps(row, ensure_ascii=False, separators=(",", ":"))


def decode_record(item: str) -> tuple[Record, int] | None:
    """(record, fingerprint) of a log item; None when it is garbled."""
    try:
        row = json.loads(item)
        at, user_id, message_id, negative, fingerprint = float(row[0]), int(row[1]), int(row[2]), bool(row[3]), \
            int(row[4])
        if len(row) > 5:
            sentiment, name, snippet = float(row[5]), str(row[6]), str(row[7])
            weights = {str(c): float(w) for c, w in row[8].items()}
            keywords = tuple(str(k) for k in row[9])
        else:
            sentiment, name, snippet, weights, keywords = 0.0, str(user_id), "", {}, ()
    except (ValueError, TypeError, IndexError, AttributeError, KeyError):
        return None
    if not math.isfinite(at):
        return None
    record = Record(at=at, user_id=user_id, name=name, message_id=message_id, snippet=snippet, sentiment=sentiment,
                    negative=negative, weights=weights, keywords=keywords)
    return record, fingerprint


@dataclass
class ChatState:
    """What every worker must agree on about a chat besides its window."""

    version: int = 0  # of the open incident (0: never changed through the shared state)
    last_eval: float | None = None
    baseline: tuple[float, float, float, int, float | None] | None = None  # rate, share, score, samples, at
    incident: int | None = None
    calm_since: float | None = None

    def encode(self) -> str:
        return json.dumps({"v": self.version, "e": self.last_eval, "b": self.baseline, "i": self.incident,
                           "c": self.calm_since}, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: str | None) -> ChatState | None:
        if raw is None:
            return None
        try:
            data = json.loads(raw)
            b = data.get("b")
            baseline = None if b is None else (float(b[0]), float(b[1]), float(b[2]), int(b[3]),
                                               None if b[4] is None else float(b[4]))
            return cls(version=int(data["v"]), last_eval=_opt_float(data.get("e")), baseline=baseline,
                       incident=None if data.get("i") is None else int(data["i"]),
                       calm_since=_opt_float(data.get("c")))
        except (ValueError, TypeError, IndexError, AttributeError, KeyError):
            return None


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number


class CrisisSync:
    """The per-worker side: log positions read per chat, incident versions, registrations."""

    def __init__(self, shared: SharedState) -> None:
        self.shared = shared
        self._read: dict[int, tuple[int, float]] = {}  # chat -> (log position read up to, when)
        self._publishing: set[tuple[int, int]] = set()  # (chat, message id) being appended by this worker
        self.versions: dict[int, int] = {}  # chat -> incident version this worker's copy reflects
        self._registered: dict[int, float] = {}
        self._active_read_at: float | None = None

    # ---- the window ------------------------------------------------------------------------------
    def _after(self, chat_id: int, now: float, window: float) -> int:
        position, at = self._read.get(chat_id, (0, -math.inf))
        # Not read for longer than the log lives: it may have expired and started again, read it all.
        return position if now - at <= window + LOG_SLACK else 0

    def _apply(self, sig: ChatSignal, items: list[str], now: float, window: float) -> None:
        for item in items:
            decoded = decode_record(item)
            if decoded is None:
                continue
            record, fingerprint = decoded
            if now - record.at > window or (sig.chat_id, record.message_id) in self._publishing:
                continue  # history, or our own message that its observer is about to add
            sig.add(record, fingerprint)

    async def publish(self, sig: ChatSignal, record: Record, fingerprint: int, now: float, window: float) -> None:
        """Append a message this worker observed; add the other workers' messages before it to ``sig``."""
        chat_id = sig.chat_id
        key = (chat_id, record.message_id)
        self._publishing.add(key)
        try:
            position, items = await self.shared.log_append(
                log_key(chat_id), encode_record(record, fingerprint), after=self._after(chat_id, now, window),
                ttl=window + LOG_SLACK, max_items=MAX_RECORDS)
        finally:
            self._publishing.discard(key)
        self._apply(sig, items, now, window)
        self._read[chat_id] = (position, now)

    async def catch_up(self, sig: ChatSignal, now: float, window: float) -> None:
        """Add the messages the other workers appended since this worker last read the chat's log."""
        chat_id = sig.chat_id
        position, items = await self.shared.log_read(log_key(chat_id), after=self._after(chat_id, now, window))
        self._apply(sig, items, now, window)
        self._read[chat_id] = (position, now)

    # ---- the chat's state ------------------------------------------------------------------------
    async def read_state(self, chat_id: int) -> ChatState | None:
        return ChatState.decode(await self.shared.get(state_key(chat_id)))

    async def write_state(self, chat_id: int, state: ChatState) -> None:
        await self.shared.set(state_key(chat_id), state.encode(), STATE_TTL)

    # ---- active chats ----------------------------------------------------------------------------
    async def register(self, chat_id: int, now: float) -> None:
        """Tell the leader this chat is active (at most once a minute per chat and worker)."""
        last = self._registered.get(chat_id)
        if last is not None and now - last < REGISTER_EVERY:
            return
        self._registered[chat_id] = now
        if len(self._registered) > 50_000:  # forget chats quiet for a while
            self._registered = {c: t for c, t in self._registered.items() if now - t < REGISTER_EVERY}
        await self.shared.rolling_add(ACTIVE_KEY, str(chat_id), now=now, window=ACTIVE_WINDOW, max_items=100_000)

    async def active_chats(self, now: float) -> set[int]:
        """Chats registered since the last call (the whole window the first time)."""
        since = self._active_read_at
        span = ACTIVE_WINDOW if since is None else min(ACTIVE_WINDOW, now - since + 2 * REGISTER_EVERY)
        self._active_read_at = now
        chats: set[int] = set()
        for _at, item in await self.shared.rolling_items(ACTIVE_KEY, now=now, window=max(span, 1.0)):
            try:
                chats.add(int(item))
            except ValueError:
                continue
        return chats
