"""Referrals (rujukan) over HTTP: create, read by the agency, cancel."""

from __future__ import annotations

from typing import Any

from slrt.domain.common import Actor, Role
from tests.api.conftest import Api
from tests.builders import ADMIN, FRONT_OFFICE, KOTA, household

REFERRALS = "/api/v1/referrals"
DINKES = Actor("agency-dinkes", Role.AGENCY, KOTA, agency="dinkes")
BPJS = Actor("agency-bpjs", Role.AGENCY, KOTA, agency="bpjs")


def create(api: Api, **overrides: Any) -> Any:
    data = household()
    household_id = api.runtime.app.import_household(actor=ADMIN, data=data, source="test").id
    body = {
        "household_id": str(household_id),
        "member_nik": data["members"][0]["nik"],
        "agency": "dinkes",
        "service": "health_check",
        "reason": "Balita gizi kurang, perlu pemeriksaan puskesmas",
        "urgency": "urgent",
        **overrides,
    }
    return api.post(REFERRALS, FRONT_OFFICE, body)


def test_a_front_office_creates_a_referral(api: Api) -> None:
    answer = create(api)
    assert answer.status_code == 201, answer.text
    referral = answer.json()
    assert referral["status"] == "created"
    assert referral["member_nik"].count("*") == 8
    assert answer.headers["Location"] == f"{REFERRALS}/{referral['id']}"


def test_the_agency_reads_its_own_referral(api: Api) -> None:
    referral = create(api).json()
    answer = api.get(f"{REFERRALS}/{referral['id']}", DINKES)
    assert answer.status_code == 200, answer.text


def test_another_agency_may_not_read_it(api: Api) -> None:
    referral = create(api).json()
    answer = api.get(f"{REFERRALS}/{referral['id']}", BPJS)
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"


def test_an_agency_may_not_create_referrals(api: Api) -> None:
    data = household()
    household_id = api.runtime.app.import_household(actor=ADMIN, data=data, source="test").id
    body = {
        "household_id": str(household_id),
        "agency": "dinkes",
        "service": "health_check",
        "reason": "x",
    }
    assert api.post(REFERRALS, DINKES, body).status_code == 403


def test_a_service_the_agency_does_not_offer_is_a_422(api: Api) -> None:
    before = api.events()
    answer = create(api, agency="disdik", service="kis_card")
    assert answer.status_code == 422
    assert api.events() == before + 1  # only the imported household


def test_cancel_then_cancel_again_is_a_409(api: Api) -> None:
    referral = create(api).json()
    path = f"{REFERRALS}/{referral['id']}/cancel"
    first = api.post(path, FRONT_OFFICE, {"reason": "Salah lembaga"}, headers={"If-Match": '"1"'})
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "cancelled"
    assert api.post(path, FRONT_OFFICE, {"reason": "lagi"}).status_code == 409


def test_a_retried_create_with_the_same_key_creates_one_referral(api: Api) -> None:
    data = household()
    household_id = api.runtime.app.import_household(actor=ADMIN, data=data, source="test").id
    body = {
        "household_id": str(household_id),
        "agency": "bpjs",
        "service": "kis_card",
        "reason": "Tidak punya KIS",
    }
    key = {"Idempotency-Key": "rujukan-1"}
    first = api.post(REFERRALS, FRONT_OFFICE, body, headers=key)
    second = api.post(REFERRALS, FRONT_OFFICE, body, headers=key)
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"
