"""Complaints, the work queue and compliance over HTTP."""

from __future__ import annotations

from typing import Any

from slrt.runtime import build_runtime
from tests.api.conftest import Api
from tests.builders import (
    ADMIN,
    DESA,
    DINSOS_MANAGER,
    FRONT_OFFICE,
    INSPECTOR,
    stricter_sla_rules,
)
from tests.conftest import Clock, eventually

COMPLAINTS = "/api/v1/complaints"


def receive(api: Api, **overrides: Any) -> Any:
    body = {
        "region": DESA,
        "channel": "sms_whatsapp",
        "complaint_type": "complaint",
        "category": "not_registered",
        "description": "Keluarga kami belum terdaftar di DTKS",
        "reporter": {"name": "Siti Aminah", "phone": "0812-3456-7890"},
        **overrides,
    }
    return api.post(COMPLAINTS, FRONT_OFFICE, body)


def test_a_complaint_from_receipt_to_close(api: Api, clock: Clock) -> None:
    answer = receive(api)
    assert answer.status_code == 201, answer.text
    complaint = answer.json()
    assert complaint["reporter"]["phone"] == "0812****7890"
    path = f"{COMPLAINTS}/{complaint['id']}"
    for action, body in (
        ("acknowledge", {"note": "Kami cek ke Dinsos"}),
        ("assign", {"assignee_kind": "office", "assignee": "64.74"}),
        ("resolve", {"outcome": "Diusulkan lewat usulan baru"}),
        ("close", {}),
    ):
        clock.advance(minutes=30)
        step = api.post(f"{path}/{action}", FRONT_OFFICE, body)
        assert step.status_code == 200, (action, step.text)
    assert step.json()["status"] == "closed"
    assert api.post(f"{path}/acknowledge", FRONT_OFFICE, {}).status_code == 409


def test_the_front_office_queue_lists_running_clocks_by_deadline(api: Api) -> None:
    first = receive(api, category="other").json()["id"]
    second = receive(api, category="aid_not_received").json()["id"]
    api.post(f"{COMPLAINTS}/{first}/acknowledge", FRONT_OFFICE, {})
    api.runtime.catch_up()
    queue = api.get(f"/api/v1/queues/front-office?region={DESA}", FRONT_OFFICE).json()
    deadlines = [row["deadline"] for row in queue]
    assert deadlines == sorted(deadlines)
    assert {(row["item_id"], row["target"]) for row in queue} >= {
        (second, "first_response"),
        (first, "resolution"),
    }
    assert (first, "first_response") not in {(row["item_id"], row["target"]) for row in queue}
    assert all(row["sla_state"] == "on_track" for row in queue)


def test_compliance_reports_the_share_met(api: Api, clock: Clock) -> None:
    complaint = receive(api).json()["id"]
    clock.advance(hours=1)
    api.post(f"{COMPLAINTS}/{complaint}/acknowledge", FRONT_OFFICE, {})
    api.runtime.catch_up()
    rows = api.get("/api/v1/sla/compliance?region=64.74", DINSOS_MANAGER).json()
    first = next(r for r in rows if r["target"] == "first_response")
    assert (first["met"], first["share_met"], first["median_hours"]) == (1, 1.0, 1.0)


def test_an_illegal_complaint_transition_is_a_409(api: Api) -> None:
    complaint = receive(api).json()["id"]
    answer = api.post(f"{COMPLAINTS}/{complaint}/close", FRONT_OFFICE, {})
    assert answer.status_code == 409
    assert answer.headers["content-type"] == "application/problem+json"


def test_an_invalid_phone_is_a_422_and_writes_nothing(api: Api) -> None:
    before = api.events()
    answer = receive(api, reporter={"name": "X", "phone": "12345678"})
    assert answer.status_code == 422
    assert api.events() == before


def test_inspector_reads_complaints_but_cannot_receive_them(api: Api) -> None:
    complaint = receive(api).json()["id"]
    assert api.get(f"{COMPLAINTS}/{complaint}", INSPECTOR).status_code == 200
    body = {
        "region": DESA,
        "channel": "web",
        "complaint_type": "question",
        "category": "other",
        "description": "x",
    }
    assert api.post(COMPLAINTS, INSPECTOR, body).status_code == 403


def _version(api: Api, answer: Any) -> int:
    assert answer.status_code == 201, answer.text
    version: int = answer.json()["sla_policy_version"]
    return version


def test_a_serving_process_starts_clocks_under_the_policy_in_force_without_reading_it(
    api: Api,
) -> None:
    app = api.runtime.app
    assert app.sla_policy_in_force is not None and app.sla_policy_in_force.version == 1
    command = app.receive_complaint_command(
        actor=FRONT_OFFICE,
        region=DESA,
        channel="walk_in",
        complaint_type="complaint",
        category="not_registered",
        description="d",
    )
    assert command.reads is False  # decided on the event loop

    assert _version(api, receive(api)) == 1
    # Published through this process: in force here at once.
    app.publish_sla_policy(actor=ADMIN, rules=stricter_sla_rules(), note="2 jam")
    assert _version(api, receive(api)) == 2


def test_a_policy_published_by_another_process_is_in_force_here_within_seconds(
    api: Api,
) -> None:
    assert _version(api, receive(api)) == 1

    other = build_runtime(api.runtime.settings)
    try:
        other.app.publish_sla_policy(actor=ADMIN, rules=stricter_sla_rules(), note="2 jam")
    finally:
        other.close()

    assert eventually(lambda: _version(api, receive(api)) == 2), "never came into force"
    assert _version(api, receive(api)) == 2
