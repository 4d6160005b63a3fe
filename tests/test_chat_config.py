from __future__ import annotations

from pathlib import Path

import pytest

from bot.chat_config import ChatConfigService
from bot.clock import FakeClock
from bot.db import Base, create_engine, session_factory
from bot.plugin import Plugin, PluginConfig
from bot.settings import ConfigError, load_settings


class DemoConfig(PluginConfig):
    base_points: int = 5
    title: str = "萌新"
    cap: int = 10


PLUGINS = {"demo": Plugin(name="demo", description="demo", config=DemoConfig)}


@pytest.fixture
async def service(tmp_path: Path) -> ChatConfigService:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    s = load_settings(
        data={
            "plugins": {"demo": {"base_points": 7}},
            "chats": {"-100": {"timezone": "Europe/Paris", "plugins": {"demo": {"title": "达人"}}}},
        }
    )
    yield ChatConfigService(s, PLUGINS, session_factory(engine), FakeClock(0))
    await engine.dispose()


async def test_layers_merge_in_order(service: ChatConfigService) -> None:
    other = await service.get(-200, "demo")
    assert (other.base_points, other.title, other.cap) == (7, "萌新", 10)
    chat = await service.get(-100, "demo")
    assert (chat.base_points, chat.title) == (7, "达人")
    await service.update(-100, "demo", {"cap": 3}, by=1)
    chat = await service.get(-100, "demo")
    assert (chat.base_points, chat.title, chat.cap) == (7, "达人", 3)
    assert (await service.get(-200, "demo")).cap == 10


async def test_chat_level_keys(service: ChatConfigService) -> None:
    assert (await service.chat(-100)).timezone == "Europe/Paris"
    assert (await service.chat(-200)).timezone == "Asia/Shanghai"


async def test_invalid_update_rejected_and_nothing_stored(service: ChatConfigService) -> None:
    with pytest.raises(ConfigError, match="cap"):
        await service.update(-100, "demo", {"cap": "many"})
    with pytest.raises(ConfigError, match="unknown key"):
        await service.update(-100, "demo", {"nonsense": 1})
    assert (await service.get(-100, "demo")).cap == 10
    assert await service.export(-100) == {}


async def test_enable_disable_per_chat(service: ChatConfigService) -> None:
    await service.update(-100, "demo", {"enabled": False})
    assert not await service.enabled(-100, "demo")
    assert await service.enabled(-200, "demo")


async def test_export_import_roundtrip_validates_first(service: ChatConfigService) -> None:
    await service.update(-100, "demo", {"cap": 4, "enabled": False})
    exported = await service.export(-100)
    with pytest.raises(ConfigError):
        await service.import_(-300, {**exported, "ghost": {}})
    assert await service.export(-300) == {}
    await service.import_(-300, exported)
    cfg = await service.get(-300, "demo")
    assert cfg.cap == 4 and not cfg.enabled
