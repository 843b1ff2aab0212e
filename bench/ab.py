"""A/B of two commits' API on the same minutes of the machine.

`python -m bench.ab BASE [KIND] [SLICES] [SECONDS]` (e.g. `python -m bench.ab d468dd7
register 14 2`): serves BASE (checked out in a temporary git worktree) and the working
tree side by side, each `slrt serve --processes 2 --no-workers` on its own fresh
PostgreSQL database, and loads them in turn with wrk (32 clients) for SLICES slices of
SECONDS each, the order alternating. Per slice it reads from /proc the CPU of each
server's processes and of the whole machine. This machine's speed moves by tens of
per cent within minutes; runs one after the other compare that, slices side by side
compare the code (bench/README.md, ninth session). Needs wrk.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.load import run_wrk
from bench.run import (
    FRONT_OFFICE,
    SIGNING_KEY,
    VILLAGE_HEAD,
    Server,
    drop_postgres,
    fresh_postgres,
    listed_proposals,
)
from slrt.config import Settings
from slrt.security import issue_token

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 32
PROCESSES = 2


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def machine_ticks() -> int:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4]  # all but idle and iowait


class Side:
    """One commit's server (two processes; a pool of 16 each, as two servers share
    PostgreSQL's 100 connections) and what it has served."""

    def __init__(self, tree: Path, url: str) -> None:
        self.url = url
        self.server = Server(url, processes=PROCESSES, tree=tree, pool_size=16)
        self.base = self.server.url
        self.pids = self.server.pids()
        self.ids: list[str] = []
        self.commands = self.api_ticks = self.machine_ticks = self.errors = 0
        self.seconds = 0.0
        self.per_slice: list[float] = []
        self.p99: list[float] = []

    def serve(self, kind: str, token: str, seconds: float) -> None:
        api, machine = cpu_ticks(self.pids), machine_ticks()
        result = run_wrk(self.base, CLIENTS, seconds, kind, token, self.ids)
        api, machine = cpu_ticks(self.pids) - api, machine_ticks() - machine
        served = result["requests"] - result["errors"]
        if kind == "approve":
            self.ids = self.ids[result["listed_used"] :]
        self.commands += served
        self.errors += result["errors"]
        self.api_ticks += api
        self.machine_ticks += machine
        self.seconds += result["seconds"]
        self.per_slice.append(api / max(served, 1))
        self.p99.append(result["p99_ms"])

    def summary(self) -> dict[str, Any]:
        ms = 1000 / os.sysconf("SC_CLK_TCK") / max(self.commands, 1)
        return {
            "rate": round(self.commands / self.seconds, 1),
            "api_cpu_ms": round(self.api_ticks * ms, 3),
            "machine_cpu_ms": round(self.machine_ticks * ms, 3),
            "p99_ms_per_slice": sorted(self.p99),
            "errors": self.errors,
        }

    def stop(self) -> None:
        self.server.stop()


def main() -> None:
    base = sys.argv[1]
    kind = sys.argv[2] if len(sys.argv) > 2 else "register"
    slices = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    seconds = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
    settings = Settings(_env_file=None, jwt_signing_key=SIGNING_KEY)
    now = datetime.now(UTC)
    front_office = issue_token(settings, FRONT_OFFICE, now=now)
    token = issue_token(settings, VILLAGE_HEAD, now=now) if kind == "approve" else front_office
    sides: list[Side] = []
    urls: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        worktree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "-f", "-q", str(worktree), base], check=True)
        try:
            for tree in (worktree, ROOT):
                urls.append(fresh_postgres())
                side = Side(tree, urls[-1])
                sides.append(side)
                warm = run_wrk(side.base, CLIENTS, 2, "register", front_office, [])
                if kind == "approve":
                    side.ids = listed_proposals(
                        side.base, front_office, warm["rate"], seconds, slices
                    )
            for number in range(slices):
                for side in sides if number % 2 == 0 else sides[::-1]:
                    side.serve(kind, token, seconds)
        finally:
            for side in sides:
                side.stop()
            for url in urls:
                drop_postgres(url)
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], check=False)
    old, new = sides
    ratios = [n / o for o, n in zip(old.per_slice, new.per_slice, strict=True) if o]
    report = {
        "base": base,
        "kind": kind,
        "slices": slices,
        "seconds_per_slice": seconds,
        "base_side": old.summary(),
        "new_side": new.summary(),
        "new_over_base": {
            "rate": round(new.summary()["rate"] / old.summary()["rate"], 3),
            "api_cpu": round(new.summary()["api_cpu_ms"] / old.summary()["api_cpu_ms"], 3),
            "api_cpu_median_of_slices": round(statistics.median(ratios), 3),
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
