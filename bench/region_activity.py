"""Region activity reports at national scale, beside a raw grouped SELECT of the same rows.

    .venv/bin/python -m bench.region_activity [--months 12] [--repeat 5] [--keep]

Fills the `region_activity` read model of a fresh PostgreSQL database with every desa
and kelurahan in Kemendagri's list (83,762) active on one day of each month (the DTKS
window is monthly) for `--months` months, four steps that day (submitted, approved at
the village, verified, applied): 84,000 × 12 × 4 ≈ 4,000,000 rows for a year. Then
measures `activity_report` (what `GET /api/v1/regions/activity` runs) for the views a
dashboard asks for, each beside the least the database must do for it: one grouped
SELECT summing the same rows per listed region. Writes bench/results/region_activity.json
and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import create_engine, text

from slrt.domain.reference import regions_below
from slrt.projections.region_activity import LEVELS, activity_report, region_activity

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
RESULTS = Path(__file__).resolve().parent / "results"
FIRST = date(2026, 1, 1)

#: (what a dashboard shows, region (None: the country), level listed, first day, last day)
VIEWS = [
    (
        "the country by kabupaten/kota, one month",
        None,
        "kabupaten",
        date(2026, 11, 1),
        date(2026, 11, 30),
    ),
    ("the country by kabupaten/kota, one year", None, "kabupaten", FIRST, date(2026, 12, 31)),
    ("the country by province, one year", None, "province", FIRST, date(2026, 12, 31)),
    (
        "a province (Jawa Timur) by kabupaten/kota, one month",
        "35",
        "kabupaten",
        date(2026, 11, 1),
        date(2026, 11, 30),
    ),
    ("a kabupaten (Kab. Malang) by desa, one year", "35.07", "desa", FIRST, date(2026, 12, 31)),
]


def fill(url: str, months: int) -> int:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    region_activity.create(engine)
    engine.dispose()
    desa = regions_below(None, LEVELS["desa"])
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TEMPORARY TABLE desa (code text PRIMARY KEY)")
        with conn.cursor().copy("COPY desa (code) FROM STDIN") as copy:
            for code in desa:
                copy.write_row((code,))
        # Each desa's day of the month between the 15th and the 25th (the DTKS window).
        conn.execute(
            """
            INSERT INTO region_activity (region, day, step, kind, kecamatan, scope, count)
            SELECT d.code,
                   (%(first)s::date + make_interval(months => m)
                    + (14 + abs(hashtext(d.code)) %% 11) * interval '1 day')::date,
                   step, 'update', substr(d.code, 1, 8), substr(d.code, 1, 5),
                   1 + abs(hashtext(d.code || m::text || step)) %% 6
            FROM desa d
            CROSS JOIN generate_series(0, %(last)s) AS m
            CROSS JOIN unnest(ARRAY['submitted', 'village_approved', 'dinsos_verified',
                                    'applied']) AS step
            """,
            {"first": FIRST, "last": months - 1},
        )
        conn.execute("VACUUM ANALYZE region_activity")
        count = conn.execute("SELECT count(*) FROM region_activity").fetchone()
    return int(count[0]) if count else 0


def raw_select(conn: Any, region: str | None, by: str, start: date, end: date) -> Any:
    """The baseline: the same rows summed per listed region in one grouped SELECT (the
    report also counts each region's active desa, and lists the idle regions). A
    province is its range of kabupaten codes, as the report selects it."""
    where = "day BETWEEN :start AND :end"
    if region is not None:
        where += " AND scope BETWEEN :low AND :high" if len(region) == 2 else " AND scope = :region"
    return conn.execute(
        text(
            f"SELECT substr(region, 1, {LEVELS[by]}), step, kind, sum(count), max(day) "
            f"FROM region_activity WHERE {where} GROUP BY 1, 2, 3"
        ),
        {
            "start": start,
            "end": end,
            "region": region,
            "low": f"{region}.00",
            "high": f"{region}.99",
        },
    ).all()


def measure(url: str, repeat: int) -> list[dict[str, Any]]:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    figures = []
    with engine.connect() as conn:
        for label, region, by, start, end in VIEWS:
            activity_report(conn, region=region, by=by, start=start, end=end)  # warm
            report, raw = [], []
            for _ in range(repeat):  # alternating
                began = time.perf_counter()
                answer = activity_report(conn, region=region, by=by, start=start, end=end)
                report.append(time.perf_counter() - began)
                began = time.perf_counter()
                raw_select(conn, region, by, start, end)
                raw.append(time.perf_counter() - began)
            report_ms = statistics.median(report) * 1000
            raw_ms = statistics.median(raw) * 1000
            figures.append(
                {
                    "view": label,
                    "regions_listed": len(answer["items"]),
                    "proposals_submitted": answer["summary"]["proposals_submitted"],
                    "report_ms": round(report_ms, 1),
                    "raw_select_ms": round(raw_ms, 1),
                    "ratio": round(report_ms / raw_ms, 2),
                }
            )
            print(figures[-1], flush=True)
    engine.dispose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the generated database")
    args = parser.parse_args()
    name = f"slrt_bench_activity_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    try:
        began = time.perf_counter()
        rows = fill(url, args.months)
        print(f"filled {rows} rows in {time.perf_counter() - began:.0f} s", flush=True)
        result = {
            "rows": rows,
            "desa": len(regions_below(None, LEVELS["desa"])),
            "months": args.months,
            "views": measure(url, args.repeat),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "region_activity.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "region_activity.md").write_text(_markdown(result))
        print(_markdown(result))
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Region activity reports (PostgreSQL)\n",
        f"{result['rows']} rows: {result['desa']} desa/kelurahan, one active day a month for "
        f"{result['months']} months, four steps; measured {result['measured_at']}.\n",
        "| view | regions listed | report ms (p50) | raw grouped SELECT ms | ratio |",
        "|---|---|---|---|---|",
    ]
    for v in result["views"]:
        lines.append(
            f"| {v['view']} | {v['regions_listed']} | {v['report_ms']} | "
            f"{v['raw_select_ms']} | {v['ratio']} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
