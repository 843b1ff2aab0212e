"""The event store's connection pool on PostgreSQL: connections the server closed are
not handed out, and open ones are handed out without a round trip."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import psycopg
import pytest
from eventsourcing.domain import Aggregate
from eventsourcing.utils import Environment
from psycopg_pool import ConnectionPool

from slrt.application import SlrtApplication
from slrt.config import Settings
from slrt.db import create_read_engine
from slrt.persistence.postgres import Factory

pytestmark = pytest.mark.postgres


def _pool(postgres_app: SlrtApplication) -> ConnectionPool[Any]:
    pool: ConnectionPool[Any] = postgres_app.recorder.datastore.pool  # type: ignore[attr-defined]
    return pool


def _backends(pool: ConnectionPool[Any]) -> list[int]:
    """The server processes of every connection the pool holds."""
    connections = [pool.getconn() for _ in range(pool.max_size)]
    pids = [conn.info.backend_pid for conn in connections]
    for conn in connections:
        pool.putconn(conn)
    return pids


def test_connections_the_server_closed_are_not_handed_out(
    postgres_app: SlrtApplication, postgres_settings: Settings
) -> None:
    pool = _pool(postgres_app)
    pids = _backends(pool)
    with psycopg.connect(postgres_settings.database_url, autocommit=True) as admin:
        for pid in pids:  # as a restart of PostgreSQL does
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)  # the server's goodbye reaches the sockets

    for _ in range(pool.max_size):
        with pool.connection() as conn:  # no retry here: a closed one would raise
            assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
            assert conn.info.backend_pid not in pids


def test_open_connections_are_handed_out_without_asking_the_server(
    postgres_app: SlrtApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = _pool(postgres_app)
    _backends(pool)  # every connection opened and back in the pool
    pings: list[object] = []
    execute = psycopg.Connection.execute

    def recorded(conn: psycopg.Connection[Any], query: Any, *args: Any, **kwargs: Any) -> Any:
        if query == "":  # the pool's ping (ConnectionPool.check_connection)
            pings.append(conn)
        return execute(conn, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", recorded)

    for _ in range(2 * pool.max_size):
        with pool.connection() as conn:
            conn.execute("SELECT 1")

    assert pings == []


def test_events_are_saved_and_read_at_once_after_postgresql_closed_every_connection(
    postgres_app: SlrtApplication, postgres_settings: Settings
) -> None:
    pids = _backends(_pool(postgres_app))
    with psycopg.connect(postgres_settings.database_url, autocommit=True) as admin:
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)

    # With the library's ping, the pool met the closed connections one by one, each
    # followed by a longer back-off delay, and gave up after 30 s (PoolTimeout).
    thing = Aggregate()
    postgres_app.save(thing)

    assert postgres_app.repository.get(thing.id).version == 1


#: What `SHOW` answers on every connection of the event store (slrt.persistence.postgres).
_NO_WORKERS_NO_JIT = ({"max_parallel_workers_per_gather": "0"}, {"jit": "off"})


def test_the_event_store_never_starts_parallel_workers_nor_compiles_plans(
    postgres_app: SlrtApplication,
) -> None:
    """The group read of many aggregates got parallel workers, then JIT compilation,
    once the events table was large (bench/README.md, tenth and twenty-first sessions):
    every pooled connection turns both off."""
    pool = _pool(postgres_app)
    connections = [pool.getconn() for _ in range(pool.max_size)]
    try:
        settings = [
            (
                conn.execute("SHOW max_parallel_workers_per_gather").fetchone(),
                conn.execute("SHOW jit").fetchone(),
            )
            for conn in connections
        ]
    finally:
        for conn in connections:
            pool.putconn(conn)
    assert settings == [_NO_WORKERS_NO_JIT] * pool.max_size


def test_the_event_loops_appends_connect_as_the_pool_does(postgres_app: SlrtApplication) -> None:
    """The loop committer's own connections (slrt.loop_commit) are set up as the
    pool's. They were made without either setting; a trial that read the group read's
    statement on such a connection had it JIT-compiled again (bench/README.md,
    twenty-first session)."""

    async def settings() -> tuple[Any, Any]:
        connection = await postgres_app.recorder.connect()  # type: ignore[attr-defined]
        try:
            workers = await connection.execute("SHOW max_parallel_workers_per_gather")
            jit = await connection.execute("SHOW jit")
            return await workers.fetchone(), await jit.fetchone()
        finally:
            await connection.close()

    assert asyncio.run(settings()) == _NO_WORKERS_NO_JIT


# -- the database URL's connection parameters ---------------------------------------

_GIVEN = "application_name=slrt-given&options=-c%20statement_timeout%3D4321%20-c%20jit%3Don"


def test_the_database_urls_parameters_reach_every_connection(postgres_database: str) -> None:
    """`?application_name=…&options=…` in SLRT_DATABASE_URL: the event store's pool,
    the loop committer's connections and the read models' all carry them, beside
    SLRT's own start-up options (no parallel workers; the lock timeout). The URL's
    `options` come after SLRT's: where both set one (here jit), the URL's wins."""
    settings = Settings(_env_file=None, database_url=f"{postgres_database}?{_GIVEN}")
    app = SlrtApplication(settings)
    engine = create_read_engine(settings)
    shown = (
        "SELECT current_setting('application_name') AS name, "
        "current_setting('statement_timeout') AS timeout, current_setting('jit') AS jit, "
        "current_setting('max_parallel_workers_per_gather') AS workers, "
        "current_setting('lock_timeout') AS lock_timeout"
    )
    expected = {"name": "slrt-given", "timeout": "4321ms", "jit": "on", "workers": "0"}

    async def on_the_loops_connection() -> Any:
        connection = await app.recorder.connect()  # type: ignore[attr-defined]
        try:
            return await (await connection.execute(shown)).fetchone()
        finally:
            await connection.close()

    try:
        with _pool(app).connection() as conn:
            pooled = conn.execute(shown).fetchone()
        assert pooled is not None and {k: pooled[k] for k in expected} == expected
        from_loop = asyncio.run(on_the_loops_connection())
        assert {k: from_loop[k] for k in expected} == expected
        with engine.connect() as conn:
            row = conn.exec_driver_sql(shown).mappings().one()
        assert (row["name"], row["timeout"]) == ("slrt-given", "4321ms")
        assert row["lock_timeout"] == f"{settings.postgres_lock_timeout_seconds}s"
    finally:
        engine.dispose()
        app.close()


def test_an_sslmode_the_server_cannot_meet_fails_the_event_stores_connections(
    postgres_database: str,
) -> None:
    """`?sslmode=verify-full` with a root certificate that does not exist cannot be
    met, whether this server speaks TLS or not. The event store's connections used to
    be made without the URL's query, in plain text, so they were made."""
    url = f"{postgres_database}?sslmode=verify-full&sslrootcert=/nonexistent/root.crt"
    settings = Settings(_env_file=None, database_url=url)
    pool = Factory(Environment("SlrtApplication", settings.eventsourcing_env())).datastore.pool
    assert isinstance(pool.kwargs, dict) and pool.kwargs["sslmode"] == "verify-full"
    kwargs = {k: v for k, v in pool.kwargs.items() if k != "row_factory"}
    with pytest.raises(psycopg.OperationalError, match=r"SSL|root certificate"):
        psycopg.connect(pool.conninfo, **kwargs)  # as the pool connects
