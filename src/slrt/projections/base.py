"""Tracked projections: each event is applied exactly once.

A projection's rows and its position (the last notification id it applied) are
written in one transaction of the read-model database. The position is moved
with a compare-and-set, so two workers running the same projection cannot both
apply a batch. Projections follow the event store by polling, and are woken early
by saves in the same process; SQLite has no subscribe, and polling also means a
lost notification can never stall a projection.
"""

from __future__ import annotations

import gc
import hashlib
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import structlog
from eventsourcing.application import Application
from eventsourcing.persistence import Notification
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    String,
    Table,
    func,
    insert,
    select,
    update,
)

from slrt.background import BackgroundLoop
from slrt.db import empty_tables, metadata, upsert
from slrt.projections.decoding import EventDecoder

log = structlog.get_logger("slrt.projections")

_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_resume = False


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pauses Python's cyclic garbage collector while a batch runs (reference counting
    still frees everything a batch drops). A catch-up keeps a hundred thousand rows in
    memory, and each full collection walks them all: measured on 1,000,000 events, the
    collector took 44 % of the catch-up. Concurrent pauses (one per worker thread) end
    when the last one ends; a collector that was off stays off."""
    global _gc_pauses, _gc_resume
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_resume = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_resume:
                gc.enable()


tracking = Table(
    "projection_tracking",
    metadata,
    Column("projection", String(100), primary_key=True),
    Column("application", String(100), nullable=False),
    Column("notification_id", Integer, nullable=False),
)


#: The version of each projection's tables and rules the stored rows were made with.
projection_versions = Table(
    "projection_versions",
    metadata,
    Column("projection", String(100), primary_key=True),
    Column("version", Integer, nullable=False),
)


#: Where a rebuild from zero ends: the last notification recorded when the projection's
#: rows were thrown away. Until its position reaches it, the read model lacks old rows,
#: not only the newest (`read_model_state`).
projection_rebuilds = Table(
    "projection_rebuilds",
    metadata,
    Column("projection", String(100), primary_key=True),
    Column("until_notification_id", Integer, nullable=False),
)


#: The tracked position of a projection while several processes rebuild it
#: (slrt.projections.parallel): its own workers leave it alone until the rebuild ends.
REBUILDING = -1


def rebuild_lock_key(name: str) -> int:
    """The PostgreSQL advisory lock a rebuild in several processes holds while it runs."""
    digest = hashlib.sha256(f"slrt-rebuild:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def rebuild_running(conn: Connection, name: str) -> bool:
    """True while a process of a rebuild of `name` in several processes holds its lock
    (shared by all of them; PostgreSQL). A position left at REBUILDING without it is a
    rebuild that was interrupted."""
    if conn.dialect.name != "postgresql":
        return False
    free = conn.execute(select(func.pg_try_advisory_xact_lock(rebuild_lock_key(name)))).scalar()
    return not free


def read_position(conn: Connection, name: str) -> int:
    """The last notification id the tracked process `name` has dealt with (0: none)."""
    row = conn.execute(
        select(tracking.c.notification_id).where(tracking.c.projection == name)
    ).first()
    return int(row[0]) if row else 0


def read_progress(conn: Connection, name: str) -> tuple[int, int | None]:
    """The read model's position, and where a rebuild of it from zero ends (None: it
    was never rebuilt). Read them before the rows, on their connection: the rows then
    include at least what they say."""
    until = conn.execute(
        select(projection_rebuilds.c.until_notification_id).where(
            projection_rebuilds.c.projection == name
        )
    ).scalar()
    return read_position(conn, name), until


def read_model_state(position: int, head: int, until: int | None) -> dict[str, Any]:
    """How current a read model is, as the API shows it: the last event it includes, how
    many recorded events it does not include yet, and whether it is being rebuilt from
    zero (its older rows are not all there then): in this or another process until its
    position reaches `until`, the end the rebuild started from; or in several other
    processes (it has no position then)."""
    if position == REBUILDING:
        return {"position": None, "lag": head, "rebuilding": True}
    return {
        "position": position,
        "lag": max(0, head - position),
        "rebuilding": until is not None and position < until,
    }


def mark_rebuild(conn: Connection, name: str, until: int) -> None:
    """Records that `name` is rebuilt from zero up to notification `until`."""
    row = {"projection": name, "until_notification_id": until}
    upsert(conn, projection_rebuilds, ("projection",), [row])


def advance_position(conn: Connection, name: str, application: str, old: int, new: int) -> None:
    """Moves a tracked position from `old` to `new` by compare-and-set, so two processes
    doing the same work cannot both move it; the loser gets PositionMoved."""
    if old == 0:
        exists = conn.execute(
            select(tracking.c.projection).where(tracking.c.projection == name)
        ).first()
        if exists is None:
            conn.execute(
                insert(tracking).values(
                    projection=name, application=application, notification_id=new
                )
            )
            return
    moved = conn.execute(
        update(tracking)
        .where(tracking.c.projection == name, tracking.c.notification_id == old)
        .values(notification_id=new)
    )
    if moved.rowcount != 1:
        msg = f"{name}: another worker moved the position from {old}"
        raise PositionMoved(msg)


class Projection(ABC):
    """A read model: applies events to its tables inside the caller's transaction."""

    name: str
    tables: tuple[Table, ...] = ()
    #: The event names (e.g. "Household.Registered") it applies; empty means every event.
    #: Others are skipped without being decoded (or decrypted).
    handles: frozenset[str] = frozenset()
    #: Raised whenever a change makes rows projected before it wrong or incomplete (new
    #: tables, changed rules, a fixed bug): stores projected with another version are
    #: rebuilt from zero when the runtime starts.
    version: int = 1
    #: How many notifications one batch may read while catching up, when the projection
    #: bounds its own memory (batch_full) instead of the worker's limit.
    catch_up_batch_size: int | None = None

    @abstractmethod
    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        """Applies one event. Must be deterministic: a rebuild gives the same rows."""

    def before_page(self, conn: Connection, page: Sequence[Notification]) -> None:  # noqa: B027
        """Called with each page of notifications before its events are applied: a
        projection may load, in one query, the rows the page's events will need."""

    def finish_batch(self, conn: Connection) -> None:  # noqa: B027 - optional hook
        """Work done once per batch (e.g. writing the desils the batch changed)."""

    def batch_full(self) -> bool:
        """True when the batch holds as much as it should in memory: a worker that is
        catching up then ends the batch even if more notifications wait."""
        return False

    def reset_cache(self) -> None:  # noqa: B027 - optional hook
        """Forget anything kept in memory between batches: called when a batch rolled
        back, or when the position moved under another worker, so memory and tables
        cannot disagree."""

    #: Set on a projection that several processes can rebuild together (see
    #: slrt.projections.parallel): the topics of the events every process applies.
    #: Every other event is applied by one process, chosen by its aggregate's id.
    every_partition: tuple[str, ...] | None = None

    def as_partition(self, partition: int, partitions: int) -> None:
        """From now on, writes only the rows of its partition's aggregates, and nothing
        that needs every partition's rows (that is left to finish_rebuild)."""
        msg = f"{self.name} cannot be rebuilt in several processes"
        raise NotImplementedError(msg)

    def finish_rebuild(self, conn: Connection) -> None:  # noqa: B027 - optional hook
        """Work done once every partition of a rebuild is applied (e.g. ranking)."""


