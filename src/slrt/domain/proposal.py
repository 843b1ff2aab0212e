"""Proposal (usulan): a request to add, change, remove or enrol a household.

Submitted → VillageApproved (musyawarah, with its berita acara) or VillageRejected
→ DinsosVerified → Applied; or DinsosReturned (back to the village) / Withdrawn.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from slrt.domain.common import IllegalTransition, InvalidInput, new_id
from slrt.domain.household import validate_household_data
from slrt.domain.reference import Programme, RemovalReason, region_timezone

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ProposalKind(StrEnum):
    REGISTER = "register"
    UPDATE = "update"
    REMOVE = "remove"
    ENROL = "enrol"
    UNENROL = "unenrol"


class ProposalStatus(StrEnum):
    SUBMITTED = "submitted"
    VILLAGE_APPROVED = "village_approved"
    VILLAGE_REJECTED = "village_rejected"
    RETURNED = "returned"
    DINSOS_VERIFIED = "dinsos_verified"
    APPLIED = "applied"
    WITHDRAWN = "withdrawn"


class ProposalNotPending(IllegalTransition):
    """The proposal's status does not allow this decision."""


class MissingBeritaAcara(InvalidInput):
    """A musyawarah decision must name its berita acara: number, date and file hash."""


def validate_payload(kind: ProposalKind, payload: Any) -> dict[str, Any]:
    """What each kind of proposal must carry; the household id is checked by the application."""
    if not isinstance(payload, dict):
        raise InvalidInput("payload must be an object", field="payload")
    if kind is ProposalKind.REGISTER:
        return {"household": validate_household_data(payload.get("household"))}
    if kind is ProposalKind.UPDATE:
        return {"changes": validate_household_data(payload.get("changes"), partial=True)}
    if kind is ProposalKind.REMOVE:
        try:
            return {"reason": RemovalReason(str(payload.get("reason"))).value}
        except ValueError:
            allowed = ", ".join(r.value for r in RemovalReason)
            raise InvalidInput(f"reason must be one of {allowed}", field="reason") from None
    try:
        return {"programme": Programme(str(payload.get("programme"))).value}
    except ValueError:
        allowed = ", ".join(p.value for p in Programme)
        raise InvalidInput(f"programme must be one of {allowed}", field="programme") from None


def validate_berita_acara(value: Any, *, region: str, at: datetime) -> dict[str, str]:
    """The musyawarah's minutes: a number, a date not in the future, and the SHA-256 of its file."""
    if not isinstance(value, dict):
        raise MissingBeritaAcara(
            "a village decision needs its berita acara (number, date, sha256)", field="berita_acara"
        )
    number = value.get("number")
    if not isinstance(number, str) or not number.strip() or len(number) > 100:
        raise MissingBeritaAcara(
            "berita_acara.number must be 1 to 100 characters", field="berita_acara.number"
        )
    raw_date = value.get("date")
    try:
        signed_on = date.fromisoformat(raw_date) if isinstance(raw_date, str) else None
    except ValueError:
        signed_on = None
    if signed_on is None:
        raise MissingBeritaAcara(
            "berita_acara.date must be a date YYYY-MM-DD", field="berita_acara.date"
        )
    if signed_on > at.astimezone(region_timezone(region)).date():
        raise InvalidInput("berita_acara.date is in the future", field="berita_acara.date")
    digest = value.get("sha256")
    if not isinstance(digest, str) or not _SHA256.match(digest.lower()):
        raise MissingBeritaAcara(
            "berita_acara.sha256 must be the 64 hex digits of the file's SHA-256",
            field="berita_acara.sha256",
        )
    return {"number": number.strip(), "date": signed_on.isoformat(), "sha256": digest.lower()}


def _reason(value: Any, *, field: str = "reason") -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 1000:
        raise InvalidInput(f"{field} must be 1 to 1000 characters", field=field)
    return value.strip()


