"""Inspection: every read by an inspector is itself recorded, as an event."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from slrt.domain.common import new_id


class Inspection(Aggregate):
    """An inspector looked at something (who, what, when)."""

    @staticmethod
    def create_id() -> UUID:
        return new_id()

    @event("Recorded")
    def __init__(
        self,
        resource: str,
        resource_id: str | None,
        region: str | None,
        actor: dict[str, str],
        timestamp: datetime | None = None,
    ) -> None:
        self.resource = resource
        self.resource_id = resource_id
        self.region = region
        self.actor = actor
