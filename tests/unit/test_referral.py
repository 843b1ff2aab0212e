"""The Referral aggregate: lifecycle, refused transitions, duplicate answers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from slrt.domain.common import InvalidInput
from slrt.domain.referral import (
    Referral,
    ReferralClosed,
    ReferralStatus,
    ReferralTransitionRefused,
)
from tests.builders import DESA, FRONT_OFFICE, nik

AT = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)
WHO = FRONT_OFFICE.as_record()
AGENCY = {"user_id": "agency:bpjs", "role": "agency", "region": "ID", "agency": "bpjs"}


def referral(**overrides: Any) -> Referral:
    values: dict[str, Any] = {
        "region": DESA,
        "household_id": uuid4(),
        "member_nik": nik(),
        "agency": "bpjs",
        "service": "kis_card",
        "reason": "Tidak punya KIS",
        "urgency": "urgent",
        "complaint_id": None,
        "proposal_id": None,
        "actor": WHO,
        "timestamp": AT,
        **overrides,
    }
    return Referral.create(**values)


def test_a_new_referral_is_created_for_one_of_the_agencys_services() -> None:
    created = referral()
    assert created.status is ReferralStatus.CREATED
    assert created.masked_member_nik is not None and "*" in created.masked_member_nik


def test_a_service_the_agency_does_not_offer_is_refused() -> None:
    with pytest.raises(InvalidInput, match="service must be one of"):
        referral(agency="disdik", service="kis_card")


def test_an_unknown_agency_is_refused() -> None:
    with pytest.raises(InvalidInput, match="agency must be one of"):
        referral(agency="polri")


def test_dispatch_is_recorded_once() -> None:
    created = referral()
    assert created.dispatch(topic="slrt.referrals.bpjs", actor=WHO, timestamp=AT)
    assert not created.dispatch(topic="slrt.referrals.bpjs", actor=WHO, timestamp=AT)
    assert created.status is ReferralStatus.DISPATCHED


def test_acknowledged_then_delivered() -> None:
    created = referral()
    created.acknowledge(agency_reference="KIS-1", message_id="m1", actor=AGENCY, timestamp=AT)
    created.deliver(
        delivered_on="2026-11-20",
        details="Kartu KIS diserahkan",
        agency_reference=None,
        message_id="m2",
        actor=AGENCY,
        timestamp=AT,
    )
    assert created.status is ReferralStatus.DELIVERED
    assert created.agency_reference == "KIS-1"
    assert created.is_duplicate("m1") and created.is_duplicate("m2")


def test_a_second_acknowledgement_is_refused() -> None:
    created = referral()
    created.acknowledge(agency_reference="KIS-1", message_id="m1", actor=AGENCY, timestamp=AT)
    with pytest.raises(ReferralTransitionRefused):
        created.acknowledge(agency_reference="KIS-1", message_id="m3", actor=AGENCY, timestamp=AT)


def test_a_cancelled_referral_takes_no_answer() -> None:
    created = referral()
    created.cancel(reason="Salah lembaga", actor=WHO, timestamp=AT)
    with pytest.raises(ReferralClosed):
        created.decline(
            reason="x", agency_reference=None, message_id="m1", actor=AGENCY, timestamp=AT
        )


def test_a_delivery_dated_in_the_future_is_refused() -> None:
    with pytest.raises(InvalidInput, match="future"):
        referral().deliver(
            delivered_on="2026-12-31",
            details="x",
            agency_reference=None,
            message_id="m1",
            actor=AGENCY,
            timestamp=AT,
        )
