"""Household (rumah tangga): changes only by applying a verified proposal or a named import."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from slrt.domain.common import IllegalTransition, InvalidInput, new_id
from slrt.domain.reference import (
    PMKS_CATEGORIES,
    POOR_HOUSEHOLD_THRESHOLD,
    Indicator,
    Programme,
    Relationship,
    RemovalReason,
    require_desa,
    unlisted_kecamatan,
    validate_nik,
    validate_no_kk,
)

MAX_MEMBERS = 30
_RT_RW = re.compile(r"^\d{1,3}$")
_DATA_FIELDS = {"region", "address", "rt", "rw", "no_kk", "members", "indicators", "pmks"}
_CHANGEABLE_FIELDS = _DATA_FIELDS - {"region"}


class HouseholdRemoved(IllegalTransition):
    """A removed household keeps its data but takes no further changes."""


def _text(value: Any, *, field: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be a non-empty text", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters", field=field)
    return value.strip()


#: The indicators' names in their order (iterating the enum costs ~2 µs each time).
_INDICATORS = tuple(i.value for i in Indicator)
_INDICATOR_SET = frozenset(_INDICATORS)


def validate_indicators(value: Any) -> dict[str, bool]:
    """All 14 BPS indicators, each a yes/no deprivation."""
    if not isinstance(value, dict):
        raise InvalidInput(
            "indicators must be an object of the 14 BPS indicators", field="indicators"
        )
    if value.keys() != _INDICATOR_SET:
        missing, unknown = _INDICATOR_SET - value.keys(), value.keys() - _INDICATOR_SET
        parts = []
        if missing:
            parts.append(f"missing {', '.join(sorted(missing))}")
        if unknown:
            parts.append(f"unknown {', '.join(sorted(unknown))}")
        raise InvalidInput(f"indicators: {'; '.join(parts)}", field="indicators")
    if set(map(type, value.values())) != {bool}:  # bool has no subclasses
        raise InvalidInput("each indicator must be true or false", field="indicators")
    return dict(zip(_INDICATORS, map(value.__getitem__, _INDICATORS), strict=True))


def member_warnings(members: Any) -> list[str]:
    """What an operator should check before the deliberation: NIKs issued under a
    kecamatan code that today's Kemendagri list lacks (accepted; see `validate_nik`)."""
    warnings = []
    for index, member in enumerate(members or []):
        code = unlisted_kecamatan(member["nik"])
        if code is not None:
            warnings.append(
                f"members[{index}].nik names kecamatan {code}, which Kemendagri does not "
                "list today: check the number against the KTP (a NIK keeps the code it "
                "was issued under, also after a region split)"
            )
    return warnings


#: Each relationship by its value: a lookup, where calling the enum took ~0.3 µs a member.
_RELATIONSHIPS: dict[str, Relationship] = {r.value: r for r in Relationship}


def validate_members(value: Any) -> list[dict[str, str]]:
    """Members with valid NIKs, no NIK twice, and exactly one head of household."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_MEMBERS:
        raise InvalidInput(f"members must list 1 to {MAX_MEMBERS} people", field="members")
    members: list[dict[str, str]] = []
    for index, raw in enumerate(value):
        field = f"members[{index}]"
        if not isinstance(raw, dict):
            raise InvalidInput(f"{field} must be an object", field=field)
        sex = raw.get("sex")
        if sex not in ("L", "P"):
            raise InvalidInput(f"{field}.sex must be L or P", field=f"{field}.sex")
        encoded = validate_nik(raw.get("nik"), field=f"{field}.nik", sex=sex)
        given = raw.get("relationship")
        relationship = _RELATIONSHIPS.get(given) if isinstance(given, str) else None
        if relationship is None:
            allowed = ", ".join(r.value for r in Relationship)
            raise InvalidInput(
                f"{field}.relationship must be one of {allowed}", field=f"{field}.relationship"
            )
        members.append(
            {
                "nik": raw["nik"],
                "name": _text(raw.get("name"), field=f"{field}.name", max_length=100),
                "relationship": relationship.value,
                "sex": sex,
                "birth_date": encoded["birth_date"],
            }
        )
    niks = [m["nik"] for m in members]
    if len(set(niks)) != len(niks):
        raise InvalidInput("members: the same NIK appears twice", field="members")
    heads = sum(1 for m in members if m["relationship"] == Relationship.HEAD)
    if heads != 1:
        raise InvalidInput("members must have exactly one head of household", field="members")
    return members


def validate_pmks(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(v in PMKS_CATEGORIES for v in value):
        raise InvalidInput("pmks must list categories from Permensos 08/2012", field="pmks")
    return sorted(set(value))


def validate_household_data(value: Any, *, partial: bool = False) -> dict[str, Any]:
    """A household's registrable data; with partial=True, only the fields being changed."""
    if not isinstance(value, dict):
        raise InvalidInput("household must be an object", field="household")
    allowed = _CHANGEABLE_FIELDS if partial else _DATA_FIELDS
    unknown = value.keys() - allowed
    if unknown:
        raise InvalidInput(f"household: unexpected {', '.join(sorted(unknown))}", field="household")
    required = set() if partial else _DATA_FIELDS - {"pmks"}
    missing = required - value.keys()
    if missing:
        raise InvalidInput(f"household: missing {', '.join(sorted(missing))}", field="household")
    if partial and not value:
        raise InvalidInput("changes must name at least one field", field="changes")
    data: dict[str, Any] = {}
    if "region" in value:
        data["region"] = require_desa(value["region"])
    if "address" in value:
        data["address"] = _text(value["address"], field="address", max_length=200)
    for part in ("rt", "rw"):
        if part in value:
            if not isinstance(value[part], str) or not _RT_RW.match(value[part]):
                raise InvalidInput(f"{part} must be 1 to 3 digits", field=part)
            data[part] = value[part].zfill(3)
    if "no_kk" in value:
        data["no_kk"] = validate_no_kk(value["no_kk"])
    if "members" in value:
        data["members"] = validate_members(value["members"])
    if "indicators" in value:
        data["indicators"] = validate_indicators(value["indicators"])
    if "pmks" in value or not partial:
        data["pmks"] = validate_pmks(value.get("pmks"))
    return data


