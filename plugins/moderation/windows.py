"""The moderation windows, kept in ``app.shared``: flood per member, spam waves and joins per chat.

With several webhook workers each sees part of a chat's traffic; keeping the windows in the shared
state (Redis, or this process's memory by default) makes them count every message and join of the
chat, whichever worker received it. The rules are those of ``detectors`` (the in-process models the
unit tests pin); the per-chat lock of the webhook orders a chat's updates, so one window is never
updated by two workers at once.

Time is the App clock, handed in. The shared windows hold (now - window, now]; the detectors counted a
message exactly ``seconds`` old too, hence ``EDGE``. Items that do not parse (another version, a
damaged value) are ignored.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from plugins.moderation.detectors import WAVE_SCAN_LIMIT, WaveHit, shingles, similar_keys, wave_key

if TYPE_CHECKING:
    from bot.shared import SharedState

EDGE = 1e-3  # seconds added to every window so that its far edge is included, as in the detectors
WAVE_KEEP = 2 * WAVE_SCAN_LIMIT  # recent texts kept per chat (those already part of a wave are skipped)
WAVE_CLUSTER_ITEMS = 1000  # wave records and sightings kept per chat
GRAMS_CACHE = 4096  # bigram sets of recent wave texts, so each is computed once per worker


class SharedWindows:
    """One App's view of the windows; the state itself is in ``shared``."""

    def __init__(self, shared: SharedState) -> None:
        self.shared = shared
        self._grams = functools.lru_cache(maxsize=GRAMS_CACHE)(shingles)

    # ---- flood -------------------------------------------------------------------------------
    async def flood(
        self, chat_id: int, user_id: int, message_id: int, now: float, limit: int, seconds: float
    ) -> list[int] | None:
        """Record one message; the ids of the flood when more than ``limit`` fall in ``seconds``
        (the window then starts again). One shared call per message."""
        key = f"mod:flood:{chat_id}:{user_id}"
        items = await self.shared.rolling_push(key, str(message_id), now=now, window=seconds + EDGE,
                                               max_items=limit + 1)
        if len(items) <= limit:
            return None  # the common case, decided without parsing anything
        ids = [int(m) for _t, m in items if m.isdigit()]
        if len(ids) <= limit:
            return None
        await self.shared.reset(key)
        return ids

    # ---- joins -------------------------------------------------------------------------------
    async def join(self, chat_id: int, now: float, limit: int, seconds: float) -> bool:
        """Record one join; True when more than ``limit`` joins fall within ``seconds``."""
        return await self.shared.hit(f"mod:joins:{chat_id}", seconds + EDGE, now=now) > limit

    async def reset_joins(self, chat_id: int) -> None:
        await self.shared.reset(f"mod:joins:{chat_id}")

    # ---- spam waves --------------------------------------------------------------------------
    async def wave(
        self, chat_id: int, user_id: int, message_id: int, squeezed: str, now: float, *, members: int,
        seconds: float, threshold: float, min_chars: int,
    ) -> WaveHit | None:
        """``WaveWindow.hit`` on shared state.

        Two rolling windows per chat: recent texts (``user:message<TAB>key``) and waves (``key<TAB>ids``
        when a wave forms, with the copies it took, and ``key<TAB>`` each time a later copy is seen, which
        keeps the wave alive). A text already part of a live wave is never counted again; it left the
        texts window before its wave's record left the waves window, as in ``WaveWindow``.
        """
        key = wave_key(squeezed)
        if len(key) < min_chars:
            return None
        grams = self._grams(key)
        window = seconds + EDGE
        waves_key = f"mod:wave:w:{chat_id}"
        taken: set[str] = set()
        known: dict[str, None] = {}  # wave keys, oldest first
        for _t, item in await self.shared.rolling_items(waves_key, now=now, window=window):
            wave, sep, ids = item.rpartition("\t")
            if not sep:
                continue
            known[wave] = None
            if ids:
                taken.update(ids.split(","))
        for wave in known:
            if similar_keys(key, grams, wave, self._grams, threshold):
                await self.shared.rolling_add(waves_key, wave + "\t", now=now, window=window,
                                              max_items=WAVE_CLUSTER_ITEMS)
                return WaveHit([(user_id, message_id)], new=False)

        me = f"{user_id}:{message_id}"
        recent = await self.shared.rolling_push(f"mod:wave:t:{chat_id}", f"{me}\t{key}", now=now, window=window,
                                                max_items=WAVE_KEEP)
        matched: list[tuple[int, int]] = []
        refs = [me]
        users = {user_id}
        scanned = 0
        for _t, item in reversed(recent):
            ref, _sep, other = item.partition("\t")
            if ref == me or ref in taken:
                continue
            if scanned >= WAVE_SCAN_LIMIT:
                break
            scanned += 1
            if not similar_keys(key, grams, other, self._grams, threshold):
                continue
            uid, _sep, mid = ref.partition(":")
            if not (uid.lstrip("-").isdigit() and mid.isdigit()):
                continue
            matched.append((int(uid), int(mid)))
            refs.append(ref)
            users.add(int(uid))
        if len(users) < members:
            return None
        await self.shared.rolling_add(waves_key, key + "\t" + ",".join(refs), now=now, window=window,
                                      max_items=WAVE_CLUSTER_ITEMS)
        return WaveHit([*reversed(matched), (user_id, message_id)], new=True)
