"""Every page of a list read from a read model says how current it is."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from slrt.projections.base import REBUILDING, tracking
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
