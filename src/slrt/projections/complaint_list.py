"""complaint_list: complaints by region and status, for front desks and managers."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, Connection, Integer, String, Table, func, insert, select, update

from slrt.db import UtcDateTime, metadata
from slrt.domain.reference import kabupaten_of
from slrt.projections.base import Projection
from slrt.projections.regions import inside

complaint_list = Table(
    "complaint_list",
    metadata,
    Column("complaint_id", String(36), primary_key=True),
    Column("region", String(13), nullable=False, index=True),
    Column("kecamatan", String(8), nullable=False, index=True),
    Column("scope", String(5), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("channel", String(16), nullable=False),
    Column("complaint_type", String(16), nullable=False),
    Column("category", String(32), nullable=False, index=True),
    Column("household_id", String(36), index=True),
    # Indexed: a region's list is its complaints OR those escalated to it, and PostgreSQL
    # combines the two indexes instead of reading the whole table.
    Column("escalated_to", String(13), index=True),
    Column("assignee", String(100)),
    Column("received_at", UtcDateTime(), nullable=False),
    Column("last_event", String(64), nullable=False),
    Column("last_event_at", UtcDateTime(), nullable=False),
    Column("version", Integer, nullable=False),
)

_STATUS_AFTER = {
    "Complaint.Acknowledged": "acknowledged",
    "Complaint.Assigned": "assigned",
    "Complaint.Escalated": "escalated",
    "Complaint.Resolved": "resolved",
    "Complaint.Closed": "closed",
    "Complaint.Reopened": "reopened",
}


class ComplaintListProjection(Projection):
    name = "complaint_list"
    tables = (complaint_list,)
    handles = frozenset({"Complaint.Received", *_STATUS_AFTER})

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        topic = type(event).__qualname__
        touched = {
            "last_event": topic,
            "last_event_at": event.timestamp,
            "version": event.originator_version,
        }
        if topic == "Complaint.Received":
            conn.execute(
                insert(complaint_list).values(
                    complaint_id=str(event.originator_id),
                    region=event.region,
                    kecamatan=event.region[:8],
                    scope=kabupaten_of(event.region),
                    status="received",
                    channel=event.channel,
                    complaint_type=event.complaint_type,
                    category=event.category,
                    household_id=str(event.household_id) if event.household_id else None,
                    received_at=event.timestamp,
                    **touched,
                )
            )
            return
        status = _STATUS_AFTER.get(topic)
        if status is None:
            return
        values: dict[str, Any] = {"status": status, **touched}
        if topic == "Complaint.Escalated":
            values["escalated_to"] = event.to_region
        if topic == "Complaint.Assigned":
            values["assignee"] = f"{event.assignee_kind}:{event.assignee}"
        conn.execute(
            update(complaint_list)
            .where(complaint_list.c.complaint_id == str(event.originator_id))
            .values(**values)
        )


def list_complaints(
    conn: Connection, *, region: str | None, status: str | None, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """Complaints received in a region, or escalated to it; newest first."""
    query = select(complaint_list)
    if region and region != "ID":
        query = query.where(
            inside(complaint_list, region) | (complaint_list.c.escalated_to == region)
        )
    if status:
        query = query.where(complaint_list.c.status == status)
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(
        query.order_by(complaint_list.c.received_at.desc(), complaint_list.c.complaint_id)
        .limit(limit)
        .offset(offset)
    ).all()
    return int(total), [dict(r._mapping) for r in rows]
