"""HTTP load: N concurrent clients for a fixed time, in its own process.

Uses wrk when it is installed (`apt-get install wrk`); otherwise an asyncio client, which
on a 2-core machine is itself the bottleneck (figures then understate the server).

Runs as `python -m bench.load URL CONCURRENCY SECONDS KIND [TOKEN] [IDS_FILE]` and prints
one JSON line: requests, errors, seconds, rate, and latency percentiles in ms.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench.bodies import approval_body, complaint_body, register_body


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def run(
    url: str, concurrency: int, seconds: float, kind: str, token: str, ids: list[str]
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    counter = itertools.count()
    pending_ids = iter(ids)
    latencies: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    deadline = time.perf_counter() + seconds

    def request() -> tuple[str, dict[str, Any]] | None:
        n = next(counter)
        if kind in ("register", "register-keyed", "noop"):
            return "/noop" if kind == "noop" else "/api/v1/proposals", register_body(n)
        if kind == "complaint":
            return "/api/v1/complaints", complaint_body(n)
        proposal_id = next(pending_ids, None)
        if proposal_id is None:
            return None
        return f"/api/v1/proposals/{proposal_id}/village-decision", approval_body(n)

    async def client(session: httpx.AsyncClient, make: Callable[[], Any]) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            item = make()
            if item is None:
                return
            path, body = item
            started = time.perf_counter()
            try:
                sent = headers
                if kind.endswith("-keyed"):  # a new key per request, as a careful client
                    sent = {**headers, "Idempotency-Key": uuid.uuid4().hex}
                answer = await session.post(path, json=body, headers=sent)
                statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1
                if answer.status_code >= 400:
                    errors += 1
                    continue
            except httpx.HTTPError:
                errors += 1
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as session:
        await asyncio.gather(*(client(session, request) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "statuses": statuses,
        "seconds": round(elapsed, 3),
        "rate": round(len(latencies) / elapsed, 1),
        "p50_ms": round(percentile(latencies, 0.50), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
    }


#: More approvals than this machine serves a second (7,000/s or so at most so far).
APPROVALS_PER_SECOND_AT_MOST = 10_000


def run_wrk(
    url: str, concurrency: int, seconds: float, kind: str, token: str, ids: list[str]
) -> dict[str, Any]:
    """The same load from wrk (C, event-driven), so the client is not the bottleneck."""
    lines = []
    if kind == "approve":
        # Only as many as the run can use (twice its requests at most, as one of
        # wrk's threads can get ahead of the other): wrk reads the whole list before
        # it starts the next thread (wrk_post.lua).
        usable = ids[: 2 * int(APPROVALS_PER_SECOND_AT_MOST * seconds) + 64]
        lines = [
            f"/api/v1/proposals/{i}/village-decision\t{json.dumps(approval_body(n))}"
            for n, i in enumerate(usable)
        ]
    else:
        path, make = {
            "register": ("/api/v1/proposals", register_body),
            "register-keyed": ("/api/v1/proposals", register_body),
            "noop": ("/noop", register_body),
            "complaint": ("/api/v1/complaints", complaint_body),
        }[kind]
        lines = [f"{path}\t{json.dumps(make(n))}" for n in range(2000)]
    threads = min(2, concurrency)
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as handle:
        handle.write("\n".join(lines) + "\n")
    script = Path(__file__).with_name("wrk_post.lua")
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        url,
        "--",
        handle.name,
        token,
        str(threads),
        "keyed" if kind.endswith("-keyed") else "",
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    good = result["requests"] - result["errors"]
    result["rate"] = round(good / result["seconds"], 1)
    result["client"] = "wrk"
    return result


def main() -> None:
    url, concurrency, seconds, kind = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    token = sys.argv[5] if len(sys.argv) > 5 else ""
    ids: list[str] = []
    if len(sys.argv) > 6:
        with open(sys.argv[6]) as handle:
            ids = json.load(handle)
    if shutil.which("wrk"):
        print(json.dumps(run_wrk(url, concurrency, seconds, kind, token, ids)))
    else:
        print(json.dumps(asyncio.run(run(url, concurrency, seconds, kind, token, ids))))


if __name__ == "__main__":
    main()
