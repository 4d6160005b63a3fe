"""``[plugins.moderation]``: every threshold, the ladder, word lists and each rule's switch."""

from __future__ import annotations

from pydantic import Field, field_validator

from bot.plugin import PluginConfig
from plugins.moderation.parsing import Action, ParseError, parse_action

LOCK_TYPES = ("links", "forwards", "stickers", "gifs", "media", "channel", "voice", "polls", "contacts", "inline",
              "dice")
LADDER_KINDS = ("notice", "mute", "ban", "kick")
RULE_KINDS = ("delete", "warn", "mute", "ban", "kick")


def _check_action(value: str, allowed: tuple[str, ...]) -> str:
    try:
        parse_action(value, allowed=allowed)
    except ParseError:
        raise ValueError(
            f"{value!r} is not an action ({' | '.join(allowed)}, mute/ban may take a duration like 1h)"
        ) from None
    return value


class ModerationConfig(PluginConfig):
    # Admins (getChatAdministrators + owners + anonymous admins) are never hit by automatic rules.
    admins_exempt: bool = True
    # Post a short notice in the group for each penalty.
    announce: bool = True
    # Log every action to the log chat.
    log_actions: bool = True

    # ---- ladder: ladder[i] is applied at warn number i + 1 (the last step repeats beyond).
    ladder: list[str] = Field(default_factory=lambda: ["notice", "mute 1h", "mute 1d", "ban"], min_length=1,
                              max_length=20)
    warn_expire_days: int = Field(default=30, ge=0, le=3650)  # 0: warns never expire
    reset_warns_at_top: bool = True  # clear the warns once the last step was applied
    warn_points: int = Field(default=0, ge=0, le=1_000_000)  # points deducted per warn (0: off)
    # Direct actions of automatic rules (flood mute, wave mute...) also add a warn to the ladder.
    auto_actions_add_warn: bool = True

    # ---- banned words
    blacklist_enabled: bool = True
    blacklist_words: list[str] = Field(default_factory=list)
    blacklist_file: str | None = None
    blacklist_action: str = "warn"
    blacklist_pinyin: bool = False
    blacklist_homophones: bool = False
    blacklist_max_words: int = Field(default=10_000, ge=1, le=100_000)

    # ---- anti-flood
    flood_enabled: bool = True
    flood_messages: int = Field(default=8, ge=2, le=1000)
    flood_seconds: float = Field(default=10.0, gt=0, le=3600)
    flood_action: str = "mute 1h"
    flood_delete: bool = True

    # ---- anti-spam
    spam_enabled: bool = True
    newcomer_hours: float = Field(default=24.0, ge=0, le=24 * 365)
    spam_action: str = "delete"
    allowed_domains: list[str] = Field(default_factory=list)
    spam_wave_enabled: bool = True
    spam_wave_members: int = Field(default=3, ge=2, le=1000)
    spam_wave_seconds: float = Field(default=60.0, gt=0, le=3600)
    spam_wave_similarity: float = Field(default=0.8, gt=0, le=1)
    spam_wave_min_chars: int = Field(default=8, ge=1, le=1000)
    spam_wave_action: str = "mute 1d"
    # Only texts with a promotion signal (link, @mention, long number, 微信/vx/QQ/私聊/兼职...) can form a
    # wave, so three fans asking "今天直播几点开始" at once, or a 接龙 list, are never punished.
    spam_wave_require_signal: bool = True

    # ---- anti-raid
    raid_enabled: bool = True
    raid_joins: int = Field(default=10, ge=2, le=10_000)
    raid_seconds: float = Field(default=60.0, gt=0, le=86400)
    raid_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)
    raid_action: str = "mute"  # mute: restricted until raid mode ends; ban: banned for raid_ban_minutes
    raid_ban_minutes: int = Field(default=60, ge=1, le=366 * 24 * 60)

    # ---- locks: lock type -> action
    locks: dict[str, str] = Field(default_factory=dict)

    # ---- reports
    reports_enabled: bool = True
    report_limit_per_hour: int = Field(default=5, ge=1, le=1000)

    # ---- network bans
    gban_enforce: bool = True

    @field_validator("ladder")
    @classmethod
    def _ladder(cls, value: list[str]) -> list[str]:
        return [_check_action(v, LADDER_KINDS) for v in value]

    @field_validator("blacklist_action", "flood_action", "spam_action", "spam_wave_action")
    @classmethod
    def _rule_action(cls, value: str) -> str:
        return _check_action(value, RULE_KINDS)

    @field_validator("raid_action")
    @classmethod
    def _raid_action(cls, value: str) -> str:
        if value not in ("mute", "ban"):
            raise ValueError("raid_action must be mute or ban")
        return value

    @field_validator("locks")
    @classmethod
    def _locks(cls, value: dict[str, str]) -> dict[str, str]:
        for key, action in value.items():
            if key not in LOCK_TYPES:
                raise ValueError(f"unknown lock {key!r} (known: {', '.join(LOCK_TYPES)})")
            _check_action(action, RULE_KINDS)
        return value

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        out = []
        for item in value:
            d = item.strip().lower().removeprefix("https://").removeprefix("http://").removeprefix("www.")
            if not d or " " in d:
                raise ValueError(f"{item!r} is not a domain")
            out.append(d.rstrip("/"))
        return out

    # ---- parsed views (pydantic keeps the strings; these are cheap to compute)
    def ladder_actions(self) -> list[Action]:
        return [parse_action(v, allowed=LADDER_KINDS) for v in self.ladder]

    def rule_action(self, name: str) -> Action:
        return parse_action(getattr(self, f"{name}_action"), allowed=RULE_KINDS)
