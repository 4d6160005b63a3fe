from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.chat_config import ChatConfigService
from bot.clock import Clock
from bot.plugin import Plugin, PluginConfig
from bot.settings import ConfigError, load_settings


class DemoConfig(PluginConfig):
    base_points: int = 5
    title: str = "萌新"


DEMO = {"demo": Plugin(name="demo", description="demo", config=DemoConfig)}


def test_defaults_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.telegram.token is None
    assert s.database.url.startswith("sqlite+aiosqlite")
    assert s.bot.timezone == "Asia/Shanghai"


def test_toml_and_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[telegram]\ntoken = "123:abc"\n[bot]\nowners = [1, 2]\ntimezone = "Asia/Shanghai"\n')
    monkeypatch.setenv("QUNBOT_BOT__TIMEZONE", "Europe/Berlin")
    s = load_settings(cfg)
    assert s.bot.owners == [1, 2]
    assert s.bot.timezone == "Europe/Berlin"
    assert s.token() == "123:abc"


def test_invalid_value_names_key_value_and_expectation() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(data={"bot": {"timezone": "Mars/Base", "language": "fr"}})
    text = str(err.value)
    assert "bot.timezone = 'Mars/Base'" in text and "IANA" in text
    assert "bot.language = 'fr'" in text and "zh_CN" in text


def test_token_never_in_error_message() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(data={"telegram": {"token": "notatoken-supersecret"}})
    assert "supersecret" not in str(err.value)
    assert "telegram.token" in str(err.value)


def test_unknown_section_key_rejected() -> None:
    with pytest.raises(ConfigError, match=r"bot\.colour"):
        load_settings(data={"bot": {"colour": "red"}})


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_bad_toml_is_an_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[telegram\ntoken=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)


def test_plugin_table_for_uninstalled_plugin_is_named() -> None:
    s = load_settings(data={"plugins": {"nosuch": {"enabled": True}}})
    with pytest.raises(ConfigError, match="nosuch"):
        ChatConfigService(s, DEMO, None, Clock())  # type: ignore[arg-type]


def test_plugin_value_validated_at_start() -> None:
    s = load_settings(data={"plugins": {"demo": {"base_points": "lots"}}})
    with pytest.raises(ConfigError, match=r"plugins\.demo\.base_points = 'lots'"):
        ChatConfigService(s, DEMO, None, Clock())  # type: ignore[arg-type]


def test_per_chat_override_validated_and_unknown_key() -> None:
    s = load_settings(data={"chats": {"-100": {"plugins": {"demo": {"bogus": 1}}}}})
    with pytest.raises(ConfigError, match=r"chats\.-100\.plugins\.demo\.bogus"):
        ChatConfigService(s, DEMO, None, Clock())  # type: ignore[arg-type]


def test_check_config_cli_reports_bad_key(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[bot]\ntimezone = "Nowhere/Land"\n[telegram]\ntoken = "42:secret-token-value"\n')
    run = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", "--config", str(cfg)],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 2
    assert "bot.timezone = 'Nowhere/Land'" in run.stderr
    assert "secret-token-value" not in run.stderr + run.stdout


def test_check_config_cli_accepts_example(tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "config.example.toml"
    run = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", "--config", str(example)],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert "config OK" in run.stdout
