"""Starting `slrt serve` in a process of its own, for the tests that need a real server."""

from __future__ import annotations

import os
import socket
import subprocess
import time

import httpx

from slrt.config import Settings


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_env(settings: Settings, **variables: str) -> dict[str, str]:
    """The environment of a `slrt serve` under test: this process's, the settings'
    database and signing key, and `variables` (SLRT_… settings)."""
    return {
        **os.environ,
        "SLRT_DATABASE_URL": settings.database_url,
        "SLRT_JWT_SIGNING_KEY": settings.jwt_signing_key or "",
        **variables,
    }


def wait_until_serving(server: subprocess.Popen[bytes], url: str, *, within: float = 60) -> None:
    """Waits until `url` answers 200; fails if the server exits first or takes longer."""
    deadline = time.monotonic() + within
    while True:
        assert server.poll() is None, "slrt serve exited"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"not serving after {within:.0f} s"
        time.sleep(0.2)
