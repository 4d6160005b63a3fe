"""Per-chat signal: a rolling window of analysed messages, the chat's baseline, the crisis score and
the level policy with hysteresis. Pure logic (no I/O, no aiogram): the runtime feeds it and applies
what it decides; the corpus tests drive it directly with a fake clock.

Score (see README, "How the score works"):

- each member contributes ``min(member_cap, sum over categories of the member's strongest hit in the
  category + negative_voice if the member posted a negative message)``: a member who repeats
  themselves (or floods identical messages, which are dropped as duplicates) is one voice;
- the sum is amplified by the message-rate surge over the chat's baseline rate (up to
  ``1 + surge_weight``) and by the negative share above the chat's baseline share (up to
  ``1 + negative_share_weight``);
- the chat's calm score (an EWMA, capped at ``baseline_score_cap``) is subtracted.

Levels (1 highest) need both a score and a number of distinct risk voices to go up; they go down one
step at a time, only below the lower ``*_down`` score and after ``min_dwell`` at the current level.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass, field

MAX_RECORDS = 5000  # per chat window: a flood cannot grow memory without bound
TREND_BUCKET = 600.0  # seconds per trend bucket (6 buckets = the last hour)
TREND_BUCKETS = 6


@dataclass(frozen=True)
class SignalParams:
    window: float = 600.0
    member_cap: float = 6.0
    negative_voice: float = 0.5
    min_member_risk: float = 0.5
    surge_weight: float = 0.5
    negative_share_weight: float = 0.5
    baseline_tau: float = 6 * 3600.0
    rate_floor: float = 2.0  # messages per minute
    baseline_score_cap: float = 3.0
    up: tuple[float, float, float] = (40.0, 15.0, 6.0)  # level 1, 2, 3
    members: tuple[int, int, int] = (8, 3, 2)
    down: tuple[float, float, float] = (22.0, 8.0, 3.0)
    min_dwell: float = 600.0
    level1_severe: int = 3
    severe: frozenset[str] = frozenset({"safety", "legal", "fraud", "emergency"})


@dataclass(slots=True)
class Record:
    at: float
    user_id: int
    name: str
    message_id: int
    snippet: str
    sentiment: float
    negative: bool
    weights: dict[str, float]
    keywords: tuple[str, ...]
    duplicate: bool = False

    @property
    def risk(self) -> float:
        return sum(self.weights.values())


@dataclass
class Baseline:
    rate: float = 0.0  # messages per minute in calm periods
    negative_share: float = 0.0
    score: float = 0.0
    samples: int = 0
    updated_at: float | None = None


@dataclass
class Snapshot:
    at: float
    score: float
    raw: float
    messages: int  # distinct (non-duplicate) messages in the window
    negative: int
    members: int  # distinct members who spoke
    risk_members: int
    severe_members: int  # risk members with a hit in a severe category
    negative_members: int
    rate: float  # messages per minute
    baseline_rate: float
    negative_share: float
    surge: float
    by_category: dict[str, int]  # category -> members with a hit in it
    keywords: list[tuple[str, int]]
    evidence: list[Record]
    voices: list[tuple[int, str, float]]  # (user_id, name, contribution), strongest first

    def level_for(self, p: SignalParams) -> int | None:
        """The most severe level whose up-thresholds this snapshot meets (None: none)."""
        for index, level in enumerate((1, 2, 3)):
            if self.score >= p.up[index] and self.risk_members >= p.members[index]:
                if level == 1 and self.severe_members < p.level1_severe:
                    continue
                return level
        return None


@dataclass
class ChatSignal:
    """The rolling window of one chat plus its baseline and trend buckets.

    Counters are kept incrementally as messages enter and leave the window, so a snapshot only walks
    the (few) records with risk words, not the whole window.
    """

    chat_id: int
    title: str = ""
    username: str | None = None
    records: deque[Record] = field(default_factory=deque)
    # Non-duplicate records with a risk weight, oldest first (a subsequence of ``records``).
    risky: deque[Record] = field(default_factory=deque)
    seen: dict[tuple[int, int], float] = field(default_factory=dict)  # (user, fingerprint) -> last at
    message_ids: set[int] = field(default_factory=set)
    messages: int = 0  # non-duplicate messages in the window
    negative: int = 0
    speakers: Counter[int] = field(default_factory=Counter)
    negative_speakers: Counter[int] = field(default_factory=Counter)
    started_at: float | None = None
    last_eval: float = -math.inf
    baseline: Baseline = field(default_factory=Baseline)
    baseline_dirty: bool = False
    # Trend: bucket start -> [messages, negative, risk]
    trend: dict[int, list[int]] = field(default_factory=dict)

    @property
    def risk_records(self) -> int:
        """Risky records in the window: without any, no level can open (the observer then skips the
        evaluation; the periodic tick still learns the baseline)."""
        return len(self.risky)

    # ---- feeding -------------------------------------------------------------------------------
    def add(self, record: Record, fingerprint: int) -> bool:
        """Add a message; False when it was already seen (a redelivered update)."""
        if record.message_id in self.message_ids:
            return False
        if self.started_at is None:
            self.started_at = record.at
        key = (record.user_id, fingerprint)
        if fingerprint and key in self.seen:
            record.duplicate = True
        if fingerprint:
            self.seen[key] = record.at
        self.records.append(record)
        self.message_ids.add(record.message_id)
        if not record.duplicate:
            self.messages += 1
            self.speakers[record.user_id] += 1
            if record.negative:
                self.negative += 1
                self.negative_speakers[record.user_id] += 1
            if record.weights:
                self.risky.append(record)
        if len(self.records) > MAX_RECORDS:
            self._drop(self.records.popleft())
        bucket = int(record.at // TREND_BUCKET)
        row = self.trend.get(bucket)
        if row is None:
            row = self.trend[bucket] = [0, 0, 0]
            for stale in [b for b in self.trend if b <= bucket - TREND_BUCKETS]:
                del self.trend[stale]
        row[0] += 1
        row[1] += record.negative
        row[2] += bool(record.weights)
        return True

    def prune(self, now: float, window: float) -> None:
        cutoff = now - window
        records = self.records
        while records and records[0].at < cutoff:
            self._drop(records.popleft())
        if len(self.seen) > 2 * len(records) + 64:
            self.seen = {k: t for k, t in self.seen.items() if t >= cutoff}

    @staticmethod
    def _decrement(counter: Counter[int], key: int) -> None:
        n = counter[key] - 1
        if n > 0:
            counter[key] = n
        else:
            del counter[key]

    def _drop(self, old: Record) -> None:
        self.message_ids.discard(old.message_id)
        if old.duplicate:
            return
        self.messages -= 1
        self._decrement(self.speakers, old.user_id)
        if old.negative:
            self.negative -= 1
            self._decrement(self.negative_speakers, old.user_id)
        if old.weights:
            # Records leave in arrival order, so the oldest risky record is this one.
            if self.risky and self.risky[0] is old:
                self.risky.popleft()
            else:  # pragma: no cover - defensive
                self.risky.remove(old)

    def idle(self, now: float, window: float) -> bool:
        self.prune(now, window)
        return not self.records

    def trend_rows(self, now: float) -> list[tuple[int, int, int]]:
        """(messages, negative, risk) per 10-minute bucket over the last hour, oldest first."""
        current = int(now // TREND_BUCKET)
        return [tuple(self.trend.get(b, (0, 0, 0))) for b in range(current - TREND_BUCKETS + 1, current + 1)]  # type: ignore[misc]

    # ---- scoring -------------------------------------------------------------------------------
    def snapshot(self, now: float, p: SignalParams, evidence: int = 5) -> Snapshot:
        self.prune(now, p.window)
        per_member: dict[int, dict[str, float]] = {}
        names: dict[int, str] = {}
        best: dict[int, Record] = {}
        cat_members: dict[str, set[int]] = {}
        keywords: Counter[str] = Counter()
        for r in self.risky:
            uid = r.user_id
            names[uid] = r.name
            cats = per_member.get(uid)
            if cats is None:
                cats = per_member[uid] = {}
            for cat, w in r.weights.items():
                if w > cats.get(cat, 0.0):
                    cats[cat] = w
                cat_members.setdefault(cat, set()).add(uid)
            keywords.update(r.keywords)
            prev = best.get(uid)
            if prev is None or (r.risk, -r.sentiment) > (prev.risk, -prev.sentiment):
                best[uid] = r
        negative_speakers = self.negative_speakers
        voices: list[tuple[int, str, float]] = []
        raw = 0.0
        risk_members = severe_members = negative_with_risk = 0
        for uid, cats in per_member.items():
            risk = sum(cats.values())
            negative = uid in negative_speakers
            negative_with_risk += negative
            contribution = min(p.member_cap, risk + (p.negative_voice if negative else 0.0))
            raw += contribution
            if risk >= p.min_member_risk:
                risk_members += 1
                if any(w >= p.min_member_risk for c, w in cats.items() if c in p.severe):
                    severe_members += 1
                voices.append((uid, names.get(uid, str(uid)), contribution))
        # Members with negative messages and no risk word add a negative voice each.
        raw += min(p.member_cap, p.negative_voice) * (len(negative_speakers) - negative_with_risk)
        voices.sort(key=lambda v: -v[2])
        messages = self.messages
        # Rate over the observed part of the window (a chat seen for 2 minutes is not diluted by 10).
        span = p.window if self.started_at is None else min(p.window, max(60.0, now - self.started_at))
        rate = messages / (span / 60.0)
        base_rate = max(p.rate_floor, self.baseline.rate)
        ratio = rate / base_rate
        surge = 1.0 + p.surge_weight * min(1.0, max(0.0, (ratio - 1.0) / 3.0))
        share = self.negative / messages if messages else 0.0
        neg_mult = 1.0 + p.negative_share_weight * min(1.0, max(0.0, share - self.baseline.negative_share))
        score = max(0.0, raw * surge * neg_mult - min(self.baseline.score, p.baseline_score_cap))
        top = sorted(best.values(), key=lambda r: (-r.risk, r.sentiment, r.at))[:evidence]
        return Snapshot(
            at=now, score=round(score, 3), raw=round(raw, 3), messages=messages, negative=self.negative,
            members=len(self.speakers), risk_members=risk_members, severe_members=severe_members,
            negative_members=len(negative_speakers), rate=round(rate, 3), baseline_rate=round(base_rate, 3),
            negative_share=round(share, 3), surge=round(surge, 3),
            by_category={c: len(m) for c, m in cat_members.items()}, keywords=keywords.most_common(10),
            evidence=top, voices=voices,
        )

    def learn(self, snap: Snapshot, now: float, p: SignalParams) -> None:
        """Fold a calm snapshot into the baseline (EWMA with time constant ``baseline_tau``)."""
        b = self.baseline
        if self.started_at is None or now - self.started_at < min(p.window, 120.0):
            return  # too little history for a rate
        if b.updated_at is None or b.samples == 0:
            b.rate, b.negative_share, b.score = snap.rate, snap.negative_share, snap.raw
        else:
            dt = max(0.0, now - b.updated_at)
            alpha = 1.0 - math.exp(-dt / p.baseline_tau)
            b.rate += alpha * (snap.rate - b.rate)
            b.negative_share += alpha * (snap.negative_share - b.negative_share)
            b.score += alpha * (snap.raw - b.score)
        b.samples += 1
        b.updated_at = now
        self.baseline_dirty = True


@dataclass
class LevelState:
    """The level side of an open incident (the runtime mirrors it to the database)."""

    level: int
    since: float
    floor: int | None = None  # set by a manual escalation: never goes less severe than this
    calm_since: float | None = None
    peak: int = 3

    def moved(self, level: int, now: float) -> None:
        self.level = level
        self.since = now
        self.peak = min(self.peak, level)
        self.calm_since = None


@dataclass(frozen=True)
class Transition:
    kind: str  # "open" | "change" | "close" | "none"
    level: int | None = None
    old: int | None = None


NOTHING = Transition("none")


def next_level(state: LevelState | None, snap: Snapshot, now: float, p: SignalParams,
               instant: int | None = None) -> int | None:
    """The level the chat should be at; None only when no incident is open and none should open.

    Up: at once, to the most severe level whose up-thresholds are met (or ``instant``).
    Down: one step, only after ``min_dwell`` at the current level and when the score is below the
    current level's ``down`` threshold; never below level 3 (closing is the runtime's call, after a
    calm spell) and never less severe than a manual escalation's floor.
    """
    up = snap.level_for(p)
    if instant is not None:
        up = instant if up is None else min(up, instant)
    if state is None:
        return up
    current = state.level
    if up is not None and up < current:
        return up
    target = current
    if current < 3 and snap.score < p.down[current - 1] and now - state.since >= p.min_dwell:
        target = current + 1
    if state.floor is not None:
        target = min(target, state.floor)
    return target


def is_calm(snap: Snapshot, p: SignalParams) -> bool:
    """Below level 3's down threshold: an open incident at level 3 starts counting towards closing."""
    return snap.score < p.down[2]


def step(state: LevelState | None, snap: Snapshot, now: float, p: SignalParams, *, instant: int | None = None,
         auto_close: float = 0.0) -> Transition:
    """What an evaluation does: open, change level, close (after ``auto_close`` seconds of calm at level 3;
    0 = never) or nothing. Tracks the calm spell in ``state.calm_since``; the caller applies the rest
    (``state.moved`` after a change)."""
    target = next_level(state, snap, now, p, instant)
    if state is None:
        return Transition("open", target) if target is not None else NOTHING
    assert target is not None
    if target != state.level:
        return Transition("change", target, state.level)
    if state.level == 3 and state.floor is None and is_calm(snap, p):
        if state.calm_since is None:
            state.calm_since = now
        elif auto_close and now - state.calm_since >= auto_close:
            return Transition("close", None, state.level)
    else:
        state.calm_since = None
    return NOTHING
