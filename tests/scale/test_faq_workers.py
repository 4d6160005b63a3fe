"""faq with two workers (two Apps: two memories) sharing PostgreSQL and Redis answers like one bot: a
/filter, /stop, /save, /clear or import made through one worker applies on the other at once, an entry answered by one
worker is cooling down on the other, and /faqgaps clear drops every worker's buffered questions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from plugins.faq.handlers import refresh_job
from plugins.faq.parsing import prepare_entry
from plugins.faq.runtime import FaqRuntime
from plugins.faq.service import save_entry
from tests.harness import ADMIN, ALICE, BOB, CAROL, GROUP, Harness
from tests.scale.support import running_pair

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def pair(tmp_path: Path, pg_url: str, redis: tuple[str, str],
         **faq: Any) -> contextlib.AbstractAsyncContextManager[tuple[Harness, Harness]]:
    return running_pair(tmp_path, pg_url, redis, "faq", plugin_config=faq)


@pytest.fixture
async def workers(tmp_path: Path, pg_url: str, redis_prefix: tuple[str, str]) -> AsyncIterator[tuple[Harness, Harness]]:
    async with pair(tmp_path, pg_url, redis_prefix, cooldown=0) as both:
        yield both


def rt(h: Harness) -> FaqRuntime:
    runtime = h.app.runtime("faq")
    assert isinstance(runtime, FaqRuntime)
    return runtime


def answers(h: Harness) -> list[str]:
    return [c.params["text"] for c in h.calls("sendMessage") if c.params.get("chat_id") == GROUP and c.ok
            and c.params.get("reply_parameters")]


async def until(predicate: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def published(*workers: Harness) -> None:
    """Let the invalidation messages the workers queued go out (the webhook does this per update)."""
    for w in workers:
        await w.app.shared.settle()


async def test_a_change_on_one_worker_applies_on_the_other(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    # Both workers hold the chat's matcher (no entries yet).
    await a.say(GROUP, ALICE, "发货多久")
    await b.say(GROUP, BOB, "发货多久")
    assert rt(a).cached(GROUP) is not None and rt(b).cached(GROUP) is not None
    await a.say(GROUP, ADMIN, "/filter (发货多久, 几天到) 48小时内发货")
    await published(a)
    await until(lambda: rt(b).cached(GROUP) is None, "worker b to drop its matcher")
    a.clear()
    await b.say(GROUP, CAROL, "一般几天到？")
    assert answers(a) == ["48小时内发货"]
    # /stop through b: a stops answering.
    await a.say(GROUP, ALICE, "发货多久")  # a rebuilds and caches its matcher
    await b.say(GROUP, ADMIN, "/stop 几天到")
    await b.say(GROUP, ADMIN, "/stop 发货多久")
    await published(b)
    await until(lambda: rt(a).cached(GROUP) is None, "worker a to drop its matcher")
    a.clear()
    await a.say(GROUP, ALICE, "发货多久")
    assert answers(a) == []


async def test_an_import_by_another_process_reaches_every_worker(workers: tuple[Harness, Harness]) -> None:
    """`qunbot faq import` only bumps the chat's revision; the refresh job runs in the leader only."""
    a, b = workers
    await refresh_job(a.app)  # the leader's first refresh
    await published(a)
    await b.say(GROUP, BOB, "发货多久")
    assert rt(b).cached(GROUP) is not None
    entry = prepare_entry(["发货多久"], "contains", "48小时内发货", a.app.nlp.normalizer.normalize)
    async with a.app.db() as s, s.begin():
        await save_entry(s, GROUP, entry, by=None, now=a.app.clock.now(), max_entries=10, max_regex=1)
    await refresh_job(a.app)  # a (the leader) never cached this chat, yet tells b
    await published(a)
    await until(lambda: rt(b).cached(GROUP) is None, "worker b to drop its matcher")
    a.clear()
    await b.say(GROUP, BOB, "发货多久")
    assert answers(a) == ["48小时内发货"]
    # A change announced by the worker that made it: the leader's next refresh does not drop b's new matcher.
    await b.say(GROUP, ADMIN, "/filter 几天到 三天左右")
    await published(b)
    await until(lambda: rt(b).cached(GROUP) is None, "worker b to drop its matcher")
    await b.say(GROUP, BOB, "几天到")
    rebuilt = rt(b).cached(GROUP)
    assert rebuilt is not None
    await refresh_job(a.app)
    await published(a)
    await asyncio.sleep(0.2)
    assert rt(b).cached(GROUP) is rebuilt


async def test_the_cooldown_holds_across_workers(tmp_path: Path, pg_url: str, redis_prefix: tuple[str, str]) -> None:
    async with pair(tmp_path, pg_url, redis_prefix, cooldown=60) as (a, b):
        await a.say(GROUP, ADMIN, "/filter (发货多久, 几天到) 48小时内发货")
        a.clear()
        await a.say(GROUP, ALICE, "发货多久")
        await b.say(GROUP, BOB, "几天到啊")  # the same entry, on the other worker, 0 s later
        assert answers(a) == ["48小时内发货"]
        await b.advance(59)
        await b.say(GROUP, BOB, "几天到啊")
        assert len(answers(a)) == 1
        await a.advance(2)
        await b.say(GROUP, BOB, "几天到啊")
        await a.say(GROUP, ALICE, "发货多久")  # b answered it: cooling down on a again
        assert answers(a) == ["48小时内发货", "48小时内发货"]
        # A garbled shared value counts as no answer.
        await a.app.shared.set(f"faq:answered:{GROUP}:1", "garbled", 60)
        await a.say(GROUP, ALICE, "发货多久")
        assert len(answers(a)) == 3


async def test_faqgaps_clear_drops_every_workers_buffer(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    rt(b).log_gap(GROUP, "赠品什么时候发", "赠品什么时候发？", b.app.clock.now())  # buffered, not yet flushed
    await a.say(GROUP, ADMIN, "/faqgaps clear")
    await published(a)
    await until(lambda: not rt(b).pending_gaps(GROUP), "worker b to drop its buffered questions")


async def test_a_note_saved_or_cleared_on_one_worker_applies_on_the_other(workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    await b.say(GROUP, ALICE, "#发货")  # b caches the chat's notes (none yet)
    assert answers(a) == []
    await a.say(GROUP, ADMIN, "/save 发货 48小时内发货")
    await published(a)
    a.clear()
    await until(lambda: GROUP not in rt(b)._notes, "worker b to drop its notes")
    await b.say(GROUP, BOB, "#发货")
    assert answers(a) == ["48小时内发货"]  # one emulated Telegram: a sees every call
    await a.say(GROUP, ALICE, "#发货")  # a caches the note too
    assert GROUP in rt(a)._notes
    await b.say(GROUP, ADMIN, "/clear 发货")
    await published(b)
    await until(lambda: GROUP not in rt(a)._notes, "worker a to drop its notes")
    a.clear()
    await a.say(GROUP, CAROL, "#发货")
    assert answers(a) == []
