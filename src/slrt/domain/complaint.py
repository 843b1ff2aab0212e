"""Complaint (pengaduan): a question, suggestion or complaint, and its handling.

Received → Acknowledged (the first response) → Assigned (to an office or agency; may be
reassigned while open) → Escalated (to the kecamatan or kabupaten, with a reason) →
Resolved (an outcome; may link the proposal or referral it produced) → Closed; a
resolved or closed complaint may be Reopened.

Which command is allowed in which status:

=============  ==========================================================
acknowledge    received (once: the first response happens once)
assign         acknowledged, assigned (reassign), escalated, reopened
escalate       acknowledged, assigned, reopened, escalated (only upwards:
               kecamatan → kabupaten; never to the same or a lower level)
resolve        acknowledged, assigned, escalated, reopened
close          resolved
reopen         resolved, closed
=============  ==========================================================

The reporter's contact is personal data (UU 27/2022). It is stored in the event, which
the event store encrypts at rest when configured; anything shown or logged uses
`masked_contact`. A reporter may stay anonymous: reports of inclusion errors about a
neighbour often are.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event
from lokal import parse_phone, partial_mask

from slrt.domain.common import IllegalTransition, InvalidInput, created, new_id
from slrt.domain.common import optional_uuid as _optional_uuid
from slrt.domain.common import require_choice as _choice
from slrt.domain.common import require_text as _text
from slrt.domain.reference import mask_identifier, require_desa, require_region, validate_nik

MAX_DESCRIPTION = 4000
MAX_OUTCOME = 2000
MAX_REASON = 1000
MAX_NAME = 200
_AGENCY = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")


class ComplaintChannel(StrEnum):
    WALK_IN = "walk_in"  # at the front office (Puskesos)
    PHONE = "phone"
    SMS_WHATSAPP = "sms_whatsapp"
    WEB = "web"


class ComplaintType(StrEnum):
    QUESTION = "question"
    SUGGESTION = "suggestion"
    COMPLAINT = "complaint"


class ComplaintCategory(StrEnum):
    NOT_REGISTERED = "not_registered"
    WRONG_DATA = "wrong_data"
    AID_NOT_RECEIVED = "aid_not_received"
    EXCLUSION_ERROR = "exclusion_error"  # a poor household left out
    INCLUSION_ERROR = "inclusion_error"  # sanggah: a well-off household receiving aid
    SERVICE_REFUSED = "service_refused"
    OTHER = "other"


class ComplaintStatus(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"


OPEN_STATUSES = frozenset(
    {
        ComplaintStatus.RECEIVED,
        ComplaintStatus.ACKNOWLEDGED,
        ComplaintStatus.ASSIGNED,
        ComplaintStatus.ESCALATED,
        ComplaintStatus.REOPENED,
    }
)


class AssigneeKind(StrEnum):
    OFFICE = "office"  # an SLRT office, named by its region code
    AGENCY = "agency"  # a partner agency, named by its code (dinkes, bpjs, pkh, ...)


class EscalationLevel(StrEnum):
    KECAMATAN = "kecamatan"
    KABUPATEN = "kabupaten"


_LEVEL_ORDER = {EscalationLevel.KECAMATAN: 1, EscalationLevel.KABUPATEN: 2}


class ComplaintTransitionRefused(IllegalTransition):
    """The complaint's status does not allow this command."""


class ComplaintNotOpen(ComplaintTransitionRefused):
    """The complaint is resolved or closed; reopen it first."""


def _optional_text(value: Any, *, field: str, max_length: int = MAX_REASON) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _text(value, field=field, max_length=max_length)


