"""Several webhook workers: every worker sees the same open contests and the same live-count edits.

Each worker answers the message path (quiz answers, lottery keywords, PK tags, native poll ids) from its
own memory (``PollsRuntime``). When a worker opens or closes a contest it publishes the chat on the
``polls`` invalidation topic; the others mark the chat stale and rebuild its open contests from the
database before they next look (the message path tests one flag). A contest this worker is closing is
never brought back by a rebuild. One process: the message comes back to its sender only and is ignored.

What must be decided once for all workers is decided under a shared lock per contest, with the database
as the source of truth: closing (so the result is computed, paid and announced once), a PK vote and a
lottery entry against the close (an answer "you are in" is never left out of the result), and the
coalescing of live-count edits, whose state (last edit, an edit pending, what the message shows) is in
``app.shared`` so that N workers edit a message no more often than one would.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
from typing import TYPE_CHECKING

from plugins.polls import service
from plugins.polls.runtime import PollsRuntime

if TYPE_CHECKING:
    from bot.app import App

NAME = TOPIC = "polls"
EDIT_TTL = 3600.0  # longer than any edit interval (at most 60 s): only lets an idle key go
SLACK = 600.0


def _rt(app: App) -> PollsRuntime:
    rt = app.runtime(NAME)
    assert isinstance(rt, PollsRuntime)
    return rt


def install(app: App) -> None:
    rt = _rt(app)
    app.shared.on_invalidate(TOPIC, rt.invalidated)


def contest_lock(app: App, contest_id: int) -> contextlib.AbstractAsyncContextManager[None]:
    return app.shared.lock(f"polls:contest:{contest_id}")


def announce(app: App, chat_id: int) -> None:
    """Tell the other workers that a contest of ``chat_id`` opened or closed here."""
    app.shared.publish_soon(TOPIC, f"{_rt(app).origin}:{chat_id}")


async def reload(app: App) -> None:
    """Rebuild the open contests of the chats other workers changed (no-op when nothing is stale)."""
    rt = _rt(app)
    if not rt.dirty:
        return
    async with rt.reload_lock:
        while rt.stale_all or rt.stale:
            everything, chats = rt.stale_all, rt.stale
            rt.stale_all, rt.stale = False, set()
            try:
                await _rebuild(app, rt, None if everything else chats)
            except BaseException:
                rt.stale_all |= everything
                rt.stale |= chats
                raise
        rt.dirty = False


async def _rebuild(app: App, rt: PollsRuntime, chats: set[int] | None) -> None:
    async with app.db() as s:
        if chats is None:
            contests = await service.open_contests(s)
        else:
            contests = [c for chat in sorted(chats) for c in await service.open_contests(s, chat)]
        # Not yet posted: its creator starts serving it (and tells us) once the message is out.
        fresh = [c for c in contests if c.message_id is not None and c.id not in rt.live and c.id not in rt.gone]
        entrants = await service.entrants_of(s, [c.id for c in fresh if c.kind == "lottery"])
        arguments = await service.arguments_of(s, [c.id for c in fresh if c.kind == "pk"])
    still_open = {c.id for c in contests}
    for contest in list(rt.live.values()):
        if (chats is None or contest.chat_id in chats) and contest.id not in still_open:
            rt.forget(contest)
    for contest in fresh:
        if contest.id not in rt.live and contest.id not in rt.gone:  # unchanged since the read
            rt.track(contest, entrants.get(contest.id))
    for arg in arguments:
        if arg.contest_id in rt.live:
            rt.arguments.setdefault((arg.chat_id, arg.message_id), (arg.contest_id, arg.user_id))


# ---- live-count edit coalescing (callers hold the contest lock) -------------------------------------
async def pending(app: App, contest_id: int) -> bool:
    """Whether a ``polls.refresh`` timer is armed (by any worker) for the message's next edit."""
    return _number(await app.shared.get(f"polls:pending:{contest_id}")) is not None


async def set_pending(app: App, contest_id: int, due: float, now: float) -> None:
    await app.shared.set(f"polls:pending:{contest_id}", repr(due), max(0.0, due - now) + SLACK)


async def last_edit(app: App, contest_id: int) -> float | None:
    return _number(await app.shared.get(f"polls:edit:{contest_id}"))


async def clear_pending(app: App, contest_id: int) -> None:
    await app.shared.delete(f"polls:pending:{contest_id}")


async def edited(app: App, contest_id: int, at: float) -> None:
    """The message was (or is about to be) edited at ``at``: the next interval starts."""
    await app.shared.set(f"polls:edit:{contest_id}", repr(at), EDIT_TTL)


async def shows(app: App, contest_id: int, text: str, ttl: float) -> bool:
    """Whether the message shows ``text`` already; else remember that it will (the caller edits it)."""
    digest = hashlib.sha1(text.encode()).hexdigest()[:16]
    key = f"polls:render:{contest_id}"
    if await app.shared.get(key) == digest:
        return True
    await app.shared.set(key, digest, ttl + SLACK)
    return False


def forget(app: App, contest_id: int) -> None:
    app.shared.delete_soon(f"polls:pending:{contest_id}", f"polls:edit:{contest_id}", f"polls:render:{contest_id}")


def _number(raw: str | None) -> float | None:
    """A time stored by us; anything else (missing, garbled) counts as absent."""
    try:
        value = float(raw) if raw is not None else None
    except ValueError:
        return None
    return None if value is None or math.isnan(value) else value
