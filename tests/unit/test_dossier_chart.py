"""The dossier's rank section on a long history: a chart of bounded size that still
shows the extremes, and a table of the changes that matter for aid (desil) and of the
household's own and the model's changes."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from slrt import dossier

START = datetime(2026, 1, 1, tzinfo=UTC)


def history(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Points as `Inspector.rank_points` gives them: a rank that moves by one most
    of the time (population), sometimes jumps (own data), desil from rank."""
    rng = random.Random(seed)
    rank, points = 500, []
    for index in range(count):
        cause = "population"
        if index and index % 997 == 0:
            cause, rank = "own_data", rng.randint(1, 1_000)
        else:
            rank = min(1_000, max(1, rank + rng.choice((-1, 1))))
        points.append(
            {
                "at": START + timedelta(minutes=index),
                "notification_id": index + 1,
                "rank": rank,
                "desil": (rank - 1) // 100 + 1,
                "population": 1_000,
                "score": 1.0,
                "cause": "start" if not index else cause,
            }
        )
    return points


def test_a_long_history_is_drawn_with_bounded_points_and_its_extremes() -> None:
    points = history(50_000)
    ranked = [(p["at"].timestamp(), p) for p in points]

    drawn = dossier._thinned(ranked, ranked[0][0], ranked[-1][0])

    assert len(drawn) <= 4 * dossier._CHART_BUCKETS
    assert drawn[0] is ranked[0] and drawn[-1] is ranked[-1]
    assert [t for t, _ in drawn] == sorted(t for t, _ in drawn)
    ranks = {p["rank"] for _, p in drawn}
    assert min(p["rank"] for p in points) in ranks and max(p["rank"] for p in points) in ranks
    svg = dossier._chart(points)
    assert len(re.findall(r"[ML][0-9.]+,", svg)) <= 2 * len(drawn) + 1
    assert len(re.findall("<circle", svg)) <= dossier._CHART_LABELS


def test_a_short_history_is_drawn_point_by_point() -> None:
    points = history(200)
    ranked = [(p["at"].timestamp(), p) for p in points]

    assert dossier._thinned(ranked, ranked[0][0], ranked[-1][0]) == ranked


def test_the_table_lists_desil_changes_and_own_changes_and_counts_the_rest() -> None:
    points = history(5_000)
    expected = [
        p
        for i, p in enumerate(points)
        if p["cause"] != "population" or p["desil"] != points[i - 1]["desil"]
    ]

    table = dossier._history_table(points, "64.74.01.1001")

    assert table.count("<tr>") - 1 == len(expected)
    assert table.count("own_data") == sum(p["cause"] == "own_data" for p in points)
    assert f"{len(points) - len(expected)} more change(s) of rank alone" in table
    assert "+08:00" in table  # Bontang's local time (WITA)
