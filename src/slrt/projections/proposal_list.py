"""proposal_list: proposals by region and status, for the front office's work list."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    String,
    Table,
    delete,
    func,
    insert,
    select,
)

from slrt.db import UtcDateTime, among_each, metadata
from slrt.domain.reference import kabupaten_of
from slrt.projections.base import BatchProjection
from slrt.projections.regions import inside

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

#: The status a proposal is left in by each event after its submission.
STATUS_AFTER = {
    "Proposal.VillageApproved": "village_approved",
    "Proposal.VillageRejected": "village_rejected",
    "Proposal.DinsosVerified": "dinsos_verified",
    "Proposal.DinsosReturned": "returned",
    "Proposal.Withdrawn": "withdrawn",
    "Proposal.Applied": "applied",
}


class ProposalListProjection(BatchProjection):
    name = "proposal_list"
    tables = (proposal_list,)
    handles = frozenset({"Proposal.Submitted", *STATUS_AFTER})

    def apply_batch(self, conn: Connection, events: list[Any]) -> None:
        """Applies the batch's events to the rows in memory, then writes them in bulk."""
        ids = sorted(
            {str(e.originator_id) for e in events if type(e).__qualname__ != "Proposal.Submitted"}
        )
        rows: dict[str, dict[str, Any]] = {}
        for among_ids in among_each(conn, proposal_list.c.proposal_id, ids):
            query = select(proposal_list).where(among_ids)
            rows.update({r.proposal_id: dict(r._mapping) for r in conn.execute(query)})
        existing = set(rows)
        for event in events:
            self._apply_to(rows, event)
        for among_stored in among_each(conn, proposal_list.c.proposal_id, sorted(existing)):
            conn.execute(delete(proposal_list).where(among_stored))
        if rows:
            conn.execute(insert(proposal_list), [rows[k] for k in sorted(rows)])

    @staticmethod
    def _apply_to(rows: dict[str, dict[str, Any]], event: Any) -> None:
        topic = type(event).__qualname__
        proposal_id = str(event.originator_id)
        touched = {
            "last_event": topic,
            "last_event_at": event.timestamp,
            "version": event.originator_version,
        }
        if topic == "Proposal.Submitted":
            rows[proposal_id] = {
                "proposal_id": proposal_id,
                "kind": event.kind,
                "region": event.region,
                "kecamatan": event.region[:8],
                "scope": kabupaten_of(event.region),
                "household_id": str(event.household_id) if event.household_id else None,
                "status": "submitted",
                "submitted_at": event.timestamp,
                "submitted_by": event.actor["user_id"],
                "berita_acara_number": None,
                **touched,
            }
            return
        row = rows[proposal_id]
        row.update(status=STATUS_AFTER[topic], **touched)
        if topic in ("Proposal.VillageApproved", "Proposal.VillageRejected"):
            row["berita_acara_number"] = event.berita_acara["number"]
        if topic == "Proposal.Applied":
            row["household_id"] = str(event.household_id)


def list_proposals(
    conn: Connection, *, region: str | None, status: str | None, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    query = select(proposal_list)
    query = query.where(inside(proposal_list, region))
    if status:
        query = query.where(proposal_list.c.status == status)
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(
        query.order_by(proposal_list.c.submitted_at.desc(), proposal_list.c.proposal_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return int(total), [dict(r._mapping) for r in rows]
