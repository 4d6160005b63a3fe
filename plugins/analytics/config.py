"""``[plugins.analytics]``: collection, segment thresholds, the RFM-like value score, reports, actions
and privacy. Every key has a default and can be overridden per chat (``[chats.<id>.plugins.analytics]``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.plugin import PluginConfig

LIFECYCLE = ("new", "active", "silent", "churned", "zombie")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Tier(_Strict):
    """A value tier: reached at ``min_score`` (0-100) of the value score."""

    name: str = Field(min_length=1, max_length=16)
    min_score: float = Field(ge=0, le=100)


def _default_tiers() -> list[Tier]:
    return [
        Tier(name="普通", min_score=0),
        Tier(name="活跃", min_score=25),
        Tier(name="忠诚", min_score=50),
        Tier(name="高价值", min_score=75),
    ]


def _default_thanks() -> list[str]:
    return ["谢谢", "感谢", "多谢", "谢啦", "谢了", "thx", "thanks", "thank you", "3q", "辛苦了"]


class AnalyticsConfig(PluginConfig):
    # ---- collection ------------------------------------------------------------------------------
    # Score the sentiment of one message in N (by message id, so a redelivery samples the same ones);
    # the default scorer costs ~20-40 µs, so 10 keeps the observer at a few µs per message. 0 = off.
    sentiment_every: int = Field(default=10, ge=0, le=10_000)
    # A reply (at most this many characters) to another member's message that contains one of these
    # words counts as a "thank" for that member: the accepted-answer signal of the value score.
    thanks_words: list[str] = Field(default_factory=_default_thanks)
    thanks_max_chars: int = Field(default=30, ge=1, le=500)
    # Ledger reason of daily check-ins (references "<reason>:<chat>:<user>:<day>"): the hourly repair
    # recounts check-ins from the core points ledger.
    checkin_reason: str = Field(default="checkin", min_length=1, max_length=64)

    # ---- lifecycle segments (days) ---------------------------------------------------------------
    new_days: int = Field(default=7, ge=1, le=365)  # joined less than this many days ago: new
    silent_days: int = Field(default=14, ge=1, le=3650)  # present, no message for this long: silent
    churn_days: int = Field(default=30, ge=1, le=3650)  # no message for this long (or left): churned
    zombie_days: int = Field(default=7, ge=1, le=3650)  # joined this long ago and never spoke: zombie

    # ---- value score (RFM-like, 0-100) and tiers -------------------------------------------------
    score_days: int = Field(default=30, ge=1, le=365)  # the window the score looks at
    weight_recency: float = Field(default=0.2, ge=0, le=100)
    weight_frequency: float = Field(default=0.3, ge=0, le=100)
    weight_contribution: float = Field(default=0.25, ge=0, le=100)
    weight_influence: float = Field(default=0.25, ge=0, le=100)
    full_active_days: int = Field(default=15, ge=1, le=365)  # active days in the window for full F
    full_points: int = Field(default=200, ge=1, le=10**9)  # points earned in the window for full C
    full_thanks: int = Field(default=5, ge=1, le=10**6)  # thanks received in the window for full C
    full_influence: int = Field(default=20, ge=1, le=10**6)  # replies + mentions received for full I
    tiers: list[Tier] = Field(default_factory=_default_tiers, min_length=1, max_length=10)

    # ---- opinion leaders (KOC) -------------------------------------------------------------------
    koc_days: int = Field(default=30, ge=1, le=365)
    koc_count: int = Field(default=10, ge=1, le=100)
    koc_min: int = Field(default=3, ge=1, le=10**6)  # replies + mentions received to qualify

    # ---- reports ---------------------------------------------------------------------------------
    chart: bool = True  # /stats also sends a PNG chart (needs matplotlib)
    weekly_report: bool = True  # a weekly report to the log chat
    weekly_weekday: int = Field(default=0, ge=0, le=6)  # 0 = Monday, in the chat's time zone
    weekly_hour: int = Field(default=9, ge=0, le=23)
    page_size: int = Field(default=20, ge=5, le=50)  # members per /segment page
    top_count: int = Field(default=5, ge=1, le=20)  # lines in "top" lists (FAQ, questions, KOC)

    # ---- actions ---------------------------------------------------------------------------------
    cleanup_batch: int = Field(default=5, ge=1, le=50)  # members removed per step
    cleanup_interval: float = Field(default=5.0, ge=1, le=3600)  # seconds between steps
    cleanup_confirm_minutes: int = Field(default=15, ge=1, le=1440)  # a preview can be confirmed this long
    cleanup_max: int = Field(default=500, ge=1, le=10_000)  # members per /cleanup run
    wakeup_text: str = Field(default="好久不见 {mentions}！群里最近很热闹，快来聊聊吧～", min_length=1, max_length=1000)
    wakeup_dm_text: str = Field(default="好久不见！「{title}」里最近很热闹，回来看看吧～", min_length=1,
                                max_length=1000)
    wakeup_batch: int = Field(default=5, ge=1, le=20)  # members mentioned per message
    wakeup_max: int = Field(default=50, ge=1, le=1000)  # members woken per /wakeup
    wakeup_period_days: int = Field(default=7, ge=1, le=365)  # at most one wake-up per member per period
    wakeup_segments: list[str] = Field(default_factory=lambda: ["silent"])

    # ---- export and privacy ----------------------------------------------------------------------
    export_private: bool = True  # /export in a group sends the file to the admin's private chat
    retention_days: int = Field(default=400, ge=30, le=3650)  # raw per-member daily rows kept this long

    @model_validator(mode="after")
    def _check(self) -> AnalyticsConfig:
        if self.churn_days < self.silent_days:
            raise ValueError("churn_days must be >= silent_days")
        if not any(t.min_score == 0 for t in self.tiers):
            raise ValueError("tiers need one tier with min_score = 0")
        if len({t.name for t in self.tiers}) != len(self.tiers):
            raise ValueError("tier names must be unique")
        bad = [s for s in self.wakeup_segments if s not in LIFECYCLE]
        if bad:
            raise ValueError(f"wakeup_segments: unknown segment {bad[0]!r} (one of {', '.join(LIFECYCLE)})")
        if self.weight_recency + self.weight_frequency + self.weight_contribution + self.weight_influence <= 0:
            raise ValueError("at least one score weight must be positive")
        if "{mentions}" not in self.wakeup_text:
            raise ValueError("wakeup_text needs {mentions}")
        return self

    def sorted_tiers(self) -> list[Tier]:
        """Highest first."""
        return sorted(self.tiers, key=lambda t: -t.min_score)
