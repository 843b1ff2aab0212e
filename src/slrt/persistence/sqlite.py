"""SQLite persistence with a hash chain: the library's recorder plus one hash record
per stored event, written by the same transaction that inserts the event."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from eventsourcing import sqlite as es_sqlite
from eventsourcing.persistence import Notification, StoredEvent

from slrt.persistence.chain import (
    FOLLOWED_TOPICS,
    GENESIS,
    Anchor,
    HashRecord,
    Position,
    extend_anchor,
    followed,
    seal,
)

#: Events hashed per statement when existing history is sealed.
_SEAL_BATCH = 5_000
#: Ids per `IN (...)`: SQLite's limit on bound parameters is 999 in older builds.
_IN_CHUNK = 500


def _db_id(originator_id: UUID | str) -> str:
    """Originator ids are stored as the library stores them (UUIDs as hex)."""
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


class AuditedSQLiteApplicationRecorder(es_sqlite.SQLiteApplicationRecorder):
    def __init__(
        self, datastore: es_sqlite.SQLiteDatastore, events_table_name: str = "stored_events"
    ) -> None:
        # Set before super().__init__, which builds the CREATE TABLE statements.
        prefix = events_table_name.removesuffix("_events")
        self.hashes_table_name = f"{prefix}_event_hashes"
        self.anchors_table_name = f"{prefix}_audit_anchors"
        super().__init__(datastore, events_table_name)
        h = self.hashes_table_name
        self._select_previous_hash = (
            f"SELECT hash FROM {h} WHERE originator_id=? AND originator_version=?"
        )
        self._insert_hash = (
            f"INSERT INTO {h} (originator_id, originator_version, notification_id, "
            "previous_hash, hash) VALUES (?,?,?,?,?)"
        )
        self._insert_anchor = (
            f"INSERT INTO {self.anchors_table_name} (recorded_at, max_notification_id, "
            "event_count, digest, note) VALUES (?,?,?,?,?)"
        )

    def construct_create_table_statements(self) -> list[str]:
        statements = super().construct_create_table_statements()
        prefix = self.events_table_name.removesuffix("_events")
        statements += [
            f"CREATE INDEX IF NOT EXISTS {prefix}_{name}_idx ON {self.events_table_name} "
            f"(topic) WHERE topic = '{followed(topic)}'"
            for name, topic in FOLLOWED_TOPICS.items()
        ]
        statements += [
            f"CREATE TABLE IF NOT EXISTS {self.hashes_table_name} ("
            "originator_id TEXT NOT NULL, "
            "originator_version INTEGER NOT NULL, "
            "notification_id INTEGER NOT NULL, "
            "previous_hash BLOB NOT NULL, "
            "hash BLOB NOT NULL, "
            "PRIMARY KEY (originator_id, originator_version)) WITHOUT ROWID",
            f"CREATE INDEX IF NOT EXISTS {self.hashes_table_name}_position_idx "
            f"ON {self.hashes_table_name} (notification_id, originator_id, originator_version)",
            f"CREATE TABLE IF NOT EXISTS {self.anchors_table_name} ("
            "anchor_id INTEGER PRIMARY KEY, "
            "recorded_at TEXT NOT NULL, "
            "max_notification_id INTEGER NOT NULL, "
            "event_count INTEGER NOT NULL, "
            "digest BLOB NOT NULL, "
            "note TEXT)",
        ]
        return statements

    def create_table(self) -> None:
        super().create_table()
        self._seal_existing_history()

    def _insert_events(
        self, c: es_sqlite.SQLiteCursor, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        assert notification_ids is not None
        # Each aggregate's previous hash is read in this transaction, after this
        # transaction has taken SQLite's write lock, so no other writer can interleave.
        heads: dict[UUID | str, tuple[int, bytes]] = {}
        for s in stored_events:
            if s.originator_id in heads:
                continue
            c.execute(
                self._select_previous_hash, (_db_id(s.originator_id), s.originator_version - 1)
            )
            row = c.fetchone()
            heads[s.originator_id] = (
                (s.originator_version - 1, row["hash"]) if row else (-1, GENESIS)
            )
        records = seal(
            [
                (s.originator_id, s.originator_version, s.topic, s.state, nid)
                for s, nid in zip(stored_events, notification_ids, strict=True)
            ],
            heads,
        )
        c.executemany(self._insert_hash, [self._hash_params(r) for r in records])
        return notification_ids

    @staticmethod
    def _hash_params(r: HashRecord) -> tuple[Any, ...]:
        return (
            _db_id(r.originator_id),
            r.originator_version,
            r.notification_id,
            r.previous_hash,
            r.hash,
        )

    def _seal_existing_history(self) -> None:
        """Hashes the events stored before this recorder was in use, once: only when
        there are events but no hash record and no anchor at all. An anchor notes it,
        because such history is only evidenced from now on."""
        with self.datastore.transaction(commit=False) as c:
            if not self._needs_sealing(c):
                return
        with self.datastore.get_connection(commit=True) as conn:
            c = conn.cursor()
            c.execute("BEGIN IMMEDIATE")
            try:
                if self._needs_sealing(c):
                    self._seal_all(c)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def _needs_sealing(self, c: es_sqlite.SQLiteCursor) -> bool:
        c.execute(
            f"SELECT EXISTS(SELECT 1 FROM {self.events_table_name}) AS events, "
            f"EXISTS(SELECT 1 FROM {self.hashes_table_name}) AS hashes, "
            f"EXISTS(SELECT 1 FROM {self.anchors_table_name}) AS anchors"
        )
        row = c.fetchone()
        return bool(row["events"]) and not row["hashes"] and not row["anchors"]

    def _seal_all(self, c: es_sqlite.SQLiteCursor) -> None:
        heads: dict[UUID | str, tuple[int, bytes]] = {}
        digest, count, last = GENESIS, 0, 0
        while True:
            c.execute(
                f"SELECT rowid, * FROM {self.events_table_name} "
                "WHERE rowid > ? ORDER BY rowid LIMIT ?",
                (last, _SEAL_BATCH),
            )
            rows = c.fetchall()
            if not rows:
                break
            records = seal(
                [
                    (
                        self.convert_originator_id(r["originator_id"]),
                        r["originator_version"],
                        r["topic"],
                        r["state"],
                        r["rowid"],
                    )
                    for r in rows
                ],
                heads,
            )
            c.executemany(self._insert_hash, [self._hash_params(r) for r in records])
            for r in records:
                digest = extend_anchor(digest, r.notification_id, r.hash)
            count += len(records)
            last = rows[-1]["rowid"]
        c.execute(
            self._insert_anchor,
            (
                datetime.now(UTC).isoformat(),
                last,
                count,
                digest,
                "sealed history stored before hashing was enabled",
            ),
        )

    # -- read by slrt.audit ---------------------------------------------------------

    def select_hash_records(self, after: Position | int | None, limit: int) -> Sequence[HashRecord]:
        statement = f"SELECT * FROM {self.hashes_table_name} "
        params: list[Any] = []
        if isinstance(after, int):
            statement += "WHERE notification_id > ? "
            params.append(after)
        elif after is not None:
            nid, oid, version = after
            statement += (
                "WHERE notification_id > ? OR (notification_id = ? "
                "AND (originator_id, originator_version) > (?, ?)) "
            )
            params += [nid, nid, _db_id(oid), version]
        statement += "ORDER BY notification_id, originator_id, originator_version LIMIT ?"
        params.append(limit)
        with self.datastore.transaction(commit=False) as c:
            c.execute(statement, params)
            return [_hash_record(self, r) for r in c.fetchall()]

    def select_chains(
        self, originator_ids: Sequence[UUID]
    ) -> tuple[list[Notification], list[HashRecord]]:
        """Every event and hash record of the given aggregates, each in notification
        order, read in one transaction (one snapshot)."""
        ids = [_db_id(i) for i in originator_ids]
        events: list[Notification] = []
        records: list[HashRecord] = []
        with self.datastore.transaction(commit=False) as c:
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                marks = ", ".join("?" * len(chunk))
                c.execute(
                    "SELECT rowid, originator_id, originator_version, topic, state "
                    f"FROM {self.events_table_name} WHERE originator_id IN ({marks})",
                    chunk,
                )
                events += [
                    Notification(
                        id=r[0],
                        originator_id=self.convert_originator_id(r[1]),
                        originator_version=r[2],
                        topic=r[3],
                        state=bytes(r[4]),
                    )
                    for r in c.fetchall()
                ]
                c.execute(
                    f"SELECT * FROM {self.hashes_table_name} WHERE originator_id IN ({marks})",
                    chunk,
                )
                records += [_hash_record(self, r) for r in c.fetchall()]
        events.sort(key=lambda e: e.id)
        records.sort(key=lambda r: r.notification_id)
        return events, records

    def select_followed(self, topic: str, after: int, stop: int) -> list[tuple[int, UUID]]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT rowid, originator_id FROM {self.events_table_name} "
                f"WHERE topic = '{followed(topic)}' AND rowid > ? AND rowid <= ? ORDER BY rowid",
                (after, stop),
            )
            return [(row[0], UUID(row[1])) for row in c.fetchall()]

    def max_hashed_notification_id(self) -> int | None:
        with self.datastore.transaction(commit=False) as c:
            c.execute(f"SELECT MAX(notification_id) AS m FROM {self.hashes_table_name}")
            value: int | None = c.fetchone()["m"]
            return value

    def select_anchors(self) -> Sequence[Anchor]:
        with self.datastore.transaction(commit=False) as c:
            c.execute(
                f"SELECT * FROM {self.anchors_table_name} ORDER BY max_notification_id, anchor_id"
            )
            return [
                Anchor.from_row(r, datetime.fromisoformat(r["recorded_at"])) for r in c.fetchall()
            ]

    def insert_anchor(
        self,
        *,
        recorded_at: datetime,
        max_notification_id: int,
        event_count: int,
        digest: bytes,
        note: str | None,
    ) -> int:
        with self.datastore.transaction(commit=True) as c:
            c.execute(
                self._insert_anchor,
                (recorded_at.isoformat(), max_notification_id, event_count, digest, note),
            )
            anchor_id: int = c.lastrowid
            return anchor_id


def _hash_record(recorder: AuditedSQLiteApplicationRecorder, row: Any) -> HashRecord:
    return HashRecord(
        originator_id=recorder.convert_originator_id(row["originator_id"]),
        originator_version=row["originator_version"],
        notification_id=row["notification_id"],
        previous_hash=bytes(row["previous_hash"]),
        hash=bytes(row["hash"]),
    )


class Factory(es_sqlite.SQLiteFactory):
    """The library's SQLite factory, with the hash-chained application recorder."""

    application_recorder_class = AuditedSQLiteApplicationRecorder
