"""Rebuilding a projection from zero in several processes (PostgreSQL).

One process applies the whole log in Python; on a machine with more cores, a rebuild
goes faster when each process applies the events of its own share of the aggregates
(the database hashes each event's aggregate id) and the work that needs every row
(household_status: the ranking of each scope) is done once at the end.

While it runs, the projection's tracked position is REBUILDING, so the projection's
own workers (in `slrt serve`) leave it alone, and the rebuild holds an advisory lock.
The position moves to the last event included only when every partition is done, in
the same transaction as the final work: a rebuild is applied entirely or not at all.
A rebuild that stops half-way (a failed partition, a killed process) leaves
REBUILDING without the lock; the next start throws its rows away and the workers
rebuild from zero (ProjectionWorker.check_version).
"""

from __future__ import annotations

import multiprocessing

import structlog
from sqlalchemy import func, insert, select

from slrt.config import Settings
from slrt.logging import configure_logging
from slrt.projections.base import (
    REBUILDING,
    PartitionWorker,
    advance_position,
    rebuild_lock_key,
    tracking,
)
from slrt.runtime import build_runtime

log = structlog.get_logger("slrt.projections")


class RebuildFailed(RuntimeError):
    """A partition of a rebuild failed; the projection is rebuilt from zero at the next
    start (or by running the rebuild again)."""


def rebuild_in_processes(settings: Settings, name: str, processes: int) -> int:
    """Rebuilds projection `name` from zero in `processes` processes; returns the
    position it reached (the last event recorded when it started)."""
    if not settings.is_postgres:
        msg = "a rebuild in several processes needs PostgreSQL"
        raise ValueError(msg)
    runtime = build_runtime(settings)
    try:
        worker = runtime.workers[name]
        if worker.projection.every_partition is None:
            msg = f"{name} cannot be rebuilt in several processes"
            raise ValueError(msg)
        lock_options = {"isolation_level": "AUTOCOMMIT"}
        with runtime.engine.connect().execution_options(**lock_options) as lock:
            key = rebuild_lock_key(name)
            if not lock.execute(select(func.pg_try_advisory_lock(key))).scalar():
                msg = f"{name} is being rebuilt by another process"
                raise RebuildFailed(msg)
            try:
                with runtime.engine.begin() as conn:
                    worker._empty(conn)
                    conn.execute(
                        insert(tracking).values(
                            projection=name,
                            application=runtime.app.name,
                            notification_id=REBUILDING,
                        )
                    )
                stop = runtime.app.recorder.max_notification_id() or 0
                log.info("projection.rebuild_started", projection=name, processes=processes)
                context = multiprocessing.get_context("spawn")
                children = [
                    context.Process(
                        target=_rebuild_partition,
                        args=(settings, name, partition, processes, stop),
                        name=f"rebuild-{name}-{partition}",
                    )
                    for partition in range(processes)
                ]
                for child in children:
                    child.start()
                for child in children:
                    child.join()
                failed = [c.name for c in children if c.exitcode != 0]
                if failed:
                    msg = f"{', '.join(failed)} failed; {name} is rebuilt at the next start"
                    raise RebuildFailed(msg)
                with runtime.engine.begin() as conn:
                    worker.projection.finish_rebuild(conn)
                    advance_position(conn, name, runtime.app.name, REBUILDING, stop)
            finally:
                lock.execute(select(func.pg_advisory_unlock(key)))
        worker.projection.reset_cache()
        log.info("projection.rebuilt", projection=name, processes=processes, position=stop)
        return stop
    finally:
        runtime.close()


def _rebuild_partition(
    settings: Settings, name: str, partition: int, partitions: int, stop: int
) -> None:
    """One process of a rebuild: applies its partition of the log up to `stop`."""
    configure_logging(settings)
    runtime = build_runtime(settings)
    try:
        worker = PartitionWorker(
            runtime.app,
            runtime.engine,
            runtime.workers[name].projection,
            partition=partition,
            partitions=partitions,
            stop=stop,
            batch_size=settings.projection_batch_size,
            max_batch_size=settings.projection_catch_up_batch_size,
        )
        try:
            read = worker.catch_up()
        finally:
            worker.stop()
        log.info("projection.partition_rebuilt", projection=name, partition=partition, read=read)
    finally:
        runtime.close()
