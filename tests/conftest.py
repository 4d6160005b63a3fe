from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Harness

os.environ.pop("QUNBOT_CONFIG", None)
for key in list(os.environ):
    # Config overrides from the developer's shell must not leak into tests.
    if key.startswith("QUNBOT_") and "__" in key:
        del os.environ[key]


@pytest.fixture(scope="session")
def shared_nlp() -> Any:
    """One NlpService for the whole run: jieba and the model load once (~1 s), as in production."""
    from bot.nlp import NlpService

    return NlpService()


@pytest.fixture
async def make_harness(tmp_path: Path, shared_nlp: Any) -> AsyncIterator[Callable[..., Any]]:
    """``h = await make_harness(plugins=["welcome"], config={...})``: a started Harness."""
    started: list[Harness] = []

    async def factory(**kwargs: Any) -> Harness:
        sub = tmp_path / f"h{len(started)}"
        sub.mkdir()
        kwargs.setdefault("nlp", shared_nlp)
        h = Harness(sub, **kwargs)
        await h.start()
        started.append(h)
        return h

    yield factory
    for h in started:
        # A test may have stopped or crashed it already.
        with contextlib.suppress(Exception):
            await h.stop()


@pytest.fixture
async def harness(make_harness: Callable[..., Any]) -> Harness:
    """All installed plugins, in-process transport."""
    return await make_harness()


def postgres_url() -> str | None:
    """The local PostgreSQL test server when reachable (CI and dev machines have one)."""
    import socket

    url = os.environ.get("QUNBOT_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return url
    except OSError:
        return None


def redis_url() -> str | None:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return os.environ.get("QUNBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    except OSError:
        return None
