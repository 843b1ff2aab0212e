"""Referral (rujukan): a household or one of its members sent to a partner agency.

Created (by a front office or manager) → Dispatched (the outbox saw the broker accept it)
→ Acknowledged (by the agency, with its own reference) → Delivered (the service was
given, with its date and details) or Declined (with a reason); Expired when the agency
did not answer by the SLA deadline; Cancelled by SLRT while still open.

Which change is allowed in which status:

=============  ==========================================================
dispatch       any status, once (it records a fact about the broker, not a
               decision; an agency may answer before it is recorded)
acknowledge    created, dispatched
deliver        created, dispatched, acknowledged (an agency may deliver
               without a separate acknowledgement)
decline        created, dispatched, acknowledged
expire         created, dispatched, acknowledged
cancel         created, dispatched, acknowledged
=============  ==========================================================

An agency's answer carries the id of the message it came in; an answer whose id was
already applied is a duplicate and changes nothing (`is_duplicate`).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from slrt.domain.common import IllegalTransition, InvalidInput, new_id
from slrt.domain.common import optional_uuid as _optional_uuid
from slrt.domain.common import require_text as _text
from slrt.domain.reference import mask_identifier, require_desa, validate_nik

MAX_REASON = 1000
MAX_DETAILS = 2000
MAX_REFERENCE = 100
_REFERENCE = re.compile(r"^[\x21-\x7e][\x20-\x7e]{0,99}$")


class Agency(StrEnum):
    DINKES = "dinkes"  # Dinas Kesehatan: health services, puskesmas
    BPJS = "bpjs"  # BPJS Kesehatan: KIS (PBI health insurance)
    DISDIK = "disdik"  # Dinas Pendidikan: KIP school aid
    PKH = "pkh"  # Program Keluarga Harapan: conditional cash transfer
    BPNT = "bpnt"  # non-cash food aid through banks and e-warung
    RASTRA = "rastra"  # rice aid
    DISABILITAS = "disabilitas"  # disability services
    LANSIA = "lansia"  # elderly services


#: The services each agency offers; a referral names one of its agency's services.
AGENCY_SERVICES: dict[Agency, frozenset[str]] = {
    Agency.DINKES: frozenset({"health_check", "treatment", "nutrition"}),
    Agency.BPJS: frozenset({"kis_card", "kis_reactivation"}),
    Agency.DISDIK: frozenset({"kip_card", "school_enrolment"}),
    Agency.PKH: frozenset({"pkh_enrolment", "pkh_payment"}),
    Agency.BPNT: frozenset({"bpnt_enrolment", "kks_card", "e_warung"}),
    Agency.RASTRA: frozenset({"rice_aid"}),
    Agency.DISABILITAS: frozenset({"assistive_device", "rehabilitation"}),
    Agency.LANSIA: frozenset({"elderly_care", "elderly_allowance"}),
}


class Urgency(StrEnum):
    ROUTINE = "routine"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class ReferralStatus(StrEnum):
    CREATED = "created"
    DISPATCHED = "dispatched"
    ACKNOWLEDGED = "acknowledged"
    DELIVERED = "delivered"
    DECLINED = "declined"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


OPEN_STATUSES = frozenset(
    {ReferralStatus.CREATED, ReferralStatus.DISPATCHED, ReferralStatus.ACKNOWLEDGED}
)


class ReferralTransitionRefused(IllegalTransition):
    """The referral's status does not allow this change."""


class ReferralClosed(ReferralTransitionRefused):
    """The referral was delivered, declined, expired or cancelled; nothing more happens."""


def _member_nik(value: Any) -> str | None:
    if value is None:
        return None
    validate_nik(value, field="member_nik")
    return str(value)


def validate_agency(value: Any, *, field: str = "agency") -> Agency:
    try:
        return Agency(str(value))
    except ValueError:
        allowed = ", ".join(a.value for a in Agency)
        raise InvalidInput(f"{field} must be one of {allowed}", field=field) from None


def validate_service(agency: Agency, value: Any) -> str:
    services = AGENCY_SERVICES[agency]
    if value not in services:
        raise InvalidInput(
            f"service must be one of {', '.join(sorted(services))} for {agency.value}",
            field="service",
        )
    return str(value)


