"""PostgreSQL persistence with a hash chain: the library's recorder plus one hash
record per stored event, written by the same transaction that inserts the event.

The library's append is kept in substance (EXCLUSIVE table lock, so notification
ids commit in order; insert; RETURNING notification_id), in one statement: a function
of the recorder's, `<prefix>_append_events` (`insert_events`). The hash records are
inserted in the same transaction right after the events: PostgreSQL reads each
aggregate's previous hash and computes `sha256(previous_hash || digest)` itself, one
INSERT per layer of the batch.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any
from urllib.parse import parse_qsl
from uuid import UUID

import psycopg
import structlog
from eventsourcing import postgres as es_postgres
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    Notification,
    OperationalError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.utils import Environment, retry
from psycopg import Cursor
from psycopg.rows import DictRow, tuple_row
from psycopg.sql import SQL, Composed, Identifier, Literal
from psycopg_pool import ConnectionPool

from slrt.config import joined_options
from slrt.persistence.arrays import (
    BinaryArray,
    ByteaArray,
    Int4Array,
    Int8Array,
    TextArray,
    UuidArray,
)
from slrt.persistence.chain import (
    FOLLOWED_TOPICS,
    GENESIS,
    Anchor,
    HashRecord,
    Position,
    event_digest,
    extend_anchor,
    followed,
    seal,
)

log = structlog.get_logger("slrt.persistence")

#: Events hashed per statement when existing history is sealed.
_SEAL_BATCH = 5_000


class TypeCreatedOnce:
    """A recorder that creates its composite type (`stored_event_uuid`) only when the
    schema lacks it. The library sends CREATE TYPE at every start and suppresses the
    DuplicateObject error when the type is there; PostgreSQL still logs that error, so
    the database's log had an ERROR for every process started after the first, and one
    more at the inbox's first snapshot (its store is made on first use). When the type
    is there, the rest of the library's `PostgresRecorder.create_table` (9.5.6, pinned)
    runs as it is: tables, indexes and functions, then the type adapters. Processes
    starting together check and create one at a time (slrt.runtime.schema_lock)."""

    datastore: es_postgres.PostgresDatastore
    stored_event_type_name: str

    def create_table(self) -> None:
        type_name = Composed(
            [Identifier(self.datastore.schema), SQL("."), Identifier(self.stored_event_type_name)]
        )
        with self.datastore.transaction(commit=False) as curs:
            name = type_name.as_string(curs)
            curs.execute("SELECT to_regtype(%s) IS NOT NULL AS present", (name,))
            row = curs.fetchone()
        if row is None or not row["present"]:
            super().create_table()  # type: ignore[misc]
            return
        with self.datastore.transaction(commit=True) as curs:
            self._create_table(curs)  # type: ignore[attr-defined]
        self.datastore.register_type_adapters()


class AppendConnection(psycopg.AsyncConnection[DictRow]):
    """An asynchronous connection for the appends from an event loop, with the one
    cursor they use: a cursor made for each append was ~15 % of the client's CPU for
    the statement (bench/README.md, twenty-fifth session)."""

    append_cursor: psycopg.AsyncCursor[tuple[Any, ...]]


class PostgresAggregateRecorder(TypeCreatedOnce, es_postgres.PostgresAggregateRecorder):
    """The library's aggregate recorder (the inbox's snapshots), its type created once."""


class AuditedPostgresApplicationRecorder(TypeCreatedOnce, es_postgres.PostgresApplicationRecorder):
    def __init__(
        self,
        datastore: es_postgres.PostgresDatastore,
        *,
        events_table_name: str = "stored_events",
    ) -> None:
        super().__init__(datastore, events_table_name=events_table_name)
        if datastore.enable_db_functions:
            # That path inserts through a database function and would skip the hashes.
            msg = "POSTGRES_ENABLE_DB_FUNCTIONS cannot be used with the audited recorder"
            raise ProgrammingError(msg)
        self._select_page = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{events} WHERE notification_id >= %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(schema=Identifier(datastore.schema), events=Identifier(events_table_name))
        self._select_partition = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{events} WHERE notification_id >= %s AND notification_id <= %s "
            "AND (topic = ANY(%s) OR {partition} %% %s = %s) "
            "ORDER BY notification_id LIMIT %s"
        ).format(
            schema=Identifier(datastore.schema),
            events=Identifier(events_table_name),
            partition=SQL(partition_hash("originator_id")),
        )
        prefix = events_table_name.removesuffix("_events")
        self.hashes_table_name = f"{prefix}_event_hashes"
        self.anchors_table_name = f"{prefix}_audit_anchors"
        for name in (self.hashes_table_name, self.anchors_table_name):
            self.check_identifier_length(name)
        schema = Identifier(datastore.schema)
        hashes = Identifier(self.hashes_table_name)
        anchors = Identifier(self.anchors_table_name)
        id_type = Identifier(datastore.originator_id_type)
        names = {"schema": schema, "hashes": hashes, "anchors": anchors, "id_type": id_type}
        events = Identifier(events_table_name)
        self.sql_create_statements += [
            SQL(
                "CREATE INDEX IF NOT EXISTS {index} ON {schema}.{events} (notification_id) "
                "WHERE topic = {topic}"
            ).format(
                index=Identifier(f"{prefix}_{name}_idx"),
                schema=schema,
                events=events,
                topic=Literal(followed(topic)),
            )
            for name, topic in FOLLOWED_TOPICS.items()
        ]
        self._select_chain_events = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state "
            "FROM {schema}.{events} WHERE originator_id = ANY(%s) ORDER BY notification_id"
        ).format(schema=schema, events=events)
        self._select_chain_records = SQL(
            "SELECT originator_id, originator_version, notification_id, previous_hash, hash "
            "FROM {schema}.{hashes} WHERE originator_id = ANY(%s) ORDER BY notification_id"
        ).format(schema=schema, hashes=hashes)
        self._select_followed = {
            topic: SQL(
                "SELECT notification_id, originator_id FROM {schema}.{events} "
                "WHERE topic = {topic} AND notification_id > %s AND notification_id <= %s "
                "ORDER BY notification_id"
            ).format(schema=schema, events=events, topic=Literal(topic))
            for topic in FOLLOWED_TOPICS.values()
        }
        self.sql_create_statements += [
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{hashes} ("
                "originator_id {id_type} NOT NULL, "
                "originator_version bigint NOT NULL, "
                "notification_id bigint NOT NULL, "
                "previous_hash bytea NOT NULL, "
                "hash bytea NOT NULL, "
                "PRIMARY KEY (originator_id, originator_version))"
            ).format(**names),
            SQL(
                "CREATE INDEX IF NOT EXISTS {index} ON {schema}.{hashes} "
                "(notification_id, originator_id, originator_version)"
            ).format(index=Identifier(f"{self.hashes_table_name}_position_idx"), **names),
            SQL(
                "CREATE TABLE IF NOT EXISTS {schema}.{anchors} ("
                "anchor_id bigserial PRIMARY KEY, "
                "recorded_at timestamptz NOT NULL, "
                "max_notification_id bigint NOT NULL, "
                "event_count bigint NOT NULL, "
                "digest bytea NOT NULL, "
                "note text)"
            ).format(**names),
        ]
        self._select_events_of = _rendered(
            SQL(
                "SELECT originator_id, originator_version, topic, state FROM {schema}.{events} "
                "WHERE originator_id = ANY(%b) ORDER BY originator_id, originator_version"
            ).format(events=events, **names)
        )
        self._lock_statements = [_rendered(q) for q in self.lock_table_statements]
        # The append, as one function called in one statement (`insert_events`). The
        # events go as arrays sent in binary, where the library sends one array of a
        # composite type as text (psycopg escapes each event's state in Python, a
        # quarter of a group commit's CPU; bench/README.md). The hash records go one
        # statement per "layer" of the batch (an aggregate's 1st, 2nd, … new event),
        # so each layer reads the previous layer's hashes; the notification id comes
        # from the row just inserted, by primary key.
        append = f"{prefix}_append_events"
        self.check_identifier_length(append)
        body = SQL(
            "DECLARE layer_count int; "
            "BEGIN "
            "PERFORM set_config('lock_timeout', p_lock_timeout, true); "
            "LOCK TABLE {schema}.{events} IN EXCLUSIVE MODE; "
            "NOTIFY {channel}; "
            "RETURN QUERY INSERT INTO {schema}.{events} "
            "(originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(p_ids, p_versions, p_topics, p_states) "
            "RETURNING notification_id; "
            "SELECT max(l) INTO layer_count FROM unnest(p_layers) AS l; "
            "FOR n IN 1 .. coalesce(layer_count, 0) LOOP "
            "INSERT INTO {schema}.{hashes} "
            "(originator_id, originator_version, notification_id, previous_hash, hash) "
            "SELECT k.originator_id, k.originator_version, e.notification_id, "
            "p.previous_hash, sha256(p.previous_hash || k.digest) "
            "FROM unnest(p_ids, p_versions, p_digests, p_layers) "
            "AS k(originator_id, originator_version, digest, layer) "
            "JOIN {schema}.{events} AS e "
            "ON e.originator_id = k.originator_id "
            "AND e.originator_version = k.originator_version "
            "CROSS JOIN LATERAL (SELECT COALESCE(("
            "SELECT h.hash FROM {schema}.{hashes} AS h "
            "WHERE h.originator_id = k.originator_id "
            "AND h.originator_version = k.originator_version - 1"
            "), p_genesis) AS previous_hash) AS p "
            "WHERE k.layer = n; "
            "END LOOP; "
            "END"
        ).format(events=events, channel=Identifier(self.channel_name), **names)
        self._append_body = _rendered(body).decode()
        self._create_append = _rendered(
            SQL(
                "CREATE OR REPLACE FUNCTION {schema}.{append}("
                "p_ids {id_type}[], p_versions bigint[], p_topics text[], p_states bytea[], "
                "p_digests bytea[], p_layers int[], p_genesis bytea, p_lock_timeout text) "
                "RETURNS SETOF bigint LANGUAGE plpgsql AS $body$"
            ).format(append=Identifier(append), **names)
            + body
            + SQL("$body$")
        )
        self._append_source = (
            "SELECT p.prosrc FROM pg_proc AS p JOIN pg_namespace AS n "
            "ON n.oid = p.pronamespace WHERE p.proname = %s AND n.nspname = %s"
        )
        self._append_name = append
        self._append = _rendered(
            SQL(
                "SELECT notification_id FROM {schema}.{append}(%b::{id_type}[], %b::bigint[], "
                "%b::text[], %b::bytea[], %b::bytea[], %b::int[], %b::bytea, %b::text) "
                "AS appended(notification_id)"
            ).format(append=Identifier(append), **names)
        )
        self._lock_timeout = f"{datastore.lock_timeout}s"
        self._uuid_ids = datastore.originator_id_type == "uuid"
        self._select_as_sent = _rendered(
            SQL(
                "SELECT e.notification_id FROM unnest(%b::{id_type}[], %b::bigint[], "
                "%b::text[], %b::bytea[]) WITH ORDINALITY "
                "AS k(originator_id, originator_version, topic, state, position) "
                "JOIN {schema}.{events} AS e ON e.originator_id = k.originator_id "
                "AND e.originator_version = k.originator_version "
                "AND e.topic = k.topic AND e.state = k.state ORDER BY k.position"
            ).format(events=events, **names)
        )
        self._insert_hash_rows = SQL(
            "INSERT INTO {schema}.{hashes} "
            "(originator_id, originator_version, notification_id, previous_hash, hash) "
            "VALUES (%s, %s, %s, %s, %s)"
        ).format(**names)
        self._select_hash_records = SQL(
            "SELECT originator_id, originator_version, notification_id, previous_hash, hash "
            "FROM {schema}.{hashes} "
        ).format(**names)
        self._order_hash_records = SQL(
            " ORDER BY notification_id, originator_id, originator_version LIMIT %s"
        )
        self._max_hashed = SQL("SELECT MAX(notification_id) AS m FROM {schema}.{hashes}").format(
            **names
        )
        self._select_anchors = SQL(
            "SELECT * FROM {schema}.{anchors} ORDER BY max_notification_id, anchor_id"
        ).format(**names)
        self._insert_anchor = SQL(
            "INSERT INTO {schema}.{anchors} "
            "(recorded_at, max_notification_id, event_count, digest, note) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING anchor_id"
        ).format(**names)
        self._needs_sealing_statement = SQL(
            "SELECT EXISTS(SELECT 1 FROM {schema}.{events}) AS events, "
            "EXISTS(SELECT 1 FROM {schema}.{hashes}) AS hashes, "
            "EXISTS(SELECT 1 FROM {schema}.{anchors}) AS anchors"
        ).format(events=Identifier(self.events_table_name), **names)
        self._select_events_to_seal = SQL(
            "SELECT * FROM {schema}.{events} WHERE notification_id > %s "
            "ORDER BY notification_id LIMIT %s"
        ).format(events=Identifier(self.events_table_name), **names)

    def create_table(self) -> None:
        super().create_table()
        self._create_append_function()
        self._seal_existing_history()

    def _create_append_function(self) -> None:
        """The append function, created when missing and replaced when its body differs
        (an upgrade), else left alone: replacing a function takes its owner, so a
        process may start under another role once the function is there."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(self._append_source, (self._append_name, self.datastore.schema))
            found = curs.fetchone()
            if found is None or found["prosrc"] != self._append_body:
                curs.execute(self._create_append)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """The library's append (lock the table, notify, insert) plus the hash records,
        in one statement on its own (the connection is in autocommit): a function of the
        recorder's (`<prefix>_append_events`), which takes the table lock inside its
        transaction, so readers never see a gap in the notification ids. The answer comes
        once the transaction is committed. Sent as four statements, each round trip left
        the table lock held while the committer thread waited for the GIL, which the
        event loop of its process was holding (bench/README.md, sixteenth session); the
        library sends seven in a pipeline. The first error is what is raised (a conflict
        is an IntegrityError at once, never retried), and it rolls the transaction back:
        a save reported as failed has written nothing. (The library's own function,
        POSTGRES_ENABLE_DB_FUNCTIONS, does not lock the table and is refused above.)

        A connection lost while the statement ran leaves its outcome unknown: the retry
        would meet a conflict if it was committed, and the command would be decided and
        saved again. So the events are looked for at once, on another connection: found
        stored byte for byte, the save is reported done with their notification ids;
        not found, the append is tried again. If the look-up fails too (the database
        still away), the attempt that follows looks again when it meets a conflict.
        (Found means this save, unless another writer stored the very same bytes: the
        same event, actor and timestamp to the microsecond; so a conflict is looked up
        only after an attempt of this save whose outcome is unknown.)"""
        if not stored_events:
            return None
        return self._append_events(stored_events, [])

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def _append_events(
        self, stored_events: Sequence[StoredEvent], unknown: list[BaseException]
    ) -> list[int]:
        """One attempt of `insert_events`; `unknown` holds the errors of the earlier
        attempts whose outcome is unknown."""
        try:
            with self.datastore.get_connection() as conn, conn.cursor() as curs:
                return self._append_once(curs, stored_events)
        except IntegrityError:
            if unknown:
                stored = self._look_up(stored_events)
                if stored is not None:
                    return stored
            raise
        except (InterfaceError, OperationalError) as error:
            if not _outcome_unknown(error):
                raise
            unknown.append(error)
            stored = self._look_up(stored_events)  # may fail: then retried, as the append
            if stored is None:
                raise
            return stored

    def _look_up(self, stored_events: Sequence[StoredEvent]) -> list[int] | None:
        """The events' notification ids if this save is stored, byte for byte, after
        an attempt whose answer was lost."""
        with self.datastore.get_connection() as conn, conn.cursor() as curs:
            stored = self._stored_as_sent(curs, stored_events)
        if stored is not None:
            log.warning("append.found_after_lost_answer", events=len(stored_events))
        return stored

    def _append_once(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]
    ) -> list[int]:
        curs.execute(self._append, self._append_params(stored_events), prepare=True)
        return [row["notification_id"] for row in curs.fetchall()]

    def _columns(self, stored_events: Sequence[StoredEvent]) -> tuple[BinaryArray, ...]:
        """The events as the append and its look-up send them: one array per column,
        built ready to send (slrt.persistence.arrays)."""
        ids = [s.originator_id for s in stored_events]
        return (
            UuidArray.of(ids) if self._uuid_ids else TextArray.of([str(i) for i in ids]),
            Int8Array.of([s.originator_version for s in stored_events]),
            TextArray.of([s.topic for s in stored_events]),
            ByteaArray.of([s.state for s in stored_events]),
        )

    def _append_params(self, stored_events: Sequence[StoredEvent]) -> tuple[Any, ...]:
        return (
            *self._columns(stored_events),
            ByteaArray.of(
                [
                    event_digest(s.originator_id, s.originator_version, s.topic, s.state)
                    for s in stored_events
                ]
            ),
            Int4Array.of(_layer_numbers(stored_events)),
            GENESIS,
            self._lock_timeout,
        )

    # -- the append from an event loop (slrt.loop_commit.LoopStore) ----------------------

    async def connect(self) -> AppendConnection:
        """A connection for appends from an event loop, made with the pool's parameters
        (its start-up options included: no parallel workers, no JIT)."""
        pool = self.datastore.pool
        assert isinstance(pool.kwargs, dict) and isinstance(pool.conninfo, str)
        kwargs = dict(pool.kwargs)
        if pool.get_password_func is not None:
            kwargs["password"] = pool.get_password_func()
        connection = await AppendConnection.connect(
            pool.conninfo,
            autocommit=True,
            connect_timeout=max(1, round(pool.timeout)),  # as long as the pool waits
            **kwargs,
        )
        connection.append_cursor = connection.cursor(row_factory=tuple_row)
        return connection

    async def append(
        self, connection: AppendConnection, stored_events: Sequence[StoredEvent]
    ) -> list[int]:
        """`insert_events`' statement on an asynchronous connection: one attempt, a
        conflict raised as IntegrityError, any other error as the driver raised it."""
        cursor = connection.append_cursor
        try:
            await cursor.execute(self._append, self._append_params(stored_events), prepare=True)
        except psycopg.IntegrityError as error:
            raise IntegrityError(error) from error
        return [row[0] for row in await cursor.fetchall()]

    def append_after(self, stored_events: Sequence[StoredEvent], error: BaseException) -> list[int]:
        """After `append` failed with `error` (not a conflict): the synchronous append,
        with its retries. If the failed statement's outcome is unknown (the connection
        went, no answer came), a conflict is looked up as a lost answer would be."""
        unknown = isinstance(error, psycopg.Error) and error.sqlstate is None
        return list(self._append_events(stored_events, [error] if unknown else []))

    def _stored_as_sent(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent]
    ) -> list[int] | None:
        """The notification ids of the events, if every one is stored exactly as given."""
        curs.execute(self._select_as_sent, self._columns(stored_events), prepare=True)
        ids = [row["notification_id"] for row in curs.fetchall()]
        return ids if len(ids) == len(stored_events) else None

    def _lock_table(self, curs: Cursor[DictRow]) -> None:
        """The library's lock (lock timeout, then the table lock), from rendered bytes."""
        for statement in self._lock_statements:
            curs.execute(statement, prepare=True)

    def _seal_existing_history(self) -> None:
        """Hashes the events stored before this recorder was in use, once: only when
        there are events but no hash record and no anchor at all. An anchor notes it,
        because such history is only evidenced from now on."""
        with self.datastore.transaction(commit=False) as curs:
            if not self._needs_sealing(curs):
                return
        with self.datastore.transaction(commit=True) as curs:
            self._lock_table(curs)
            if self._needs_sealing(curs):
                self._seal_all(curs)

    def _needs_sealing(self, curs: Cursor[DictRow]) -> bool:
        curs.execute(self._needs_sealing_statement)
        row = curs.fetchone()
        assert row is not None
        return bool(row["events"]) and not row["hashes"] and not row["anchors"]

    def _seal_all(self, curs: Cursor[DictRow]) -> None:
        heads: dict[UUID | str, tuple[int, bytes]] = {}
        digest, count, last = GENESIS, 0, 0
        while True:
            curs.execute(self._select_events_to_seal, (last, _SEAL_BATCH))
            rows = curs.fetchall()
            if not rows:
                break
            records = seal(
                [
                    (
                        r["originator_id"],
                        r["originator_version"],
                        r["topic"],
                        bytes(r["state"]),
                        r["notification_id"],
                    )
                    for r in rows
                ],
                heads,
            )
            curs.executemany(
                self._insert_hash_rows,
                [
                    (
                        r.originator_id,
                        r.originator_version,
                        r.notification_id,
                        r.previous_hash,
                        r.hash,
                    )
                    for r in records
                ],
            )
            for r in records:
                digest = extend_anchor(digest, r.notification_id, r.hash)
            count += len(records)
            last = rows[-1]["notification_id"]
        curs.execute(
            self._insert_anchor,
            (
                datetime.now(UTC),
                last,
                count,
                digest,
                "sealed history stored before hashing was enabled",
            ),
        )

    # -- read by the commands ---------------------------------------------------------

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_events_of(self, originator_ids: list[UUID]) -> dict[UUID, list[StoredEvent]]:
        """Every stored event of the given aggregates, in version order, in one
        statement (slrt.group_read); an aggregate with no events is left out."""
        events: dict[UUID, list[StoredEvent]] = {}
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(self._select_events_of, (originator_ids,), prepare=True)
            for originator_id, version, topic, state in curs.fetchall():
                events.setdefault(originator_id, []).append(
                    StoredEvent(originator_id, version, topic, bytes(state))
                )
        return events

    # -- read by the projections -------------------------------------------------------

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """The library's query; the plain "next page" case (what the projections and the
        outbox ask) reads tuples instead of dictionaries, a fifth of a catch-up's reading."""
        if start is None or stop is not None or topics:
            return super().select_notifications(
                start, limit, stop, topics, inclusive_of_start=inclusive_of_start
            )
        first = start if inclusive_of_start else start + 1
        with (
            self.datastore.get_connection() as conn,
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute(self._select_page, (first, limit), prepare=True)
            return [_notification(*r) for r in curs.fetchall()]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_partition(
        self,
        start: int,
        limit: int,
        *,
        stop: int,
        partition: int,
        partitions: int,
        every_partition: Sequence[str] = (),
    ) -> Sequence[Notification]:
        """The next page of one partition of the log up to `stop`: the events of the
        aggregates whose id hashes to `partition` of `partitions`, and every event of
        the topics in `every_partition` (slrt.projections.parallel)."""
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            # The planner takes the hash filter for a rare match and would sort every
            # later row for each page (measured: 300 ms a page); walking the index in
            # order stops at the page's last row (7 ms).
            curs.execute("SET LOCAL enable_sort = off")
            curs.execute("SET LOCAL enable_bitmapscan = off")
            params = (start, stop, list(every_partition), partitions, partition, limit)
            curs.execute(self._select_partition, params, prepare=True)
            return [_notification(*r) for r in curs.fetchall()]

    # -- read by slrt.audit ---------------------------------------------------------

    def select_hash_records(self, after: Position | int | None, limit: int) -> Sequence[HashRecord]:
        statement: Composed = self._select_hash_records
        params: list[Any] = []
        if isinstance(after, int):
            statement += SQL("WHERE notification_id > %s")
            params.append(after)
        elif after is not None:
            statement += SQL(
                "WHERE (notification_id, originator_id, originator_version) > (%s, %s, %s)"
            )
            params += list(after)
        statement += self._order_hash_records
        params.append(limit)
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(statement, params)
            return [
                HashRecord(
                    originator_id=r["originator_id"],
                    originator_version=r["originator_version"],
                    notification_id=r["notification_id"],
                    previous_hash=bytes(r["previous_hash"]),
                    hash=bytes(r["hash"]),
                )
                for r in curs.fetchall()
            ]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def select_chains(
        self, originator_ids: Sequence[UUID]
    ) -> tuple[list[Notification], list[HashRecord]]:
        """Every event and hash record of the given aggregates, each in notification
        order, read from one snapshot (REPEATABLE READ): an append committed between the
        two reads would otherwise look like a hash record without its event."""
        with (
            self.datastore.get_connection() as conn,
            conn.transaction(),
            conn.cursor(row_factory=tuple_row, binary=True) as curs,
        ):
            curs.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            curs.execute(self._select_chain_events, (list(originator_ids),))
            events = [_notification(*r) for r in curs.fetchall()]
            curs.execute(self._select_chain_records, (list(originator_ids),))
            records = [
                HashRecord(oid, version, nid, bytes(previous), bytes(hashed))
                for oid, version, nid, previous, hashed in curs.fetchall()
            ]
        return events, records

    def select_followed(self, topic: str, after: int, stop: int) -> list[tuple[int, UUID]]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_followed[followed(topic)], (after, stop))
            return [(row["notification_id"], row["originator_id"]) for row in curs.fetchall()]

    def max_hashed_notification_id(self) -> int | None:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._max_hashed)
            row = curs.fetchone()
            assert row is not None
            value: int | None = row["m"]
            return value

    def select_anchors(self) -> Sequence[Anchor]:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(self._select_anchors)
            return [Anchor.from_row(r, r["recorded_at"]) for r in curs.fetchall()]

    def insert_anchor(
        self,
        *,
        recorded_at: datetime,
        max_notification_id: int,
        event_count: int,
        digest: bytes,
        note: str | None,
    ) -> int:
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                self._insert_anchor,
                (recorded_at, max_notification_id, event_count, digest, note),
            )
            row = curs.fetchone()
            assert row is not None
            anchor_id: int = row["anchor_id"]
            return anchor_id


