"""The actor recorded on every event: what is stored, and that it reads back the same."""

from __future__ import annotations

from dataclasses import replace

from slrt.domain.common import Actor, Role


def test_the_record_holds_the_fields_that_are_set_as_text() -> None:
    actor = Actor("fo-1", Role.FRONT_OFFICE, "64.74.01.1001")

    assert actor.as_record() == {
        "user_id": "fo-1",
        "role": "front_office",
        "region": "64.74.01.1001",
    }
    assert type(actor.as_record()["role"]) is str


def test_agency_and_request_id_are_recorded_when_set_and_read_back() -> None:
    actor = Actor("bpjs-1", Role.AGENCY, "64.74", agency="bpjs", request_id="req-9")

    record = actor.as_record()

    assert record == {
        "user_id": "bpjs-1",
        "role": "agency",
        "region": "64.74",
        "agency": "bpjs",
        "request_id": "req-9",
    }
    assert Actor.from_record(record) == actor
    assert Actor.from_record(Actor("a", Role.ADMIN, "64").as_record()) == Actor(
        "a", Role.ADMIN, "64"
    )


def test_for_a_request_only_the_request_id_changes() -> None:
    actor = Actor("bpjs-1", Role.AGENCY, "64.74", agency="bpjs", request_id="req-1")

    assert actor.for_request("req-2") == replace(actor, request_id="req-2")
    assert actor.for_request(None) == replace(actor, request_id=None)