def deprivation_count(indicators: dict[str, bool]) -> int:
    return sum(map(bool, indicators.values()))


class Household(Aggregate):
    """The household's data as the registry holds it. Rank and desil are not here:
    they are derived by the ranking projection."""

    class Event(Aggregate.Event):
        pass

    @staticmethod
    def create_id() -> UUID:
        return new_id()

    @event("Registered")
    def __init__(
        self,
        *,
        data: dict[str, Any],
        proposal_id: UUID | None,
        source: str | None,
        actor: dict[str, str],
        timestamp: datetime | None = None,
    ) -> None:
        self.region: str = data["region"]
        self.address: str = data["address"]
        self.rt: str = data["rt"]
        self.rw: str = data["rw"]
        self.no_kk: str = data["no_kk"]
        self.members: list[dict[str, str]] = data["members"]
        self.indicators: dict[str, bool] = data["indicators"]
        self.pmks: list[str] = data.get("pmks", [])
        self.programmes: list[str] = []
        self.status = "active"
        self.removal_reason: str | None = None
        self.last_proposal_id = proposal_id

    @property
    def is_poor(self) -> bool:
        """The BPS rule: at least 9 of the 14 indicators."""
        return deprivation_count(self.indicators) >= POOR_HOUSEHOLD_THRESHOLD

    @property
    def head_name(self) -> str:
        return next(m["name"] for m in self.members if m["relationship"] == Relationship.HEAD)

    def _require_active(self) -> None:
        if self.status != "active":
            raise HouseholdRemoved(
                f"household {self.id} was removed ({self.removal_reason}); it takes no changes",
                household_id=str(self.id),
            )

    def check_accepts_changes(self) -> None:
        """Update and removal proposals are refused for a removed household."""
        self._require_active()

    def update(
        self,
        *,
        changes: dict[str, Any],
        proposal_id: UUID,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        self._require_active()
        self._data_updated(
            changes=changes, proposal_id=proposal_id, actor=actor, timestamp=timestamp
        )

    @event("DataUpdated")
    def _data_updated(
        self, changes: dict[str, Any], proposal_id: UUID, actor: dict[str, str], timestamp: datetime
    ) -> None:
        for key, value in changes.items():
            setattr(self, key, value)
        self.last_proposal_id = proposal_id

    def remove(
        self, *, reason: str, proposal_id: UUID, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self._require_active()
        self._removed(
            reason=RemovalReason(reason).value,
            proposal_id=proposal_id,
            actor=actor,
            timestamp=timestamp,
        )

    @event("Removed")
    def _removed(
        self, reason: str, proposal_id: UUID, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.status = "removed"
        self.removal_reason = reason
        self.last_proposal_id = proposal_id

    def check_enrolment(self, programme: str, *, enrol: bool) -> None:
        self._require_active()
        enrolled = programme in self.programmes
        if enrol and enrolled:
            raise IllegalTransition(f"household is already enrolled in {programme}")
        if not enrol and not enrolled:
            raise IllegalTransition(f"household is not enrolled in {programme}")

    def enrol(
        self, *, programme: str, proposal_id: UUID, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.check_enrolment(programme, enrol=True)
        self._enrolled(
            programme=Programme(programme).value,
            proposal_id=proposal_id,
            actor=actor,
            timestamp=timestamp,
        )

    @event("Enrolled")
    def _enrolled(
        self, programme: str, proposal_id: UUID, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.programmes = sorted({*self.programmes, programme})
        self.last_proposal_id = proposal_id

    def unenrol(
        self, *, programme: str, proposal_id: UUID, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.check_enrolment(programme, enrol=False)
        self._unenrolled(
            programme=programme, proposal_id=proposal_id, actor=actor, timestamp=timestamp
        )

    @event("Unenrolled")
    def _unenrolled(
        self, programme: str, proposal_id: UUID, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.programmes = [p for p in self.programmes if p != programme]
        self.last_proposal_id = proposal_id
