"""Rank and desil: rank 1 is the poorest; desil 1 the poorest tenth."""

from __future__ import annotations

import pytest

from slrt.domain.ranking import desil, rank_scope


def test_lowest_score_is_rank_one() -> None:
    ranks = rank_scope([("b", 50.0), ("a", 20.0), ("c", 80.0)])
    assert {k: r for k, (r, _) in ranks.items()} == {"a": 1, "b": 2, "c": 3}


def test_ties_are_broken_by_household_id_whatever_the_input_order() -> None:
    forward = rank_scope([("x", 10.0), ("y", 10.0)])
    backward = rank_scope([("y", 10.0), ("x", 10.0)])
    assert forward == backward
    assert forward["x"][0] == 1


def test_desil_splits_a_hundred_households_into_tenths() -> None:
    assert [desil(r, 100) for r in (1, 10, 11, 20, 91, 100)] == [1, 1, 2, 2, 10, 10]


def test_every_desil_is_used_once_the_scope_has_ten_households() -> None:
    assert [desil(r, 10) for r in range(1, 11)] == list(range(1, 11))


def test_a_lone_household_is_in_desil_one() -> None:
    assert desil(1, 1) == 1


def test_desil_sizes_differ_by_at_most_one() -> None:
    counts = [0] * 10
    for rank in range(1, 1235):
        counts[desil(rank, 1234) - 1] += 1
    assert max(counts) - min(counts) <= 1


def test_rank_outside_the_population_is_an_error() -> None:
    with pytest.raises(ValueError):
        desil(11, 10)


@pytest.mark.parametrize("seed", range(8))
def test_incremental_desils_always_equal_a_full_re_rank(seed: int) -> None:
    import random

    from slrt.domain.ranking import ScopeRanking

    rng = random.Random(seed)
    scores = {f"h{i:04d}": float(rng.randint(0, 40)) for i in range(rng.randint(1, 120))}
    ranking = ScopeRanking(scores.items())
    for _ in range(300):
        hid = f"h{rng.randint(0, 160):04d}"
        new = None if rng.random() < 0.2 else float(rng.randint(0, 40))
        if new is None and hid not in scores:
            continue
        ranking.set_score(hid, new)
        if new is None:
            scores.pop(hid)
        else:
            scores[hid] = new
        full = rank_scope(scores.items())
        assert ranking.desils == {h: d for h, (_, d) in full.items()}
        assert all(ranking.rank_of(h) == r for h, (r, _) in full.items())


@pytest.mark.parametrize("seed", range(12))
def test_many_changes_at_once_rank_as_a_full_re_rank_and_name_the_changed_rows(
    seed: int,
) -> None:
    import random

    from slrt.domain.ranking import ScopeRanking

    rng = random.Random(seed)
    scores = {f"h{i:04d}": float(rng.randint(0, 40)) for i in range(rng.randint(1, 300))}
    ranking = ScopeRanking(scores.items())
    for _ in range(6):
        # From a handful of changes (placed one at a time) to more than the scope
        # (ranked again): both ways must agree with ranking from scratch.
        changes: dict[str, float | None] = {}
        for _ in range(rng.choice([1, 3, 40, 400])):
            hid = f"h{rng.randint(0, 400):04d}"
            changes[hid] = None if rng.random() < 0.2 else float(rng.randint(0, 40))
        before = ranking.rows()
        touched = ranking.set_scores(changes)
        for hid, new in changes.items():
            if new is None:
                scores.pop(hid, None)
            else:
                scores[hid] = new
        full = rank_scope(scores.items())
        assert ranking.rows() == {h: (scores[h], d) for h, (_, d) in full.items()}
        assert all(ranking.rank_of(h) == r for h, (r, _) in full.items())
        after = ranking.rows()
        # Every row that differs is named (a row that changed and changed back within
        # the batch may be named too: writing it again is harmless).
        changed = {h for h in before.keys() | after.keys() if before.get(h) != after.get(h)}
        assert changed <= touched <= before.keys() | after.keys()