def partition_hash(aggregate_id: str) -> str:
    """The SQL of the hash (0 … 2³¹−1) that puts an aggregate, by its id (`aggregate_id`,
    a column or expression holding a UUID or its text), in one partition of a rebuild in
    several processes (slrt.projections.parallel): the partition is the hash modulo their
    number. Wherever the events or the rows are split, this one expression. `uuid_hash`
    of the UUID, not `hashtext` of its text: a partition's read of 1,000,000 events
    filtered in 430 ms instead of 680."""
    return f"(uuid_hash(CAST({aggregate_id} AS uuid)) & 2147483647)"


def _notification(
    id: int, originator_id: UUID, originator_version: int, topic: str, state: bytes
) -> Notification:
    """Notification(...) without the frozen dataclass's __init__ (five
    object.__setattr__ calls; a million of them in a catch-up)."""
    notification = object.__new__(Notification)
    notification.__dict__.update(
        originator_id=originator_id,
        originator_version=originator_version,
        topic=topic,
        state=bytes(state),
        id=id,
    )
    return notification


def _rendered(statement: Any) -> bytes:
    """A statement as the bytes psycopg would render it to on each execute. Its
    identifiers and literals are ASCII, so no connection's encoding is needed."""
    if isinstance(statement, bytes):
        return statement
    if isinstance(statement, str):
        return statement.encode()
    return bytes(statement.as_bytes(None))


