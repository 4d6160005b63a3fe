"""FAQ storage (SQLite, and PostgreSQL when reachable) and the `qunbot faq import/export` CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.db import session_factory
from bot.textnorm import TextNormalizer
from plugins.faq import models, service
from plugins.faq.matcher import FaqError
from plugins.faq.parsing import prepare_entry
from tests.dbutil import db_url, engine_with_schema  # noqa: F401

NORMALIZE = TextNormalizer().normalize
T0 = datetime(2026, 11, 18, 8, 0, tzinfo=UTC)
CHAT, OTHER = -1001, -1002


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:  # noqa: F811
    """SQLite and PostgreSQL (when reachable): for the statements whose SQL differs by dialect."""
    engine = await engine_with_schema(db_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def lite(tmp_path: Path) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """SQLite only: for plain ORM logic (keeps the suite fast)."""
    engine = await engine_with_schema(f"sqlite+aiosqlite:///{tmp_path / 'faq.db'}")
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def save(db: async_sessionmaker[AsyncSession], chat: int, keywords: list[str], reply: str,
               mode: str = "contains", **limits: int) -> service.SaveResult:
    entry = prepare_entry(keywords, mode, reply, NORMALIZE)
    async with db() as s, s.begin():
        return await service.save_entry(s, chat, entry, by=1, now=T0, max_entries=limits.get("max_entries", 100),
                                        max_regex=limits.get("max_regex", 5))


async def test_save_moves_keywords_and_deletes_emptied_entries(db: async_sessionmaker[AsyncSession]) -> None:
    a = await save(db, CHAT, ["发货多久"], "A")
    b = await save(db, CHAT, ["几天到"], "B")
    assert a.created and b.created
    merged = await save(db, CHAT, ["几天到", "发货多久", "什么时候发货"], "C")
    assert not merged.created and merged.entry_id == b.entry_id  # the first keyword's entry wins
    assert merged.keywords == ["几天到", "发货多久", "什么时候发货"]
    async with db() as s:
        entries, revision = await service.load_chat(s, CHAT)
    assert [(e.id, e.reply_html, list(e.keywords)) for e in entries] == [(b.entry_id, "C", merged.keywords)]
    assert revision == 3  # every save bumps the chat's revision


async def test_limits_are_enforced(lite: async_sessionmaker[AsyncSession]) -> None:
    db = lite
    await save(db, CHAT, ["一"], "x", max_entries=2)
    await save(db, CHAT, ["二"], "x", max_entries=2)
    with pytest.raises(FaqError):
        await save(db, CHAT, ["三"], "x", max_entries=2)
    await save(db, CHAT, ["二"], "updated", max_entries=2)  # updating is fine at the limit
    await save(db, OTHER, ["三"], "x", max_entries=2)  # the limit is per chat
    await save(db, CHAT, ["^退"], "x", mode="regex", max_regex=1, max_entries=5)
    with pytest.raises(FaqError):
        await save(db, CHAT, ["^换"], "x", mode="regex", max_regex=1, max_entries=5)


async def test_remove_keywords_and_all(lite: async_sessionmaker[AsyncSession]) -> None:
    db = lite
    kept = await save(db, CHAT, ["发货多久", "几天到"], "A")
    await save(db, OTHER, ["发货多久"], "other chat")
    async with db() as s, s.begin():
        results = await service.remove_keywords(s, CHAT, [("幾天到", ["几天到"]), ("没有", ["没有"])], T0)
    assert [(r.keyword, r.removed, r.remaining) for r in results] == [
        ("几天到", True, ["发货多久"]), ("没有", False, [])]
    async with db() as s, s.begin():
        assert await service.remove_all(s, CHAT, T0) == 1
        assert await service.remove_all(s, CHAT, T0) == 0
    async with db() as s:
        assert await s.get(models.FaqEntry, kept.entry_id) is None
        assert await s.scalar(sa.select(sa.func.count()).select_from(models.FaqKeyword)) == 1  # OTHER's
        entries, _ = await service.load_chat(s, OTHER)
    assert [e.reply_html for e in entries] == ["other chat"]


async def test_hits_and_gaps_accumulate(db: async_sessionmaker[AsyncSession]) -> None:
    entry = await save(db, CHAT, ["发货"], "A")
    for n in (2, 3):
        async with db() as s, s.begin():
            await service.flush_hits(s, {entry.entry_id: (n, T0), 999_999: (1, T0)})  # 999999: deleted entry
            await service.flush_gaps(s, [
                {"chat_id": CHAT, "question": "能开发票吗", "sample": "能开发票吗？", "count": n,
                 "first_at": T0, "last_at": T0 + timedelta(days=n)},
                {"chat_id": OTHER, "question": "能开发票吗", "sample": "x", "count": 1, "first_at": T0, "last_at": T0},
            ])
    async with db() as s:
        assert (await s.get(models.FaqEntry, entry.entry_id)).hits == 5  # type: ignore[union-attr]
        gaps = await service.top_gaps(s, CHAT, T0, 10)
        assert gaps == [("能开发票吗", 5, "能开发票吗？")]
        assert await service.top_gaps(s, CHAT, T0 + timedelta(days=4), 10) == []  # outside the window
        assert (await s.get(models.FaqGap, (CHAT, "能开发票吗"))).first_at == T0  # type: ignore[union-attr]


async def test_import_replaces_or_merges(lite: async_sessionmaker[AsyncSession]) -> None:
    db = lite
    await save(db, CHAT, ["旧的"], "old")
    entries = [prepare_entry(["发货多久"], "contains", "A", NORMALIZE),
               prepare_entry(["旧的"], "exact", "updated", NORMALIZE)]
    async with db() as s, s.begin():
        merged = await service.import_entries(s, CHAT, entries, replace=False, by=None, now=T0, max_entries=10,
                                              max_regex=1)
    assert (merged.created, merged.updated, merged.removed) == (1, 1, 0)
    async with db() as s, s.begin():
        replaced = await service.import_entries(s, CHAT, entries[:1], replace=True, by=None, now=T0,
                                                max_entries=10, max_regex=1)
    assert (replaced.created, replaced.updated, replaced.removed) == (1, 0, 2)
    async with db() as s:
        rows = service.export_rows(await service.list_entries(s, CHAT))
    assert rows == [{"keywords": ["发货多久"], "mode": "contains", "reply": "A"}]


def cli_config(tmp_path: Path) -> Path:
    """A config file for the CLI: a SQLite file in tmp_path, a token that never reaches Telegram."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[telegram]\ntoken = "123456:TEST-token"\napi_server = "http://127.0.0.1:9"\n'
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "faq.db"}"\n[bot]\nowners = [1]\n',
        encoding="utf-8",
    )
    return config


