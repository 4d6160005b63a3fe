"""``[plugins.crisis]``: every threshold, window, weight, lexicon extension, measure switch and the
holding-statement template. All keys can be overridden per chat (``[chats.<id>.plugins.crisis]``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.plugin import PluginConfig
from plugins.crisis.lexicon import BUILTIN_CATEGORIES, DEFAULT_ELSEWHERE_WORDS, DEFAULT_QUESTION_FACTORS

DEFAULT_HOLDING_STATEMENT = (
    "各位家人们好，关于群里大家反映的问题，我们已经收到并高度重视，相关同事正在紧急核实处理。"
    "需要售后、退款的朋友请私信客服并留下订单号，我们会一对一跟进，处理进展会第一时间在群里同步。"
    "给大家带来的不便非常抱歉，请大家先不要着急，谢谢理解！"
)


class CrisisConfig(PluginConfig):
    # ---- signal --------------------------------------------------------------------------------
    # Rolling window per chat over which the crisis score is computed.
    window_minutes: float = Field(default=10.0, ge=1, le=240)
    # Levels are evaluated at most this often per chat (a risky message can trigger sooner only
    # through an instant combination).
    eval_seconds: float = Field(default=5.0, ge=0, le=600)
    # Only the first characters of a message are analysed (a 4,096-character paste costs no more).
    max_chars: int = Field(default=600, ge=20, le=4096)
    # Messages of admins (getChatAdministrators, owners, anonymous admins) never count as risk.
    ignore_admins: bool = True

    # ---- lexicon -------------------------------------------------------------------------------
    # Weight per category (built-in: complaint 1, refund 1.5, legal 2.5, safety 3, fraud 2.5,
    # emergency 1). A category added in extra_words without a weight here gets weight 1.
    category_weights: dict[str, float] = Field(default_factory=dict)
    # Extra words per category (a new category name creates that category).
    extra_words: dict[str, list[str]] = Field(default_factory=dict)
    # Built-in words to drop (for a chat where one of them is ordinary vocabulary).
    ignore_words: list[str] = Field(default_factory=list)
    # Weight factor of a hit inside a question ("会过敏吗"); missing categories use 0.25.
    question_factors: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_QUESTION_FACTORS))
    # Hits in a message about another shop or platform, or passing on hearsay ("别的平台买到假货",
    # "新闻说…", "有人说…") count this much.
    elsewhere_words: list[str] = Field(default_factory=lambda: list(DEFAULT_ELSEWHERE_WORDS))
    elsewhere_factor: float = Field(default=0.3, ge=0, le=1)
    # One message holding words of all these categories (two different words at least, not negated,
    # not a question, not positive) opens an incident at ``instant_level`` at once.
    instant_combos: list[list[str]] = Field(default_factory=lambda: [["safety", "emergency"]])
    instant_level: int = Field(default=2, ge=1, le=3)

    # ---- sentiment -----------------------------------------------------------------------------
    # P(positive) below this: a negative message; at or above ``positive_threshold``: positive.
    negative_threshold: float = Field(default=0.35, ge=0, le=1)
    positive_threshold: float = Field(default=0.6, ge=0, le=1)
    # Risk weight multipliers for neutral and positive messages ("退款已经收到了，谢谢").
    neutral_factor: float = Field(default=0.7, ge=0, le=1)
    positive_factor: float = Field(default=0.3, ge=0, le=1)

    # ---- score ---------------------------------------------------------------------------------
    # A member adds at most this much to the score, however many messages they send (one voice).
    member_cap: float = Field(default=6.0, gt=0, le=100)
    # What a member with negative messages but no risk word adds.
    negative_voice: float = Field(default=0.5, ge=0, le=10)
    # A member counts as a risk voice from this much risk weight.
    min_member_risk: float = Field(default=0.5, ge=0, le=10)
    # Up to +surge_weight when the message rate is 4x the chat's baseline (and beyond).
    surge_weight: float = Field(default=0.5, ge=0, le=5)
    # Up to +negative_share_weight when every message is negative (above the chat's baseline share).
    negative_share_weight: float = Field(default=0.5, ge=0, le=5)
    # Baseline (an EWMA of calm periods): time constant, and the floor of the baseline message rate.
    baseline_hours: float = Field(default=6.0, gt=0, le=24 * 30)
    rate_floor_per_minute: float = Field(default=2.0, gt=0, le=1000)
    # The calm score of the chat is subtracted, at most this much (so chronic grumbling is not a crisis).
    baseline_score_cap: float = Field(default=3.0, ge=0, le=100)

    # ---- levels (1 highest) with hysteresis: *_score to go up, *_down to stay ------------------
    level3_score: float = Field(default=6.0, gt=0)
    level3_members: int = Field(default=2, ge=1)
    level3_down: float = Field(default=3.0, ge=0)
    level2_score: float = Field(default=15.0, gt=0)
    level2_members: int = Field(default=3, ge=1)
    level2_down: float = Field(default=8.0, ge=0)
    level1_score: float = Field(default=40.0, gt=0)
    level1_members: int = Field(default=8, ge=1)
    # Level 1 also needs this many members with a hit in a severe category (a refund wave alone stays
    # at level 2 however large; fraud, safety, legal or emergency words at scale make it level 1).
    level1_severe_members: int = Field(default=3, ge=0)
    severe_categories: list[str] = Field(default_factory=lambda: ["safety", "legal", "fraud", "emergency"])
    level1_down: float = Field(default=22.0, ge=0)
    # Minimum time at a level before it may go down one step.
    min_dwell_minutes: float = Field(default=10.0, ge=0, le=24 * 60)
    # An open incident that stayed calm (below level3_down) this long closes by itself (0: never).
    auto_close_minutes: float = Field(default=60.0, ge=0, le=24 * 60 * 7)

    # ---- alerts and measures -------------------------------------------------------------------
    # Levels at or above this severity (number at or below) alert the log chat.
    alert_level: int = Field(default=2, ge=1, le=3)
    # Level 1: DM every owner ([bot].owners).
    dm_owners: bool = True
    # Level 1: restrict sending with setChatPermissions: "off", "media" (text only: no photos,
    # videos, links previews, stickers...) or "all" (read-only for members). Lifted on the way down.
    restrict: Literal["off", "media", "all"] = "off"
    # Level 1: post the holding statement in the group (once per incident).
    holding_statement: bool = False
    holding_statement_text: str = Field(default=DEFAULT_HOLDING_STATEMENT, min_length=1, max_length=4000)
    # Send the post-incident summary to the log chat also for incidents that stayed at level 3.
    summary_for_watch: bool = False
    # Messages quoted as evidence in an alert.
    evidence_messages: int = Field(default=5, ge=0, le=20)
    # Failed alerts are retried with backoff up to this many attempts (then kept as "failed").
    outbox_max_attempts: int = Field(default=200, ge=1, le=100_000)

    @field_validator("category_weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        for name, weight in value.items():
            if not name.strip():
                raise ValueError("empty category name")
            if not 0 <= weight <= 100:
                raise ValueError(f"weight of {name!r} must be within 0..100")
        return value

    @field_validator("extra_words")
    @classmethod
    def _extra(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        total = 0
        for name, words in value.items():
            if not name.strip():
                raise ValueError("empty category name")
            for word in words:
                if not word.strip():
                    raise ValueError(f"empty word in category {name!r}")
                if len(word) > 64:
                    raise ValueError(f"word {word[:20]!r}... is longer than 64 characters")
            total += len(words)
        if total > 20_000:
            raise ValueError("at most 20,000 extra words")
        return value

    @field_validator("question_factors")
    @classmethod
    def _qf(cls, value: dict[str, float]) -> dict[str, float]:
        for name, factor in value.items():
            if not 0 <= factor <= 1:
                raise ValueError(f"question factor of {name!r} must be within 0..1")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CrisisConfig:
        known = set(BUILTIN_CATEGORIES) | set(self.extra_words)
        for combo in self.instant_combos:
            if not combo:
                raise ValueError("an instant combination needs at least one category")
            for name in combo:
                if name not in known:
                    raise ValueError(f"instant_combos: unknown category {name!r} (known: {', '.join(sorted(known))})")
        for name in self.category_weights:
            if name not in known:
                raise ValueError(f"category_weights: unknown category {name!r}")
        for name in self.severe_categories:
            if name not in known:
                raise ValueError(f"severe_categories: unknown category {name!r}")
        for level in (1, 2, 3):
            up = getattr(self, f"level{level}_score")
            down = getattr(self, f"level{level}_down")
            if down >= up:
                raise ValueError(f"level{level}_down ({down}) must be below level{level}_score ({up})")
        if not self.level3_score <= self.level2_score <= self.level1_score:
            raise ValueError("level scores must rise: level3_score <= level2_score <= level1_score")
        if self.negative_threshold > self.positive_threshold:
            raise ValueError("negative_threshold must not exceed positive_threshold")
        return self
