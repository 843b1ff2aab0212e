"""The ratio to the raw INSERT at 32 clients, with the baseline measured in slices
between the commands' own.

`python -m bench.interleaved [SLICES] [SECONDS]` (default 6 slices of 3 s): one API
server (`slrt serve --processes 2 --no-workers`, as `bench.run`'s target configuration)
on a fresh PostgreSQL database, and the raw INSERT baseline (`bench.run.raw_inserts`,
32 connections) on another. For each command, SLICES pairs of a baseline slice and a
command slice (wrk, 32 clients), the order alternating, so both see the same minutes
of the machine: its speed moves by tens of per cent within minutes (bench/README.md,
ninth session), and `bench.run` measures all its baselines first. Reports each pair's
ratio (commands/s over raw INSERTs/s) and their median, and writes
bench/results/interleaved.json.
"""

from __future__ import annotations

import json
import statistics
import sys
from datetime import UTC, datetime
from typing import Any

from bench.load import run_wrk
from bench.run import (
    FRONT_OFFICE,
    RESULTS,
    SIGNING_KEY,
    VILLAGE_HEAD,
    Server,
    drop_postgres,
    fresh_postgres,
    listed_proposals,
    raw_inserts,
)
from slrt.config import Settings
from slrt.security import issue_token

CLIENTS = 32
PROCESSES = 2
KINDS = ("register", "complaint", "approve")


def main() -> None:
    slices = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    settings = Settings(_env_file=None, jwt_signing_key=SIGNING_KEY)
    now = datetime.now(UTC)
    front_office = issue_token(settings, FRONT_OFFICE, now=now)
    village_head = issue_token(settings, VILLAGE_HEAD, now=now)
    report: dict[str, Any] = {"measured_at": now.isoformat(), "slices": slices, "seconds": seconds}
    api_url, raw_url = fresh_postgres(), fresh_postgres()
    # A pool of 16 per process: the baseline's 32 connections fit beside it.
    server = Server(api_url, processes=PROCESSES, pool_size=16)
    try:
        run_wrk(server.url, CLIENTS, 2, "register", front_office, [])  # warm up
        ids: list[str] = []
        for kind in KINDS:
            token = village_head if kind == "approve" else front_office
            if kind == "approve":
                fastest = max(report[k]["median_rate"] for k in ("register", "complaint"))
                ids = listed_proposals(server.url, front_office, fastest, seconds, slices)
            pairs = []
            for number in range(slices):
                order = ("raw", "api") if number % 2 == 0 else ("api", "raw")
                pair: dict[str, float] = {}
                for side in order:
                    if side == "raw":
                        pair["raw"] = raw_inserts(raw_url, CLIENTS, seconds)["rate"]
                    else:
                        result = run_wrk(server.url, CLIENTS, seconds, kind, token, ids)
                        if kind == "approve":
                            ids = ids[result["listed_used"] :]
                        pair["api"] = round(
                            (result["requests"] - result["errors"]) / result["seconds"], 1
                        )
                        pair["p99_ms"] = result["p99_ms"]
                        pair["errors"] = result["errors"]
                pair["ratio"] = round(pair["api"] / pair["raw"], 3)
                pairs.append(pair)
            ratios = [p["ratio"] for p in pairs]
            report[kind] = {
                "pairs": pairs,
                "median_ratio": round(statistics.median(ratios), 3),
                "min_ratio": min(ratios),
                "max_ratio": max(ratios),
                "median_rate": statistics.median(p["api"] for p in pairs),
                "median_raw": statistics.median(p["raw"] for p in pairs),
                "max_p99_ms": max(p["p99_ms"] for p in pairs),
                "errors": sum(p["errors"] for p in pairs),
            }
            print(kind, json.dumps({k: v for k, v in report[kind].items() if k != "pairs"}))
    finally:
        server.stop()
        drop_postgres(api_url)
        drop_postgres(raw_url)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "interleaved.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
