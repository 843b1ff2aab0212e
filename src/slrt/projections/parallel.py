"""Rebuilding a projection from zero in several processes (PostgreSQL).

One process applies the whole log in Python; on a machine with more cores, a rebuild
goes faster when each process applies the events of its own share of the aggregates
(the database hashes each event's aggregate id) and the work that needs every row
(household_status: the ranking of each scope) is done once at the end.

While it runs, the projection's tracked position is REBUILDING, so the projection's
own workers (in `slrt serve`) leave it alone, and the rebuild holds an advisory lock.
The position moves to the last event included only when every partition is done, in
the same transaction as the final work: a rebuild is applied entirely or not at all.
The lock is shared by the rebuild's processes; a rebuild that stops half-way (a failed
partition, a killed process) leaves REBUILDING once none of them holds it, and the
projection's workers then throw its rows away and rebuild from zero. A partition whose
coordinating process is gone stops at its next page.

It runs from `slrt projections rebuild NAME --processes N`, and from a projection's
worker that starts from zero far behind (a new install on an old store, a new version of
the projection): `projection_rebuild_in_processes_from` in the settings.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from multiprocessing import connection
from multiprocessing.process import BaseProcess

import structlog
from sqlalchemy import Connection, Engine, func, select

from slrt.config import Settings
from slrt.logging import configure_logging
from slrt.projections.base import (
    REBUILDING,
    PartitionWorker,
    advance_position,
    rebuild_lock_key,
)
from slrt.runtime import Runtime, build_runtime

log = structlog.get_logger("slrt.projections")


class RebuildFailed(RuntimeError):
    """A rebuild in several processes did not finish: once its processes are gone, the
    projection's workers rebuild it from zero (or run the rebuild again)."""


def rebuild_in_processes(settings: Settings, name: str, processes: int) -> int:
    """Rebuilds projection `name` from zero in `processes` processes; returns the
    position it reached (the last event recorded when it started)."""
    if not settings.is_postgres:
        msg = "a rebuild in several processes needs PostgreSQL"
        raise ValueError(msg)
    runtime = build_runtime(settings)
    try:
        if name not in runtime.workers:
            msg = f"there is no read model {name!r} (there are: {', '.join(runtime.workers)})"
            raise ValueError(msg)
        return rebuild_with(runtime, name, processes)
    finally:
        runtime.close()


def rebuild_with(
    runtime: Runtime, name: str, processes: int, *, stopping: threading.Event | None = None
) -> int:
    """The rebuild, started from `runtime` (the CLI's, or a serving process's when its
    worker starts from zero); `stopping` set ends it early, as a failed rebuild."""
    settings = runtime.settings
    worker = runtime.workers[name]
    if worker.projection.every_partition is None:
        msg = f"{name} cannot be rebuilt in several processes"
        raise ValueError(msg)
    key = rebuild_lock_key(name)
    with _holding_locks(runtime.engine) as lock:
        # Exclusive to begin with (no other rebuild, nor a process of one, runs), then
        # shared with the rebuild's processes: workers wait while any of them holds it.
        if not lock.execute(select(func.pg_try_advisory_lock(key))).scalar():
            msg = f"{name} is being rebuilt by other processes"
            raise RebuildFailed(msg)
        lock.execute(select(func.pg_advisory_lock_shared(key)))
        lock.execute(select(func.pg_advisory_unlock(key)))
        worker.hand_over()
        stop = runtime.app.recorder.max_notification_id() or 0
        log.info("projection.rebuild_started", projection=name, processes=processes)
        context = multiprocessing.get_context("spawn")
        children = [
            context.Process(
                target=_rebuild_partition,
                args=(settings, name, partition, processes, stop, os.getpid()),
                name=f"rebuild-{name}-{partition}",
            )
            for partition in range(processes)
        ]
        for child in children:
            child.start()
        stopping = stopping or threading.Event()
        wait_for(children, stopping)
        if stopping.is_set():
            msg = f"stopped before the end; the workers rebuild {name} from zero"
            raise RebuildFailed(msg)
        failed = [c.name for c in children if c.exitcode != 0]
        if failed:
            msg = f"{', '.join(failed)} failed; the workers rebuild {name} from zero"
            raise RebuildFailed(msg)
        with runtime.engine.begin() as conn:
            worker.projection.finish_rebuild(conn)
            advance_position(conn, name, runtime.app.name, REBUILDING, stop)
    worker.projection.reset_cache()
    log.info("projection.rebuilt", projection=name, processes=processes, position=stop)
    return stop


def wait_for(children: Sequence[BaseProcess], stopping: threading.Event) -> None:
    """Waits until every child has ended. Once `stopping` is set or a child has failed,
    the rebuild cannot finish: the others are ended too."""
    while any(child.is_alive() for child in children):
        failed = any(child.exitcode not in (None, 0) for child in children)
        if failed or stopping.is_set():
            for child in children:
                child.terminate()
            for child in children:
                child.join()
            break
        # Woken as soon as a child ends (its sentinel), or after a moment to look at
        # `stopping`: the rebuild's last step starts when the last partition is done.
        connection.wait([c.sentinel for c in children if c.is_alive()], timeout=0.2)


@contextmanager
def _holding_locks(engine: Engine) -> Iterator[Connection]:
    """A connection for session advisory locks, closed (not pooled) afterwards: closing
    it releases them, whatever happened."""
    conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    try:
        yield conn
    finally:
        conn.invalidate()
        conn.close()


def _rebuild_partition(
    settings: Settings, name: str, partition: int, partitions: int, stop: int, parent: int
) -> None:
    """One process of a rebuild: applies its partition of the log up to `stop`."""
    configure_logging(settings)
    runtime = build_runtime(settings)
    try:
        with _holding_locks(runtime.engine) as lock:
            lock.execute(select(func.pg_advisory_lock_shared(rebuild_lock_key(name))))
            if os.getppid() != parent:  # the coordinator died before the lock was held
                msg = f"{name}: the process that started this rebuild is gone"
                raise RebuildFailed(msg)
            _apply_partition(runtime, name, partition, partitions, stop, parent)
    finally:
        runtime.close()


def _apply_partition(
    runtime: Runtime, name: str, partition: int, partitions: int, stop: int, parent: int
) -> None:
    settings = runtime.settings
    worker = PartitionWorker(
        runtime.app,
        runtime.engine,
        runtime.workers[name].projection,
        partition=partition,
        partitions=partitions,
        stop=stop,
        batch_size=settings.projection_batch_size,
        max_batch_size=settings.projection_catch_up_batch_size,
        parent=parent,
    )
    try:
        read = worker.catch_up()
    finally:
        worker.stop()
    log.info("projection.partition_rebuilt", projection=name, partition=partition, read=read)
