"""Process-wide settings: TOML file, then environment (``QUNBOT_<SECTION>__<KEY>``).

Plugin tables stay raw dicts here; each plugin validates its own table into its own model at start
(see ``bot.chat_config``), so this module does not need to know the plugins.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_PATH = "config.toml"
LANGUAGES = ("zh_CN", "en")


class ConfigError(Exception):
    """A configuration problem, worded for the operator (never contains the token)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TelegramSettings(_Section):
    token: SecretStr | None = None
    api_server: str = "https://api.telegram.org"
    # Telegram allows about 30 messages/s per bot and 20 messages/min per group.
    rate_global_per_second: float = Field(default=30, gt=0)
    rate_chat_per_minute: int = Field(default=20, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    polling_timeout: int = Field(default=10, ge=0, le=50)

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        raw = value.get_secret_value().strip()
        head, _, tail = raw.partition(":")
        if not head.isdigit() or not tail:
            raise ValueError("a bot token looks like 123456:ABC-DEF (digits, a colon, then the secret)")
        return SecretStr(raw)


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///data/qunbot.db"
    echo: bool = False
    # SQLite statements run in the event loop's thread (≈ 4x cheaper than aiosqlite's thread hop;
    # bot/sqlite_inline.py). Off: aiosqlite's own thread, for databases with very large reports.
    sqlite_inline: bool = True


class RedisSettings(_Section):
    # Shared state for several workers (docs/scale.md). Unset: everything stays in this process's memory.
    url: str | None = None
    prefix: str = "qunbot:"
    # Scheduler leader lease: renewed every ttl/3; a dead leader is replaced within ttl + ttl/3.
    leader_ttl: float = Field(default=15.0, ge=1, le=60)
    # Per-chat processing lock across workers (renewed while held).
    lock_ttl: float = Field(default=30.0, ge=1, le=600)


WEBHOOK_SECRET_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class WebhookSettings(_Section):
    """``qunbot run --webhook``: Telegram POSTs updates to ``url``; we listen on host:port + path."""

    url: str | None = None  # public HTTPS URL Telegram calls (setWebhook), e.g. https://bot.example.com/tg
    host: str = "127.0.0.1"  # listen address (behind nginx); 0.0.0.0 to listen on every interface
    port: int = Field(default=8080, ge=0, le=65535)  # 0: any free port (tests)
    path: str = "/telegram/webhook"
    # X-Telegram-Bot-Api-Secret-Token; unset: derived from the bot token (stable across workers).
    secret_token: SecretStr | None = None
    max_connections: int = Field(default=40, ge=1, le=100)
    allowed_updates: list[str] | None = None  # default: the update types the polling loop asks for
    workers: int = Field(default=1, ge=1, le=64)
    # Group commit: updates finished within this window share one transaction before their 200.
    commit_interval: float = Field(default=0.02, ge=0.0, le=0.5)
    # Several workers: wait at most this long for a chat's replies before its next update may run.
    order_timeout: float = Field(default=5.0, ge=0.0, le=60.0)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError("a path starting with /")
        return value

    @field_validator("secret_token")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None
        raw = value.get_secret_value()
        if len(raw) > 256 or not set(raw) <= WEBHOOK_SECRET_CHARS:
            raise ValueError("1-256 characters A-Z, a-z, 0-9, _ and - (Telegram's rule)")
        return value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("an https:// URL (Telegram only calls HTTPS webhooks)")
        return value.strip()


class BotSettings(_Section):
    owners: list[int] = Field(default_factory=list)
    log_chat_id: int | None = None
    timezone: str = "Asia/Shanghai"
    language: str = "zh_CN"
    # Bot notices (usage hints, confirmations) delete themselves after this many seconds; 0 keeps them.
    notice_ttl: int = Field(default=0, ge=0)
    admin_cache_ttl: int = Field(default=600, ge=10)
    flush_interval: float = Field(default=2.0, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("an IANA time zone such as Asia/Shanghai") from exc
        return value

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(f"one of {', '.join(LANGUAGES)}")
        return value


class NlpSettings(_Section):
    scorer: str = "logreg"
    user_dict: str | None = None


class PointsSettings(_Section):
    # Chats that share one points balance: { brand = [-1001, -1002] }. Other chats keep their own.
    pools: dict[str, list[int]] = Field(default_factory=dict)


class ChatSection(_Section):
    """``[chats.<chat_id>]``: chat-level keys and per-chat plugin overrides."""

    title: str | None = None
    timezone: str | None = None
    language: str | None = None
    log_chat_id: int | None = None
    tags: list[str] = Field(default_factory=list)
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        return None if value is None else BotSettings._known_zone(value)

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        return None if value is None else BotSettings._known_language(value)


class _TomlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="QUNBOT_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    bot: BotSettings = Field(default_factory=BotSettings)
    nlp: NlpSettings = Field(default_factory=NlpSettings)
    points: PointsSettings = Field(default_factory=PointsSettings)
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    chats: dict[int, ChatSection] = Field(default_factory=dict)

    # Where the file came from, for messages; not a config key.
    source_path: str | None = Field(default=None, exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file, the file (passed as init kwargs) beats defaults.
        return (env_settings, init_settings)

    @property
    def has_token(self) -> bool:
        return self.telegram.token is not None

    def token(self) -> str:
        if self.telegram.token is None:
            raise ConfigError("[telegram].token is not set")
        return self.telegram.token.get_secret_value()


def _format_validation_error(exc: ValidationError, data: dict[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        key = ".".join(loc)
        value: Any = data
        for part in err["loc"]:
            if isinstance(value, dict):
                value = value.get(part, value.get(str(part)) if not isinstance(part, str) else None)
            else:
                value = None
        if "token" in loc or "secret_token" in loc:
            value = "***"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        shown = "(missing)" if value is None and err["type"] == "missing" else repr(value)
        lines.append(f"  {key} = {shown}: {msg}")
    return "invalid configuration:\n" + "\n".join(lines)


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {p}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from exc


def load_settings(path: str | Path | None = None, *, data: dict[str, Any] | None = None) -> Settings:
    """Load settings from ``path`` (or $QUNBOT_CONFIG, or ./config.toml when it exists).

    A missing default file is fine (defaults + env); a missing explicit file is an error.
    """
    source: str | None = None
    if data is None:
        explicit = path or os.environ.get("QUNBOT_CONFIG")
        if explicit:
            data = read_toml(explicit)
            source = str(explicit)
        elif Path(DEFAULT_CONFIG_PATH).exists():
            data = read_toml(DEFAULT_CONFIG_PATH)
            source = DEFAULT_CONFIG_PATH
        else:
            data = {}
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(exc, data)) from None
    settings.source_path = source
    return settings