def test_cli_import_export_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    config = cli_config(tmp_path)
    source = tmp_path / "faq.toml"
    source.write_text(
        '[[faq]]\nkeywords = ["发货多久", "几天到"]\nsynonyms = ["什么时候发货"]\nreply = "<b>48小时内</b>发货"\n'
        'buttons = [[{ text = "物流", url = "https://kuaidi.example" }]]\n\n'
        '[[faq]]\nkeywords = "^(怎么|如何)退(货|款)"\nmode = "regex"\nreply = "见置顶"\n',
        encoding="utf-8",
    )
    assert main(["--config", str(config), "faq", "import", str(source), "--chat", "-1001"]) == 0
    assert "2 created" in capsys.readouterr().out
    out_csv, out_toml = tmp_path / "out.csv", tmp_path / "out.toml"
    assert main(["--config", str(config), "faq", "export", "--chat", "-1001", "--format", "csv", "-o",
                 str(out_csv)]) == 0
    assert main(["--config", str(config), "faq", "export", "--chat", "-1001", "-o", str(out_toml)]) == 0
    csv_text = out_csv.read_text(encoding="utf-8")
    assert "发货多久|几天到|什么时候发货" in csv_text and "[物流](buttonurl://https://kuaidi.example)" in csv_text
    # Importing the exports into other chats gives the same entries back.
    assert main(["--config", str(config), "faq", "import", str(out_csv), "--chat", "-1002"]) == 0
    assert main(["--config", str(config), "faq", "import", str(out_toml), "--chat", "-1003"]) == 0
    original = out_toml.read_text(encoding="utf-8").split("\n", 1)[1]  # without the header naming the chat
    assert "48小时内" in original
    for chat in ("-1002", "-1003"):
        capsys.readouterr()
        assert main(["--config", str(config), "faq", "export", "--chat", chat]) == 0
        assert capsys.readouterr().out.split("\n", 1)[1] == original
    # A bad file imports nothing (not even with --replace) and lists the errors.
    bad = tmp_path / "bad.csv"
    bad.write_text("keywords,reply\n发货,\n？？,x\n", encoding="utf-8")
    assert main(["--config", str(config), "faq", "import", str(bad), "--chat", "-1001", "--replace"]) == 1
    err = capsys.readouterr().err
    assert "2 error(s)" in err and "nothing imported" in err
    capsys.readouterr()
    assert main(["--config", str(config), "faq", "export", "--chat", "-1001"]) == 0
    assert capsys.readouterr().out.split("\n", 1)[1] == original


