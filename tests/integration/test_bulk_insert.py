"""slrt.db.bulk_insert: on PostgreSQL the binary COPY stores what the text COPY stores,
and refuses a value of the wrong kind instead of storing something else; on SQLite the
driver's executemany stores what an insert() stores, in the caller's transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    insert,
    select,
    text,
)

from slrt.config import Settings
from slrt.db import UtcDateTime, bulk_insert, create_read_engine

_metadata = MetaData()
_sample = Table(
    "bulk_sample",
    _metadata,
    Column("id", String(36), primary_key=True),
    Column("note", Text),
    Column("count", Integer),
    Column("flag", Boolean),
    Column("score", Float),
    Column("at", UtcDateTime()),
)
_COLUMNS = ("id", "note", "count", "flag", "score", "at")
_ROWS = [
    ("a", 'Budi, RT 001 – "é"\t\n\\', 3, True, 12.5, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("b", None, None, None, None, None),
    ("c", "", 0, False, 0.0, datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
]


def test_binary_and_text_copies_store_the_same_rows(postgres_settings: Settings) -> None:
    engine = create_read_engine(postgres_settings)
    _metadata.create_all(engine)
    stored = {}
    for binary in (False, True):
        with engine.begin() as conn:
            conn.execute(_sample.delete())
            bulk_insert(conn, _sample, _COLUMNS, _ROWS, binary=binary)
        with engine.connect() as conn:
            stored[binary] = conn.execute(select(_sample).order_by(_sample.c.id)).all()
    engine.dispose()
    assert stored[True] == stored[False]
    assert [tuple(r) for r in stored[True]] == _ROWS


def test_a_value_of_the_wrong_kind_is_refused_in_binary(postgres_settings: Settings) -> None:
    engine = create_read_engine(postgres_settings)
    _metadata.create_all(engine)
    refused = (psycopg.Error, TypeError, ValueError, OverflowError)
    with pytest.raises(refused), engine.begin() as conn:
        bulk_insert(conn, _sample, ("id", "count"), [("x", "3")], binary=True)
    with engine.connect() as conn:
        assert conn.execute(select(_sample)).all() == []
    engine.dispose()


def test_on_sqlite_the_rows_are_stored_as_an_insert_stores_them(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'bulk.db'}")
    engine = create_read_engine(settings)
    _metadata.create_all(engine)
    stored = {}
    for bulk in (False, True):
        with engine.begin() as conn:
            conn.execute(_sample.delete())
            if bulk:
                bulk_insert(conn, _sample, _COLUMNS, _ROWS)
            else:
                conn.execute(insert(_sample), [dict(zip(_COLUMNS, r, strict=True)) for r in _ROWS])
        with engine.connect() as conn:
            # As stored (the text of each value), and as read back.
            as_text = conn.execute(text("SELECT id, CAST(at AS TEXT) FROM bulk_sample ORDER BY id"))
            stored[bulk] = (as_text.all(), conn.execute(select(_sample).order_by("id")).all())
    assert stored[True] == stored[False]
    assert [tuple(r) for r in stored[True][1]] == _ROWS

    with pytest.raises(RuntimeError), engine.begin() as conn:  # rolled back with the rest
        bulk_insert(conn, _sample, ("id",), [("d",)])
        raise RuntimeError
    with engine.connect() as conn:
        assert [r[0] for r in conn.execute(select(_sample.c.id).order_by("id"))] == ["a", "b", "c"]
    engine.dispose()
