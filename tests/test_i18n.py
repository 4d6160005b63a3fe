from __future__ import annotations

from pathlib import Path

from bot.i18n import I18n, parse_po
from bot.registry import discover, locale_dirs


def test_parse_po_handles_continuations_and_fuzzy() -> None:
    po = '''
msgid ""
msgstr "Content-Type: text/plain; charset=UTF-8\\n"

msgid "签到成功"
msgstr "Checked in"

msgid "多行"
"文本"
msgstr "multi "
"line"

#, fuzzy
msgid "未定"
msgstr "Undecided"
'''
    catalog = parse_po(po)
    assert catalog == {"签到成功": "Checked in", "多行文本": "multi line"}


def test_source_language_is_identity_and_en_falls_back(tmp_path: Path) -> None:
    (tmp_path / "en.po").write_text('msgid "你好"\nmsgstr "Hello"\n', encoding="utf-8")
    i18n = I18n([tmp_path])
    assert i18n.gettext("zh_CN", "你好") == "你好"
    assert i18n.gettext("en", "你好") == "Hello"
    assert i18n.gettext("en", "没翻译") == "没翻译"
    assert "en" in i18n.languages


def test_every_shipped_catalog_parses() -> None:
    for folder in locale_dirs(discover().values()):
        for po in folder.glob("*.po"):
            entries = parse_po(po.read_text(encoding="utf-8"))
            assert all(k and v for k, v in entries.items()), po