class Proposal(Aggregate):
    class Event(Aggregate.Event):
        pass

    @staticmethod
    def create_id() -> UUID:
        return new_id()

    @event("Submitted")
    def __init__(
        self,
        *,
        kind: str,
        region: str,
        household_id: UUID | None,
        payload: dict[str, Any],
        note: str | None,
        actor: dict[str, str],
        timestamp: datetime | None = None,
    ) -> None:
        self.kind = ProposalKind(kind)
        self.region = region
        self.household_id = household_id
        self.payload = payload
        self.note = note
        self.status = ProposalStatus.SUBMITTED
        self.berita_acara: dict[str, str] | None = None
        self.decisions: list[dict[str, Any]] = []
        self.submitted_by = actor

    def _require(self, *allowed: ProposalStatus, action: str) -> None:
        if self.status not in allowed:
            raise ProposalNotPending(
                f"cannot {action} a proposal that is {self.status.value}; "
                f"allowed when {' or '.join(s.value for s in allowed)}",
                current_status=self.status.value,
            )

    def approve_at_village(
        self, *, berita_acara: Any, actor: dict[str, str], timestamp: datetime
    ) -> None:
        """The musyawarah desa approved it; its berita acara is the evidence."""
        self._require(ProposalStatus.SUBMITTED, ProposalStatus.RETURNED, action="approve")
        record = validate_berita_acara(berita_acara, region=self.region, at=timestamp)
        self._village_approved(berita_acara=record, actor=actor, timestamp=timestamp)

    @event("VillageApproved")
    def _village_approved(
        self, berita_acara: dict[str, str], actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.status = ProposalStatus.VILLAGE_APPROVED
        self.berita_acara = berita_acara
        self.decisions.append({"decision": "village_approved", "by": actor})

    def reject_at_village(
        self, *, reason: Any, berita_acara: Any, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self._require(ProposalStatus.SUBMITTED, ProposalStatus.RETURNED, action="reject")
        record = validate_berita_acara(berita_acara, region=self.region, at=timestamp)
        self._village_rejected(
            reason=_reason(reason), berita_acara=record, actor=actor, timestamp=timestamp
        )

    @event("VillageRejected")
    def _village_rejected(
        self, reason: str, berita_acara: dict[str, str], actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.status = ProposalStatus.VILLAGE_REJECTED
        self.berita_acara = berita_acara
        self.decisions.append({"decision": "village_rejected", "reason": reason, "by": actor})

    def verify_by_dinsos(
        self, *, note: str | None, actor: dict[str, str], timestamp: datetime
    ) -> None:
        """Dinsos verified a village-approved proposal; it may now be applied."""
        self._require(ProposalStatus.VILLAGE_APPROVED, action="verify")
        self._dinsos_verified(note=note, actor=actor, timestamp=timestamp)

    @event("DinsosVerified")
    def _dinsos_verified(
        self, note: str | None, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.status = ProposalStatus.DINSOS_VERIFIED
        self.decisions.append({"decision": "dinsos_verified", "note": note, "by": actor})

    def return_by_dinsos(self, *, reason: Any, actor: dict[str, str], timestamp: datetime) -> None:
        """Dinsos sends it back to the village with a reason."""
        self._require(ProposalStatus.VILLAGE_APPROVED, action="return")
        self._dinsos_returned(reason=_reason(reason), actor=actor, timestamp=timestamp)

    @event("DinsosReturned")
    def _dinsos_returned(self, reason: str, actor: dict[str, str], timestamp: datetime) -> None:
        self.status = ProposalStatus.RETURNED
        self.decisions.append({"decision": "dinsos_returned", "reason": reason, "by": actor})

    def withdraw(self, *, reason: Any, actor: dict[str, str], timestamp: datetime) -> None:
        self._require(
            ProposalStatus.SUBMITTED,
            ProposalStatus.VILLAGE_APPROVED,
            ProposalStatus.RETURNED,
            action="withdraw",
        )
        self._withdrawn(reason=_reason(reason), actor=actor, timestamp=timestamp)

    @event("Withdrawn")
    def _withdrawn(self, reason: str, actor: dict[str, str], timestamp: datetime) -> None:
        self.status = ProposalStatus.WITHDRAWN
        self.decisions.append({"decision": "withdrawn", "reason": reason, "by": actor})

    def mark_applied(
        self, *, household_id: UUID, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self._require(ProposalStatus.DINSOS_VERIFIED, action="apply")
        self._applied(household_id=household_id, actor=actor, timestamp=timestamp)

    @event("Applied")
    def _applied(self, household_id: UUID, actor: dict[str, str], timestamp: datetime) -> None:
        self.status = ProposalStatus.APPLIED
        self.household_id = household_id
