"""Config of the polls (contests) plugin: ``[plugins.polls]`` and per-chat overrides."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from bot.plugin import PluginConfig
from plugins.polls.parsing import parse_duration


class PollsConfig(PluginConfig):
    # Who may start polls, PKs, lotteries and quizzes: "admins" (default) or "members" (everyone).
    who_can_start: Literal["admins", "members"] = "admins"
    # Open contests at the same time in one chat.
    max_open_per_chat: int = Field(default=10, ge=1, le=100)
    # Shortest and longest allowed duration of any contest.
    min_duration_seconds: int = Field(default=60, ge=10, le=86_400)
    max_duration_days: int = Field(default=30, ge=1, le=365)
    # Used when the command gives no duration.
    poll_default_duration: str = "1d"
    pk_default_duration: str = "1h"
    quiz_default_duration: str = "10m"
    # Native polls: most options allowed (Telegram allows up to 12; the issue asks for 10).
    max_poll_options: int = Field(default=10, ge=2, le=12)
    # Native polls are public (voters visible, so quiz answers can be credited) unless "anon"/"匿名".
    poll_anonymous_default: bool = False
    # PK: points for every voter, plus a bonus for each voter of the winning side (0 = none).
    pk_participation_points: int = Field(default=1, ge=0, le=100_000)
    pk_win_bonus: int = Field(default=5, ge=0, le=100_000)
    # PK: count tagged arguments (#A/#B, [正方]/[反方]) and the replies they get.
    pk_arguments: bool = True
    # Quiz: points when the command names none, and the most a quiz may award.
    quiz_default_points: int = Field(default=10, ge=0, le=100_000)
    quiz_max_points: int = Field(default=1000, ge=0, le=1_000_000)
    # Lottery: leave group admins out of the draw; most winners per draw.
    lottery_exclude_admins: bool = True
    lottery_max_winners: int = Field(default=100, ge=1, le=1000)
    # Live-count messages (PK, lottery) are edited at most once per this many seconds.
    edit_interval_seconds: float = Field(default=3.0, ge=1.0, le=60.0)

    @field_validator("poll_default_duration", "pk_default_duration", "quiz_default_duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value) is None:
            raise ValueError(f"not a duration: {value!r} (examples: 30m, 2h, 1d)")
        return value
