"""Projection catch-up from zero, beside a raw SELECT of the same rows.

Writes HOUSEHOLDS households and enough indicator updates to reach EVENTS events (on
PostgreSQL), then rebuilds `household_status` from zero and times it. The baseline is
psycopg reading every stored event row (SELECT … ORDER BY id) in the same run. The data is
written with `app.save` of 1,000 aggregates at a time: this measures the projection, not
the command path. Then starts its worker on the emptied projection, as `slrt serve` or
`slrt worker` would, and times it until it has caught up: far behind from zero, it rebuilds
in one process per core (slrt.projections.parallel). Writes bench/results/projections.json
and .md.
"""

from __future__ import annotations

import json
import os
import random
import resource
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from tests.builders import ADMIN, default_model

from bench.bodies import register_body
from bench.run import RESULTS, drop_postgres, fresh_postgres
from slrt.config import Settings
from slrt.domain.household import Household, validate_household_data
from slrt.domain.reference import Indicator
from slrt.projections.base import REBUILDING
from slrt.runtime import build_runtime

EVENTS = int(os.environ.get("SLRT_BENCH_EVENTS", "1000000"))
HOUSEHOLDS = int(os.environ.get("SLRT_BENCH_HOUSEHOLDS", "100000"))
#: Processes of the parallel rebuild: one per core.
PROCESSES = int(os.environ.get("SLRT_BENCH_REBUILD_PROCESSES", str(os.cpu_count() or 2)))
#: Measured after household_status, on the same store (they read every event too).
OTHERS = ("score_log", "event_index")


def fill(settings: Settings) -> int:
    runtime = build_runtime(settings)
    app = runtime.app
    app.publish_scoring_model(actor=ADMIN, note="bench", **default_model())
    rng = random.Random(3)
    actor = ADMIN.as_record()
    at = datetime(2026, 1, 1, tzinfo=UTC)
    households: list[Household] = []
    written = 0
    for n in range(HOUSEHOLDS):
        body = register_body(n)["household"]
        household = Household(
            data=validate_household_data(body),
            proposal_id=None,
            source="bench",
            actor=actor,
            timestamp=at,
        )
        households.append(household)
        if len(households) == 1000:
            app.save(*households)
            written += len(households)
            households.clear()
    if households:
        app.save(*households)
        written += len(households)
    ids = [h for h in _household_ids(app, written)]
    indicators = list(Indicator)
    batch: dict[Any, Household] = {}
    while written < EVENTS:
        hid = rng.choice(ids)
        household = batch.get(hid) or app.repository.get(hid)
        changed = dict(household.indicators)
        flip = rng.choice(indicators).value
        changed[flip] = not changed[flip]
        at += timedelta(seconds=1)
        household.update(
            changes={"indicators": changed}, proposal_id=hid, actor=actor, timestamp=at
        )
        batch[hid] = household
        written += 1
        if len(batch) == 1000:
            app.save(*batch.values())
            batch.clear()
    if batch:
        app.save(*batch.values())
    runtime.close()
    return written


def _household_ids(app: Any, count: int) -> list[Any]:
    ids = []
    for notification in app.recorder.select_notifications(start=1, limit=count + 10):
        if notification.topic.endswith("Household.Registered"):
            ids.append(notification.originator_id)
    return ids


def raw_select(url: str) -> tuple[int, float]:
    started = time.perf_counter()
    rows = 0
    with psycopg.connect(url) as conn, conn.cursor(name="all_events") as cursor:
        cursor.itersize = 10_000
        cursor.execute("SELECT * FROM slrt_events ORDER BY notification_id")
        for _ in cursor:
            rows += 1
    return rows, time.perf_counter() - started


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    url = fresh_postgres()
    try:
        settings = Settings(_env_file=None, database_url=url, log_level="WARNING")
        started = time.perf_counter()
        events = fill(settings)
        fill_seconds = time.perf_counter() - started
        rows, select_seconds = raw_select(url)
        runtime = build_runtime(settings)
        worker = runtime.workers["household_status"]
        worker.reset()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        applied = worker.catch_up()
        catch_up_seconds = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        # From zero again, as a started worker (slrt serve, slrt worker) catches up:
        # far behind, it rebuilds in one process per core. Timed from the worker's start
        # until its position reaches the last event: the processes' start-up included.
        worker.reset()
        runtime.close()
        runtime = build_runtime(
            settings.model_copy(update={"projection_rebuild_processes": PROCESSES})
        )
        worker = runtime.workers["household_status"]
        last = runtime.app.recorder.max_notification_id() or 0
        started = time.perf_counter()
        runtime.start_workers(["household_status"])
        positions = set()
        while (position := worker.position()) < last:
            positions.add(position)
            time.sleep(0.02)
        parallel_seconds = time.perf_counter() - started
        runtime.stop_workers()
        if REBUILDING not in positions:
            msg = "the worker caught up in its own process: see its warnings above"
            raise RuntimeError(msg)
        others = {}
        for name in OTHERS:
            other = runtime.workers[name]
            other.reset()
            started = time.perf_counter()
            read = other.catch_up()
            others[name] = round(read / (time.perf_counter() - started))
        runtime.close()
    finally:
        drop_postgres(url)
    report = {
        "measured_at": datetime.now(UTC).isoformat(),
        "households": HOUSEHOLDS,
        "events": events,
        "fill_seconds": round(fill_seconds, 1),
        "raw_select_rows_per_s": round(rows / select_seconds),
        "catch_up_events_per_s": round(applied / catch_up_seconds),
        "catch_up_seconds": round(catch_up_seconds, 1),
        "ratio_to_raw_select": round((applied / catch_up_seconds) / (rows / select_seconds), 3),
        "rebuild_processes": PROCESSES,
        "rebuild_in_processes_events_per_s": round(last / parallel_seconds),
        "rebuild_in_processes_seconds": round(parallel_seconds, 1),
        "rebuild_in_processes_ratio_to_raw_select": round(
            (last / parallel_seconds) / (rows / select_seconds), 3
        ),
        "peak_rss_mb_before_catch_up": round(rss_before),
        "peak_rss_mb_after_catch_up": round(rss_after),
        "other_projections_events_per_s": others,
    }
    (RESULTS / "projections.json").write_text(json.dumps(report, indent=2))
    table = (
        "| households | events | household_status catch-up events/s | raw SELECT rows/s "
        "| ratio | catch-up s | peak RSS MB |\n|---|---|---|---|---|---|---|\n"
        f"| {HOUSEHOLDS} | {events} | {report['catch_up_events_per_s']} "
        f"| {report['raw_select_rows_per_s']} | {report['ratio_to_raw_select']} "
        f"| {report['catch_up_seconds']} | {report['peak_rss_mb_after_catch_up']} |\n"
    )
    table += (
        f"\nCaught up from zero by a started worker, which rebuilds in {PROCESSES} "
        "processes (as `slrt projections rebuild household_status --processes "
        f"{PROCESSES}` does), start-up included: "
        f"{report['rebuild_in_processes_events_per_s']} events/s, ratio "
        f"{report['rebuild_in_processes_ratio_to_raw_select']} to the raw SELECT, "
        f"{report['rebuild_in_processes_seconds']} s.\n"
    )
    table += "\nThe other projections that follow households, on the same store (events/s): "
    table += ", ".join(f"`{name}` {rate}" for name, rate in others.items()) + ".\n"
    (RESULTS / "projections.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
