"""Shared fixtures: a controllable clock, a throw-away PostgreSQL database per test."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from slrt.config import Settings

POSTGRES_URL = os.environ.get(
    "SLRT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Whether `check` comes true within `seconds` (for what another thread or process
    does in its own time)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


COMMON: dict[str, Any] = {
    "log_format": "console",
    "jwt_signing_key": "test-signing-key-0123456789abcdef0123456789",
}


class Clock:
    """A clock the test moves by hand. Starts inside the DTKS window (day 15–25)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 20, 2, 0, tzinfo=UTC))  # 10:00 WITA, Friday


@pytest.fixture
def sqlite_settings(tmp_path: object) -> Settings:
    return Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/slrt.db", **COMMON)


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh database on the real server, dropped afterwards."""
    name = f"slrt_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def postgres_settings(postgres_database: str) -> Settings:
    return Settings(_env_file=None, database_url=postgres_database, postgres_pool_size=5, **COMMON)


@pytest.fixture
def no_detector(monkeypatch: pytest.MonkeyPatch) -> None:
    """The log masking's detector (lokal's, ~0.5 ms a line) fails the test if it runs."""
    import slrt.logging

    def detector(*args: object, **kwargs: object) -> None:
        raise AssertionError("the detector ran")

    monkeypatch.setattr(slrt.logging, "Samaran", detector)
