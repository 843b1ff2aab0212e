"""`inside`: a region code selects the read-model rows inside it, on SQLite and on
PostgreSQL; on PostgreSQL a province is selected through an index on the scope."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, Table, create_engine, select

from slrt.projections.regions import inside

#: Every scope is a kabupaten/kota code; the edges of province 35 and its neighbours.
SCOPES = ["34.99", "35.00", "35.01", "35.07", "35.79", "35.99", "36.00", "36.01", "53.50"]


def _places() -> tuple[MetaData, Table]:
    metadata = MetaData()
    table = Table(
        "places",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("scope", String(5), nullable=False, index=True),
        Column("kecamatan", String(8), nullable=False),
        Column("region", String(13), nullable=False),
    )
    return metadata, table


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Engine]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/places.db"
    else:
        url = request.getfixturevalue("postgres_database").replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def _fill(engine: Engine, table: Table, metadata: MetaData, copies: int = 1) -> None:
    metadata.create_all(engine)
    rows = [
        {"id": n * len(SCOPES) + i, "scope": s, "kecamatan": f"{s}.01", "region": f"{s}.01.2001"}
        for n in range(copies)
        for i, s in enumerate(SCOPES)
    ]
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)


def test_a_province_selects_its_kabupaten_and_nothing_else(engine: Engine) -> None:
    metadata, places = _places()
    _fill(engine, places, metadata)
    with engine.connect() as conn:

        def scopes(region: str | None) -> list[str]:
            query = select(places.c.scope).where(inside(places, region)).order_by(places.c.id)
            return list(conn.execute(query).scalars())

        assert scopes("35") == ["35.00", "35.01", "35.07", "35.79", "35.99"]
        assert scopes("36") == ["36.00", "36.01"]
        assert scopes("53") == ["53.50"]
        assert scopes("99") == []
        assert scopes("35.07") == ["35.07"]
        assert scopes("35.07.01") == ["35.07"]
        assert scopes("35.07.01.2001") == ["35.07"]
        assert scopes("ID") == scopes(None) == SCOPES


def test_a_province_is_read_through_the_scope_index_on_postgresql(
    postgres_database: str,
) -> None:
    # `scope LIKE '35.%'` could use a btree index only under the "C" collation; this
    # server's databases are C.UTF-8, where it was a sequential scan whatever the cost.
    engine = create_engine(postgres_database.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        metadata, places = _places()
        _fill(engine, places, metadata, copies=200)
        query = select(places.c.id).where(inside(places, "35"))
        statement = str(query.compile(engine, compile_kwargs={"literal_binds": True}))
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE places")
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}").scalars())
        assert "Seq Scan" not in plan, plan
        assert "ix_places_scope" in plan, plan
    finally:
        engine.dispose()