def test_cli_notes_import_export_and_replace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli import main

    config = cli_config(tmp_path)
    source = tmp_path / "notes.toml"
    source.write_text(
        '[[faq]]\nkeywords = "发货多久"\nreply = "48小时内"\n\n'
        '[[note]]\nname = "#活动"\nreply = "<b>满200减30</b>"\n'
        'buttons = [[{ text = "领券", url = "https://shop.example/q" }]]\n\n'
        '[[note]]\nname = "海报"\nreply = "双十一"\nmedia_type = "photo"\nmedia_file_id = "AgADposter"\n',
        encoding="utf-8",
    )
    assert main(["--config", str(config), "faq", "import", str(source), "--chat", "-1001"]) == 0
    assert "1 created" in (out := capsys.readouterr().out) and "2 notes saved" in out
    assert main(["--config", str(config), "faq", "export", "--chat", "-1001"]) == 0
    exported = capsys.readouterr().out
    assert exported.count("[[note]]") == 2 and 'name = "活动"' in exported and "AgADposter" in exported
    # The export imports back into another chat as the same entries and notes.
    again = tmp_path / "again.toml"
    again.write_text(exported, encoding="utf-8")
    assert main(["--config", str(config), "faq", "import", str(again), "--chat", "-1002"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "faq", "export", "--chat", "-1002"]) == 0
    assert capsys.readouterr().out.split("\n", 1)[1] == exported.split("\n", 1)[1]
    # Bad notes are listed and nothing is imported; --replace with a notes-only file drops the old ones.
    bad = tmp_path / "bad.toml"
    bad.write_text('[[note]]\nname = "坏/名字"\nreply = "x"\n\n[[note]]\nname = "空"\nreply = ""\n', encoding="utf-8")
    assert main(["--config", str(config), "faq", "import", str(bad), "--chat", "-1001"]) == 1
    assert "2 error(s)" in capsys.readouterr().err
    only = tmp_path / "only.toml"
    only.write_text('[[note]]\nname = "规则"\nreply = "不许发广告"\n', encoding="utf-8")
    assert main(["--config", str(config), "faq", "import", str(only), "--chat", "-1001", "--replace"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "faq", "export", "--chat", "-1001"]) == 0
    final = capsys.readouterr().out
    assert "[[faq]]" not in final and final.count("[[note]]") == 1 and "不许发广告" in final
