"""Referrals over Kafka under a burst: publish lag and referral→acknowledgement latency.

Run by hand (`python -m bench.referrals`, also part of `make bench`). On a fresh
PostgreSQL database and a fresh noida-db broker it imports households, then creates a
burst of referrals (default 10,000) through the application from 16 threads (group
commit on), while the referral outbox, one simulated agency consumer answering for all eight
agency codes (acknowledging only) and the inbox run in the same process, as `slrt serve` runs them.

- publish lag: from the referral's stored timestamp to the broker's acknowledgement of
  its message (measured by the outbox after `flush()`);
- end-to-end: from `Referral.Created` to `Referral.Acknowledged` (both stored
  timestamps), i.e. outbox + broker + agency + broker + inbox + database.

Writes bench/results/referrals.json and .md. SLRT_BENCH_REFERRALS sets the burst size.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from tests.kafka_broker import KafkaBroker, wait_for_reaping

from bench.bodies import register_body
from slrt.application import SYSTEM_ACTOR
from slrt.config import Settings
from slrt.domain.common import Actor, Role
from slrt.domain.referral import AGENCY_SERVICES, Agency
from slrt.integrations.agency import AgencySimulator
from slrt.integrations.inbox import ReferralInbox
from slrt.integrations.outbox import ReferralOutbox, wait_until
from slrt.runtime import build_runtime

RESULTS = Path(__file__).resolve().parent / "results"
POSTGRES_URL = os.environ.get(
    "SLRT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REFERRALS = int(os.environ.get("SLRT_BENCH_REFERRALS", "10000"))
HOUSEHOLDS = max(1, REFERRALS // 5)
THREADS = 16
FRONT_OFFICE = Actor("bench-fo", Role.FRONT_OFFICE, "64.74.01.1001")


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(share * len(ordered)))], 3)

    return {
        "p50": at(0.50),
        "p95": at(0.95),
        "p99": at(0.99),
        "max": round(ordered[-1], 3),
        "mean": round(statistics.fmean(ordered), 3),
    }


def report(outbox: ReferralOutbox, inbox: ReferralInbox, start: float) -> None:
    while True:
        time.sleep(2)
        print(
            f"  {time.perf_counter() - start:5.1f} s: published {outbox.published}, "
            f"answers applied {inbox.applied}",
            flush=True,
        )


def main() -> int:
    name = f"slrt_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    database_url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    broker = KafkaBroker().start()
    try:
        return run(database_url, broker)
    finally:
        broker.close()
        wait_for_reaping()
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(database_url: str, broker: KafkaBroker) -> int:
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        log_level="WARNING",
        log_format="console",
        kafka_bootstrap_servers=broker.bootstrap,
        postgres_pool_size=THREADS + 4,
        referral_poll_interval_seconds=0.05,
    )
    from slrt.logging import configure_logging

    configure_logging(settings)
    runtime = build_runtime(settings)
    app = runtime.app
    outbox: ReferralOutbox = runtime.processes["referral_outbox"]
    inbox: ReferralInbox = runtime.processes["referral_inbox"]
    outbox.keep_lags = True
    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        households = list(
            pool.map(
                lambda n: (
                    app.import_household(
                        actor=SYSTEM_ACTOR, data=register_body(n)["household"], source="bench"
                    ).id
                ),
                range(HOUSEHOLDS),
            )
        )
    print(f"{HOUSEHOLDS} households imported in {time.perf_counter() - started:.1f} s")

    # One consumer answers for all eight agencies: eight idle consumers would spin the
    # CPU on noida-db (docs/kafka-broker-notes.md) and distort the figures.
    agencies = [
        AgencySimulator(settings, [a.value for a in Agency], outcome="none", group_id="bench")
    ]
    # Connect everything before the burst, so the figures are not start-up times.
    outbox.catch_up()
    inbox.connect()
    for agency in agencies:
        agency.start()
    outbox.start()
    inbox.start()
    time.sleep(3)

    def refer(n: int) -> uuid.UUID:
        agency = list(Agency)[n % len(Agency)]
        return app.create_referral(
            actor=FRONT_OFFICE,
            household_id=households[n % HOUSEHOLDS],
            agency=agency.value,
            service=sorted(AGENCY_SERVICES[agency])[0],
            reason="bench",
        ).id

    burst_start = time.perf_counter()
    progress = threading.Thread(target=report, args=(outbox, inbox, burst_start), daemon=True)
    progress.start()
    with ThreadPoolExecutor(THREADS) as pool:
        referrals = list(pool.map(refer, range(REFERRALS)))
    burst = time.perf_counter() - burst_start
    print(f"{REFERRALS} referrals created in {burst:.1f} s ({REFERRALS / burst:.0f}/s)")
    done = wait_until(lambda: inbox.applied >= REFERRALS, timeout=900, interval=0.2)
    drained = time.perf_counter() - burst_start
    print(f"all acknowledged: {done}, {drained:.1f} s after the burst began")
    for agency in agencies:
        agency.stop()
    runtime.stop_workers()

    end_to_end = []
    for referral_id in referrals:
        events = {type(e).__name__: e for e in app.events.get(referral_id)}
        if "Acknowledged" in events:
            end_to_end.append(
                (events["Acknowledged"].timestamp - events["Created"].timestamp).total_seconds()
            )
    result: dict[str, Any] = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": "postgresql",
        "broker": "noida-db 0.2.3 (single process, 127.0.0.1)",
        "referrals": REFERRALS,
        "households": HOUSEHOLDS,
        "threads": THREADS,
        "burst_seconds": round(burst, 2),
        "all_acknowledged": done,
        "drain_seconds": round(drained, 2),
        "published_messages": outbox.published,
        "acknowledged": len(end_to_end),
        "publish_lag_seconds": percentiles(outbox.publish_lags),
        "end_to_end_seconds": percentiles(end_to_end),
        "machine": f"{os.cpu_count()} cores, Python {sys.version.split()[0]}",
    }
    runtime.close()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "referrals.json").write_text(json.dumps(result, indent=2) + "\n")
    lag, e2e = result["publish_lag_seconds"], result["end_to_end_seconds"]
    lines = [
        "# Referrals over Kafka: a burst (bench/referrals.py)",
        "",
        f"{REFERRALS} referrals created in {burst:.1f} s from {THREADS} threads "
        f"(PostgreSQL, group commit), outbox + simulated agencies + inbox in one process, "
        f"noida-db broker; measured {result['measured_at']} on {result['machine']}.",
        "",
        "| seconds | p50 | p95 | p99 | max | mean |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| publish lag (stored → broker ack) | {lag['p50']} | {lag['p95']} | {lag['p99']} "
        f"| {lag['max']} | {lag['mean']} |",
        f"| referral → acknowledged | {e2e['p50']} | {e2e['p95']} | {e2e['p99']} "
        f"| {e2e['max']} | {e2e['mean']} |",
        "",
        f"All {len(end_to_end)} acknowledged {drained:.1f} s after the burst began.",
    ]
    (RESULTS / "referrals.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if done else 1


if __name__ == "__main__":
    raise SystemExit(main())
