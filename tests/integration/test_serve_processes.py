"""`slrt serve --processes N`: several API processes on one port and one worker process,
against the real PostgreSQL, started together on a fresh database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import pytest
from bench.bodies import register_body

from slrt.config import Settings
from slrt.security import issue_token
from tests.builders import FRONT_OFFICE
from tests.serving import free_port, serve_env, wait_until_serving


def _children(pid: int, containing: str) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid), "-f", containing], capture_output=True)
    return [int(p) for p in found.stdout.split()]


def _serve_in_two_processes(port: int) -> list[str]:
    """`slrt serve` with two API processes (and its worker process) on `port`."""
    return [sys.executable, "-m", "slrt.cli", "serve", "--port", str(port), "--processes", "2"]


def submit(base: str, auth: dict[str, str], numbers: range) -> None:
    # New connections each time: the kernel spreads them over both API processes.
    answers = [
        httpx.post(f"{base}/api/v1/proposals", json=register_body(n), headers=auth) for n in numbers
    ]
    assert [a.status_code for a in answers] == [201] * len(numbers)


def wait_for_proposals(base: str, auth: dict[str, str], total: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        listed = httpx.get(f"{base}/api/v1/proposals", params={"limit": 50}, headers=auth)
        assert listed.status_code == 200
        if listed.json()["total"] == total:
            return
        assert time.monotonic() < deadline, listed.json()["total"]
        time.sleep(0.2)


@pytest.mark.postgres
def test_two_api_processes_and_a_restarted_worker_serve_one_store(
    postgres_settings: Settings,
) -> None:
    port = free_port()
    env = serve_env(
        postgres_settings,
        SLRT_SUBMISSION_WINDOWS_ENFORCED="false",
        SLRT_POSTGRES_POOL_SIZE="5",
        SLRT_LOG_LEVEL="WARNING",
    )
    command = _serve_in_two_processes(port)
    server = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    token = issue_token(postgres_settings, FRONT_OFFICE, now=datetime.now(UTC))
    auth = {"Authorization": f"Bearer {token}"}
    try:
        wait_until_serving(server, f"{base}/openapi.json")
        submit(base, auth, range(12))
        # The worker process (not the API processes) projects them.
        wait_for_proposals(base, auth, 12)
        # A worker process that dies is started again, and the projections go on.
        (worker,) = _children(server.pid, "worker")
        os.kill(worker, signal.SIGKILL)
        submit(base, auth, range(12, 20))
        wait_for_proposals(base, auth, 20)
        assert _children(server.pid, "worker") not in ([], [worker])
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0


@pytest.mark.postgres
def test_a_stop_signalled_to_every_process_stops_the_service_without_a_lost_worker(
    postgres_settings: Settings,
) -> None:
    """systemd (and Ctrl-C in a terminal) signals every process of the service at once:
    the worker process then stops before the supervisor knows the service is stopping.
    It is not reported as lost (an ERROR), nor started again."""
    port = free_port()
    env = serve_env(
        postgres_settings,
        SLRT_POSTGRES_POOL_SIZE="5",
        SLRT_LOG_LEVEL="INFO",
        SLRT_LOG_FORMAT="json",
    )
    command = _serve_in_two_processes(port)
    server = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_until_serving(server, f"http://127.0.0.1:{port}/openapi.json")
        deadline = time.monotonic() + 30
        while not _children(server.pid, "worker"):  # the worker process is up too
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(1.0)  # its projections started
        # The race made certain: the worker hears the stop first and is gone a moment
        # (the supervisor looks every 0.5 s) before the rest of the service hears it.
        (worker,) = _children(server.pid, "worker")
        os.kill(worker, signal.SIGTERM)
        while _children(server.pid, "worker") == [worker]:
            time.sleep(0.05)
        time.sleep(1.0)
        os.killpg(server.pid, signal.SIGTERM)
        output, _ = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()

    assert server.returncode == 0
    lines = output.decode(errors="replace").splitlines()
    assert [line for line in lines if "workers.exited" in line or "workers.stopped" in line] == []
    assert sum('"worker.running"' in line for line in lines) == 1  # never started again
