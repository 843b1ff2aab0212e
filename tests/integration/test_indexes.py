"""Indexes added to existing read-model tables by an upgrade are built at start without
holding off writes on PostgreSQL (CONCURRENTLY), and one left invalid by an interrupted
build is built again."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import inspect, text

from slrt.config import Settings
from slrt.runtime import Runtime, build_runtime, create_missing_indexes

pytestmark = pytest.mark.postgres

BAND = "household_ranking_band"


@pytest.fixture
def runtime(postgres_settings: Settings) -> Iterator[Runtime]:
    runtime = build_runtime(postgres_settings)
    yield runtime
    runtime.close()


def _url(runtime: Runtime) -> str:
    return runtime.settings.sqlalchemy_url().replace("postgresql+psycopg://", "postgresql://")


def _building(conn: psycopg.Connection) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_progress_create_index p "
        "JOIN pg_class c ON c.oid = p.index_relid WHERE c.relname = %s",
        (BAND,),
    ).fetchone()
    return bool(row and row[0])


def test_writes_go_on_while_a_missing_index_is_built(runtime: Runtime) -> None:
    with runtime.engine.begin() as conn:  # a large table, and an index it lacks
        conn.execute(
            text(
                "INSERT INTO household_ranking (household_id, scope, score, desil) "
                "SELECT md5(i::text), '64.74', random(), 1 + i % 10 "
                "FROM generate_series(1, 2000000) AS i"
            )
        )
        conn.execute(text(f"DROP INDEX {BAND}"))
    build = threading.Thread(target=create_missing_indexes, args=(runtime.engine,))

    with psycopg.connect(_url(runtime), autocommit=True) as writer:
        writer.execute("SET lock_timeout = '300ms'")
        build.start()
        deadline = time.monotonic() + 30
        while not _building(writer) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert _building(writer), "the build never showed in pg_stat_progress_create_index"
        writer.execute(  # a plain CREATE INDEX would hold this off: lock timeout
            "INSERT INTO household_ranking (household_id, scope, score, desil) "
            "VALUES ('written-during-the-build', '64.74', 0.5, 1)"
        )
        still_building = _building(writer)
        build.join(timeout=120)

    assert still_building
    names = {i["name"] for i in inspect(runtime.engine).get_indexes("household_ranking")}
    assert BAND in names


def test_an_index_left_invalid_is_built_again(runtime: Runtime) -> None:
    with psycopg.connect(_url(runtime), autocommit=True) as conn:  # as after a killed build
        conn.execute(
            "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass", (BAND,)
        )

    create_missing_indexes(runtime.engine)

    with psycopg.connect(_url(runtime), autocommit=True) as conn:
        row = conn.execute(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = %s::regclass", (BAND,)
        ).fetchone()
    assert row == (True,)
