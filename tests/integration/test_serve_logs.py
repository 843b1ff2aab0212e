"""`slrt serve` logs every command as one JSON line, with the request's id, and never a
full NIK or No. KK, with its loggers cached for the life of the process."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx

from slrt.config import Settings
from slrt.security import issue_token
from tests.builders import FRONT_OFFICE, household
from tests.serving import free_port, serve_env, wait_until_serving


def test_a_served_command_is_logged_masked(sqlite_settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    env = serve_env(
        sqlite_settings,
        SLRT_SUBMISSION_WINDOWS_ENFORCED="false",
        SLRT_LOG_LEVEL="INFO",
        SLRT_LOG_FORMAT="json",
    )
    command = [sys.executable, "-m", "slrt.cli", "serve", "--port", str(port), "--no-workers"]
    with (tmp_path / "stderr").open("w+") as stderr:
        server = subprocess.Popen(command, env=env, stderr=stderr)
        base = f"http://127.0.0.1:{port}"
        token = issue_token(sqlite_settings, FRONT_OFFICE, now=datetime.now(UTC))
        data = household(members=2)
        try:
            wait_until_serving(server, f"{base}/api/v1/health")
            answers = [
                httpx.post(
                    f"{base}/api/v1/proposals",
                    json={"kind": "register", "household": data},
                    headers={"Authorization": f"Bearer {token}", "X-Request-ID": f"req-{n}"},
                )
                for n in range(2)
            ]
        finally:
            server.terminate()
            server.wait(timeout=30)
        stderr.seek(0)
        logs = stderr.read()
    assert [a.status_code for a in answers] == [201, 201]
    lines = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    commands = [line for line in lines if line.get("event") == "command"]
    assert [(c["request_id"], c["outcome"]) for c in commands] == [("req-0", "ok"), ("req-1", "ok")]
    for identifier in [m["nik"] for m in data["members"]] + [data["no_kk"]]:
        assert identifier not in logs
