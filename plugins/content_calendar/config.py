"""``[plugins.content_calendar]``: every key has a default (see config.example.toml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.plugin import PluginConfig
from plugins.content_calendar.festivals import FestivalCalendar, FestivalError
from plugins.content_calendar.when import WhenError, parse_clock

DEFAULT_TAGS = ["marketing", "knowledge", "greeting", "ugc", "countdown", "notice", "event"]


class ContentCalendarConfig(PluginConfig):
    # The calendar file ops keep in git (TOML); loaded at start and by /schedule reload. Empty: none.
    calendar_file: str = ""
    # A missed occurrence (downtime) is still posted when at most this late; older ones are skipped.
    grace_minutes: int = Field(default=30, ge=0, le=24 * 60)
    # `peak` entries post at the chat's most active hour; this time when there is no (or too little) data.
    peak_default: str = "20:00"
    # Activity window (days) and minimum number of messages for the hour-of-day histogram to be trusted.
    peak_days: int = Field(default=28, ge=1, le=365)
    peak_min_messages: int = Field(default=50, ge=0)
    # Fallback SQL for the histogram when no plugin answers the ActivityHistogramRequested event; must
    # return rows (hour 0-23 in UTC, count) and may use :chat_id and :since. Empty: no fallback query.
    peak_query: str = ""
    # The time `早上` (the morning of a festival) stands for.
    morning_time: str = "08:00"
    # Content tags an entry may carry (typos are rejected at load).
    known_tags: list[str] = Field(default_factory=lambda: list(DEFAULT_TAGS))
    # Extra festivals: name = "MM-DD" (every year), "农历MM-DD" (lunar) or "YYYY-MM-DD" (once).
    festivals: dict[str, str] = Field(default_factory=dict)
    # Crisis pause: entries with any of these tags are held while an incident of these levels is open.
    hold_tags: list[str] = Field(default_factory=lambda: ["marketing"])
    hold_levels: list[int] = Field(default_factory=lambda: [1, 2])
    # What happens to held posts when the incident closes, per tag ("drop" or "post"); others: release_default.
    release: dict[str, Literal["drop", "post"]] = Field(default_factory=dict)
    release_default: Literal["drop", "post"] = "drop"
    # Held posts older than this are dropped on release even when their tag says "post".
    release_max_age_hours: float = Field(default=12, ge=0, le=24 * 14)
    # Send attempts for one occurrence (transient errors: flood control, network) before it is failed.
    max_attempts: int = Field(default=3, ge=1, le=5)
    # How many members {top_members} and {streak_leaders} list.
    top_count: int = Field(default=5, ge=1, le=20)
    # Tell the log chat about held, skipped and failed posts and about calendar file errors.
    notify_log_chat: bool = True

    @field_validator("peak_default", "morning_time")
    @classmethod
    def _clock(cls, value: str) -> str:
        try:
            t = parse_clock(value)
        except WhenError as exc:
            raise ValueError(str(exc)) from None
        return f"{t.hour:02d}:{t.minute:02d}"

    @field_validator("festivals")
    @classmethod
    def _festivals(cls, value: dict[str, str]) -> dict[str, str]:
        try:
            FestivalCalendar(value)
        except FestivalError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("hold_levels")
    @classmethod
    def _levels(cls, value: list[int]) -> list[int]:
        if any(level not in (1, 2, 3) for level in value):
            raise ValueError("crisis levels are 1 (highest), 2 and 3")
        return value

    @model_validator(mode="after")
    def _release_tags(self) -> ContentCalendarConfig:
        for key in (*self.hold_tags, *self.release):
            if key not in self.known_tags:
                raise ValueError(f"tag {key!r} is not in known_tags")
        return self
