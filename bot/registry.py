"""Plugin discovery: folders under ``plugins/`` plus the ``qunbot.plugins`` entry-point group."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
from collections.abc import Iterable
from importlib.metadata import entry_points
from pathlib import Path

from bot.plugin import Plugin
from bot.settings import ConfigError

log = logging.getLogger(__name__)


def _load_module_plugin(module_name: str) -> Plugin:
    module = importlib.import_module(module_name)
    plugin = getattr(module, "plugin", None)
    if not isinstance(plugin, Plugin):
        raise ConfigError(f"{module_name} does not export a `plugin = Plugin(...)` object")
    # Import the models so their tables are on Base.metadata (migrations, drift check).
    if importlib.util.find_spec(f"{module_name}.models") is not None:
        importlib.import_module(f"{module_name}.models")
    return plugin


def discover(only: Iterable[str] | None = None) -> dict[str, Plugin]:
    """All installed plugins, ordered by (order, name). ``only`` restricts to those names."""
    import plugins as plugins_pkg

    found: dict[str, Plugin] = {}
    for info in pkgutil.iter_modules(plugins_pkg.__path__):
        if not info.ispkg or info.name.startswith("_"):
            continue
        plugin = _load_module_plugin(f"plugins.{info.name}")
        if plugin.name != info.name:
            raise ConfigError(f"plugins/{info.name} exports a plugin named {plugin.name!r}")
        found[plugin.name] = plugin
    for ep in entry_points(group="qunbot.plugins"):
        plugin = ep.load()
        if isinstance(plugin, Plugin) and plugin.name not in found:
            found[plugin.name] = plugin
    if only is not None:
        wanted = set(only)
        missing = wanted - set(found)
        if missing:
            raise ConfigError(f"unknown plugins: {', '.join(sorted(missing))}")
        found = {k: v for k, v in found.items() if k in wanted}
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


def locale_dirs(plugins: Iterable[Plugin]) -> list[Path]:
    dirs = [Path(__file__).parent / "locales"]
    import plugins as plugins_pkg

    for plugin in plugins:
        for base in plugins_pkg.__path__:
            dirs.append(Path(base) / plugin.name / "locales")
    return dirs
