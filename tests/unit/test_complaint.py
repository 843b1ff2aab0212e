"""The complaint (pengaduan) lifecycle as a state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest

from slrt.domain.common import Actor, IllegalTransition, InvalidInput, Role
from slrt.domain.complaint import (
    Complaint,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintNotOpen,
    ComplaintStatus,
    ComplaintTransitionRefused,
    EscalationLevel,
)
from tests.builders import DESA, FRONT_OFFICE, KOTA, nik

NOW = datetime(2026, 11, 20, 7, tzinfo=UTC)  # Friday 15:00 WITA
LATER = NOW + timedelta(hours=1)
MANAGER = Actor("manajer-bontang", Role.SLRT_MANAGER, KOTA)
FO = FRONT_OFFICE.as_record()


def received(**overrides: Any) -> Complaint:
    fields: dict[str, Any] = {
        "region": DESA,
        "channel": "walk_in",
        "complaint_type": "complaint",
        "category": "aid_not_received",
        "description": "BPNT bulan Oktober belum diterima di e-warung.",
        "household_id": uuid4(),
        "member_nik": None,
        "reporter": {"name": "Siti Aminah", "phone": "0812-3456-7890"},
        "sla_policy_version": 3,
    }
    return Complaint.receive(**{**fields, **overrides}, actor=FO, timestamp=NOW)


def acknowledged() -> Complaint:
    complaint = received()
    complaint.acknowledge(note="Sudah kami catat", actor=FO, timestamp=NOW)
    return complaint


def resolved() -> Complaint:
    complaint = acknowledged()
    complaint.resolve(outcome="Bantuan sudah disalurkan", actor=FO, timestamp=LATER)
    return complaint


def test_a_received_complaint_keeps_the_sla_policy_version_in_force() -> None:
    complaint = received()
    assert complaint.status is ComplaintStatus.RECEIVED
    assert complaint.sla_policy_version == 3
    assert complaint.received_at == NOW
    assert complaint.category is ComplaintCategory.AID_NOT_RECEIVED


def test_the_reporters_phone_is_stored_in_e164() -> None:
    assert received().reporter == {"name": "Siti Aminah", "phone": "+6281234567890"}


def test_the_contact_is_masked_for_display() -> None:
    assert received().masked_contact == {"name": "S*** A***", "phone": "0812****7890"}


def test_the_repr_leaves_out_personal_data() -> None:
    complaint = received(member_nik=nik())
    # Not "3456" alone: a random aggregate id in the repr holds it now and then.
    assert "1234567890" not in repr(complaint) and "Siti" not in repr(complaint)
    assert complaint.member_nik is not None and complaint.member_nik not in repr(complaint)


def test_a_reporter_may_stay_anonymous() -> None:
    complaint = received(reporter=None, channel=ComplaintChannel.WEB)
    assert complaint.reporter is None
    assert complaint.masked_contact is None


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"region": "64.74.01"}, "region"),
        ({"region": "64.74.99.9999"}, "region"),
        ({"channel": "fax"}, "channel"),
        ({"complaint_type": "praise"}, "complaint_type"),
        ({"category": "lost_card"}, "category"),
        ({"description": "   "}, "description"),
        ({"description": "x" * 4001}, "description"),
        ({"household_id": "not-a-uuid"}, "household_id"),
        ({"household_id": None, "member_nik": "6474011508800001"}, "member_nik"),
        ({"member_nik": "123"}, "member_nik"),
        ({"reporter": {"name": "Siti", "phone": "12345"}}, "reporter.phone"),
        ({"reporter": {"phone": "081234567890"}}, "reporter.name"),
        ({"reporter": {"name": "Siti", "nik": "6474011508800001"}}, "reporter"),
        ({"sla_policy_version": 0}, "sla_policy_version"),
    ],
)
def test_invalid_complaints_are_refused(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        received(**overrides)
    assert refused.value.context["field"] == field


def test_acknowledging_records_the_first_response() -> None:
    complaint = acknowledged()
    assert complaint.status is ComplaintStatus.ACKNOWLEDGED
    assert complaint.acknowledged_at == NOW


def test_a_complaint_is_acknowledged_only_once() -> None:
    with pytest.raises(ComplaintTransitionRefused, match="acknowledged"):
        acknowledged().acknowledge(note=None, actor=FO, timestamp=LATER)


def test_a_complaint_must_be_acknowledged_before_it_is_assigned() -> None:
    with pytest.raises(ComplaintTransitionRefused, match="received"):
        received().assign(assignee_kind="agency", assignee="bpnt", actor=FO, timestamp=NOW)


def test_a_complaint_can_be_reassigned_while_open() -> None:
    complaint = acknowledged()
    complaint.assign(assignee_kind="office", assignee="64.74.01", actor=FO, timestamp=NOW)
    complaint.assign(assignee_kind="agency", assignee="dinkes", actor=FO, timestamp=LATER)
    assert complaint.status is ComplaintStatus.ASSIGNED
    assert complaint.assignee == {"kind": "agency", "id": "dinkes"}


def test_reassigning_to_the_same_assignee_is_refused() -> None:
    complaint = acknowledged()
    complaint.assign(assignee_kind="agency", assignee="dinkes", actor=FO, timestamp=NOW)
    with pytest.raises(ComplaintTransitionRefused, match="already assigned"):
        complaint.assign(assignee_kind="agency", assignee="dinkes", actor=FO, timestamp=LATER)


def test_an_office_is_named_by_its_region_code() -> None:
    with pytest.raises(InvalidInput):
        acknowledged().assign(assignee_kind="office", assignee="Puskesos", actor=FO, timestamp=NOW)


def test_escalation_goes_to_the_desas_kecamatan_with_a_reason() -> None:
    complaint = acknowledged()
    complaint.escalate(level="kecamatan", reason="Perlu koordinasi", actor=FO, timestamp=LATER)
    assert complaint.status is ComplaintStatus.ESCALATED
    assert complaint.escalation_level is EscalationLevel.KECAMATAN
    escalated = complaint.collect_events()[-1]
    assert escalated.to_region == "64.74.01"  # type: ignore[attr-defined]


def test_an_escalation_needs_a_reason() -> None:
    with pytest.raises(InvalidInput, match="reason"):
        acknowledged().escalate(level="kabupaten", reason="", actor=FO, timestamp=LATER)


def test_a_complaint_escalated_to_the_kecamatan_can_go_up_to_the_kabupaten() -> None:
    complaint = acknowledged()
    complaint.escalate(level="kecamatan", reason="r", actor=FO, timestamp=LATER)
    complaint.escalate(level="kabupaten", reason="r", actor=MANAGER.as_record(), timestamp=LATER)
    assert complaint.escalation_level is EscalationLevel.KABUPATEN


def test_an_escalation_never_goes_down() -> None:
    complaint = acknowledged()
    complaint.escalate(level="kabupaten", reason="r", actor=FO, timestamp=LATER)
    with pytest.raises(ComplaintTransitionRefused, match="only goes upwards"):
        complaint.escalate(level="kecamatan", reason="r", actor=FO, timestamp=LATER)


def test_an_unanswered_complaint_can_be_escalated_and_acknowledged_there() -> None:
    complaint = received()
    complaint.escalate(level="kecamatan", reason="no answer in 4 hours", actor=FO, timestamp=NOW)
    complaint.acknowledge(note="diterima kecamatan", actor=FO, timestamp=LATER)
    assert complaint.acknowledged_at == LATER
    with pytest.raises(ComplaintTransitionRefused, match="once"):
        complaint.acknowledge(note=None, actor=FO, timestamp=LATER)


def test_resolving_links_the_proposal_it_produced() -> None:
    proposal_id = uuid4()
    complaint = acknowledged()
    complaint.resolve(
        outcome="Diusulkan masuk DTKS", proposal_id=str(proposal_id), actor=FO, timestamp=LATER
    )
    assert complaint.status is ComplaintStatus.RESOLVED
    assert complaint.resolution is not None
    assert complaint.resolution["proposal_id"] == proposal_id


def test_a_complaint_is_closed_only_after_it_is_resolved() -> None:
    with pytest.raises(ComplaintTransitionRefused, match="resolved"):
        acknowledged().close(actor=FO, timestamp=LATER)


def test_a_resolved_complaint_is_not_open() -> None:
    complaint = resolved()
    assert not complaint.is_open
    with pytest.raises(ComplaintNotOpen):
        complaint.assign(assignee_kind="agency", assignee="dinkes", actor=FO, timestamp=LATER)


def test_a_closed_complaint_can_be_reopened_with_a_reason() -> None:
    complaint = resolved()
    complaint.close(actor=FO, timestamp=LATER)
    complaint.reopen(reason="Bantuan tetap belum diterima", actor=FO, timestamp=LATER)
    assert complaint.status is ComplaintStatus.REOPENED
    assert complaint.resolution is None
    assert complaint.is_open


def test_a_reopened_complaint_can_be_resolved_again() -> None:
    complaint = resolved()
    complaint.reopen(reason="Belum tuntas", actor=FO, timestamp=LATER)
    complaint.resolve(outcome="Tuntas", actor=FO, timestamp=LATER)
    assert complaint.status is ComplaintStatus.RESOLVED


def test_an_open_complaint_cannot_be_reopened() -> None:
    with pytest.raises(IllegalTransition, match="reopen"):
        acknowledged().reopen(reason="r", actor=FO, timestamp=LATER)


def test_every_event_records_who_acted_and_when() -> None:
    complaint = resolved()
    complaint.close(actor=MANAGER.as_record(), timestamp=LATER)
    events = complaint.collect_events()
    assert [type(e).__name__ for e in events] == ["Received", "Acknowledged", "Resolved", "Closed"]
    assert [e.actor["role"] for e in events] == [  # type: ignore[attr-defined]
        "front_office",
        "front_office",
        "front_office",
        "slrt_manager",
    ]
    assert [e.timestamp for e in events] == [NOW, NOW, LATER, LATER]


def test_a_complaint_is_rebuilt_from_its_events() -> None:
    complaint = resolved()
    events = complaint.collect_events()
    rebuilt: Complaint | None = None
    for stored in events:
        rebuilt = stored.mutate(rebuilt)
    assert rebuilt is not None
    assert rebuilt.status is ComplaintStatus.RESOLVED
    assert rebuilt.reporter == complaint.reporter
