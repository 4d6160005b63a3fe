"""Pure rules: the streak ladder, the lucky draw, levels and local-calendar periods. No I/O."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from plugins.checkin.config import CheckinConfig, Level


@dataclass(frozen=True)
class DailyAward:
    base: int  # base + streak step, capped
    milestone: int  # bonus for reaching an exact streak length
    lucky: int  # the lucky bonus (0: no luck today)
    badge: str | None  # badge of the milestone reached today

    @property
    def total(self) -> int:
        return self.base + self.milestone + self.lucky


def ladder_points(cfg: CheckinConfig, streak: int) -> int:
    """Points of the streak ladder for the ``streak``-th consecutive day (1-based)."""
    points = cfg.base_points + cfg.streak_step * max(0, streak - 1)
    if cfg.max_daily_points:
        points = min(points, cfg.max_daily_points)
    return points


def lucky_roll(cfg: CheckinConfig, chat_id: int, user_id: int, day: date) -> int:
    """The lucky bonus for this member on this day: deterministic, so a redelivery rolls the same."""
    if cfg.lucky_chance <= 0 or cfg.lucky_points <= 0:
        return 0
    seed = hashlib.sha256(f"lucky:{chat_id}:{user_id}:{day.isoformat()}".encode()).digest()
    rng = random.Random(int.from_bytes(seed[:8], "big"))
    return cfg.lucky_points if rng.random() < cfg.lucky_chance else 0


def daily_award(cfg: CheckinConfig, chat_id: int, user_id: int, day: date, streak: int) -> DailyAward:
    milestone = cfg.milestones.get(streak)
    return DailyAward(
        base=ladder_points(cfg, streak),
        milestone=milestone.points if milestone else 0,
        lucky=lucky_roll(cfg, chat_id, user_id, day),
        badge=milestone.badge if milestone else None,
    )


@dataclass(frozen=True)
class LevelInfo:
    index: int  # 0-based
    level: Level
    next: Level | None
    points: int  # earned points the level is computed from

    @property
    def to_next(self) -> int | None:
        return None if self.next is None else max(0, self.next.min_points - self.points)

    @property
    def progress(self) -> float:
        """0..1 within the current level (1 at the top level)."""
        if self.next is None:
            return 1.0
        span = self.next.min_points - self.level.min_points
        return min(1.0, max(0.0, (self.points - self.level.min_points) / span))


def level_for(levels: list[Level], points: int) -> LevelInfo:
    index = 0
    for i, lv in enumerate(levels):
        if points >= lv.min_points:
            index = i
    nxt = levels[index + 1] if index + 1 < len(levels) else None
    return LevelInfo(index, levels[index], nxt, points)


def progress_bar(fraction: float, width: int = 10) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "▰" * filled + "▱" * (width - filled)


# ---- local calendar ---------------------------------------------------------------------------
def local_day(now: datetime, tz: ZoneInfo) -> date:
    return now.astimezone(tz).date()


def day_start_utc(day: date, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def month_start(day: date) -> date:
    return day.replace(day=1)


def period_start(period: str, now: datetime, tz: ZoneInfo) -> datetime | None:
    """UTC start of the local "week" (Monday) / "month" containing ``now``; None for "all"."""
    today = local_day(now, tz)
    if period == "week":
        return day_start_utc(week_start(today), tz)
    if period == "month":
        return day_start_utc(month_start(today), tz)
    return None