class BatchProjection(Projection):
    """A projection that applies a batch's events together (`apply_batch`, at the end of
    the batch): it reads the rows they touch at once and writes each once."""

    def __init__(self) -> None:
        self._pending: list[Any] = []

    def reset_cache(self) -> None:
        self._pending.clear()

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        self._pending.append(event)

    def finish_batch(self, conn: Connection) -> None:
        events, self._pending = self._pending, []
        self.apply_batch(conn, events)

    @abstractmethod
    def apply_batch(self, conn: Connection, events: list[Any]) -> None:
        """Applies the batch's events, in order."""


#: Page size once a worker knows it is behind (measured on 1,000,000 events: pages of 500
#: cost 11 % more than pages of 5,000).
CATCH_UP_PAGE = 5_000


class ProjectionWorker(BackgroundLoop):
    """Feeds one projection from the application's notification log."""

    def __init__(
        self,
        app: Application[Any],
        engine: Engine,
        projection: Projection,
        *,
        batch_size: int = 500,
        max_batch_size: int | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        self.app = app
        self.engine = engine
        self.projection = projection
        self.batch_size = batch_size
        #: None: batches never grow; else the projection's own limit, if it has one.
        limit = max_batch_size and (projection.catch_up_batch_size or max_batch_size)
        self.max_batch_size = max(batch_size, limit or batch_size)
        self.decoder = EventDecoder(app.mapper)
        self.poll_interval = poll_interval
        super().__init__()
        self.error: BaseException | None = None
        #: The position this worker last committed; anything else means memory is stale.
        self._committed: int | None = None
        self._read_ahead: ThreadPoolExecutor | None = None
        #: Set by the runtime where the projection can be rebuilt in several processes
        #: (slrt.projections.parallel): a started worker with at least
        #: `in_processes_from` events to apply from zero runs it (until `stop`).
        self.parallel_rebuild: Callable[[threading.Event], int] | None = None
        self.in_processes_from = 0

    @property
    def name(self) -> str:
        return self.projection.name

    def position(self) -> int:
        with self.engine.connect() as conn:
            return self._position(conn)

    def _position(self, conn: Connection) -> int:
        return read_position(conn, self.name)

    def lag(self) -> int:
        """How many notifications are recorded but not yet applied."""
        return max(0, self._head() - self.position())

    def state(self, head: int) -> dict[str, Any]:
        """`read_model_state` of this worker's read model."""
        with self.engine.connect() as conn:
            position, until = read_progress(conn, self.name)
        return read_model_state(position, head, until)

    def run_once(self) -> int:
        """Applies the next batch in one transaction; returns how many notifications it read.

        A batch is one page of `batch_size` notifications when the projection is up to
        date. When it is behind (pages come back full), the batch goes on reading pages
        up to `max_batch_size` notifications, or until the projection says it holds
        enough: a projection writes each row it touches once per batch, so a long
        catch-up in big batches writes a household touched by many events once.
        """
        try:
            with cyclic_gc_paused(), self.engine.begin() as conn:
                start = self._position(conn)
                if start == REBUILDING:  # other processes rebuild it (parallel.py)
                    if rebuild_running(conn, self.name):
                        return 0
                    self._rebuild_interrupted(conn)
                    start = 0
                if start != self._committed:
                    self.projection.reset_cache()
                last = read = 0
                limit = self.batch_size
                page: Sequence[Notification] = self._select(start + 1, limit)
                while True:
                    ahead = None
                    if len(page) == limit:
                        # Behind: bigger pages (fewer round trips), within the batch's
                        # limit; the next is read while this one is applied.
                        limit = min(max(limit, CATCH_UP_PAGE), self.max_batch_size - read - limit)
                        if limit > 0:
                            ahead = self._reader().submit(self._select, page[-1].id + 1, limit)
                    if page:
                        self._apply_page(conn, page)
                        last, read = page[-1].id, read + len(page)
                    if ahead is None or self.projection.batch_full():
                        break
                    page = ahead.result()
                if not read:
                    self._committed = start
                    return 0
                self.projection.finish_batch(conn)
                self._advance(conn, start, last)
        except BaseException:
            self.projection.reset_cache()
            self._committed = None
            raise
        self._committed = last
        return read

    def _select(self, start: int, limit: int) -> Sequence[Notification]:
        return self.app.recorder.select_notifications(start=start, limit=limit)

    def _reader(self) -> ThreadPoolExecutor:
        """The thread that reads the next page while a catch-up applies this one: the
        database works on the other core instead of the worker waiting for it (measured
        on 300,000 events: PostgreSQL waits were 10 % of a catch-up)."""
        if self._read_ahead is None:
            self._read_ahead = ThreadPoolExecutor(1, thread_name_prefix=f"{self.thread_name}-read")
        return self._read_ahead

    def _stopped(self) -> None:
        if self._read_ahead is not None:
            self._read_ahead.shutdown(wait=True)
            self._read_ahead = None

    def _apply_page(self, conn: Connection, page: Sequence[Notification]) -> None:
        handles = self.projection.handles
        decode = self.decoder.decode
        apply = self.projection.apply
        self.projection.before_page(conn, page)
        for notification in page:
            if handles and notification.topic.rpartition(":")[2] not in handles:
                continue
            apply(conn, decode(notification), notification.id)

    def _advance(self, conn: Connection, old: int, new: int) -> None:
        advance_position(conn, self.name, self.app.name, old, new)

    def catch_up(self) -> int:
        """Applies everything recorded so far; returns how many notifications it read."""
        total = 0
        while read := self.run_once():
            total += read
        return total

    @property
    def thread_name(self) -> str:
        return f"projection-{self.name}"

    def _loop(self) -> None:
        log.info("projection.started", projection=self.name, position=self.position())
        self._from_zero_in_processes()
        while not self._stop.is_set():
            try:
                if self.run_once():
                    continue
            except PositionMoved as error:
                log.info("projection.position_moved", projection=self.name, detail=str(error))
                continue
            except Exception as error:  # keep following; the batch was rolled back
                self.error = error
                log.exception("projection.batch_failed", projection=self.name)
                self._stop.wait(self.poll_interval * 4)
                continue
            self._wake.wait(self.poll_interval)
            self._wake.clear()
        log.info("projection.stopped", projection=self.name, position=self.position())

    def _from_zero_in_processes(self) -> None:
        """A worker that starts from zero far behind rebuilds in several processes, where
        the projection can; if that fails, it catches up here, from zero again."""
        if self.parallel_rebuild is None:
            return
        try:
            behind = self.app.recorder.max_notification_id() or 0
            if self.position() != 0 or behind < self.in_processes_from:
                return
            self.parallel_rebuild(self._stop)
        except Exception as error:
            log.warning(
                "projection.rebuild_in_processes_failed",
                projection=self.name,
                error=str(error),
                action="stopping" if self._stop.is_set() else "catching up in this process",
            )

    def check_version(self) -> bool:
        """Rebuilds from zero (creates the tables again and forgets the position; the
        workers then replay) when the stored rows were projected by another version of
        the projection; rows from before versions were recorded count as version 1.
        True if it reset. Runs under the runtime's schema lock, so processes starting
        together take turns (slrt.runtime.schema_lock)."""
        wanted = self.projection.version
        with self.engine.begin() as conn:
            # A rebuild in several processes that stopped half-way left rows without a
            # position: they are thrown away, and the workers rebuild from zero.
            interrupted = read_position(conn, self.name) == REBUILDING and not rebuild_running(
                conn, self.name
            )
            if interrupted:
                self._rebuild_interrupted(conn)
            stored = conn.execute(
                select(projection_versions.c.version).where(
                    projection_versions.c.projection == self.name
                )
            ).scalar()
            if stored is None:
                built = read_position(conn, self.name)
                stored = 1 if built else wanted
                conn.execute(
                    insert(projection_versions).values(projection=self.name, version=wanted)
                )
                if not built and (head := self._head()):
                    # A read model new to a store that holds events: built from zero.
                    mark_rebuild(conn, self.name, head)
            elif stored != wanted:
                conn.execute(
                    update(projection_versions)
                    .where(projection_versions.c.projection == self.name)
                    .values(version=wanted)
                )
            changed = stored != wanted
            if changed:
                log.warning(
                    "projection.version_changed",
                    projection=self.name,
                    stored=stored,
                    version=wanted,
                    action="rebuilding from zero",
                )
                # Created again, not only emptied: the new version may have new columns.
                for table in reversed(self.projection.tables):
                    table.drop(conn, checkfirst=True)
                for table in self.projection.tables:
                    table.create(conn)
                conn.execute(tracking.delete().where(tracking.c.projection == self.name))
                mark_rebuild(conn, self.name, self._head())
        if not (changed or interrupted):
            return False
        self.projection.reset_cache()
        self._committed = None
        return True

    def _rebuild_interrupted(self, conn: Connection) -> None:
        """Throws away the rows of a rebuild in several processes that stopped half-way
        (its processes are gone: none holds the lock); the workers rebuild from zero."""
        log.warning(
            "projection.rebuild_interrupted", projection=self.name, action="rebuilding from zero"
        )
        self._empty(conn)
        self.projection.reset_cache()
        self._committed = None

    def _empty(self, conn: Connection, *, at_once: bool = False) -> None:
        """Empties the tables and forgets the position. `at_once` (TRUNCATE on
        PostgreSQL) holds readers off until the transaction ends: short ones only."""
        if at_once:
            empty_tables(conn, self.projection.tables)
        else:
            for table in self.projection.tables:
                conn.execute(table.delete())
        conn.execute(tracking.delete().where(tracking.c.projection == self.name))
        mark_rebuild(conn, self.name, self._head())

    def _head(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def reset(self) -> None:
        """Empties the projection's tables and position, for a rebuild from zero."""
        with self.engine.begin() as conn:
            self._empty(conn, at_once=True)
        self.projection.reset_cache()
        self._committed = None

    def hand_over(self) -> None:
        """Empties the projection and sets its position to REBUILDING, in one
        transaction, for a rebuild in other processes (slrt.projections.parallel)."""
        with self.engine.begin() as conn:
            self._empty(conn, at_once=True)
            conn.execute(
                insert(tracking).values(
                    projection=self.name, application=self.app.name, notification_id=REBUILDING
                )
            )
        self.projection.reset_cache()
        self._committed = None


class PartitionWorker(ProjectionWorker):
    """Applies one partition of the log, up to `stop`, for a rebuild in several
    processes. Its position is kept in memory: the projection's tracked position is the
    rebuild's, moved once when every partition is done (slrt.projections.parallel)."""

    def __init__(
        self,
        app: Application[Any],
        engine: Engine,
        projection: Projection,
        *,
        partition: int,
        partitions: int,
        stop: int,
        batch_size: int,
        max_batch_size: int,
        parent: int,
    ) -> None:
        super().__init__(
            app, engine, projection, batch_size=batch_size, max_batch_size=max_batch_size
        )
        self.partition = partition
        self.partitions = partitions
        self.stop_at = stop
        self.every_partition = list(projection.every_partition or ())
        #: The coordinating process (slrt.projections.parallel), which this one outlives
        #: only if it was killed.
        self.parent = parent
        projection.as_partition(partition, partitions)

    def _position(self, conn: Connection) -> int:
        return self._committed or 0

    def _advance(self, conn: Connection, old: int, new: int) -> None:
        """Nothing is tracked: a partition that fails fails the whole rebuild."""

    def _select(self, start: int, limit: int) -> Sequence[Notification]:
        if os.getppid() != self.parent:
            # Its rebuild's coordinating process is gone: stop before writing more.
            msg = f"{self.name}: the process that started this rebuild is gone"
            raise RuntimeError(msg)
        return self.app.recorder.select_partition(  # type: ignore[attr-defined]
            start,
            limit,
            stop=self.stop_at,
            partition=self.partition,
            partitions=self.partitions,
            every_partition=self.every_partition,
        )


class PositionMoved(RuntimeError):
    """Another worker applied this batch first; ours was rolled back."""
