"""`make bench`: command throughput through the HTTP API, beside its baselines.

For each backend (SQLite file, PostgreSQL) and each concurrency (1, 8, 32, 128 clients),
it runs register-proposal, village-approval and complaint commands against a real
`slrt serve --no-workers` process for a fixed time, and measures in the same run:
- raw psycopg single-row INSERTs of an equivalent JSON row at the same concurrency;
- a no-op FastAPI endpoint that validates the same request body (same uvicorn setup).
Writes bench/results/api.json and bench/results/api.md.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.bodies import register_body
from slrt.config import Settings
from slrt.domain.common import Actor, Role
from slrt.security import issue_token

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"
POSTGRES_URL = os.environ.get(
    "SLRT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CONCURRENCY = [int(c) for c in os.environ.get("SLRT_BENCH_CONCURRENCY", "1,8,32,128").split(",")]
SECONDS = float(os.environ.get("SLRT_BENCH_SECONDS", "8"))
#: `slrt serve --processes N` (PostgreSQL), one per core of this machine.
API_PROCESSES = int(os.environ.get("SLRT_BENCH_API_PROCESSES", str(os.cpu_count() or 2)))
SIGNING_KEY = "bench-signing-key-0123456789abcdef0123456789"
FRONT_OFFICE = Actor("bench-fo", Role.FRONT_OFFICE, "64.74.01.1001")
VILLAGE_HEAD = Actor("bench-kades", Role.VILLAGE_HEAD, "64.74.01.1001")
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(url: str, path: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url + path, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def load(url: str, concurrency: int, kind: str, token: str = "", ids: Path | None = None) -> Any:
    command = [sys.executable, "-m", "bench.load", url, str(concurrency), str(SECONDS), kind, token]
    if ids is not None:
        command.append(str(ids))
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT.parent)
    return json.loads(output.stdout.strip().splitlines()[-1])


class Server:
    """`slrt serve --no-workers` (or the no-op app) in its own process; `tree`: serve the
    code of that checkout instead of this one (bench.ab)."""

    def __init__(
        self,
        database_url: str | None,
        *,
        noop: bool = False,
        processes: int = 1,
        tree: Path | None = None,
        pool_size: int = 40,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "SLRT_JWT_SIGNING_KEY": SIGNING_KEY,
            "SLRT_SUBMISSION_WINDOWS_ENFORCED": "false",
            # Production's default is INFO: SLRT_BENCH_LOG_LEVEL=INFO measures that.
            "SLRT_LOG_LEVEL": os.environ.get("SLRT_BENCH_LOG_LEVEL", "WARNING"),
            "SLRT_POSTGRES_POOL_SIZE": str(pool_size),
        }
        if tree is not None:
            env["PYTHONPATH"] = f"{tree / 'src'}:{tree}"
        if database_url:
            env["SLRT_DATABASE_URL"] = database_url
        if noop:
            command = [sys.executable, "-m", "bench.noop_app", str(self.port), str(processes)]
        else:
            command = [str(BIN / "slrt"), "serve", "--no-workers", "--port", str(self.port)]
            command += ["--processes", str(processes)]
        self.process = subprocess.Popen(command, env=env, cwd=tree or ROOT.parent)
        wait_until_up(self.url, "/openapi.json", self.process)

    def pids(self) -> list[int]:
        """The server's process and its serving processes."""
        children = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        return [self.process.pid, *(int(pid) for pid in children)]

    def stop(self) -> float:
        """Stops the server; returns the peak RSS of its (largest) serving process."""
        rss = max(peak_rss_mb(pid) for pid in self.pids())
        self.process.terminate()
        self.process.wait(timeout=30)
        return rss


#: Connections the raw INSERT baseline may open: PostgreSQL's default max_connections is
#: 100, so "128 clients" are 90 connections there (the API itself pools 40).
RAW_CONNECTIONS = int(os.environ.get("SLRT_BENCH_RAW_CONNECTIONS", "90"))


def raw_inserts(database_url: str, concurrency: int, seconds: float = SECONDS) -> dict[str, Any]:
    """Baseline: single-row INSERT of the same JSON document, one transaction each."""
    concurrency = min(concurrency, RAW_CONNECTIONS)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_rows")
        conn.execute("CREATE TABLE bench_rows (id uuid PRIMARY KEY, body jsonb NOT NULL)")
    counts = [0] * concurrency
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    deadline = time.perf_counter() + seconds
    body = json.dumps(register_body(1))

    def writer(index: int) -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                conn.execute(
                    "INSERT INTO bench_rows (id, body) VALUES (%s, %s)", (uuid.uuid4(), body)
                )
                latencies[index].append((time.perf_counter() - started) * 1000)
                counts[index] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    every = sorted(v for values in latencies for v in values)
    return {
        "connections": concurrency,
        "requests": sum(counts),
        "rate": round(sum(counts) / elapsed, 1),
        "p99_ms": round(every[min(len(every) - 1, int(0.99 * len(every)))], 2),
    }


def fresh_postgres() -> str:
    name = f"slrt_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return POSTGRES_URL.rsplit("/", 1)[0] + "/" + name


