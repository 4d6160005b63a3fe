"""`alembic upgrade head` builds exactly the schema the models describe (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot.db import Base, create_engine
from bot.migrate import alembic_config, upgrade
from bot.registry import discover
from tests.dbutil import db_url  # noqa: F401


def test_history_is_linear() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    heads = script.get_heads()
    assert len(heads) == 1, f"more than one head: {heads}"
    bases = script.get_bases()
    assert len(bases) == 1


async def test_upgrade_head_matches_models(db_url: str) -> None:  # noqa: F811
    import bot.models  # noqa: F401

    discover()
    await upgrade(db_url)
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:

            def diff(sync_conn):  # type: ignore[no-untyped-def]
                ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                return compare_metadata(ctx, Base.metadata)

            changes = await conn.run_sync(diff)
    finally:
        await engine.dispose()
    assert changes == [], f"models and migrations differ: {changes}"


async def test_upgrade_is_repeatable(db_url: str) -> None:  # noqa: F811
    await upgrade(db_url)
    await upgrade(db_url)  # a second run at start changes nothing and does not fail


@pytest.mark.parametrize("revision", ["base"])
async def test_downgrade_to_base(db_url: str, revision: str) -> None:  # noqa: F811
    import asyncio

    from alembic import command

    await upgrade(db_url)
    await asyncio.to_thread(command.downgrade, alembic_config(db_url), revision)
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: __import__("sqlalchemy").inspect(c).get_table_names())
    finally:
        await engine.dispose()
    assert set(names) <= {"alembic_version"}
