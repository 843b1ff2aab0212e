"""Shared fixtures of the integration scenarios: the session's Kafka-protocol broker
(noida-db, started on first use), and the application or a runtime on the `settings`
that each scenario class's SQLite or PostgreSQL subclass provides."""

from collections.abc import Iterator

import pytest

from slrt.application import SlrtApplication
from slrt.config import Settings
from slrt.runtime import Runtime, build_runtime
from tests.conftest import Clock
from tests.kafka_broker import kafka_broker

__all__ = ["app", "kafka_broker", "postgres_app", "runtime"]


@pytest.fixture
def app(settings: Settings, clock: Clock) -> Iterator[SlrtApplication]:
    """The application alone (no projections) on the scenario class's `settings`."""
    app = SlrtApplication(settings, clock=clock)
    yield app
    app.close()


@pytest.fixture
def runtime(settings: Settings, clock: Clock) -> Iterator[Runtime]:
    runtime = build_runtime(settings, clock=clock)
    yield runtime
    runtime.close()


@pytest.fixture
def postgres_app(postgres_settings: Settings) -> Iterator[SlrtApplication]:
    """The application alone (no projections) on a fresh PostgreSQL database."""
    app = SlrtApplication(postgres_settings)
    yield app
    app.close()
