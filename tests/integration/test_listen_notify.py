"""Cross-process wake-up on PostgreSQL: a worker in another process (here: another
runtime on the same database) follows commands at once through LISTEN/NOTIFY, and a
dropped listening connection is re-established; polling stays the fallback."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from slrt.config import Settings
from slrt.runtime import Runtime, build_runtime
from tests.builders import FRONT_OFFICE, household
from tests.conftest import Clock, eventually

pytestmark = pytest.mark.postgres

#: Far longer than the test waits: only a notice can wake the worker in time.
SLOW_POLL = 60.0


@pytest.fixture
def writer(postgres_settings: Settings, clock: Clock) -> Iterator[Runtime]:
    runtime = build_runtime(postgres_settings, clock=clock)
    yield runtime
    runtime.close()


@pytest.fixture
def follower(postgres_settings: Settings, clock: Clock) -> Iterator[Runtime]:
    settings = postgres_settings.model_copy(update={"projection_poll_interval_seconds": SLOW_POLL})
    runtime = build_runtime(settings, clock=clock)
    yield runtime
    runtime.close()


def submit(runtime: Runtime) -> int:
    runtime.app.submit_proposal(
        actor=FRONT_OFFICE, kind="register", payload={"household": household()}
    )
    return runtime.app.recorder.max_notification_id() or 0


def test_a_worker_in_another_process_is_woken_by_the_notice(
    writer: Runtime, follower: Runtime
) -> None:
    follower.start_workers(["proposal_list"])
    worker = follower.workers["proposal_list"]
    listener = follower.listener
    assert listener is not None
    assert eventually(lambda: listener.listening)
    time.sleep(0.3)  # the worker's first pass (at start) is over; it now sleeps 60 s

    last = submit(writer)

    assert eventually(lambda: worker.position() >= last, seconds=5)
    assert listener.notices >= 1


def test_a_dropped_listening_connection_is_reestablished(
    writer: Runtime, follower: Runtime, postgres_database: str
) -> None:
    follower.start_workers(["proposal_list"])
    worker = follower.workers["proposal_list"]
    listener = follower.listener
    assert listener is not None
    listener.retry_seconds = 0.1
    assert eventually(lambda: listener.listening)

    with psycopg.connect(postgres_database, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'slrt-listener' AND datname = current_database()"
        )
    assert eventually(lambda: not listener.listening, seconds=5)
    # Committed while nobody listened: the reconnection's wake-up finds it.
    last = submit(writer)

    assert eventually(lambda: listener.listening, seconds=5)
    assert eventually(lambda: worker.position() >= last, seconds=5)
