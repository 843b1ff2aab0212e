"""Every page of a list read from a read model says how current it is."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, update

from slrt.projections.base import REBUILDING, projection_versions, tracking
from tests.api.conftest import Api
from tests.api.test_complaints_api import receive
from tests.api.test_proposals_api import register, submit
from tests.builders import FRONT_OFFICE

LISTS = {
    "/api/v1/households": "household_status",
    "/api/v1/proposals": "proposal_list",
    "/api/v1/complaints": "complaint_list",
}


def _mark_rebuilding(api: Api, name: str) -> None:
    with api.runtime.engine.begin() as conn:  # what slrt.projections.parallel sets
        conn.execute(
            update(tracking).where(tracking.c.projection == name).values(notification_id=REBUILDING)
        )


@pytest.mark.parametrize(("path", "name"), LISTS.items())
def test_a_list_says_which_events_it_does_not_include_yet(api: Api, path: str, name: str) -> None:
    register(api)
    receive(api)
    api.runtime.catch_up()
    head = api.runtime.app.recorder.max_notification_id()
    caught_up = api.get(path, FRONT_OFFICE).json()
    submit(api)
    receive(api)

    behind = api.get(path, FRONT_OFFICE).json()

    assert caught_up["read_model"] == {
        "name": name,
        "position": head,
        "lag": 0,
        "rebuilding": False,
    }
    now = api.runtime.app.recorder.max_notification_id()
    assert behind["read_model"] == {
        "name": name,
        "position": head,
        "lag": now - head,
        "rebuilding": False,
    }
    assert behind["read_model"]["lag"] > 0


@pytest.mark.parametrize(("path", "name"), LISTS.items())
def test_a_list_being_rebuilt_says_it_is_incomplete(api: Api, path: str, name: str) -> None:
    register(api)
    receive(api)
    api.runtime.catch_up()
    _mark_rebuilding(api, name)

    page = api.get(path, FRONT_OFFICE).json()

    assert page["read_model"] == {
        "name": name,
        "position": None,
        "lag": api.runtime.app.recorder.max_notification_id(),
        "rebuilding": True,
    }


@pytest.mark.parametrize(("path", "name"), LISTS.items())
def test_a_list_rebuilt_in_this_process_is_incomplete_until_it_reaches_where_it_began(
    api: Api, path: str, name: str
) -> None:
    for _ in range(3):
        register(api)
        receive(api)
    api.runtime.catch_up()
    began = api.events()
    worker = api.runtime.workers[name]
    worker.reset()  # what `slrt projections rebuild` and a new projection version do

    states = [api.get(path, FRONT_OFFICE).json()["read_model"]]
    worker.batch_size = worker.max_batch_size = 1
    while worker.position() < began:
        worker.run_once()
        states.append(api.get(path, FRONT_OFFICE).json()["read_model"])
    submit(api)
    after = api.get(path, FRONT_OFFICE).json()["read_model"]

    assert [s["rebuilding"] for s in states] == [True] * (len(states) - 1) + [False]
    assert [s["position"] for s in states] == sorted(s["position"] for s in states)
    assert states[0]["position"] == 0 and states[-1]["position"] == began
    assert after["lag"] > 0 and not after["rebuilding"]  # behind, but not missing old rows


@pytest.mark.parametrize(("path", "name"), LISTS.items())
def test_a_read_model_new_to_a_store_with_events_is_built_from_zero(
    api: Api, path: str, name: str
) -> None:
    register(api)
    receive(api)
    worker = api.runtime.workers[name]
    with api.runtime.engine.begin() as conn:  # as before the read model existed
        conn.execute(delete(projection_versions).where(projection_versions.c.projection == name))
        conn.execute(delete(tracking).where(tracking.c.projection == name))
        for table in worker.projection.tables:
            conn.execute(table.delete())
    worker.check_version()  # what the runtime does at start

    building = api.get(path, FRONT_OFFICE).json()["read_model"]
    api.runtime.catch_up()
    built = api.get(path, FRONT_OFFICE).json()["read_model"]

    assert building == {"name": name, "position": 0, "lag": api.events(), "rebuilding": True}
    assert built == {"name": name, "position": api.events(), "lag": 0, "rebuilding": False}
