"""`slrt serve --processes N`: several API processes on one port and one worker process,
against the real PostgreSQL, started together on a fresh database."""

from __future__ import annotations

import os
import socket
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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.postgres
def test_two_api_processes_and_a_worker_serve_one_store(postgres_settings: Settings) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "SLRT_DATABASE_URL": postgres_settings.database_url,
        "SLRT_JWT_SIGNING_KEY": postgres_settings.jwt_signing_key or "",
        "SLRT_SUBMISSION_WINDOWS_ENFORCED": "false",
        "SLRT_POSTGRES_POOL_SIZE": "5",
        "SLRT_LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "slrt.cli", "serve", "--port", str(port), "--processes", "2"]
    server = subprocess.Popen(command, env=env)
    base = f"http://127.0.0.1:{port}"
    token = issue_token(postgres_settings, FRONT_OFFICE, now=datetime.now(UTC))
    auth = {"Authorization": f"Bearer {token}"}
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "slrt serve --processes 2 exited"
            try:
                if httpx.get(f"{base}/openapi.json", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "not serving after 60 s"
            time.sleep(0.2)
        # New connections each time: the kernel spreads them over both processes.
        answers = [
            httpx.post(f"{base}/api/v1/proposals", json=register_body(n), headers=auth)
            for n in range(12)
        ]
        assert [a.status_code for a in answers] == [201] * 12
        # The worker process (not the API processes) projects them.
        deadline = time.monotonic() + 30
        while True:
            listed = httpx.get(f"{base}/api/v1/proposals", params={"limit": 50}, headers=auth)
            assert listed.status_code == 200
            if listed.json()["total"] == 12:
                break
            assert time.monotonic() < deadline, listed.json()["total"]
            time.sleep(0.2)
    finally:
        server.terminate()
        assert server.wait(timeout=30) == 0
