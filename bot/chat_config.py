"""Per-chat, layered, validated plugin configuration.

Layers, lowest first: the plugin model's defaults < ``[plugins.<name>]`` < ``[chats.<id>.plugins.<name>]``
< settings admins changed in the chat (table ``core_chat_plugin_settings``). Layers merge key by key
(shallow). ``get`` returns the validated model, cached per chat until a change invalidates it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from pydantic import Field, ValidationError, field_validator
from sqlalchemy import select

from bot.models import ChatPluginSetting
from bot.plugin import PluginConfig
from bot.settings import BotSettings, ConfigError, Settings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

    from bot.clock import Clock
    from bot.plugin import Plugin

CORE = "core"


class CoreChatConfig(PluginConfig):
    """Chat-level settings (``[chats.<id>]`` keys and /settings), stored under plugin name "core"."""

    language: str = "zh_CN"
    timezone: str = "Asia/Shanghai"
    log_chat_id: int | None = None
    notice_ttl: int = Field(default=0, ge=0)
    tags: list[str] = Field(default_factory=list)
    # Member commands switched off in this chat (/disable): ignored for members, admins still use them.
    disabled_commands: list[str] = Field(default_factory=list)
    # Also delete a member's disabled command (needs the bot's "delete messages" right).
    disabled_delete: bool = False

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        return BotSettings._known_zone(value)

    @field_validator("language")
    @classmethod
    def _lang(cls, value: str) -> str:
        return BotSettings._known_language(value)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


def describe_validation_error(prefix: str, exc: ValidationError, data: Mapping[str, Any]) -> str:
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        first = err["loc"][0] if err["loc"] else None
        value = data.get(first) if isinstance(first, str) else None
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
        parts.append(f"{prefix}.{key} = {value!r}: {msg}")
    return "; ".join(parts)


@dataclass
class _ChatEntry:
    overrides: dict[str, ChatPluginSetting]
    models: dict[str, PluginConfig]


class ChatConfigService:
    def __init__(
        self,
        settings: Settings,
        plugins: Mapping[str, Plugin],
        db: async_sessionmaker[AsyncSession],
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._plugins = plugins
        self._db = db
        self._clock = clock
        self._cache: dict[int, _ChatEntry] = {}
        self._base = self._validate_static()
        # Set by the App: announces each stored change (core event ChatSettingsChanged).
        self.on_change: Callable[[int, str, dict[str, Any]], Awaitable[None]] | None = None

    # ---- static layers -------------------------------------------------------------------------
    def _model_for(self, plugin: str) -> type[PluginConfig]:
        if plugin == CORE:
            return CoreChatConfig
        return self._plugins[plugin].config

    def _core_defaults(self) -> dict[str, Any]:
        b = self._settings.bot
        return {
            "language": b.language,
            "timezone": b.timezone,
            "log_chat_id": b.log_chat_id,
            "notice_ttl": b.notice_ttl,
        }

    def _validate_static(self) -> dict[str, dict[str, Any]]:
        """Check every TOML plugin table at start; return the global layer per plugin."""
        errors: list[str] = []
        base: dict[str, dict[str, Any]] = {CORE: self._core_defaults()}
        for name, table in self._settings.plugins.items():
            if name not in self._plugins:
                known = ", ".join(sorted(self._plugins)) or "none"
                errors.append(f"[plugins.{name}]: no installed plugin is called {name!r} (installed: {known})")
                continue
            self._check(f"plugins.{name}", name, table, errors)
        for name in self._plugins:
            base[name] = dict(self._settings.plugins.get(name, {}))
        for chat_id, section in self._settings.chats.items():
            core_layer = {
                k: v
                for k, v in section.model_dump(exclude={"plugins", "title"}).items()
                if v is not None and v != []
            }
            self._check(f"chats.{chat_id}", CORE, {**base[CORE], **core_layer}, errors)
            for name, table in section.plugins.items():
                if name not in self._plugins:
                    errors.append(f"[chats.{chat_id}.plugins.{name}]: no installed plugin is called {name!r}")
                    continue
                self._check(f"chats.{chat_id}.plugins.{name}", name, {**base[name], **table}, errors)
        if errors:
            raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
        return base

    def _check(self, prefix: str, plugin: str, data: Mapping[str, Any], errors: list[str]) -> None:
        try:
            self._model_for(plugin).model_validate(dict(data))
        except ValidationError as exc:
            errors.append(describe_validation_error(prefix, exc, data))

    def _static_layer(self, chat_id: int, plugin: str) -> dict[str, Any]:
        data = dict(self._base.get(plugin, {}))
        section = self._settings.chats.get(chat_id)
        if section is not None:
            if plugin == CORE:
                data.update(
                    {
                        k: v
                        for k, v in section.model_dump(exclude={"plugins", "title"}).items()
                        if v is not None and v != []
                    }
                )
            else:
                data.update(section.plugins.get(plugin, {}))
        return data

    def defaults(self, plugin: str) -> PluginConfig:
        """The global (not chat-specific) model, for jobs that run outside any chat."""
        return self._model_for(plugin).model_validate(self._base.get(plugin, {}))

    def configured_chats(self) -> list[int]:
        return list(self._settings.chats)

    def chats_with_tag(self, tag: str) -> list[int]:
        return [cid for cid, sec in self._settings.chats.items() if tag in sec.tags]

    # ---- dynamic layer -------------------------------------------------------------------------
    async def _entry(self, chat_id: int) -> _ChatEntry:
        entry = self._cache.get(chat_id)
        if entry is None:
            async with self._db() as session:
                rows = (
                    await session.scalars(select(ChatPluginSetting).where(ChatPluginSetting.chat_id == chat_id))
                ).all()
            entry = _ChatEntry(overrides={r.plugin: r for r in rows}, models={})
            self._cache[chat_id] = entry
        return entry

    def _merge(self, chat_id: int, plugin: str, override: ChatPluginSetting | None) -> PluginConfig:
        data = self._static_layer(chat_id, plugin)
        if override is not None:
            data.update(override.data or {})
            if override.enabled is not None:
                data["enabled"] = override.enabled
        try:
            return self._model_for(plugin).model_validate(data)
        except ValidationError:
            # A stored override that no longer validates (the model changed) must not take the
            # chat down: fall back to the static layers.
            return self._model_for(plugin).model_validate(self._static_layer(chat_id, plugin))

    async def get(self, chat_id: int | None, plugin: str) -> PluginConfig:
        if chat_id is None:
            return self.defaults(plugin)
        entry = await self._entry(chat_id)
        model = entry.models.get(plugin)
        if model is None:
            model = self._merge(chat_id, plugin, entry.overrides.get(plugin))
            entry.models[plugin] = model
        return model

    def cached(self, chat_id: int, plugin: str) -> PluginConfig | None:
        """``get`` without the await when the chat's merged model is already cached (the per-message
        path asks once per plugin per message)."""
        entry = self._cache.get(chat_id)
        return entry.models.get(plugin) if entry is not None else None

    async def chat(self, chat_id: int | None) -> CoreChatConfig:
        model = await self.get(chat_id, CORE)
        assert isinstance(model, CoreChatConfig)
        return model

    async def enabled(self, chat_id: int | None, plugin: str) -> bool:
        if plugin == CORE:
            return True
        return bool((await self.get(chat_id, plugin)).enabled)

    def invalidate(self, chat_id: int | None = None) -> None:
        if chat_id is None:
            self._cache.clear()
        else:
            self._cache.pop(chat_id, None)

    async def update(
        self, chat_id: int, plugin: str, changes: Mapping[str, Any], *, by: int | None = None
    ) -> PluginConfig:
        """Validate and store admin changes. Raises ConfigError (user-facing) on a bad value."""
        if plugin != CORE and plugin not in self._plugins:
            raise ConfigError(f"unknown plugin {plugin!r}")
        async with self._db() as session, session.begin():
            row = await session.get(ChatPluginSetting, (chat_id, plugin))
            current = dict(row.data or {}) if row else {}
            enabled = row.enabled if row else None
            new_data = {**current, **{k: v for k, v in changes.items() if k != "enabled"}}
            if "enabled" in changes:
                enabled = bool(changes["enabled"])
            merged = {**self._static_layer(chat_id, plugin), **new_data}
            if enabled is not None:
                merged["enabled"] = enabled
            try:
                model = self._model_for(plugin).model_validate(merged)
            except ValidationError as exc:
                raise ConfigError(describe_validation_error(plugin, exc, merged)) from None
            now = self._clock.now()
            if row is None:
                row = ChatPluginSetting(chat_id=chat_id, plugin=plugin, data=new_data, enabled=enabled)
                session.add(row)
            row.data = new_data
            row.enabled = enabled
            row.updated_at = now
            row.updated_by = by
        self.invalidate(chat_id)
        if self.on_change is not None:
            await self.on_change(chat_id, plugin, dict(changes))
        return model

    async def reset(self, chat_id: int, plugin: str) -> None:
        async with self._db() as session, session.begin():
            row = await session.get(ChatPluginSetting, (chat_id, plugin))
            if row is not None:
                await session.delete(row)
        self.invalidate(chat_id)

    async def export(self, chat_id: int) -> dict[str, Any]:
        entry = await self._entry(chat_id)
        out: dict[str, Any] = {}
        for name, row in sorted(entry.overrides.items()):
            item = dict(row.data or {})
            if row.enabled is not None:
                item["enabled"] = row.enabled
            out[name] = item
        return out

    async def import_(self, chat_id: int, data: Mapping[str, Any], *, by: int | None = None) -> list[str]:
        """Apply an export from another chat. Validates everything before writing anything."""
        if not isinstance(data, Mapping):
            raise ConfigError("settings must be a table of plugin names")
        problems: list[str] = []
        for plugin, changes in data.items():
            if plugin != CORE and plugin not in self._plugins:
                problems.append(f"unknown plugin {plugin!r}")
                continue
            if not isinstance(changes, Mapping):
                problems.append(f"{plugin}: not a table")
                continue
            merged = {**self._static_layer(chat_id, plugin), **changes}
            try:
                self._model_for(plugin).model_validate(merged)
            except ValidationError as exc:
                problems.append(describe_validation_error(plugin, exc, merged))
        if problems:
            raise ConfigError("; ".join(problems))
        applied = []
        for plugin, changes in data.items():
            await self.update(chat_id, plugin, changes, by=by)
            applied.append(plugin)
        return applied
