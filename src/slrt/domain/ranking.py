"""Rank and desil within a ranking scope: pure functions, used by the projection."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID


def desil(rank: int, population: int) -> int:
    """Desil 1–10 as the percentile of the rank: desil d holds the ranks r with
    (d−1)/10 ≤ (r−1)/n < d/10, so desil 1 is the poorest tenth."""
    if not 1 <= rank <= population:
        msg = f"rank {rank} is outside a population of {population}"
        raise ValueError(msg)
    return (10 * (rank - 1)) // population + 1


def rank_scope(scores: Iterable[tuple[UUID | str, float]]) -> dict[str, tuple[int, int]]:
    """Rank 1 is the poorest (lowest welfare score). Equal scores are ordered by
    household id, so the same scores always give the same ranks."""
    ordered = sorted(((score, str(hid)) for hid, score in scores))
    population = len(ordered)
    return {hid: (rank, desil(rank, population)) for rank, (_, hid) in enumerate(ordered, 1)}
