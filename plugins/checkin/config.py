"""Config model of the checkin plugin (``[plugins.checkin]``, per-chat overrides, /set in chat)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.plugin import PluginConfig

MAX_POINTS = 1_000_000

ItemKind = Literal["coupon", "badge", "title", "custom", "makeup"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Milestone(_Strict):
    """A bonus on reaching an exact streak length (e.g. day 7), optionally with a badge."""

    points: int = Field(default=0, ge=0, le=MAX_POINTS)
    badge: str | None = Field(default=None, max_length=64)


class Level(_Strict):
    """A fan tier: reached at ``min_points`` earned points (shop spending does not lower it)."""

    name: str = Field(min_length=1, max_length=16)
    min_points: int = Field(ge=0, le=10**9)


class ShopItemConfig(_Strict):
    """A shop item defined by ops. ``stock`` is the initial stock (None: unlimited)."""

    code: str = Field(min_length=1, max_length=32, pattern=r"^\S+$")
    name: str = Field(min_length=1, max_length=64)
    price: int = Field(ge=0, le=MAX_POINTS)
    kind: ItemKind = "custom"
    stock: int | None = Field(default=None, ge=0, le=10**7)
    limit: int = Field(default=0, ge=0, le=10**6)
    # badge: the badge label (defaults to the name); title: the title text (defaults to the name).
    payload: str | None = Field(default=None, max_length=64)
    description: str | None = Field(default=None, max_length=300)
    codes: list[str] = Field(default_factory=list)


def _default_levels() -> list[Level]:
    return [
        Level(name="萌新", min_points=0),
        Level(name="活跃", min_points=100),
        Level(name="达人", min_points=500),
        Level(name="元老", min_points=2000),
    ]


def _default_milestones() -> dict[int, Milestone]:
    return {7: Milestone(points=20, badge="streak_7"), 30: Milestone(points=100, badge="streak_30")}


def _default_badges() -> dict[str, str]:
    return {
        "first_checkin": "🌱 初来乍到",
        "streak_7": "🔥 七日连签",
        "streak_30": "🏆 月度全勤",
        "weekly_top": "👑 周榜之星",
        "inviter": "🤝 拉新达人",
    }


def _default_items() -> list[ShopItemConfig]:
    return [ShopItemConfig(code="makeup", name="补签卡", price=50, kind="makeup",
                           description="补上漏签的一天，保住连签")]


class CheckinConfig(PluginConfig):
    # ---- daily check-in ----
    base_points: int = Field(default=5, ge=0, le=MAX_POINTS)
    # +streak_step per consecutive day (day 1: base, day 2: base + step ...), capped at max_daily_points
    # (0: no cap). Milestone and lucky bonuses come on top of the cap.
    streak_step: int = Field(default=1, ge=0, le=MAX_POINTS)
    max_daily_points: int = Field(default=15, ge=0, le=MAX_POINTS)
    # Exact streak lengths that pay a bonus (and may award a badge).
    milestones: dict[int, Milestone] = Field(default_factory=_default_milestones)
    # Lucky bonus: chance per check-in (0 turns it off), points added.
    lucky_chance: float = Field(default=0.05, ge=0, le=1)
    lucky_points: int = Field(default=10, ge=0, le=MAX_POINTS)
    # 补签卡: at most this many missed days can be repaired (one card per day); 0 disables make-up.
    makeup_grace_days: int = Field(default=3, ge=0, le=30)
    # Spend cards automatically at the next check-in when they cover the gap (else only /makeup).
    makeup_auto: bool = True

    # ---- activity points (MEE6-style) ----
    activity_points: int = Field(default=1, ge=0, le=1000)
    activity_cooldown: int = Field(default=60, ge=5, le=86_400)
    activity_min_length: int = Field(default=5, ge=1, le=1000)
    # Most activity points a member earns per local day; 0: no cap.
    activity_daily_cap: int = Field(default=100, ge=0, le=MAX_POINTS)

    # ---- levels and badges ----
    levels: list[Level] = Field(default_factory=_default_levels, min_length=1, max_length=30)
    level_up_announce: bool = True
    badges: dict[str, str] = Field(default_factory=_default_badges)
    # The week's top earner (local week, Monday to Sunday) gets this bonus and the weekly_top badge.
    weekly_top_points: int = Field(default=50, ge=0, le=MAX_POINTS)
    weekly_top_announce: bool = True

    # ---- leaderboards ----
    top_size: int = Field(default=10, ge=1, le=50)

    # ---- invite rewards ----
    invite_points: int = Field(default=30, ge=0, le=MAX_POINTS)
    # The invitee must pass the captcha and stay this long before the inviter is paid.
    invite_hold_hours: float = Field(default=24, ge=0, le=24 * 90)
    # Most rewarded invites per inviter per 24 h (anti-farming); 0: no cap.
    invite_daily_cap: int = Field(default=10, ge=0, le=10_000)
    # Rewarded invites that earn the "inviter" badge; 0: no badge.
    invite_badge_at: int = Field(default=5, ge=0, le=10_000)

    # ---- shop ----
    items: list[ShopItemConfig] = Field(default_factory=_default_items, max_length=200)
    # Log every redemption to the log chat (the chat's log_chat_id, else [bot].log_chat_id).
    shop_log: bool = True

    # ---- admin ----
    # Largest amount one /give or /take may move.
    max_admin_amount: int = Field(default=100_000, ge=1, le=MAX_POINTS)

    @field_validator("milestones")
    @classmethod
    def _milestones(cls, value: dict[int, Milestone]) -> dict[int, Milestone]:
        if any(day < 1 or day > 3660 for day in value):
            raise ValueError("milestone days must be between 1 and 3660")
        return dict(sorted(value.items()))

    @field_validator("levels")
    @classmethod
    def _levels(cls, value: list[Level]) -> list[Level]:
        ordered = sorted(value, key=lambda lv: lv.min_points)
        if ordered[0].min_points != 0:
            raise ValueError("the first level must start at min_points = 0")
        if len({lv.min_points for lv in ordered}) != len(ordered):
            raise ValueError("two levels have the same min_points")
        if len({lv.name for lv in ordered}) != len(ordered):
            raise ValueError("two levels have the same name")
        return ordered

    @field_validator("badges")
    @classmethod
    def _badges(cls, value: dict[str, str]) -> dict[str, str]:
        for code, label in value.items():
            if not code or len(code) > 64 or not label or len(label) > 64:
                raise ValueError("badge codes and labels must be 1-64 characters")
        return value

    @model_validator(mode="after")
    def _items_unique(self) -> CheckinConfig:
        codes = [item.code.lower() for item in self.items]
        if len(set(codes)) != len(codes):
            raise ValueError("two shop items have the same code")
        if self.max_daily_points and self.max_daily_points < self.base_points:
            raise ValueError("max_daily_points must be at least base_points")
        return self