def _outcome_unknown(error: BaseException) -> bool:
    """The error is the connection's, not the server's answer: a statement sent may
    have been committed. (A server's error, a lock timeout say, carries its SQLSTATE.)"""
    cause = error.__cause__
    return isinstance(cause, psycopg.Error) and cause.sqlstate is None


def _layer_numbers(stored_events: Sequence[StoredEvent]) -> list[int]:
    """Each event's layer in its batch: n for its aggregate's n-th new event (by
    version), from 1."""
    by_aggregate: dict[UUID | str, list[int]] = {}
    for index, s in enumerate(stored_events):
        by_aggregate.setdefault(s.originator_id, []).append(index)
    layers = [1] * len(stored_events)
    for indexes in by_aggregate.values():
        if len(indexes) > 1:
            indexes.sort(key=lambda i: stored_events[i].originator_version)
            for depth, index in enumerate(indexes, start=1):
                layers[index] = depth
    return layers


class Factory(es_postgres.PostgresFactory):
    """The library's PostgreSQL factory, with the hash-chained application recorder,
    recorders that create their type once, a cheaper check of pooled connections, and
    the event store's session settings."""

    aggregate_recorder_class = PostgresAggregateRecorder
    application_recorder_class = AuditedPostgresApplicationRecorder

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        pool = self.datastore.pool
        if pool._check is not None:  # POSTGRES_PRE_PING
            pool._check = partial(check_if_closed, pool)
        # The pool opens its connections on first use, after this; the loop committer's
        # connections are made with the same parameters (`connect`). Those of the
        # database URL's query (Settings.postgres_parameters) are added: its `options`
        # after the event store's, so that a setting given in both is the URL's.
        assert isinstance(pool.kwargs, dict)
        given = dict(
            parse_qsl(env.get("POSTGRES_CONNECTION_PARAMETERS") or "", keep_blank_values=True)
        )
        pool.kwargs.update(given)
        pool.kwargs["options"] = joined_options(_EVENT_STORE_OPTIONS, given.get("options"))


