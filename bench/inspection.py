"""Inspection latency at scale: as-of replay and one-year rank explanations.

    .venv/bin/python -m bench.inspection [--households 100000] [--samples 200]
                                         [--database postgresql://...] [--keep]

Builds one ranking scope (Kota Bontang, 64.74) of N households with about 10 × N events
over 18 months, on a fresh PostgreSQL database (or the one given), then measures:
- as-of replay: `GET /households/{id}?as_of=T` without HTTP (`Inspector.household_as_of`)
  for a random household at a random instant of the year;
- rank explanation: `Inspector.rank_explanation` over the last year (from one year
  before the last event to then) for a random household registered in the first six
  months (so ranked at both ends; the year holds most updates and the model change).
Writes bench/results/inspection.json and .md.

The faster path (documented): events are not sent through the command methods one
command at a time. The same domain methods (`Proposal.approve_at_village`,
`verify_by_dinsos`, `mark_applied`, `Household(...)`, `Household.update`) produce the
same events, and `app.save` stores up to `--batch` aggregates per transaction in
chronological order, so notification order follows event time. Each registration and
each update is the full proposal lifecycle (Submitted, VillageApproved, DinsosVerified,
Applied, and the household's event): 5 events. Half the events are registrations, half
updates of random registered households; the scoring model gets a new version in the
last year (one score_log row per household). Only the projections inspection reads (`event_index`,
`score_log`) are caught up.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import structlog

from slrt.config import Settings
from slrt.domain.common import Actor, Role
from slrt.domain.household import Household
from slrt.domain.proposal import Proposal
from slrt.domain.reference import Indicator
from slrt.domain.scoring import (
    DEFAULT_HOUSEHOLD_SIZE_WEIGHT,
    DEFAULT_INTERCEPT,
    DEFAULT_WEIGHTS,
    ScoringModel,
)
from slrt.dossier import build_dossier
from slrt.inspection import Inspector, verification_result
from slrt.runtime import Runtime, build_runtime

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
RESULTS = Path(__file__).resolve().parent / "results"
DESA = ["64.74.01.1001", "64.74.01.1002", "64.74.02.1001", "64.74.03.1001"]
ADMIN = {"user_id": "bench-admin", "role": "admin", "region": "ID"}
FO = {"user_id": "bench-fo", "role": "front_office", "region": DESA[0]}
KADES = {"user_id": "bench-kades", "role": "village_head", "region": DESA[0]}
DINSOS = {"user_id": "bench-dinsos", "role": "dinsos_verifier", "region": "64.74"}
BERITA_ACARA = {"number": "BA/BENCH/2026", "date": "2025-01-01", "sha256": "0" * 64}
VIEWER = Actor(user_id="bench-inspector", role=Role.INSPECTOR, region="ID")
START = datetime(2025, 11, 20, 0, 0, tzinfo=UTC)
YEAR = timedelta(days=365)
HALF_YEAR = timedelta(days=182)
END = START + HALF_YEAR + YEAR


def _indicators(rng: random.Random) -> dict[str, bool]:
    p = rng.random()
    return {i.value: rng.random() < p for i in Indicator}


def _household(rng: random.Random, serial: int) -> dict[str, Any]:
    members = []
    for index in range(rng.randint(1, 5)):
        day = 1 + serial % 28
        members.append(
            {
                "nik": f"647401{day + (40 if index else 0):02d}0180{serial % 10_000:04d}",
                "name": f"Warga {serial}-{index}",
                "relationship": "head" if index == 0 else "child",
                "sex": "P" if index else "L",
                "birth_date": "1980-01-01",
            }
        )
    return {
        "region": DESA[serial % len(DESA)],
        "address": f"Jl. Bench No. {serial}",
        "rt": "001",
        "rw": "002",
        "no_kk": f"6474010101{serial:06d}"[-16:],
        "members": members,
        "indicators": _indicators(rng),
        "pmks": [],
    }


def _lifecycle(
    proposal: Proposal, at: datetime, household_id: uuid.UUID
) -> tuple[datetime, datetime]:
    approved, verified = at + timedelta(seconds=1), at + timedelta(seconds=2)
    proposal.approve_at_village(berita_acara=BERITA_ACARA, actor=KADES, timestamp=approved)
    proposal.verify_by_dinsos(note=None, actor=DINSOS, timestamp=verified)
    proposal.mark_applied(household_id=household_id, actor=DINSOS, timestamp=verified)
    return approved, verified


def load(runtime: Runtime, households: int, batch: int, seed: int) -> dict[str, Any]:
    """Stores ~10 × households events over 18 months, in chronological order: 70% of
    the registrations in the first six months, then a year of updates (one per household
    on average) and the remaining registrations, with a new model version mid-year."""
    rng = random.Random(seed)
    app = runtime.app
    first = int(households * 0.7)
    later = ["register"] * (households - first) + ["update"] * households
    rng.shuffle(later)
    schedule = [(START + HALF_YEAR * i / first, "register") for i in range(first)] + [
        (START + HALF_YEAR + YEAR * j / len(later), kind) for j, kind in enumerate(later)
    ]
    model_at = START + HALF_YEAR + YEAR / 2
    model = ScoringModel(actor=ADMIN, timestamp=START)
    weights = {k.value: v for k, v in DEFAULT_WEIGHTS.items()}
    model.publish(
        intercept=DEFAULT_INTERCEPT,
        weights=weights,
        household_size_weight=DEFAULT_HOUSEHOLD_SIZE_WEIGHT,
        note="v1",
        actor=ADMIN,
        timestamp=START,
    )
    app.save(model)
    registered: list[Household] = []
    pending: list[Any] = []
    model_published = False
    started = time.perf_counter()
    for index, (at, kind) in enumerate(schedule, 1):
        if not model_published and at >= model_at:
            model.publish(
                intercept=DEFAULT_INTERCEPT,
                weights={k: v * (0.6 + 0.8 * rng.random()) for k, v in weights.items()},
                household_size_weight=DEFAULT_HOUSEHOLD_SIZE_WEIGHT,
                note="v2",
                actor=ADMIN,
                timestamp=at,
            )
            app.save(*pending)
            pending.clear()
            app.save(model)
            model_published = True
        register = kind == "register"
        if register:
            data = _household(rng, len(registered))
            proposal = Proposal(
                kind="register",
                region=data["region"],
                household_id=None,
                payload={"household": data},
                note=None,
                actor=FO,
                timestamp=at,
            )
            household = Household(
                data=data,
                proposal_id=proposal.id,
                source=None,
                actor=DINSOS,
                timestamp=at + timedelta(seconds=2),
            )
            _lifecycle(proposal, at, household.id)
            registered.append(household)
            pending.extend([proposal, household])
        else:
            household = rng.choice(registered)
            if household.pending_events and pending:
                # Keep notification order = time order: store its earlier events first.
                app.save(*pending)
                pending.clear()
            changes = {"indicators": _indicators(rng)}
            proposal = Proposal(
                kind="update",
                region=household.region,
                household_id=household.id,
                payload={"changes": changes},
                note=None,
                actor=FO,
                timestamp=at,
            )
            _, verified = _lifecycle(proposal, at, household.id)
            household.update(
                changes=changes, proposal_id=proposal.id, actor=DINSOS, timestamp=verified
            )
            pending.extend([proposal, household])
        if len(pending) >= batch:
            app.save(*pending)
            pending.clear()
        if index % 20_000 == 0:
            rate = index / (time.perf_counter() - started)
            print(f"  {index}/{len(schedule)} operations ({rate:.0f}/s)", flush=True)
    if pending:
        app.save(*pending)
    return {
        "households": len(registered),
        "events": app.recorder.max_notification_id() or 0,
        "load_seconds": round(time.perf_counter() - started, 1),
        "household_ids": [h.id for h in registered],
    }


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {
        "p50_ms": round(pick(0.50) * 1000, 2),
        "p95_ms": round(pick(0.95) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2),
        "n": len(ordered),
    }


def measure(runtime: Runtime, ids: list[uuid.UUID], samples: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed + 1)
    inspector = Inspector(runtime)
    end = END
    # Households registered in the first six months: ranked a year before the end.
    early = ids[: int(len(ids) * 0.7)]
    as_of: list[float] = []
    for _ in range(samples):
        hid = rng.choice(ids)
        household: Any = runtime.app.repository.get(hid)
        at = household.created_on + (end - household.created_on) * rng.random()
        began = time.perf_counter()
        inspector.household_as_of(hid, at)
        as_of.append(time.perf_counter() - began)
    explain: list[float] = []
    for _ in range(max(20, samples // 4)):
        hid = rng.choice(early)
        began = time.perf_counter()
        inspector.rank_explanation(hid, end - YEAR, end)
        explain.append(time.perf_counter() - began)
    # A year that ended 60 days before the last event: each household's score at the end
    # is its last change up to then, not its current score.
    ended = end - timedelta(days=60)
    explain_past: list[float] = []
    for _ in range(max(20, samples // 4)):
        hid = rng.choice(early[: int(len(ids) * 0.5)])
        began = time.perf_counter()
        inspector.rank_explanation(hid, ended - YEAR, ended)
        explain_past.append(time.perf_counter() - began)
    # A dossier's hash chain check: its own records (the default) for random
    # households, beside the whole store's verification (what every dossier did before
    # the fourteenth session), once.
    chains: list[float] = []
    dossiers: list[float] = []
    for _ in range(max(20, samples // 4)):
        hid = rng.choice(ids)
        began = time.perf_counter()
        checked = verification_result(inspector, hid, "records")
        chains.append(time.perf_counter() - began)
        assert checked["ok"], checked["text"]
        began = time.perf_counter()
        build_dossier(inspector, hid, viewer=VIEWER, as_of=[], start=None, end=None)
        dossiers.append(time.perf_counter() - began)
    # A household's timeline (its desil changes summed up by the database since the
    # fifteenth session), and its desil changes alone, beside every change of its rank
    # (walked in Python: what the desil changes were before).
    timelines: list[float] = []
    desil_changes: list[float] = []
    every_change: list[float] = []
    for _ in range(max(20, samples // 4)):
        hid = rng.choice(ids)
        began = time.perf_counter()
        inspector.timeline(hid)
        timelines.append(time.perf_counter() - began)
        began = time.perf_counter()
        inspector.rank_history(hid, changes="desil")
        desil_changes.append(time.perf_counter() - began)
        began = time.perf_counter()
        inspector.rank_history(hid)
        every_change.append(time.perf_counter() - began)
    began = time.perf_counter()
    whole = verification_result(inspector, ids[0], "store")
    store_seconds = time.perf_counter() - began
    assert whole["ok"], whole["text"]
    return {
        "dossier_records_verification": percentiles(chains),
        "dossier_with_records_verification": percentiles(dossiers),
        "store_verification_seconds": round(store_seconds, 2),
        "timeline": percentiles(timelines),
        "rank_history_desil_changes": percentiles(desil_changes),
        "rank_history_every_change": percentiles(every_change),
        "as_of_replay": percentiles(as_of),
        "rank_explanation_one_year": percentiles(explain),
        "rank_explanation_one_year_ended_60_days_ago": percentiles(explain_past),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--households", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--database", help="an existing, empty PostgreSQL database URL")
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    parser.add_argument(
        "--measure-only",
        action="store_true",
        help="with --database: measure a database loaded by an earlier --keep run",
    )
    args = parser.parse_args()
    logging.disable(logging.INFO)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    name = f"slrt_bench_inspection_{uuid.uuid4().hex[:8]}"
    url = args.database
    if url is None:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    settings = Settings(
        _env_file=None,
        database_url=url,
        log_format="json",
        projection_batch_size=5_000,
        group_commit=False,
    )
    runtime = build_runtime(settings)
    try:
        if args.measure_only:
            with psycopg.connect(url) as conn:
                registered = conn.execute(
                    "SELECT aggregate_id FROM event_index WHERE topic = 'Household.Registered' "
                    "ORDER BY notification_id"
                )
                ids = [uuid.UUID(r[0]) for r in registered]
            loaded = {"households": len(ids), "events": runtime.app.recorder.max_notification_id()}
            projection_seconds = None
        else:
            print(f"loading {args.households} households into {url}", flush=True)
            loaded = load(runtime, args.households, args.batch, args.seed)
            ids = loaded.pop("household_ids")
            print(f"loaded {loaded}", flush=True)
            started = time.perf_counter()
            for projection in ("event_index", "score_log"):
                began = time.perf_counter()
                runtime.workers[projection].catch_up()
                took = time.perf_counter() - began
                print(f"  {projection} caught up in {took:.0f} s", flush=True)
            projection_seconds = round(time.perf_counter() - started, 1)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
            score_rows = conn.execute("SELECT count(*) FROM score_log").fetchone()
        figures = measure(runtime, ids, args.samples, args.seed)
        result = {
            "database": "postgresql",
            **loaded,
            "score_log_rows": score_rows[0] if score_rows else None,
            "projection_seconds": projection_seconds,
            **figures,
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        print(json.dumps(result, indent=2))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "inspection.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "inspection.md").write_text(_markdown(result))
    finally:
        runtime.close()
        if args.keep:
            print(f"kept {url}")
        elif args.database is None:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _markdown(result: dict[str, Any]) -> str:
    a, e = result["as_of_replay"], result["rank_explanation_one_year"]
    p = result["rank_explanation_one_year_ended_60_days_ago"]
    c, d = result["dossier_records_verification"], result["dossier_with_records_verification"]
    ratio = c["p50_ms"] / 1000 / result["store_verification_seconds"]
    t, h = result["timeline"], result["rank_history_desil_changes"]
    w = result["rank_history_every_change"]
    return (
        "# Inspection latency (PostgreSQL, one scope)\n\n"
        f"{result['households']} households, {result['events']} events, "
        f"{result['score_log_rows']} score_log rows; measured {result['measured_at']}.\n\n"
        "| query | p50 ms | p95 ms | max ms | samples | target p95 |\n|---|---|---|---|---|---|\n"
        f"| as-of replay | {a['p50_ms']} | {a['p95_ms']} | {a['max_ms']} | {a['n']} | 50 |\n"
        f"| one-year rank explanation | {e['p50_ms']} | {e['p95_ms']} | {e['max_ms']} | "
        f"{e['n']} | 200 |\n"
        f"| one-year rank explanation, year ended 60 days before the last event | "
        f"{p['p50_ms']} | {p['p95_ms']} | {p['max_ms']} | {p['n']} | 200 |\n"
        f"| a dossier's hash chain check, its own records | {c['p50_ms']} | {c['p95_ms']} | "
        f"{c['max_ms']} | {c['n']} | — |\n"
        f"| a whole dossier, checking its own records | {d['p50_ms']} | {d['p95_ms']} | "
        f"{d['max_ms']} | {d['n']} | — |\n"
        f"| a household's timeline, whole | {t['p50_ms']} | {t['p95_ms']} | {t['max_ms']} | "
        f"{t['n']} | — |\n"
        f"| rank history, desil changes (`changes=desil`) | {h['p50_ms']} | {h['p95_ms']} | "
        f"{h['max_ms']} | {h['n']} | — |\n"
        f"| rank history, every change (baseline) | {w['p50_ms']} | {w['p95_ms']} | "
        f"{w['max_ms']} | {w['n']} | — |\n\n"
        f"Desil changes at {h['p50_ms'] / w['p50_ms']:.2f} of every change (p50).\n"
        f"The whole store's verification (what every dossier ran before): "
        f"{result['store_verification_seconds']} s, {ratio:.5f} of it for one dossier's "
        "records (p50).\n"
    )


if __name__ == "__main__":
    main()
