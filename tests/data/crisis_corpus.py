"""Loader and replayer of tests/data/crisis_corpus.txt (see the header of that file for its format).

``replay`` drives the crisis plugin's own analysis, window and level step (no database, no network)
with a simulated clock: messages at their offsets, the plugin's periodic tick every ``tick`` seconds,
and evaluations at most every ``eval_seconds`` per chat, exactly as the runtime schedules them.
Used by the corpus tests and by bench/crisis_bench.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugins.crisis.config import CrisisConfig
from plugins.crisis.lexicon import analyze
from plugins.crisis.runtime import build_profile
from plugins.crisis.signal import ChatSignal, LevelState, Record, step

CORPUS = Path(__file__).with_name("crisis_corpus.txt")
START = 1_795_000_000.0


@dataclass
class Episode:
    name: str
    expect: str  # none | 3 | <=3 | 2 | 1
    note: str
    messages: list[tuple[float, str, str]] = field(default_factory=list)  # (delta seconds, member, text)

    @property
    def duration(self) -> float:
        return sum(d for d, _m, _t in self.messages)


def load(path: Path = CORPUS) -> list[Episode]:
    episodes: list[Episode] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or (line.startswith("#") and not line.startswith("##")):
            continue
        if line.startswith("##"):
            parts = [p.strip() for p in line[2:].split("|")]
            if len(parts) < 2 or not parts[1].startswith("expect="):
                raise ValueError(f"{path.name}:{number}: bad episode header")
            episodes.append(Episode(parts[0], parts[1].removeprefix("expect="), parts[2] if len(parts) > 2 else ""))
            continue
        if not line.startswith("+") or not episodes:
            raise ValueError(f"{path.name}:{number}: expected '+<seconds> <member> <text>'")
        delta, member, text = line[1:].split(" ", 2)
        episodes[-1].messages.append((float(delta), member, text))
    return episodes


@dataclass
class Replay:
    max_level: int | None = None  # 1 highest; None: no incident
    reached: dict[int, float] = field(default_factory=dict)  # level -> seconds from the episode start
    transitions: list[tuple[float, str, int | None]] = field(default_factory=list)
    last_message_at: float = 0.0
    evaluations: int = 0


def replay(
    episode: Episode, nlp: Any, cfg: CrisisConfig | None = None, *, tail: float = 60.0, tick: float = 10.0,
    chat_id: int = -100123, admins: frozenset[str] = frozenset({"团长"}),
) -> Replay:
    cfg = cfg or CrisisConfig()
    prof = build_profile(cfg, nlp.normalizer.normalize)
    p = prof.signal
    sig = ChatSignal(chat_id)
    state: LevelState | None = None
    out = Replay()
    users: dict[str, int] = {}
    now = START
    next_tick = START + tick

    def evaluate(at: float, instant: int | None = None) -> None:
        nonlocal state
        sig.last_eval = at
        out.evaluations += 1
        snap = sig.snapshot(at, p, cfg.evidence_messages)
        move = step(state, snap, at, p, instant=instant, auto_close=cfg.auto_close_minutes * 60)
        if move.kind == "open" and move.level is not None:
            state = LevelState(level=move.level, since=at, peak=move.level)
        elif move.kind == "change" and state is not None and move.level is not None:
            state.moved(move.level, at)
        elif move.kind == "close":
            state = None
        elif state is None:
            sig.learn(snap, at, p)
        if move.kind != "none":
            out.transitions.append((at - START, move.kind, move.level))
        if state is not None:
            out.max_level = state.level if out.max_level is None else min(out.max_level, state.level)
            out.reached.setdefault(state.level, at - START)

    def ticks_until(t: float) -> None:
        nonlocal next_tick
        while next_tick <= t:
            active = state is not None or not sig.idle(next_tick, p.window)
            if active and next_tick - sig.last_eval >= cfg.eval_seconds:
                evaluate(next_tick)
            next_tick += tick

    for message_id, (delta, member, text) in enumerate(episode.messages, 1):
        now += delta
        ticks_until(now)
        uid = users.setdefault(member, 10_000 + len(users))
        a = analyze(nlp, prof.lexicon, prof.analysis, text)
        if member in admins:  # the runtime ignores admins' risk words (ignore_admins)
            a.weights, a.keywords, a.instant, a.negative = {}, (), False, False
        record = Record(at=now, user_id=uid, name=member, message_id=message_id, snippet=text,
                        sentiment=a.sentiment, negative=a.negative, weights=a.weights, keywords=a.keywords)
        if not sig.add(record, a.fingerprint):
            continue
        if a.instant:
            evaluate(now, cfg.instant_level)
        elif record.weights and not record.duplicate and now - sig.last_eval >= cfg.eval_seconds:
            evaluate(now)
    out.last_message_at = now - START
    ticks_until(now + tail)
    return out


def meets(expect: str, level: int | None) -> bool:
    if expect == "none":
        return level is None
    if expect == "<=3":
        return level is None or level >= 3
    return level == int(expect)