def validate_reporter(value: Any) -> dict[str, str] | None:
    """The reporter's contact: None (anonymous), or a name and optionally a phone number,
    which must be a valid Indonesian number and is stored in E.164 (+62…)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("reporter must be an object with name and phone", field="reporter")
    unknown = sorted(value.keys() - {"name", "phone"})
    if unknown:
        raise InvalidInput(f"reporter has unknown fields {unknown}", field="reporter")
    contact = {"name": _text(value.get("name"), field="reporter.name", max_length=MAX_NAME)}
    phone = value.get("phone")
    if phone is None:
        return contact
    if not isinstance(phone, str):
        raise InvalidInput("reporter.phone must be a text", field="reporter.phone")
    info = parse_phone(phone)
    if not info.valid or info.e164 is None:
        reasons = "; ".join(issue.code for issue in info.errors)
        raise InvalidInput(
            f"reporter.phone is not a valid Indonesian phone number ({reasons})",
            field="reporter.phone",
        )
    contact["phone"] = info.e164
    return contact


def validate_assignee(kind: Any, assignee: Any) -> dict[str, str]:
    """An SLRT office by its Kemendagri region code, or a partner agency by its code."""
    assignee_kind = AssigneeKind(_choice(AssigneeKind, kind, field="assignee_kind"))
    if assignee_kind is AssigneeKind.OFFICE:
        return {"kind": assignee_kind.value, "id": require_region(assignee, field="assignee")}
    if not isinstance(assignee, str) or not _AGENCY.match(assignee):
        raise InvalidInput(
            "assignee must be an agency code: 2 to 64 lower-case letters, digits, - or _",
            field="assignee",
        )
    return {"kind": assignee_kind.value, "id": assignee}


def escalation_region(desa: str, level: EscalationLevel) -> str:
    """The office an escalation goes to: the desa's kecamatan (NN.NN.NN) or kabupaten (NN.NN)."""
    return desa[:8] if level is EscalationLevel.KECAMATAN else desa[:5]