def validate_agency_reference(value: Any) -> str:
    """The agency's own case number: 1 to 100 printable ASCII characters."""
    if not isinstance(value, str) or not _REFERENCE.match(value):
        raise InvalidInput(
            "agency_reference must be 1 to 100 printable ASCII characters",
            field="agency_reference",
        )
    return value


class Referral(Aggregate):
    class Event(Aggregate.Event):
        pass

    @staticmethod
    def create_id() -> UUID:
        return new_id()

    @classmethod
    def create(
        cls,
        *,
        region: Any,
        household_id: UUID,
        member_nik: Any,
        agency: Any,
        service: Any,
        reason: Any,
        urgency: Any,
        complaint_id: Any,
        proposal_id: Any,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> Referral:
        """Validates a new referral; the household's membership is checked by the caller."""
        checked_agency = validate_agency(agency)
        try:
            checked_urgency = Urgency(str(urgency)).value
        except ValueError:
            allowed = ", ".join(u.value for u in Urgency)
            raise InvalidInput(f"urgency must be one of {allowed}", field="urgency") from None
        return cls(
            region=require_desa(region, field="region"),
            household_id=household_id,
            member_nik=_member_nik(member_nik),
            agency=checked_agency.value,
            service=validate_service(checked_agency, service),
            reason=_text(reason, field="reason", max_length=MAX_REASON),
            urgency=checked_urgency,
            complaint_id=_optional_uuid(complaint_id, field="complaint_id"),
            proposal_id=_optional_uuid(proposal_id, field="proposal_id"),
            actor=actor,
            timestamp=timestamp,
        )

    @event("Created")
    def __init__(
        self,
        region: str,
        household_id: UUID,
        member_nik: str | None,
        agency: str,
        service: str,
        reason: str,
        urgency: str,
        complaint_id: UUID | None,
        proposal_id: UUID | None,
        actor: dict[str, str],
        timestamp: datetime | None = None,
    ) -> None:
        self.region = region
        self.household_id = household_id
        self.member_nik = member_nik
        self.agency = agency
        self.service = service
        self.reason = reason
        self.urgency = urgency
        self.complaint_id = complaint_id
        self.proposal_id = proposal_id
        self.status = ReferralStatus.CREATED
        self.dispatched_at: datetime | None = None
        self.agency_reference: str | None = None
        self.outcome: dict[str, Any] | None = None
        self.answer_ids: list[str] = []
        self.history: list[dict[str, Any]] = [
            {
                "event": "created",
                "at": timestamp.isoformat() if timestamp else None,
                "by": actor.get("user_id"),
            }
        ]

    # -- queries ------------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def masked_member_nik(self) -> str | None:
        return None if self.member_nik is None else mask_identifier(self.member_nik)

    def is_duplicate(self, message_id: str) -> bool:
        """True when the agency's message with this id was already applied."""
        return message_id in self.answer_ids

    def _require(self, command: str, allowed: frozenset[ReferralStatus]) -> None:
        if self.status not in OPEN_STATUSES:
            raise ReferralClosed(
                f"referral {self.id} is {self.status.value}; it cannot be {command}"
            )
        if self.status not in allowed:
            names = ", ".join(sorted(s.value for s in allowed))
            raise ReferralTransitionRefused(
                f"referral {self.id} is {self.status.value}; only a {names} referral can be "
                f"{command}"
            )

    # -- changes ------------------------------------------------------------------------

    def dispatch(self, *, topic: str, actor: dict[str, str], timestamp: datetime) -> bool:
        """Records, once, that the broker accepted the referral; False if already recorded."""
        if self.dispatched_at is not None:
            return False
        self._dispatched(topic=topic, actor=actor, timestamp=timestamp)
        return True

    @event("Dispatched")
    def _dispatched(self, topic: str, actor: dict[str, str], timestamp: datetime) -> None:
        self.dispatched_at = timestamp
        if self.status is ReferralStatus.CREATED:
            self.status = ReferralStatus.DISPATCHED
        self.history.append({"event": "dispatched", "at": timestamp.isoformat(), "topic": topic})

    def acknowledge(
        self,
        *,
        agency_reference: Any,
        message_id: str,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        self._require(
            "acknowledged", frozenset({ReferralStatus.CREATED, ReferralStatus.DISPATCHED})
        )
        self._acknowledged(
            agency_reference=validate_agency_reference(agency_reference),
            message_id=message_id,
            actor=actor,
            timestamp=timestamp,
        )

    @event("Acknowledged")
    def _acknowledged(
        self, agency_reference: str, message_id: str, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.status = ReferralStatus.ACKNOWLEDGED
        self.agency_reference = agency_reference
        self.answer_ids.append(message_id)
        self.history.append(
            {
                "event": "acknowledged",
                "at": timestamp.isoformat(),
                "agency_reference": agency_reference,
            }
        )

    def deliver(
        self,
        *,
        delivered_on: Any,
        details: Any,
        agency_reference: Any,
        message_id: str,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        self._require("delivered", OPEN_STATUSES)
        try:
            day = date.fromisoformat(str(delivered_on))
        except ValueError:
            raise InvalidInput(
                "delivered_on must be a date (YYYY-MM-DD)", field="delivered_on"
            ) from None
        if day > timestamp.date():
            raise InvalidInput("delivered_on cannot be in the future", field="delivered_on")
        self._delivered(
            delivered_on=day.isoformat(),
            details=_text(details, field="details", max_length=MAX_DETAILS),
            agency_reference=self._reference(agency_reference),
            message_id=message_id,
            actor=actor,
            timestamp=timestamp,
        )

    def _reference(self, value: Any) -> str | None:
        if value is None:
            return self.agency_reference
        return validate_agency_reference(value)

    @event("Delivered")
    def _delivered(
        self,
        delivered_on: str,
        details: str,
        agency_reference: str | None,
        message_id: str,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        self.status = ReferralStatus.DELIVERED
        self.agency_reference = agency_reference
        self.outcome = {"delivered_on": delivered_on, "details": details}
        self.answer_ids.append(message_id)
        self.history.append(
            {"event": "delivered", "at": timestamp.isoformat(), "delivered_on": delivered_on}
        )

    def decline(
        self,
        *,
        reason: Any,
        agency_reference: Any,
        message_id: str,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        self._require("declined", OPEN_STATUSES)
        self._declined(
            reason=_text(reason, field="reason", max_length=MAX_REASON),
            agency_reference=self._reference(agency_reference),
            message_id=message_id,
            actor=actor,
            timestamp=timestamp,
        )

    @event("Declined")
    def _declined(
        self,
        reason: str,
        agency_reference: str | None,
        message_id: str,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        self.status = ReferralStatus.DECLINED
        self.agency_reference = agency_reference
        self.outcome = {"reason": reason}
        self.answer_ids.append(message_id)
        self.history.append({"event": "declined", "at": timestamp.isoformat(), "reason": reason})

    def expire(
        self, *, target: str, deadline: datetime, actor: dict[str, str], timestamp: datetime
    ) -> None:
        """The agency did not answer by the SLA deadline of `target`."""
        self._require("expired", OPEN_STATUSES)
        self._expired(target=target, deadline=deadline, actor=actor, timestamp=timestamp)

    @event("Expired")
    def _expired(
        self, target: str, deadline: datetime, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.status = ReferralStatus.EXPIRED
        self.history.append({"event": "expired", "at": timestamp.isoformat(), "target": target})

    def cancel(self, *, reason: Any, actor: dict[str, str], timestamp: datetime) -> None:
        self._require("cancelled", OPEN_STATUSES)
        self._cancelled(
            reason=_text(reason, field="reason", max_length=MAX_REASON),
            actor=actor,
            timestamp=timestamp,
        )

    @event("Cancelled")
    def _cancelled(self, reason: str, actor: dict[str, str], timestamp: datetime) -> None:
        self.status = ReferralStatus.CANCELLED
        self.outcome = {"reason": reason}
        self.history.append({"event": "cancelled", "at": timestamp.isoformat(), "reason": reason})
