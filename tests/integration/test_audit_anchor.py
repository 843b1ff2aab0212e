"""The anchor process extends the anchor over what was stored since the last one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from slrt.audit import audited_recorder, verify_recorder
from slrt.config import Settings
from slrt.runtime import Runtime, build_runtime
from tests.builders import FRONT_OFFICE, household
from tests.conftest import Clock


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def runtime(request: pytest.FixtureRequest, clock: Clock) -> Iterator[Runtime]:
    fixture = "sqlite_settings" if request.param == "sqlite" else "postgres_settings"
    settings: Settings = request.getfixturevalue(fixture)
    runtime = build_runtime(settings, clock=clock)
    yield runtime
    runtime.close()


def test_each_pass_anchors_what_was_stored_since(runtime: Runtime) -> None:
    process = runtime.processes["audit_anchor"]
    recorder = audited_recorder(runtime.app)
    runtime.app.submit_proposal(
        actor=FRONT_OFFICE, kind="register", payload={"household": household()}
    )
    process.run_once()
    first = recorder.select_anchors()[-1]
    runtime.app.submit_proposal(
        actor=FRONT_OFFICE, kind="register", payload={"household": household()}
    )
    process.run_once()
    second = recorder.select_anchors()[-1]
    assert second.max_notification_id > first.max_notification_id
    assert second.event_count > first.event_count
    assert verify_recorder(recorder).ok
