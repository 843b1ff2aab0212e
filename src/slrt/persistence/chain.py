"""The hash chain: how an event's hash and the log's anchor digest are computed.

One definition, used by both recorders when events are written and by
`slrt.audit` when they are checked, so the two can never disagree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.persistence import Notification

#: The "previous hash" of an aggregate's first event.
GENESIS = bytes(32)


def event_digest(originator_id: UUID | str, version: int, topic: str, state: bytes) -> bytes:
    """SHA-256 of one stored event exactly as stored (state after compression and
    encryption), so it can be checked without the cipher key. Every field is
    length-prefixed, so no two different events encode to the same bytes."""
    oid = str(originator_id).encode()
    top = topic.encode()
    h = hashlib.sha256()
    h.update(len(oid).to_bytes(4, "big"))
    h.update(oid)
    h.update(version.to_bytes(8, "big", signed=True))
    h.update(len(top).to_bytes(4, "big"))
    h.update(top)
    h.update(len(state).to_bytes(8, "big"))
    h.update(state)
    return h.digest()


def chain_hash(previous_hash: bytes, digest: bytes) -> bytes:
    """An event's hash: SHA-256(previous hash of the same aggregate ‖ event digest).

    PostgreSQL computes the same value in SQL as `sha256(previous_hash || digest)`."""
    return hashlib.sha256(previous_hash + digest).digest()


def extend_anchor(accumulated: bytes, notification_id: int, event_hash: bytes) -> bytes:
    """The anchor digest after one more hash record, in notification order."""
    return hashlib.sha256(
        accumulated + notification_id.to_bytes(8, "big", signed=True) + event_hash
    ).digest()


@dataclass(frozen=True)
class HashRecord:
    """What was recorded, with the event, when it was stored."""

    originator_id: UUID | str
    originator_version: int
    notification_id: int
    previous_hash: bytes
    hash: bytes


@dataclass(frozen=True)
class Anchor:
    """A digest over every hash record up to `max_notification_id`, in notification
    order, starting from GENESIS. Each anchor covers the whole log up to its point."""

    anchor_id: int
    recorded_at: datetime
    max_notification_id: int
    event_count: int
    digest: bytes
    note: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any], recorded_at: datetime) -> Anchor:
        """From a stored anchor row (each backend converts its own `recorded_at`)."""
        return cls(
            anchor_id=row["anchor_id"],
            recorded_at=recorded_at,
            max_notification_id=row["max_notification_id"],
            event_count=row["event_count"],
            digest=bytes(row["digest"]),
            note=row["note"],
        )


#: Rare events every serving process follows on its own, by index-name suffix. Each has
#: a partial index on the events table (rows of that topic only), so reading them from
#: the start of the store costs what there is of them, not a scan of every event.
FOLLOWED_TOPICS = {
    "users_deactivated": "slrt.domain.user:User.Deactivated",
    "sla_policy_published": "slrt.domain.sla:SlaPolicy.VersionPublished",
}


def followed(topic: str) -> str:
    """The topic, if it is one the recorders index; its text goes into SQL as a literal
    (a partial index is used only for a condition the planner can see)."""
    if topic not in FOLLOWED_TOPICS.values() or "'" in topic:
        raise ValueError(f"{topic} is not a followed topic")
    return topic


#: A position in the hash records' order: (notification id, originator id, version).
Position = tuple[int, UUID | str, int]


class AuditedRecorder(Protocol):
    """What `slrt.audit` needs: the library's notification log plus the hash records."""

    events_table_name: str
    hashes_table_name: str
    anchors_table_name: str

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]: ...

    def max_notification_id(self) -> int | None: ...

    def select_followed(self, topic: str, after: int, stop: int) -> list[tuple[int, UUID]]:
        """(notification id, originator id) of a followed topic's events in (after, stop]."""

    def select_hash_records(self, after: Position | int | None, limit: int) -> Sequence[HashRecord]:
        """Hash records in position order, after a position (or a notification id)."""

    def max_hashed_notification_id(self) -> int | None: ...

    def select_chains(
        self, originator_ids: Sequence[UUID]
    ) -> tuple[list[Notification], list[HashRecord]]:
        """Every event and every hash record of these aggregates, each in notification
        order, from one snapshot."""

    def select_anchors(self) -> Sequence[Anchor]:
        """Every anchor, oldest first."""

    def insert_anchor(
        self,
        *,
        recorded_at: datetime,
        max_notification_id: int,
        event_count: int,
        digest: bytes,
        note: str | None,
    ) -> int: ...


def seal(
    events: Sequence[tuple[UUID | str, int, str, bytes, int]],
    heads: dict[UUID | str, tuple[int, bytes]],
) -> list[HashRecord]:
    """Hash records for events (originator id, version, topic, state, notification id),
    in order, given each aggregate's last recorded (version, hash). `heads` is updated.

    A version whose predecessor has no record is chained to GENESIS; `slrt audit
    verify` then reports the missing predecessor."""
    records = []
    for originator_id, version, topic, state, notification_id in events:
        head = heads.get(originator_id)
        previous = head[1] if head is not None and head[0] == version - 1 else GENESIS
        hashed = chain_hash(previous, event_digest(originator_id, version, topic, state))
        heads[originator_id] = (version, hashed)
        records.append(HashRecord(originator_id, version, notification_id, previous, hashed))
    return records
