"""slrt.db.bulk_insert on PostgreSQL: the binary COPY stores what the text COPY stores,
and refuses a value of the wrong kind instead of storing something else."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy import Boolean, Column, Float, Integer, MetaData, String, Table, Text, select

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
