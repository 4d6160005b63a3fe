"""The verifiable lottery draw (commit-reveal). Pure functions, no I/O.

1. At start the bot picks a secret ``seed`` (64 hex characters) and announces
   ``commitment = sha256(seed)`` (hex of the SHA-256 of the seed's ASCII bytes).
2. At the draw the eligible entrants are sorted by user id and the bot reveals the seed.
   ``material = seed + ":" + ",".join(str(uid) for uid in sorted_ids)``.
3. Winners are taken one by one from the sorted list (without replacement): for k = 0, 1, 2, ...
   ``h_k = int(sha256(material + ":" + str(k)).hexdigest(), 16)``, the winner is
   ``pool.pop(h_k % len(pool))`` where ``pool`` starts as the sorted list.

Anyone can check that sha256(seed) equals the commitment announced before anybody joined, and
recompute the winners from the seed and the published entrant list (``/lottery_verify <id>``).
The seed is secret until the draw, so nobody (the bot's operators neither, once the commitment is
out) can pick the seed to favour an entrant; the entrant list is fixed by who joined.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable


def new_seed() -> str:
    return secrets.token_hex(32)


def commitment(seed: str) -> str:
    return hashlib.sha256(seed.encode("ascii")).hexdigest()


def material(seed: str, entrants: Iterable[int]) -> str:
    return seed + ":" + ",".join(str(uid) for uid in sorted(set(entrants)))


def entrants_digest(entrants: Iterable[int]) -> str:
    """sha256 of the sorted, comma-joined entrant ids: a short fingerprint of the published list."""
    return hashlib.sha256(",".join(str(uid) for uid in sorted(set(entrants))).encode("ascii")).hexdigest()


def draw_winners(seed: str, entrants: Iterable[int], count: int) -> list[int]:
    """Winners in draw order; everyone wins when there are fewer entrants than ``count``."""
    pool = sorted(set(entrants))
    base = material(seed, pool)
    winners: list[int] = []
    k = 0
    while pool and len(winners) < count:
        h = int(hashlib.sha256(f"{base}:{k}".encode("ascii")).hexdigest(), 16)
        winners.append(pool.pop(h % len(pool)))
        k += 1
    return winners
