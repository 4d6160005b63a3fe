"""gettext catalogs: source strings are zh_CN, catalogs translate them (``en``).

Catalogs are standard PO files: ``bot/locales/<lang>.po`` for the core and
``plugins/<name>/locales/<lang>.po`` for each plugin, merged at start. They are parsed directly
(no compiled .mo step), then served through ``gettext.NullTranslations`` semantics: a missing
entry falls back to the source string.
"""

from __future__ import annotations

import ast
import gettext
from collections.abc import Iterable
from pathlib import Path

SOURCE_LANGUAGE = "zh_CN"


def parse_po(text: str) -> dict[str, str]:
    """Minimal PO reader: msgid/msgstr pairs with continuation lines; fuzzy and empty entries skipped."""
    catalog: dict[str, str] = {}
    msgid: list[str] = []
    msgstr: list[str] = []
    target: list[str] | None = None
    fuzzy = False

    def commit() -> None:
        nonlocal fuzzy
        key, value = "".join(msgid), "".join(msgstr)
        if key and value and not fuzzy:
            catalog[key] = value
        msgid.clear()
        msgstr.clear()
        fuzzy = False

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#,") and "fuzzy" in line:
            if msgid or msgstr:
                commit()
            fuzzy = True
        elif line.startswith("msgid "):
            if msgstr:
                commit()
            target = msgid
            target.append(ast.literal_eval(line[6:]))
        elif line.startswith("msgstr "):
            target = msgstr
            target.append(ast.literal_eval(line[7:]))
        elif line.startswith('"') and target is not None:
            target.append(ast.literal_eval(line))
        elif not line:
            if msgid or msgstr:
                commit()
            target = None
    if msgid or msgstr:
        commit()
    return catalog


class _Catalog(gettext.NullTranslations):
    def __init__(self, entries: dict[str, str]) -> None:
        super().__init__()
        self._entries = entries

    def gettext(self, message: str) -> str:
        return self._entries.get(message, message)


class I18n:
    def __init__(self, locale_dirs: Iterable[Path]) -> None:
        entries: dict[str, dict[str, str]] = {}
        for folder in locale_dirs:
            if not folder.is_dir():
                continue
            for po in sorted(folder.glob("*.po")):
                entries.setdefault(po.stem, {}).update(parse_po(po.read_text(encoding="utf-8")))
        self._catalogs: dict[str, gettext.NullTranslations] = {
            lang: _Catalog(items) for lang, items in entries.items()
        }
        self._source = gettext.NullTranslations()

    @property
    def languages(self) -> list[str]:
        return [SOURCE_LANGUAGE, *sorted(self._catalogs)]

    def translation(self, language: str) -> gettext.NullTranslations:
        if language == SOURCE_LANGUAGE:
            return self._source
        return self._catalogs.get(language, self._source)

    def gettext(self, language: str, message: str) -> str:
        return self.translation(language).gettext(message)