def drop_postgres(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def proposals_to_approve(url: str, token: str, count: int) -> list[str]:
    """Submits `count` proposals (16 at a time); their ids, for approval runs."""
    ids: list[str] = []
    lock = threading.Lock()
    numbers = iter(range(1_000_000, 1_000_000 + count))

    def submit() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while True:
                with lock:
                    n = next(numbers, None)
                if n is None:
                    return
                answer = client.post(
                    "/api/v1/proposals",
                    json=register_body(n),
                    headers={"Authorization": f"Bearer {token}"},
                )
                answer.raise_for_status()
                with lock:
                    ids.append(answer.json()["id"])

    threads = [threading.Thread(target=submit) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ids


def listed_proposals(
    url: str, token: str, rate: float, seconds: float, runs: int, margin: float = 2.0
) -> list[str]:
    """Submits proposals for `runs` approval runs of `seconds` each at up to `margin`
    times `rate` (what a command ran at on the same server just before; approvals have
    run at up to 1.2 times a registration's rate), and returns their ids. Each run starts
    past the ones the last may have used (bench.load.run_wrk's `listed_used`); a run
    that finds its list used up sends approvals twice, which are refused: errors, not a
    faster rate."""
    return proposals_to_approve(url, token, int(margin * rate * seconds * runs) + 64 * runs)


def bench_backend(
    name: str, database_url: str, tokens: dict[str, str], processes: int = 1
) -> dict[str, Any]:
    server = Server(database_url, processes=processes)
    results: dict[str, Any] = {"backend": name, "processes": processes, "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency in CONCURRENCY:
            for kind in ("register", "complaint", "approve"):
                ids = None
                if kind == "approve":
                    ids = Path(tmp) / f"ids-{concurrency}.json"
                    # Enough for approvals at 1.6 times the faster of the two commands
                    # just measured (2.5 times at one client, where an approval takes
                    # half a registration's time): wrk goes round the list again when it
                    # runs out, and an approval sent twice is refused (409), an error.
                    fastest = max(r["rate"] for r in results["runs"][-2:])
                    margin = 2.5 if concurrency == 1 else 1.6
                    listed = listed_proposals(server.url, tokens["fo"], fastest, SECONDS, 1, margin)
                    ids.write_text(json.dumps(listed))
                token = tokens["kades"] if kind == "approve" else tokens["fo"]
                outcome = load(server.url, concurrency, kind, token, ids)
                outcome.update(kind=kind, concurrency=concurrency)
                results["runs"].append(outcome)
                print(name, kind, concurrency, outcome, flush=True)
    results["api_peak_rss_mb"] = server.stop()
    return results


def main() -> None:
    RESULTS.mkdir(exist_ok=True)
    settings = Settings(_env_file=None, jwt_signing_key=SIGNING_KEY)
    now = datetime.now(UTC)
    tokens = {
        "fo": issue_token(settings, FRONT_OFFICE, now=now),
        "kades": issue_token(settings, VILLAGE_HEAD, now=now),
    }
    report: dict[str, Any] = {"measured_at": now.isoformat(), "seconds_per_run": SECONDS}

    for processes, key in ((1, "noop_fastapi"), (API_PROCESSES, "noop_fastapi_processes")):
        noop = Server(None, noop=True, processes=processes)
        report[key] = [{"concurrency": c, **load(noop.url, c, "noop")} for c in CONCURRENCY]
        noop.stop()

    postgres_url = fresh_postgres()
    try:
        report["raw_insert"] = [
            {"concurrency": c, **raw_inserts(postgres_url, c)} for c in CONCURRENCY
        ]
    finally:
        drop_postgres(postgres_url)

    # The target's configuration first, right after its baselines: this machine slows
    # down under sustained load (bench/README.md, ninth session), so the runs closest
    # in time to the baselines compare best with them.
    postgres_url = fresh_postgres()
    try:
        report["postgres_processes"] = bench_backend(
            "postgres", postgres_url, tokens, processes=API_PROCESSES
        )
    finally:
        drop_postgres(postgres_url)
    postgres_url = fresh_postgres()
    try:
        report["postgres"] = bench_backend("postgres", postgres_url, tokens)
    finally:
        drop_postgres(postgres_url)
    with tempfile.TemporaryDirectory() as tmp:
        report["sqlite"] = bench_backend("sqlite", f"sqlite:///{tmp}/bench.db", tokens)

    (RESULTS / "api.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "api.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    raw = {r["concurrency"]: r for r in report["raw_insert"]}
    lines = [
        f"Measured {report['measured_at']}, {report['seconds_per_run']} s per run.",
        "",
        "| backend | API processes | command | clients | commands/s | p50 ms | p95 ms | p99 ms "
        "| errors | raw INSERT/s | ratio | no-op API/s (same processes) | ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in ("sqlite", "postgres", "postgres_processes"):
        backend, processes = report[key]["backend"], report[key]["processes"]
        noops = report["noop_fastapi" if processes == 1 else "noop_fastapi_processes"]
        noop = {r["concurrency"]: r for r in noops}
        for run in report[key]["runs"]:
            c = run["concurrency"]
            lines.append(
                f"| {backend} | {processes} | {run['kind']} | {c} | {run['rate']} "
                f"| {run['p50_ms']} | {run['p95_ms']} | {run['p99_ms']} | {run['errors']} "
                f"| {raw[c]['rate']} "
                f"| {run['rate'] / raw[c]['rate']:.2f} | {noop[c]['rate']} "
                f"| {run['rate'] / noop[c]['rate']:.2f} |"
            )
    lines.append("")
    lines.append(
        f"Peak RSS of the API process: SQLite {report['sqlite']['api_peak_rss_mb']} MB, "
        f"PostgreSQL {report['postgres']['api_peak_rss_mb']} MB, PostgreSQL with "
        f"{API_PROCESSES} processes {report['postgres_processes']['api_peak_rss_mb']} MB "
        "(the largest)."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
