"""Database fixtures for core service tests: SQLite always, PostgreSQL when the server is reachable."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.db import Base, create_engine
from tests.conftest import postgres_url


async def fresh_postgres_database() -> tuple[str, str] | None:
    """Create a throw-away database on the local server; (url, admin_url) or None."""
    base = postgres_url()
    if base is None:
        return None
    name = f"qunbot_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name, base


async def drop_postgres_database(url: str, admin_url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = create_engine(admin_url)
    async with admin.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
async def db_url(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 't.db'}"
        return
    created = await fresh_postgres_database()
    if created is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    url, admin = created
    try:
        yield url
    finally:
        await drop_postgres_database(url, admin)


async def engine_with_schema(url: str) -> AsyncEngine:
    import bot.models  # noqa: F401

    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    return engine
