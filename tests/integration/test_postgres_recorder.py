"""The event store's append on PostgreSQL: the events of a batch are sent as arrays in
binary, and come back byte for byte, in the batch's order, each with its notification
id and its hash record."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any
from uuid import uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError, StoredEvent

from slrt.application import SlrtApplication
from slrt.config import Settings

pytestmark = pytest.mark.postgres


def test_a_batch_is_stored_byte_for_byte_in_its_order(postgres_app: SlrtApplication) -> None:
    first, second = uuid4(), uuid4()
    awkward = [
        b'{"note": "quote \\" backslash \\\\ brace { } comma , paren ( )"}',
        bytes(range(256)),  # every byte, NUL included
        '{"nama": "Sitti \'Aisyah", "jabatan": "Kepala Désa"}'.encode(),
        b"",
    ]
    batch = [
        StoredEvent(first, 1, "slrt.domain.x:Made", awkward[0]),
        StoredEvent(second, 1, 'slrt.domain.x:Made "quoted", {odd}', awkward[1]),
        StoredEvent(first, 2, "slrt.domain.x:Changed", awkward[2]),
        StoredEvent(second, 2, "slrt.domain.x:Changed", awkward[3]),
    ]
    before = postgres_app.recorder.max_notification_id() or 0

    ids = postgres_app.recorder.insert_events(batch)

    assert ids == list(range(before + 1, before + 5))
    stored = postgres_app.recorder.select_notifications(before + 1, 10)
    assert [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in stored] == [
        (i, e.originator_id, e.originator_version, e.topic, e.state)
        for i, e in zip(ids, batch, strict=True)
    ]
    hashed = postgres_app.recorder.select_hash_records(before, 10)  # type: ignore[attr-defined]
    assert [(h.notification_id, h.originator_id, h.originator_version) for h in hashed] == [
        (i, e.originator_id, e.originator_version) for i, e in zip(ids, batch, strict=True)
    ]


def test_a_version_stored_before_is_a_conflict_and_nothing_of_the_batch_is_kept(
    postgres_app: SlrtApplication,
) -> None:
    taken = uuid4()
    postgres_app.recorder.insert_events([StoredEvent(taken, 1, "slrt.domain.x:Made", b"{}")])
    before = postgres_app.recorder.max_notification_id()
    with pytest.raises(IntegrityError):
        postgres_app.recorder.insert_events(
            [
                StoredEvent(uuid4(), 1, "slrt.domain.x:Made", b"{}"),
                StoredEvent(taken, 1, "slrt.domain.x:Made", b"{}"),
            ]
        )
    assert postgres_app.recorder.max_notification_id() == before


def test_a_failed_append_leaves_no_transaction_and_no_lock_behind(
    postgres_app: SlrtApplication, postgres_settings: Settings
) -> None:
    recorder = postgres_app.recorder
    taken = uuid4()
    recorder.insert_events([StoredEvent(taken, 1, "slrt.domain.x:Made", b"{}")])
    for _ in range(3):
        with pytest.raises(IntegrityError):
            recorder.insert_events([StoredEvent(taken, 1, "slrt.domain.x:Made", b"{}")])
    table = recorder.events_table_name  # type: ignore[attr-defined]
    with psycopg.connect(postgres_settings.database_url) as conn:
        conn.execute("SET lock_timeout = '1s'")
        conn.execute(f'LOCK TABLE "{table}" IN EXCLUSIVE MODE')  # at once: nobody holds it
        idle = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state LIKE 'idle in transaction%'"
        ).fetchone()
    assert idle == (0,)
    assert recorder.insert_events([StoredEvent(uuid4(), 1, "slrt.domain.x:Made", b"{}")])


def test_the_append_takes_the_table_lock_that_orders_appends(
    postgres_app: SlrtApplication, postgres_settings: Settings
) -> None:
    # A plain INSERT goes on beside another writer's open transaction; the append must
    # wait for it (EXCLUSIVE against its ROW EXCLUSIVE), so no reader ever sees a later
    # notification id committed before an earlier one.
    recorder = postgres_app.recorder
    recorder.insert_events([StoredEvent(uuid4(), 1, "slrt.domain.x:Made", b"{}")])
    table = recorder.events_table_name  # type: ignore[attr-defined]
    done = threading.Event()

    def append() -> None:
        recorder.insert_events([StoredEvent(uuid4(), 1, "slrt.domain.x:Made", b"{}")])
        done.set()

    with psycopg.connect(postgres_settings.database_url) as other:
        other.execute(f'LOCK TABLE "{table}" IN ROW EXCLUSIVE MODE')
        appending = threading.Thread(target=append)
        appending.start()
        assert not done.wait(0.5)  # held up by the other transaction
        other.commit()
        appending.join(timeout=10)
    assert done.is_set()


def test_the_append_gives_up_after_the_lock_timeout(
    postgres_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = SlrtApplication(postgres_settings.model_copy(update={"postgres_lock_timeout_seconds": 1}))
    try:
        recorder = app.recorder
        append = type(recorder)._append_events.__wrapped__  # type: ignore[attr-defined]

        def looked_for(*args: Any) -> None:
            raise AssertionError("a lock timeout is the server's answer: nothing was saved")

        monkeypatch.setattr(type(recorder), "_stored_as_sent", looked_for)
        table = recorder.events_table_name  # type: ignore[attr-defined]
        with psycopg.connect(postgres_settings.database_url) as other:
            other.execute(f'LOCK TABLE "{table}" IN ROW EXCLUSIVE MODE')
            started = time.monotonic()
            with pytest.raises(OperationalError, match="lock timeout"):
                append(recorder, [StoredEvent(uuid4(), 1, "slrt.domain.x:Made", b"{}")], [])
            assert time.monotonic() - started < 5
    finally:
        app.close()


def _two_events() -> list[StoredEvent]:
    return [
        StoredEvent(uuid4(), 1, "slrt.domain.x:Made", b'{"a": 1}'),
        StoredEvent(uuid4(), 1, "slrt.domain.x:Made", b'{"b": 2}'),
    ]


def _answers_lost(monkeypatch: pytest.MonkeyPatch, recorder: Any) -> list[list[int]]:
    """Every append commits, then its connection breaks before the answer: the ids of
    each committed append are listed in what is returned."""
    recorder_class = type(recorder)
    append_once = recorder_class._append_once
    committed: list[list[int]] = []

    def committed_then_lost(self: Any, curs: Any, events: Any) -> list[int]:
        committed.append(append_once(self, curs, events))
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(recorder_class, "_append_once", committed_then_lost)
    return committed


def _stored_once(recorder: Any, before: int, ids: Any, batch: list[StoredEvent]) -> bool:
    stored = recorder.select_notifications(before + 1, 10)
    return [(n.id, n.originator_id) for n in stored] == [
        (i, e.originator_id) for i, e in zip(ids, batch, strict=True)
    ]


def test_a_save_committed_but_unanswered_is_found_stored_not_retried_into_a_conflict(
    postgres_app: SlrtApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connection breaks after the append's transaction committed, before its answer
    # came back. The events are there, byte for byte: that is this save, done. Retried,
    # it would be a conflict, and the command would be decided and saved a second time.
    recorder = postgres_app.recorder
    before = recorder.max_notification_id() or 0
    batch = _two_events()
    committed = _answers_lost(monkeypatch, recorder)
    ids = recorder.insert_events(batch)

    assert committed and ids == committed[0]
    assert _stored_once(recorder, before, ids, batch)


def test_a_lost_answer_whose_look_up_fails_too_is_found_by_the_next_attempt(
    postgres_app: SlrtApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connection breaks after the append committed, and the look-up on another
    # connection fails as well (the database still away). The next attempt meets a
    # conflict: its own events, stored by the attempt whose answer was lost. Reported as
    # a conflict, the command would be decided and saved a second time.
    recorder = postgres_app.recorder
    recorder_class = type(recorder)
    before = recorder.max_notification_id() or 0
    batch = _two_events()
    stored_as_sent = recorder_class._stored_as_sent  # type: ignore[attr-defined]
    looked: list[int] = []

    def away_at_first(self: Any, curs: Any, events: Any) -> list[int] | None:
        looked.append(1)
        if len(looked) == 1:
            raise psycopg.OperationalError("connection refused")
        found: list[int] | None = stored_as_sent(self, curs, events)
        return found

    committed = _answers_lost(monkeypatch, recorder)
    monkeypatch.setattr(recorder_class, "_stored_as_sent", away_at_first)
    ids = recorder.insert_events(batch)

    assert len(committed) == 1  # the second attempt's append conflicted
    assert ids == committed[0]
    assert len(looked) == 2
    assert _stored_once(recorder, before, ids, batch)


def test_a_batch_stored_only_in_part_is_still_a_conflict(postgres_app: SlrtApplication) -> None:
    recorder = postgres_app.recorder
    mine = StoredEvent(uuid4(), 1, "slrt.domain.x:Made", b'{"a": 1}')
    recorder.insert_events([mine])
    before = recorder.max_notification_id()
    with pytest.raises(IntegrityError):
        recorder.insert_events([mine, StoredEvent(uuid4(), 1, "slrt.domain.x:Made", b"{}")])
    assert recorder.max_notification_id() == before


def test_a_store_from_before_the_append_function_gets_it_at_start(
    postgres_app: SlrtApplication, postgres_settings: Settings
) -> None:
    # An upgrade: the database has the tables and events but not the function.
    postgres_app.recorder.insert_events([StoredEvent(uuid4(), 1, "slrt.domain.x:Made", b"{}")])
    with psycopg.connect(postgres_settings.database_url, autocommit=True) as conn:
        conn.execute("DROP FUNCTION slrt_append_events")
    before = postgres_app.recorder.max_notification_id() or 0
    upgraded = SlrtApplication(postgres_settings)
    try:
        added = upgraded.recorder.insert_events(
            [StoredEvent(uuid4(), 1, "slrt.domain.x:Made", b"{}")]
        )
        assert added == [before + 1]
    finally:
        upgraded.close()


def test_the_append_function_is_replaced_only_when_its_body_differs(
    postgres_app: SlrtApplication, postgres_settings: Settings
) -> None:
    # Replacing a function takes its owner: a start under another role must not need
    # to, once the function is there as this version writes it.
    source = (
        "SELECT xmin::text AS row_version, prosrc FROM pg_proc WHERE proname = 'slrt_append_events'"
    )
    with psycopg.connect(postgres_settings.database_url, autocommit=True) as conn:
        before = conn.execute(source).fetchone()
        SlrtApplication(postgres_settings).close()  # another start, same version
        assert conn.execute(source).fetchone() == before
        conn.execute(  # an older body, as an upgrade finds it
            "CREATE OR REPLACE FUNCTION slrt_append_events(p_ids uuid[], p_versions bigint[], "
            "p_topics text[], p_states bytea[], p_digests bytea[], p_layers int[], "
            "p_genesis bytea, p_lock_timeout text) RETURNS SETOF bigint "
            "LANGUAGE plpgsql AS $$ BEGIN RETURN; END $$"
        )
        upgraded = SlrtApplication(postgres_settings)
        try:
            assert conn.execute(source).fetchone()[1] == before[1]  # type: ignore[index]
            assert upgraded.recorder.insert_events(
                [StoredEvent(uuid4(), 1, "slrt.domain.x:Made", b"{}")]
            )
        finally:
            upgraded.close()


# -- the append from an event loop (slrt.loop_commit) -----------------------------------


def test_the_append_from_an_event_loop_stores_the_batch_and_a_repeat_is_a_conflict(
    postgres_app: SlrtApplication,
) -> None:
    recorder = postgres_app.recorder
    before = recorder.max_notification_id() or 0
    batch, later = _two_events(), _two_events()

    async def append_twice() -> tuple[list[int], list[int]]:
        async with await recorder.connect() as connection:
            ids: list[int] = await recorder.append(connection, batch)
            with pytest.raises(IntegrityError):
                await recorder.append(connection, batch)
            # The connection still serves: the conflict rolled back only its statement,
            # and the cursor it keeps for appends appends the next batch.
            assert (await connection.execute("SELECT 1")).rowcount == 1
            return ids, await recorder.append(connection, later)

    ids, later_ids = asyncio.run(append_twice())
    assert _stored_once(recorder, before, [*ids, *later_ids], [*batch, *later])


def test_a_loop_append_committed_but_unanswered_is_found_by_the_recovery(
    postgres_app: SlrtApplication,
) -> None:
    # The loop's statement committed, then its connection broke before the answer (the
    # driver's error carries no SQLSTATE). The recovery in a worker thread meets its
    # own events as a conflict and finds them stored byte for byte: the save is done,
    # not decided and saved a second time.
    recorder = postgres_app.recorder
    before = recorder.max_notification_id() or 0
    batch = _two_events()

    async def append() -> list[int]:
        async with await recorder.connect() as connection:
            ids: list[int] = await recorder.append(connection, batch)
            return ids

    committed = asyncio.run(append())
    lost = psycopg.OperationalError("server closed the connection unexpectedly")
    assert recorder.append_after(batch, lost) == committed
    assert _stored_once(recorder, before, committed, batch)


def test_a_loop_append_refused_by_the_server_is_retried_not_looked_up(
    postgres_app: SlrtApplication,
) -> None:
    # An error the server answered with (here a lock timeout) means nothing was
    # written: the recovery appends, and a conflict then is a real one.
    recorder = postgres_app.recorder
    before = recorder.max_notification_id() or 0
    batch = _two_events()
    refused = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")
    ids = recorder.append_after(batch, refused)
    assert _stored_once(recorder, before, ids, batch)
    with pytest.raises(IntegrityError):
        recorder.append_after(batch, refused)


def test_the_event_type_is_created_on_the_first_start_only(
    postgres_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CREATE TYPE of a type that exists fails, and PostgreSQL logs the ERROR even though
    the library suppresses it: every start after the first (and the inbox's snapshot
    store, made on first use) logged one. Only a start on an empty schema sends it."""
    sent: list[str] = []
    execute = psycopg.Cursor.execute

    def recorded(cursor: psycopg.Cursor[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(query, bytes):
            query = query.decode()
        sent.append(query if isinstance(query, str) else query.as_string(cursor))
        return execute(cursor, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "execute", recorded)
    SlrtApplication(postgres_settings).close()
    assert [q for q in sent if "CREATE TYPE" in q] != []
    sent.clear()

    app = SlrtApplication(postgres_settings)
    try:
        position = app.start_inbox_position("slrt.referral-responses", 0)
        app.snapshot_inbox_position(position)  # the snapshot store, made on first use
        loaded = app.inbox_position(position.id)
    finally:
        app.close()

    assert [q for q in sent if "CREATE TYPE" in q] == []
    assert [q for q in sent if "CREATE TABLE" in q] != []  # tables still made if missing
    assert loaded.version == position.version
