"""Composition root: builds the application, the read-model engine and the workers."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from sqlalchemy import Engine, func, select, text
from sqlalchemy.schema import CreateIndex

from slrt.application import Clock, SlrtApplication, utc_now
from slrt.audit_anchor import AnchorProcess
from slrt.config import Settings
from slrt.db import create_read_engine, metadata
from slrt.domain import windows
from slrt.followed import DEACTIVATED, POLICY_PUBLISHED, DeactivatedUsers, Follower, PolicyInForce
from slrt.notify import EventListener
from slrt.projections.base import Projection, ProjectionWorker
from slrt.projections.complaint_list import ComplaintListProjection
from slrt.projections.event_index import EventIndexProjection
from slrt.projections.household_status import HouseholdStatusProjection
from slrt.projections.proposal_list import ProposalListProjection
from slrt.projections.region_activity import RegionActivityProjection
from slrt.projections.score_log import ScoreLogProjection
from slrt.projections.sla_timers import SlaTimersProjection
from slrt.sla_watch import BreachWatcher


def lookup_key(settings: Settings) -> bytes:
    """Key of the NIK / No. KK look-up hashes: derived from the cipher key when set."""
    secret = settings.cipher_key or "slrt-lookup-key-without-cipher"
    return hashlib.sha256(b"slrt-lookup:" + secret.encode()).digest()


log = structlog.get_logger("slrt.runtime")


def build_projections(settings: Settings) -> list[Projection]:
    return [
        HouseholdStatusProjection(lookup_key(settings)),
        ProposalListProjection(),
        ComplaintListProjection(),
        SlaTimersProjection(),
        EventIndexProjection(),
        ScoreLogProjection(),
        RegionActivityProjection(),
    ]


@dataclass
class Runtime:
    settings: Settings
    app: SlrtApplication
    engine: Engine
    #: Projections, by name.
    workers: dict[str, ProjectionWorker] = field(default_factory=dict)
    #: Other background processes (the SLA breach watcher; later the outbox and inbox).
    processes: dict[str, Any] = field(default_factory=dict)
    #: On PostgreSQL, wakes the started workers when any process records events.
    listener: EventListener | None = None
    #: Rare events a serving process follows (started with the API): deactivated
    #: users, and the SLA policy in force (kept on the application).
    followed: Follower = field(init=False)
    #: Users whose tokens are refused.
    deactivated: DeactivatedUsers = field(init=False)

    def __post_init__(self) -> None:
        self.followed = Follower(self.app.recorder)
        self.deactivated = DeactivatedUsers()
        self.followed.subscribe(DEACTIVATED, self.deactivated.seen)
        self.followed.subscribe(POLICY_PUBLISHED, PolicyInForce(self.app).seen)

    def worker_names(self) -> list[str]:
        return [*self.workers, *self.processes]

    def start_workers(self, names: list[str] | None = None) -> None:
        started = [
            worker
            for name, worker in {**self.workers, **self.processes}.items()
            if names is None or name in names
        ]
        for worker in started:
            worker.start()
        if started and self.settings.is_postgres and self.listener is None:

            def wake() -> None:
                for worker in started:
                    worker.wake()

            self.listener = EventListener(
                self.settings.database_url,
                self.app.recorder.channel_name,  # type: ignore[attr-defined]
                wake,
                retry_seconds=self.settings.projection_poll_interval_seconds,
            )
            self.listener.start()

    def catch_up(self) -> None:
        """Applies every recorded event to every projection (tests, CLI, rebuild)."""
        for worker in self.workers.values():
            worker.catch_up()

    def stop_workers(self) -> None:
        if self.listener is not None:
            self.listener.stop()
            self.listener = None
        for worker in [*self.processes.values(), *self.workers.values()]:
            worker.stop()

    def close(self) -> None:
        self.stop_workers()
        self.followed.stop()
        self.app.close()
        self.engine.dispose()


#: Read-model indexes an earlier version created and no query uses any more (each
#: still cost its writes): dropped at start. household_ranking_desil (scope, desil) gave
#: way to household_ranking_band (scope, desil, score, household_id) in the fourteenth
#: session.
OBSOLETE_INDEXES = ("household_ranking_desil",)


#: How long building one missing index at start may wait for the transactions already
#: running on its table (PostgreSQL); the usual lock timeout would cut it short.
INDEX_BUILD_LOCK_TIMEOUT = "10min"


def create_missing_indexes(engine: Engine) -> None:
    """Creates indexes added to existing tables since they were created (an upgrade gets
    them without a rebuild), and drops obsolete ones. After the projections' version
    checks, which create the tables of a changed projection again, with any new columns
    these indexes need.

    On PostgreSQL both happen CONCURRENTLY: a table of millions of rows takes minutes to
    index, and a plain CREATE INDEX holds off every write to it meanwhile (other
    processes still serving, workers), which then fail on their lock timeout. A build
    that was interrupted leaves an invalid index behind: it is dropped and built again."""
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            for name in OBSOLETE_INDEXES:
                conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        for table in metadata.sorted_tables:
            for index in table.indexes:
                index.create(engine, checkfirst=True)
        return
    ours = {
        str(index.name): (table.name, index)
        for table in metadata.sorted_tables
        for index in table.indexes
    }
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"SET lock_timeout = '{INDEX_BUILD_LOCK_TIMEOUT}'"))
        try:
            invalid = set(conn.execute(_INVALID_INDEXES).scalars()) & set(ours)
            for name in sorted({*OBSOLETE_INDEXES, *invalid}):
                conn.execute(text(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"'))
            existing = set(conn.execute(_INDEXES).scalars())
            for name, (table_name, index) in ours.items():
                if name not in existing:
                    log.info("index.creating", index=name, table=table_name)
                    ddl = str(CreateIndex(index).compile(dialect=conn.dialect))
                    conn.exec_driver_sql(_PLAIN_CREATE.sub(r"CREATE \1INDEX CONCURRENTLY", ddl))
        finally:  # the pooled connection goes back with the usual lock timeout
            conn.execute(text("RESET lock_timeout"))


_INVALID_INDEXES = text(
    "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE NOT i.indisvalid AND n.nspname = current_schema()"
)
_INDEXES = text("SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()")
_PLAIN_CREATE = re.compile(r"^CREATE (UNIQUE )?INDEX")


def build_runtime(
    settings: Settings,
    *,
    clock: Clock = utc_now,
    submission_policy: windows.SubmissionPolicy | None = None,
) -> Runtime:
    engine = create_read_engine(settings)
    with schema_lock(engine):
        app = SlrtApplication(settings, clock=clock, submission_policy=submission_policy)
        app.ensure_sla_policy()
        metadata.create_all(engine)  # missing tables
        runtime = Runtime(settings=settings, app=app, engine=engine)
        _add_projection_workers(runtime, settings)
        create_missing_indexes(engine)
    runtime.processes[AnchorProcess.name] = AnchorProcess(
        app, interval=settings.audit_anchor_interval_seconds
    )
    runtime.processes[BreachWatcher.name] = BreachWatcher(
        app,
        engine,
        interval=settings.sla_watch_interval_seconds,
        escalate=settings.sla_escalate_on_breach,
    )
    if settings.kafka_bootstrap_servers:  # referrals over Kafka (ADR 0007)
        from slrt.integrations.inbox import ReferralInbox
        from slrt.integrations.outbox import ReferralOutbox

        outbox = ReferralOutbox(app, engine, settings)
        app.on_recorded(outbox.wake)
        runtime.processes[outbox.name] = outbox
        runtime.processes[ReferralInbox.name] = ReferralInbox(app, settings)
    return runtime


def _add_projection_workers(runtime: Runtime, settings: Settings) -> None:
    """A worker per projection; a projection of another version is reset first."""
    app, engine = runtime.app, runtime.engine
    for projection in build_projections(settings):
        worker = ProjectionWorker(
            app,
            engine,
            projection,
            batch_size=settings.projection_batch_size,
            # SQLite has one writer for events and read models alike: a long projection
            # transaction would hold commands off, so batches do not grow there.
            max_batch_size=settings.projection_catch_up_batch_size
            if settings.is_postgres
            else None,
            poll_interval=settings.projection_poll_interval_seconds,
        )
        app.on_recorded(worker.wake)
        worker.check_version()
        if (
            settings.is_postgres
            and projection.every_partition is not None
            and settings.rebuild_processes > 1
        ):
            worker.parallel_rebuild = partial(
                _rebuild_in_processes, runtime, projection.name, settings.rebuild_processes
            )
            worker.in_processes_from = settings.projection_rebuild_in_processes_from
        runtime.workers[projection.name] = worker


def _rebuild_in_processes(
    runtime: Runtime, name: str, processes: int, stopping: threading.Event
) -> int:
    # Imported here: slrt.projections.parallel builds runtimes, so it imports this module.
    from slrt.projections.parallel import rebuild_with

    return rebuild_with(runtime, name, processes, stopping=stopping)


_SCHEMA_LOCK = 0x534C5254  # "SLRT": the advisory lock held while a process sets up tables


@contextmanager
def schema_lock(engine: Engine, *, timeout: float = 300.0) -> Iterator[None]:
    """Serialises table creation, projection version checks and index creation between
    processes starting together on one PostgreSQL database (`slrt serve --processes`,
    a worker beside the API): concurrent CREATE TABLEs of the same name fail on
    PostgreSQL's catalog even with IF NOT EXISTS. SQLite needs nothing: one process."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        deadline = time.monotonic() + timeout
        # Polled, not waited for: the connection's lock timeout would cut a wait short
        # while another process seals a large old store's history.
        while not conn.execute(select(func.pg_try_advisory_lock(_SCHEMA_LOCK))).scalar():
            if time.monotonic() > deadline:
                msg = f"another process held the schema lock for over {timeout:.0f} s"
                raise TimeoutError(msg)
            time.sleep(0.05)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(select(func.pg_advisory_unlock(_SCHEMA_LOCK)))
            conn.commit()
