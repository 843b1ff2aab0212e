"""slrt.db.snapshot: every read on its connection sees the database as its first read did,
whatever other connections commit in between (on SQLite and on PostgreSQL); it writes
nothing, and the connection it leaves in the pool reads the newest state again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Column, Connection, Engine, Integer, MetaData, Table, func, insert, select
from sqlalchemy.exc import DBAPIError

from slrt.config import Settings
from slrt.db import create_read_engine, snapshot

_metadata = MetaData()
_rows = Table("snapshot_rows", _metadata, Column("id", Integer, primary_key=True))


def _count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(_rows)).scalar_one())


def _add(engine: Engine, row_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(insert(_rows).values(id=row_id))


class SnapshotScenarios:
    @pytest.fixture
    def engine(self, settings: Settings) -> Iterator[Engine]:
        engine = create_read_engine(settings)
        _metadata.create_all(engine)
        _add(engine, 1)
        yield engine
        engine.dispose()

    def test_reads_after_the_first_see_what_it_saw(self, engine: Engine) -> None:
        with snapshot(engine) as conn:
            first = _count(conn)
            _add(engine, 2)  # committed by another connection meanwhile
            second = _count(conn)
            rows = [r[0] for r in conn.execute(select(_rows.c.id).order_by(_rows.c.id))]
        assert (first, second, rows) == (1, 1, [1])
        with engine.connect() as conn:
            assert _count(conn) == 2

    def test_a_plain_connection_sees_the_commit_at_once(self, engine: Engine) -> None:
        """What the snapshot is for: without it, two reads of one answer disagree."""
        with engine.connect() as conn:
            first = _count(conn)
            _add(engine, 2)
            assert (first, _count(conn)) == (1, 2)

    def test_the_pooled_connection_reads_the_newest_state_afterwards(self, engine: Engine) -> None:
        for row_id in (2, 3):
            with snapshot(engine) as conn:
                before = _count(conn)
            _add(engine, row_id)
            with engine.connect() as conn:
                assert _count(conn) == before + 1

    def test_nothing_written_on_it_is_kept(self, engine: Engine) -> None:
        refused = False
        try:
            with snapshot(engine) as conn:
                conn.execute(insert(_rows).values(id=9))
        except DBAPIError:  # PostgreSQL: a read-only transaction
            refused = True
        with engine.connect() as conn:
            assert _count(conn) == 1
        assert refused == (engine.dialect.name == "postgresql")  # SQLite: rolled back


class TestSnapshotOnSqlite(SnapshotScenarios):
    @pytest.fixture
    def settings(self, sqlite_settings: Settings) -> Settings:
        return sqlite_settings


class TestSnapshotOnPostgres(SnapshotScenarios):
    @pytest.fixture
    def settings(self, postgres_settings: Settings) -> Settings:
        return postgres_settings
