"""Rank and desil within a ranking scope: pure functions, used by the projection."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from functools import lru_cache
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


def desil_first_rank(desil: int, population: int) -> int:
    """The first rank of a desil (desil d starts at the first r with 10(r−1) ≥ (d−1)n);
    desil 11 gives n + 1, the rank after the last."""
    return -(-((desil - 1) * population) // 10) + 1


@lru_cache(maxsize=64)
def desil_boundaries(population: int) -> tuple[int, ...]:
    """The first rank of each desil 2..10."""
    return tuple(desil_first_rank(d, population) for d in range(2, 11))


class ScopeRanking:
    """One scope's households in rank order, kept up to date one change at a time.

    A change moves one household; every household between its old and new place shifts
    by one rank, but a desil changes only for households that cross a desil boundary, so
    each change yields at most a few dozen desil changes, whatever the scope's size.
    """

    def __init__(self, scores: Iterable[tuple[str, float]]) -> None:
        self._rank_all(scores)

    def _rank_all(self, scores: Iterable[tuple[str, float]]) -> None:
        self._order: list[tuple[float, str]] = sorted((s, h) for h, s in scores)
        self._score: dict[str, float] = {h: s for s, h in self._order}
        n = len(self._order)
        self.desils: dict[str, int] = {h: desil(i, n) for i, (_, h) in enumerate(self._order, 1)}

    def __len__(self) -> int:
        return len(self._order)

    def score_of(self, household_id: str) -> float | None:
        return self._score.get(household_id)

    def rows(self) -> dict[str, tuple[float, int]]:
        """Every ranked household's (score, desil)."""
        return {h: (s, self.desils[h]) for s, h in self._order}

    def rank_of(self, household_id: str) -> int:
        key = (self._score[household_id], household_id)
        return bisect.bisect_left(self._order, key) + 1

    def set_score(self, household_id: str, score: float | None) -> dict[str, int | None]:
        """Places (or, with None, removes) a household; returns the desils that changed
        (None for a household no longer ranked)."""
        n_old = len(self._order)
        touched: set[int] = set()
        changed: dict[str, int | None] = {}
        old = self._score.pop(household_id, None)
        if old is not None:
            index = bisect.bisect_left(self._order, (old, household_id))
            del self._order[index]
            touched.add(index)
            self.desils.pop(household_id, None)
            if score is None:
                changed[household_id] = None
        if score is not None:
            index = bisect.bisect_left(self._order, (score, household_id))
            self._order.insert(index, (score, household_id))
            self._score[household_id] = score
            touched.add(index)
        n_new = len(self._order)
        # Positions (0-based) whose household may have changed desil: around every desil
        # boundary of the old and the new population, and around where the change happened.
        positions: set[int] = set()
        boundaries = {*desil_boundaries(n_old), *desil_boundaries(n_new)}
        if n_old == n_new and touched:
            # A move within the same population shifts only the stretch it crossed.
            low, high = min(touched), max(touched)
            boundaries = {b for b in boundaries if low - 3 <= b <= high + 3}
        for boundary in boundaries:
            positions.update(range(boundary - 3, boundary + 2))
        for index in touched:
            positions.update((index - 1, index, index + 1))
        for index in positions:
            if 0 <= index < n_new:
                hid = self._order[index][1]
                new = desil(index + 1, n_new)
                if self.desils.get(hid) != new:
                    self.desils[hid] = new
                    changed[hid] = new
        return changed

    def set_scores(self, scores: Mapping[str, float | None]) -> set[str]:
        """Applies many households' new scores (None: no longer ranked) at once; returns
        the households whose (score, desil) changed or that left the ranking.

        Few changes are placed one at a time; when many are (a catch-up, a big import),
        ranking the whole scope again is cheaper than moving each (a move costs the
        shift of a long list, a re-rank about one sort) and gives the same order."""
        if len(scores) * 16 <= len(self._order):
            touched: set[str] = set()
            for household_id, score in scores.items():
                if self._score.get(household_id) != score:
                    touched.add(household_id)
                    touched.update(self.set_score(household_id, score))
            return touched
        before = self.rows()
        merged = dict(self._score)
        for household_id, score in scores.items():
            if score is None:
                merged.pop(household_id, None)
            else:
                merged[household_id] = score
        self._rank_all(merged.items())
        after = self.rows()
        return {h for h, row in after.items() if before.get(h) != row} | (
            before.keys() - after.keys()
        )
