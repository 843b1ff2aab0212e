"""db.among_each: a long list of ids looked up in chunks, each a statement SQLite can bind."""

from __future__ import annotations

from sqlalchemy import Column, MetaData, String, Table, create_engine, insert, select

from slrt.db import ID_CHUNK, among_each


def test_every_value_is_in_exactly_one_chunk_and_none_for_no_values() -> None:
    engine = create_engine("sqlite://")
    rows = Table("rows", MetaData(), Column("id", String, primary_key=True))
    rows.metadata.create_all(engine)
    ids = [f"{n:06d}" for n in range(2 * ID_CHUNK + 1)]
    with engine.begin() as conn:
        conn.execute(insert(rows), [{"id": i} for i in ids])
        chunks = [
            [r.id for r in conn.execute(select(rows.c.id).where(c))]
            for c in among_each(conn, rows.c.id, ids)
        ]
        assert [len(c) for c in chunks] == [ID_CHUNK, ID_CHUNK, 1]
        assert sorted(i for c in chunks for i in c) == ids
        assert list(among_each(conn, rows.c.id, [])) == []