class Complaint(Aggregate):
    class Event(Aggregate.Event):
        pass

    @staticmethod
    def create_id() -> UUID:
        return new_id()

    @classmethod
    def receive(
        cls,
        *,
        region: Any,
        channel: Any,
        complaint_type: Any,
        category: Any,
        description: Any,
        household_id: Any = None,
        member_nik: Any = None,
        reporter: Any = None,
        sla_policy_version: Any,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> Complaint:
        """A complaint received in a desa through a channel. It keeps the SLA policy
        version in force now, whatever is published later. A member is named by NIK and
        only within a household."""
        household = _optional_uuid(household_id, field="household_id")
        if member_nik is not None:
            if household is None:
                raise InvalidInput(
                    "member_nik needs the household_id of the member's household",
                    field="member_nik",
                )
            validate_nik(member_nik, field="member_nik")
        if (
            isinstance(sla_policy_version, bool)
            or not isinstance(sla_policy_version, int)
            or sla_policy_version < 1
        ):
            raise InvalidInput(
                "sla_policy_version must be a published version number (1 or more)",
                field="sla_policy_version",
            )
        return created(
            cls,
            "Received",
            region=require_desa(region),
            channel=_choice(ComplaintChannel, channel, field="channel"),
            complaint_type=_choice(ComplaintType, complaint_type, field="complaint_type"),
            category=_choice(ComplaintCategory, category, field="category"),
            description=_text(description, field="description", max_length=MAX_DESCRIPTION),
            household_id=household,
            member_nik=member_nik,
            reporter=validate_reporter(reporter),
            sla_policy_version=sla_policy_version,
            actor=actor,
            timestamp=timestamp,
        )

    @event("Received")
    def __init__(
        self,
        *,
        region: str,
        channel: str,
        complaint_type: str,
        category: str,
        description: str,
        household_id: UUID | None,
        member_nik: str | None,
        reporter: dict[str, str] | None,
        sla_policy_version: int,
        actor: dict[str, str],
        timestamp: datetime | None = None,
    ) -> None:
        self.region = region
        self.channel = ComplaintChannel(channel)
        self.complaint_type = ComplaintType(complaint_type)
        self.category = ComplaintCategory(category)
        self.description = description
        self.household_id = household_id
        self.member_nik = member_nik
        self.reporter = reporter
        self.sla_policy_version = sla_policy_version
        self.status = ComplaintStatus.RECEIVED
        self.received_by = actor
        self.received_at = timestamp
        self.acknowledged_at: datetime | None = None
        self.assignee: dict[str, str] | None = None
        self.escalation_level: EscalationLevel | None = None
        self.resolution: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []

    def __repr__(self) -> str:
        # The default repr lists every attribute, the reporter's phone and the member's
        # NIK among them; this one is safe to log.
        return (
            f"Complaint(id={self.id}, version={self.version}, region={self.region}, "
            f"status={self.status.value}, category={self.category.value})"
        )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def masked_contact(self) -> dict[str, str] | None:
        """The reporter's contact, masked for display and logs: B*** S***, 0812****7890."""
        if self.reporter is None:
            return None
        masked = {"name": partial_mask("NAME", self.reporter["name"])}
        if "phone" in self.reporter:
            masked["phone"] = mask_identifier("0" + self.reporter["phone"].removeprefix("+62"))
        return masked

    @property
    def masked_member_nik(self) -> str | None:
        return mask_identifier(self.member_nik) if self.member_nik else None

    def _require(self, *allowed: ComplaintStatus, action: str) -> None:
        if self.status not in allowed:
            error = ComplaintTransitionRefused if self.is_open else ComplaintNotOpen
            raise error(
                f"cannot {action} a complaint that is {self.status.value}; "
                f"allowed when {' or '.join(s.value for s in allowed)}",
                current_status=self.status.value,
            )

    def acknowledge(self, *, note: Any, actor: dict[str, str], timestamp: datetime) -> None:
        """The first response to the reporter; it stops the first-response clock, once.
        A complaint escalated before anyone answered it is acknowledged where it went."""
        if self.acknowledged_at is not None:
            raise ComplaintTransitionRefused(
                "the complaint was already acknowledged; the first response happens once",
                current_status=self.status.value,
            )
        self._require(ComplaintStatus.RECEIVED, ComplaintStatus.ESCALATED, action="acknowledge")
        self._acknowledged(
            note=_optional_text(note, field="note"), actor=actor, timestamp=timestamp
        )

    @event("Acknowledged")
    def _acknowledged(self, note: str | None, actor: dict[str, str], timestamp: datetime) -> None:
        self.status = ComplaintStatus.ACKNOWLEDGED
        self.acknowledged_at = timestamp
        self.history.append({"event": "acknowledged", "note": note, "by": actor})

    def assign(
        self,
        *,
        assignee_kind: Any,
        assignee: Any,
        note: Any = None,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        """Hands the complaint to an office or agency; reassigning is allowed while it is
        open, but not to whoever already has it."""
        self._require(
            ComplaintStatus.ACKNOWLEDGED,
            ComplaintStatus.ASSIGNED,
            ComplaintStatus.ESCALATED,
            ComplaintStatus.REOPENED,
            action="assign",
        )
        record = validate_assignee(assignee_kind, assignee)
        if self.status is ComplaintStatus.ASSIGNED and record == self.assignee:
            raise ComplaintTransitionRefused(
                f"the complaint is already assigned to {record['kind']} {record['id']}",
                current_status=self.status.value,
            )
        self._assigned(
            assignee_kind=record["kind"],
            assignee=record["id"],
            note=_optional_text(note, field="note"),
            actor=actor,
            timestamp=timestamp,
        )

    @event("Assigned")
    def _assigned(
        self,
        assignee_kind: str,
        assignee: str,
        note: str | None,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        self.status = ComplaintStatus.ASSIGNED
        self.assignee = {"kind": assignee_kind, "id": assignee}
        self.history.append({"event": "assigned", "to": dict(self.assignee), "by": actor})

    def escalate(
        self, *, level: Any, reason: Any, actor: dict[str, str], timestamp: datetime
    ) -> None:
        """Sends the complaint up to the kecamatan or kabupaten, with a reason. An
        escalation only goes upwards."""
        # A complaint nobody answered may be escalated too: that is what a missed
        # first-response deadline calls for.
        self._require(
            ComplaintStatus.RECEIVED,
            ComplaintStatus.ACKNOWLEDGED,
            ComplaintStatus.ASSIGNED,
            ComplaintStatus.ESCALATED,
            ComplaintStatus.REOPENED,
            action="escalate",
        )
        target = EscalationLevel(_choice(EscalationLevel, level, field="level"))
        if (
            self.escalation_level is not None
            and _LEVEL_ORDER[target] <= _LEVEL_ORDER[self.escalation_level]
        ):
            raise ComplaintTransitionRefused(
                f"the complaint is already escalated to the {self.escalation_level.value}; "
                "an escalation only goes upwards",
                current_status=self.status.value,
                escalation_level=self.escalation_level.value,
            )
        self._escalated(
            level=target.value,
            to_region=escalation_region(self.region, target),
            reason=_text(reason, field="reason", max_length=MAX_REASON),
            actor=actor,
            timestamp=timestamp,
        )

    @event("Escalated")
    def _escalated(
        self, level: str, to_region: str, reason: str, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.status = ComplaintStatus.ESCALATED
        self.escalation_level = EscalationLevel(level)
        self.history.append(
            {"event": "escalated", "level": level, "to": to_region, "reason": reason, "by": actor}
        )

    def resolve(
        self,
        *,
        outcome: Any,
        proposal_id: Any = None,
        referral_id: Any = None,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        """Records the outcome and any proposal or referral the complaint produced; it stops
        the resolution clock."""
        self._require(
            ComplaintStatus.ACKNOWLEDGED,
            ComplaintStatus.ASSIGNED,
            ComplaintStatus.ESCALATED,
            ComplaintStatus.REOPENED,
            action="resolve",
        )
        self._resolved(
            outcome=_text(outcome, field="outcome", max_length=MAX_OUTCOME),
            proposal_id=_optional_uuid(proposal_id, field="proposal_id"),
            referral_id=_optional_uuid(referral_id, field="referral_id"),
            actor=actor,
            timestamp=timestamp,
        )

    @event("Resolved")
    def _resolved(
        self,
        outcome: str,
        proposal_id: UUID | None,
        referral_id: UUID | None,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        self.status = ComplaintStatus.RESOLVED
        self.resolution = {
            "outcome": outcome,
            "proposal_id": proposal_id,
            "referral_id": referral_id,
            "resolved_at": timestamp,
        }
        self.history.append({"event": "resolved", "outcome": outcome, "by": actor})

    def close(self, *, note: Any = None, actor: dict[str, str], timestamp: datetime) -> None:
        """Closes a resolved complaint."""
        self._require(ComplaintStatus.RESOLVED, action="close")
        self._closed(note=_optional_text(note, field="note"), actor=actor, timestamp=timestamp)

    @event("Closed")
    def _closed(self, note: str | None, actor: dict[str, str], timestamp: datetime) -> None:
        self.status = ComplaintStatus.CLOSED
        self.history.append({"event": "closed", "note": note, "by": actor})

    def reopen(self, *, reason: Any, actor: dict[str, str], timestamp: datetime) -> None:
        """Reopens a resolved or closed complaint, e.g. when the reporter disputes the
        outcome; a fresh resolution clock starts."""
        self._require(ComplaintStatus.RESOLVED, ComplaintStatus.CLOSED, action="reopen")
        self._reopened(
            reason=_text(reason, field="reason", max_length=MAX_REASON),
            actor=actor,
            timestamp=timestamp,
        )

    @event("Reopened")
    def _reopened(self, reason: str, actor: dict[str, str], timestamp: datetime) -> None:
        self.status = ComplaintStatus.REOPENED
        self.resolution = None
        self.history.append({"event": "reopened", "reason": reason, "by": actor})


def next_escalation(complaint: Complaint) -> str | None:
    """The level a breached complaint goes up to: kecamatan, then kabupaten; None at the top."""
    if complaint.escalation_level is None:
        return EscalationLevel.KECAMATAN.value
    if complaint.escalation_level is EscalationLevel.KECAMATAN:
        return EscalationLevel.KABUPATEN.value
    return None
