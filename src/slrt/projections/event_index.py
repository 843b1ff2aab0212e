"""event_index: (aggregate id, version, timestamp, notification id, topic, household).

Answers "which version of this aggregate did the system hold at time T" and "which
events touched this household" with index look-ups instead of scanning the store.
Events of proposals, complaints and referrals are tied to the household they name:
a proposal names it from submission (update, remove, enrol) or when it is applied
(register; its earlier events are then back-filled), a complaint when received, and a
referral when created. Inspections of a household are indexed under it too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    and_,
    bindparam,
    func,
    insert,
    select,
    update,
)

from slrt.db import UtcDateTime, metadata
from slrt.projections.base import Projection

event_index = Table(
    "event_index",
    metadata,
    Column("notification_id", Integer, primary_key=True),
    Column("aggregate_id", String(36), nullable=False),
    Column("version", Integer, nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("topic", String(64), nullable=False),
    Column("household_id", String(36)),
    Index("ix_event_index_aggregate_version", "aggregate_id", "version"),
    Index("ix_event_index_at", "at", "notification_id"),
    Index("ix_event_index_household", "household_id", "notification_id"),
)

#: Which household an aggregate (a proposal, complaint or referral) is about.
event_subjects = Table(
    "event_subjects",
    metadata,
    Column("aggregate_id", String(36), primary_key=True),
    Column("household_id", String(36), nullable=False),
)

_HOUSEHOLD_RESOURCES = frozenset(
    {
        "household",
        "household_as_of",
        "household_history",
        "rank_explanation",
        "rank_history",
        "dossier",
    }
)


def _household_named_by(event: Any, topic: str) -> str | None:
    if topic.startswith("Household."):
        return str(event.originator_id)
    if topic == "Inspection.Recorded":
        resource_id = getattr(event, "resource_id", None)
        if getattr(event, "resource", None) in _HOUSEHOLD_RESOURCES and resource_id:
            return str(resource_id)
        return None
    household_id = getattr(event, "household_id", None)
    if isinstance(household_id, UUID | str) and household_id:
        return str(household_id)
    return None


class EventIndexProjection(Projection):
    """Buffers a batch's rows and writes them in bulk in `finish_batch` (same
    transaction as the position), so a million events do not cost a million round trips."""

    name = "event_index"
    tables = (event_index, event_subjects)

    def __init__(self) -> None:
        self._reset(None)

    def _reset(self, conn: Connection | None) -> None:
        # Buffers belong to one batch (one connection); a rolled-back batch's are dropped.
        self._conn = conn
        self._rows: list[dict[str, Any]] = []
        self._subjects: dict[str, str] = {}  # learned in this batch
        self._unresolved: list[dict[str, Any]] = []

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        if self._conn is not conn:
            self._reset(conn)
        topic = type(event).__qualname__
        aggregate_id = str(event.originator_id)
        household_id = _household_named_by(event, topic)
        row = {
            "notification_id": notification_id,
            "aggregate_id": aggregate_id,
            "version": event.originator_version,
            "at": event.timestamp,
            "topic": topic[:64],
            "household_id": household_id,
        }
        if household_id is not None and not topic.startswith(("Household.", "Inspection.")):
            if aggregate_id not in self._subjects:
                self._subjects[aggregate_id] = household_id
        elif household_id is None and topic.split(".")[0] in ("Proposal", "Complaint", "Referral"):
            self._unresolved.append(row)
        self._rows.append(row)

    def finish_batch(self, conn: Connection) -> None:
        if self._conn is not conn:
            self._reset(conn)
        known = _subjects_of(
            conn, {r["aggregate_id"] for r in self._unresolved} | set(self._subjects)
        )
        new = {a: h for a, h in self._subjects.items() if a not in known}
        if new:
            conn.execute(
                insert(event_subjects),
                [{"aggregate_id": a, "household_id": h} for a, h in new.items()],
            )
            # A register proposal learns its household only when applied: back-fill its
            # earlier events, stored by earlier batches.
            conn.execute(
                update(event_index)
                .where(
                    event_index.c.aggregate_id == bindparam("aid"),
                    event_index.c.household_id.is_(None),
                )
                .values(household_id=bindparam("hid")),
                [{"aid": a, "hid": h} for a, h in new.items()],
            )
        subjects = {**known, **new}
        for row in self._unresolved:
            row["household_id"] = subjects.get(row["aggregate_id"])
        if self._rows:
            conn.execute(insert(event_index), self._rows)
        self._reset(None)


def _subjects_of(conn: Connection, aggregate_ids: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    ids = sorted(aggregate_ids)
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        found.update(
            (r[0], r[1])
            for r in conn.execute(
                select(event_subjects.c.aggregate_id, event_subjects.c.household_id).where(
                    event_subjects.c.aggregate_id.in_(chunk)
                )
            )
        )
    return found


# -- queries ------------------------------------------------------------------------


def notification_at(conn: Connection, at: datetime) -> int:
    """The last notification recorded at or before `at` (0 if none): the system's
    knowledge at that instant is every notification up to it. Event timestamps come
    from one clock and rise with the notification id."""
    found = conn.execute(
        select(event_index.c.notification_id)
        .where(event_index.c.at <= at)
        .order_by(event_index.c.at.desc(), event_index.c.notification_id.desc())
        .limit(1)
    ).scalar()
    return int(found) if found is not None else 0


def version_at(conn: Connection, aggregate_id: str, notification_id: int) -> int | None:
    """The aggregate's version as of the notification (None if it did not exist yet)."""
    found = conn.execute(
        select(func.max(event_index.c.version)).where(
            event_index.c.aggregate_id == aggregate_id,
            event_index.c.notification_id <= notification_id,
        )
    ).scalar()
    return int(found) if found is not None else None


def household_events(
    conn: Connection,
    household_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Any]:
    """Every indexed event that touched the household, in notification order."""
    query = select(event_index).where(event_index.c.household_id == household_id)
    conditions = []
    if start is not None:
        conditions.append(event_index.c.at >= start)
    if end is not None:
        conditions.append(event_index.c.at <= end)
    if conditions:
        query = query.where(and_(*conditions))
    return list(conn.execute(query.order_by(event_index.c.notification_id)).all())


def aggregates_of(conn: Connection, household_id: str) -> list[str]:
    """The ids of the aggregates whose indexed events touched the household."""
    query = (
        select(event_index.c.aggregate_id)
        .where(event_index.c.household_id == household_id)
        .distinct()
    )
    return sorted(conn.execute(query).scalars())


def indexed_up_to(conn: Connection) -> int:
    found = conn.execute(select(func.max(event_index.c.notification_id))).scalar()
    return int(found) if found is not None else 0
