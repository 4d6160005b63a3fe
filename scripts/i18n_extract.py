"""List translatable strings (``_("…")``, ``ctx._("…")``, ``N_("…")``) missing from a PO catalog.

    python scripts/i18n_extract.py bot/locales/en.po bot handlers        # print missing entries
    python scripts/i18n_extract.py --append bot/locales/en.po bot handlers  # append them (msgstr "")
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from bot.i18n import parse_po

MARKERS = {"_", "N_", "gettext"}


def strings_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not node.args:
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        arg = node.args[-1] if name == "gettext" else node.args[0]
        if name in MARKERS and isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value:
            found.append(arg.value)
    return found


def collect(roots: list[str]) -> list[str]:
    seen: dict[str, None] = {}
    for root in roots:
        base = Path(root)
        files = [base] if base.is_file() else sorted(base.rglob("*.py"))
        for f in files:
            for s in strings_in(f):
                seen.setdefault(s, None)
    return list(seen)


def po_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--append", action="store_true")
    parser.add_argument("catalog")
    parser.add_argument("roots", nargs="+")
    args = parser.parse_args()
    catalog_path = Path(args.catalog)
    existing = parse_po(catalog_path.read_text(encoding="utf-8")) if catalog_path.exists() else {}
    missing = [s for s in collect(args.roots) if s not in existing]
    block = "".join(f"\nmsgid {po_quote(s)}\nmsgstr \"\"\n" for s in missing)
    if args.append:
        with catalog_path.open("a", encoding="utf-8") as fh:
            fh.write(block)
    else:
        sys.stdout.write(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
