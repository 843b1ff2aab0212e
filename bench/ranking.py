"""Ranking a scope of 100,000 households: a full re-rank, and the re-rank after one change.

Rows are written straight into the household_status table (this measures ranking, not the
pipeline that fills the table). The baseline, measured in the same run, is the database
itself ranking the same rows: `row_number() OVER (ORDER BY score, household_id)` into a
temporary table. Writes bench/results/ranking.json and .md.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, text, update

from bench.run import RESULTS, drop_postgres, fresh_postgres
from slrt.config import Settings
from slrt.db import create_read_engine, metadata
from slrt.projections.household_status import (
    HouseholdStatusProjection,
    get_household_status,
    household_status,
)

HOUSEHOLDS = int(os.environ.get("SLRT_BENCH_HOUSEHOLDS", "100000"))
SCOPE = "64.74"
CHANGES = 30


def fill(engine: Engine, households: int) -> list[str]:
    rng = random.Random(7)
    now = datetime.now(UTC)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(households)]
    rows = [
        {
            "household_id": hid,
            "region": "64.74.01.1001",
            "kecamatan": "64.74.01",
            "scope": SCOPE,
            "status": "active",
            "head_name": "x",
            "address": "x",
            "rt": "001",
            "rw": "001",
            "no_kk_masked": "x",
            "members": "[]",
            "member_count": 3,
            "indicators": "{}",
            "deprivations": 5,
            "is_poor": False,
            "pmks": "[]",
            "programmes": "[]",
            "score": round(rng.uniform(10, 100), 6),
            "model_version": 1,
            "registered_at": now,
            "last_event": "Household.Registered",
            "last_event_at": now,
            "last_notification_id": i,
            "version": 1,
            "nik_hashes": "",
            "kk_hash": "",
        }
        for i, hid in enumerate(ids)
    ]
    with engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            conn.execute(insert(household_status), rows[start : start + 10_000])
    return ids


def timed(engine: Engine, work: Any) -> float:
    started = time.perf_counter()
    with engine.begin() as conn:
        work(conn)
    return (time.perf_counter() - started) * 1000


def bench(settings: Settings) -> dict[str, Any]:
    engine = create_read_engine(settings)
    metadata.create_all(engine)
    ids = fill(engine, HOUSEHOLDS)
    projection = HouseholdStatusProjection(b"bench")

    def full_rerank(conn: Any) -> None:
        projection.reset_cache()  # as after a new model version: rank everything again
        projection.rerank(conn, SCOPE)

    full = timed(engine, full_rerank)
    unchanged = timed(engine, full_rerank)  # everything already ranked: nothing to write
    rng = random.Random(11)
    one_change = []
    for _ in range(CHANGES):
        hid = rng.choice(ids)

        def change(conn: Any, hid: str = hid) -> None:
            # What the projection does for one household's new score, in one transaction.
            score = round(rng.uniform(10, 100), 6)
            conn.execute(
                update(household_status)
                .where(household_status.c.household_id == hid)
                .values(score=score)
            )
            projection._place(SCOPE, hid, score)
            projection.finish_batch(conn)

        one_change.append(timed(engine, change))
    read_rank = []
    for _ in range(CHANGES):
        hid = rng.choice(ids)
        started = time.perf_counter()
        with engine.connect() as conn:
            row = get_household_status(conn, hid)
        read_rank.append((time.perf_counter() - started) * 1000)
        assert row is not None and row["rank"] == projection._rankings[SCOPE].rank_of(hid)
    baseline_sql = (
        "CREATE TEMP TABLE ranked AS SELECT household_id, row_number() OVER "
        "(ORDER BY score, household_id) AS rank FROM household_status WHERE scope = :s"
    )
    database_rank = timed(
        engine,
        lambda c: (
            c.execute(text(baseline_sql), {"s": SCOPE}),
            c.execute(text("DROP TABLE ranked")),
        ),
    )
    engine.dispose()
    return {
        "households": HOUSEHOLDS,
        "full_rerank_ms": round(full, 1),
        "rerank_unchanged_ms": round(unchanged, 1),
        "one_change_p50_ms": round(statistics.median(one_change), 1),
        "one_change_max_ms": round(max(one_change), 1),
        "database_row_number_ms": round(database_rank, 1),
        "read_rank_p50_ms": round(statistics.median(read_rank), 1),
        "read_rank_max_ms": round(max(read_rank), 1),
    }


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    report: dict[str, Any] = {"measured_at": datetime.now(UTC).isoformat()}
    url = fresh_postgres()
    try:
        report["postgres"] = bench(Settings(_env_file=None, database_url=url))
    finally:
        drop_postgres(url)
    path = RESULTS / "ranking.db"
    path.unlink(missing_ok=True)
    report["sqlite"] = bench(Settings(_env_file=None, database_url=f"sqlite:///{path}"))
    path.unlink(missing_ok=True)
    (RESULTS / "ranking.json").write_text(json.dumps(report, indent=2))
    lines = [
        "| backend | households | full re-rank ms | re-rank, nothing changed ms "
        "| re-rank after one change p50 / max ms | database row_number() ms (baseline) "
        "| read one rank p50 / max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for backend in ("postgres", "sqlite"):
        r = report[backend]
        lines.append(
            f"| {backend} | {r['households']} | {r['full_rerank_ms']} | {r['rerank_unchanged_ms']} "
            f"| {r['one_change_p50_ms']} / {r['one_change_max_ms']} "
            f"| {r['database_row_number_ms']} "
            f"| {r['read_rank_p50_ms']} / {r['read_rank_max_ms']} |"
        )
    (RESULTS / "ranking.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