#: Every statement of the event store reads or writes a few rows by index (a command's
#: records, its appends) or a page in notification order, so none gains from parallel
#: workers or from compiling its plan. Both came with the planner's estimate of
#: `originator_id = ANY(…)` once the events table outgrew it (never analysed, it takes
#: a large share of the table for a few ids): parallel workers for each group read,
#: and 128 clients' approvals ran at 1,500–2,300/s instead of 3,200 (bench/README.md,
#: tenth session); then JIT compilation (LLVM) of each read, with the estimated cost
#: over `jit_above_cost`: approvals at 32 clients fell from 6,300–7,700/s to
#: 2,500–4,200/s, PostgreSQL's CPU per approval four times as much (twenty-first session).
#: Sent as the connection's start-up options, so every connection made with the pool's
#: parameters has them from its first statement, at no extra round trip.
_EVENT_STORE_OPTIONS = "-c max_parallel_workers_per_gather=0 -c jit=off"


def check_if_closed(pool: ConnectionPool[Any], conn: psycopg.Connection[Any]) -> None:
    """The pool's check of a connection before it hands it out: a round trip only if
    the server has closed it or sent something since it went back to the pool.

    The library's pre-ping asks the server every time (measured: 12 % of a village
    approval's CPU, two checkouts each). When PostgreSQL closes a connection (a restart,
    pg_terminate_backend, an idle timeout) it says so on the socket, which then reads as
    ready; a pooled connection waits for nothing, so a quiet socket is an open one. A
    host that vanished without closing goes unnoticed until the connection is used;
    the recorder's retries take another connection then.

    A closed one means the others were probably closed too (a restart): the pool checks
    and replaces them all at once. Found one by one, each costs the pool a back-off
    delay (1 s, then 2, 4, …): a pool of 15 had not served again after 30 s."""
    if not conn.closed and not select.select([conn.fileno()], [], [], 0)[0]:
        return
    try:
        ConnectionPool.check_connection(conn)
    except psycopg.Error:
        pool.check()
        raise
