"""User: someone who may act in SLRT, with one role bound to one region."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from slrt.domain.access import NATIONAL
from slrt.domain.common import IllegalTransition, InvalidInput, Role
from slrt.domain.reference import require_region

USER_ID = re.compile(r"^[a-z0-9][a-z0-9._@-]{2,99}$")
AGENCY_CODE = re.compile(r"^[a-z][a-z0-9-]{1,39}$")


def validate_assignment(role: Any, region: Any, agency: Any) -> tuple[Role, str, str | None]:
    """A role, the region it acts in, and for an agency its agency code."""
    try:
        checked_role = Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role if r is not Role.SYSTEM)
        raise InvalidInput(f"role must be one of {allowed}", field="role") from None
    if checked_role is Role.SYSTEM:
        raise InvalidInput("role system is reserved for SLRT's own processes", field="role")
    checked_region = region if region == NATIONAL else require_region(region)
    if checked_role is Role.AGENCY:
        if not isinstance(agency, str) or not AGENCY_CODE.match(agency):
            raise InvalidInput("an agency user needs an agency code such as dinkes", field="agency")
    elif agency is not None:
        raise InvalidInput("only agency users have an agency code", field="agency")
    return checked_role, checked_region, agency


class User(Aggregate):
    @staticmethod
    def create_id(user_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"slrt:user:{user_id}")

    @event("Registered")
    def __init__(
        self,
        user_id: str,
        role: str,
        region: str,
        agency: str | None,
        actor: dict[str, str],
        timestamp: datetime | None = None,
    ) -> None:
        self.user_id = user_id
        self.role = role
        self.region = region
        self.agency = agency
        self.active = True

    @classmethod
    def register(
        cls,
        *,
        user_id: Any,
        role: Any,
        region: Any,
        agency: Any,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> User:
        if not isinstance(user_id, str) or not USER_ID.match(user_id):
            raise InvalidInput(
                "user id must be 3–100 characters: lower-case letters, digits, . _ @ -",
                field="user_id",
            )
        checked_role, checked_region, checked_agency = validate_assignment(role, region, agency)
        return cls(
            user_id=user_id,
            role=checked_role.value,
            region=checked_region,
            agency=checked_agency,
            actor=actor,
            timestamp=timestamp,
        )

    def deactivate(self, *, actor: dict[str, str], timestamp: datetime) -> None:
        if not self.active:
            raise IllegalTransition(f"user {self.user_id} is already deactivated")
        self._deactivated(actor=actor, timestamp=timestamp)

    @event("Deactivated")
    def _deactivated(self, actor: dict[str, str], timestamp: datetime) -> None:
        self.active = False
