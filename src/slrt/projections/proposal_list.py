"""proposal_list: proposals by region and status, for the front office's work list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    String,
    Table,
    func,
    insert,
    select,
    update,
)

from slrt.db import UtcDateTime, metadata
from slrt.domain.reference import kabupaten_of
from slrt.projections.base import Projection

proposal_list = Table(
    "proposal_list",
    metadata,
    Column("proposal_id", String(36), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("region", String(13), nullable=False, index=True),
    Column("kecamatan", String(8), nullable=False, index=True),
    Column("scope", String(5), nullable=False, index=True),
    Column("household_id", String(36), index=True),
    Column("status", String(20), nullable=False, index=True),
    Column("submitted_at", UtcDateTime(), nullable=False),
    Column("submitted_by", String(100), nullable=False),
    Column("berita_acara_number", String(100)),
    Column("last_event", String(64), nullable=False),
    Column("last_event_at", UtcDateTime(), nullable=False),
    Column("version", Integer, nullable=False),
)

_STATUS_AFTER = {
    "Proposal.VillageApproved": "village_approved",
    "Proposal.VillageRejected": "village_rejected",
    "Proposal.DinsosVerified": "dinsos_verified",
    "Proposal.DinsosReturned": "returned",
    "Proposal.Withdrawn": "withdrawn",
    "Proposal.Applied": "applied",
}


class ProposalListProjection(Projection):
    name = "proposal_list"
    tables = (proposal_list,)

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        topic = type(event).__qualname__
        touched = {
            "last_event": topic,
            "last_event_at": event.timestamp,
            "version": event.originator_version,
        }
        if topic == "Proposal.Submitted":
            conn.execute(
                insert(proposal_list).values(
                    proposal_id=str(event.originator_id),
                    kind=event.kind,
                    region=event.region,
                    kecamatan=event.region[:8],
                    scope=kabupaten_of(event.region),
                    household_id=str(event.household_id) if event.household_id else None,
                    status="submitted",
                    submitted_at=event.timestamp,
                    submitted_by=event.actor["user_id"],
                    **touched,
                )
            )
            return
        status = _STATUS_AFTER.get(topic)
        if status is None:
            return
        values: dict[str, Any] = {"status": status, **touched}
        if topic in ("Proposal.VillageApproved", "Proposal.VillageRejected"):
            values["berita_acara_number"] = event.berita_acara["number"]
        if topic == "Proposal.Applied":
            values["household_id"] = str(event.household_id)
        conn.execute(
            update(proposal_list)
            .where(proposal_list.c.proposal_id == str(event.originator_id))
            .values(**values)
        )


def list_proposals(
    conn: Connection, *, region: str | None, status: str | None, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    query = select(proposal_list)
    if region:
        if len(region) == 2:
            query = query.where(proposal_list.c.scope.like(f"{region}.%"))
        elif len(region) == 5:
            query = query.where(proposal_list.c.scope == region)
        elif len(region) == 8:
            query = query.where(proposal_list.c.kecamatan == region)
        else:
            query = query.where(proposal_list.c.region == region)
    if status:
        query = query.where(proposal_list.c.status == status)
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(
        query.order_by(proposal_list.c.submitted_at.desc(), proposal_list.c.proposal_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return int(total), [dict(r._mapping) for r in rows]
