"""Fixtures for the scale-out tests: a throw-away PostgreSQL database and a Redis key prefix per test
(skipped only when the local servers are unreachable), and the emulator serving over HTTP."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from bot.emulator.http import EmulatorServer, start_server
from bot.emulator.world import World
from bot.shared import MemoryShared, RedisShared, SharedState
from tests.conftest import redis_url
from tests.dbutil import drop_postgres_database, fresh_postgres_database
from tests.harness import TOKEN, populate


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    created = await fresh_postgres_database()
    if created is None:
        pytest.skip("no PostgreSQL server on 127.0.0.1:5432")
    url, admin = created
    try:
        yield url
    finally:
        await drop_postgres_database(url, admin)


@pytest.fixture
def redis_prefix() -> Iterator[tuple[str, str]]:
    """(url, prefix): every key this test makes is under the prefix and deleted afterwards."""
    url = redis_url()
    if url is None:
        pytest.skip("no Redis server on 127.0.0.1:6379")
    prefix = f"qunbot-test-{uuid.uuid4().hex[:10]}:"
    yield url, prefix
    import redis

    client: Any = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def emulator() -> AsyncIterator[EmulatorServer]:
    world = World(token=TOKEN)
    populate(world)
    world.webhook_retry_base = 0.05
    world.webhook_retry_max = 0.5
    world.webhook_timeout = 10.0
    server = await start_server(world)
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture(params=["memory", "redis"])
async def shared(request: pytest.FixtureRequest) -> AsyncIterator[SharedState]:
    """Each shared-state backend in turn (Redis under the test's own key prefix)."""
    if request.param == "memory":
        backend: SharedState = MemoryShared()
    else:
        url, prefix = request.getfixturevalue("redis_prefix")
        backend = RedisShared(url, prefix=prefix)
    await backend.start()
    yield backend
    await backend.close()
