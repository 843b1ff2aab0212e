"""Group commit: concurrent commands saved together in one transaction.

Each command is decided on its own (in its caller's thread) and hands its aggregates to
the committer. The committer takes whatever is waiting (up to `max_batch`) and saves it
all in one transaction, so one commit (one fsync, one table lock on PostgreSQL) serves
many commands. A batch waits at most `window` for more. A command that waits for a read
before deciding is announced (`expect`): a batch holding one waits only while announced
commands are still being decided, so the commands read together are saved together and
at once. A batch of commands decided without waiting (on the event loop, one request
after another) waits the window for the requests behind them.

If the batch fails with a conflict, each command in it is saved alone, so one command's
conflict fails only that command (its caller then re-decides on fresh state). Each caller
gets its answer only after its own events are durable.

On PostgreSQL, commands decided on an event loop (the HTTP routes) are saved on that
loop instead, by slrt.loop_commit (ADR 0012); this thread saves the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog
from eventsourcing.persistence import IntegrityError

log = structlog.get_logger("slrt.group_commit")

Save = Callable[..., Any]
_STOPPING = "the service is stopping; the command was not saved"


class GroupCommitClosed(RuntimeError):
    """A command reached the committer after it was closed (the process is stopping)."""


def is_conflict(error: BaseException) -> bool:
    """A version conflict: the store refused an event version already taken. (The
    PostgreSQL append no longer pipelines its statements, so a conflict is never
    reported as "pipeline aborted" in its place.)"""
    return isinstance(error, IntegrityError)


@dataclass(slots=True)
class _Pending:
    #: The command's new events, collected from its aggregates before queuing, so a
    #: failed batch can save them again one command at a time.
    events: Sequence[Any]
    #: A caller in a thread (`submit`, `commit`) waits on `done`; a caller on an event
    #: loop (`commit_async`) on `waiter`, settled on its loop (`settle_on_loops`).
    done: Future[None] | None = None
    waiter: asyncio.Future[None] | None = None
    settled: bool = False
    #: Its caller announced it while deciding (`GroupCommitter.expect`).
    announced: bool = False
    #: Not a command: queued when the last announced command was closed unqueued, so
    #: that a batch waiting for it is saved now, not at the end of its window.
    wake: bool = False

    def start(self) -> bool:
        """False if the caller took the command out (cancelled `done`) while it was
        queued; otherwise it can no longer be cancelled."""
        return self.done is None or self.done.set_running_or_notify_cancel()


#: A caller on an event loop, its answer and what failed (None if nothing did).
Answer = tuple["asyncio.Future[Any]", Any, BaseException | None]


def settle_on_loops(answers: Iterable[Answer], *, lost: str | None = None) -> None:
    """Gives callers waiting on event loops their answers, from a batching thread: one
    `call_soon_threadsafe` per loop, not one per caller. A caller gone meanwhile
    (cancelled) is skipped; if it missed an error and `lost` names a log event, the
    error is logged under it. A closed loop has nobody waiting any more."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Answer]] = {}
    for answer in answers:
        by_loop.setdefault(answer[0].get_loop(), []).append(answer)
    for loop, on_loop in by_loop.items():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, on_loop, lost)


def _settle(answers: list[Answer], lost: str | None) -> None:
    for waiter, result, error in answers:
        if waiter.cancelled():
            if error is not None and lost is not None:
                log.warning(lost, error=repr(error))
        elif error is None:
            waiter.set_result(result)
        else:
            waiter.set_exception(error)


def _finish(pendings: Sequence[_Pending], error: BaseException | None) -> None:
    """Tells each caller not told yet that its events are durable, or what failed."""
    answers: list[Answer] = []
    for pending in pendings:
        if pending.settled:
            continue
        pending.settled = True
        if pending.done is not None:
            if error is None:
                pending.done.set_result(None)
            else:
                pending.done.set_exception(error)
        elif pending.waiter is not None:
            answers.append((pending.waiter, None, error))
    settle_on_loops(answers, lost="group_commit.unsaved_after_cancel")


class Expected:
    """A command being decided, whose commit the committer waits for (`window` at most)
    before it saves a batch. It is closed when the command is queued, or by `close` when
    it will not be (refused, or its caller went away); closing twice counts once. When
    the last one being decided is closed unqueued, a batch waiting for it is woken."""

    __slots__ = ("_committer", "open")

    def __init__(self, committer: GroupCommitter) -> None:
        self._committer = committer
        self.open = True
        committer._count_coming(1)

    def close(self) -> None:
        self._committer._queue_and_close(None, self)

    def __enter__(self) -> Expected:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


P = TypeVar("P")


class BatchingThread(Generic[P]):
    """A thread that serves queued items in batches, shared by the group committer and
    the group reader (slrt.group_read): `close` serves what is queued, then stops; an
    item queued after that is refused (`_refuse`), never left waiting."""

    def __init__(self, name: str) -> None:
        # SimpleQueue: put and get in C, no Condition to notify (a few µs per command).
        self._queue: queue.SimpleQueue[P | None] = queue.SimpleQueue()
        self._closed = False
        #: Set by the thread as it stops; anything queued later is refused.
        self._ended = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _take_batch(self, first: P) -> tuple[list[P], bool]:
        """The batch to serve, starting with `first`, and whether `close` was met."""
        raise NotImplementedError

    def _serve(self, batch: list[P]) -> None:
        raise NotImplementedError

    def _refuse(self, item: P) -> None:
        raise NotImplementedError

    def _enqueue(self, item: P) -> None:
        self._queue.put(item)
        if self._ended:  # queued as the thread stopped: nobody else will answer it
            self._refuse_leftovers()

    def close(self) -> None:
        """Serves what is queued, then stops; later items are refused."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._refuse_leftovers()

    def _refuse_leftovers(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._refuse(item)

    def _run(self) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is None:
                    return
                batch, closing = self._take_batch(first)
                self._serve(batch)
                if closing:
                    return
        finally:
            self._ended = True
            self._refuse_leftovers()


class GroupCommitter(BatchingThread[_Pending]):
    def __init__(self, save: Save, *, window: float, max_batch: int) -> None:
        self._save = save
        self.window = window
        self.max_batch = max_batch
        self.batches = 0
        self.commands = 0
        #: Batches that conflicted and were saved again one command at a time.
        self.split_batches = 0
        #: Commands being decided (`expect`), whose commits a batch waits for. Counted
        #: under a lock: callers in several threads (`run`) count too. Reentrant: a
        #: command queued as the committer stops is refused under it, and whatever its
        #: future's callbacks do may count again.
        self._coming = 0
        self._coming_lock = threading.RLock()
        super().__init__("group-commit")

    def expect(self) -> Expected:
        """Tells the committer a command is being decided: until it is queued (or the
        returned `Expected` is closed), a batch waits for it, `window` at most."""
        return Expected(self)

    def _count_coming(self, change: int) -> None:
        with self._coming_lock:
            self._coming += change

    def _queue_and_close(self, pending: _Pending | None, expected: Expected | None) -> None:
        """Queues `pending` and closes `expected` together, under the lock the committer
        reads the count with: it never sees the command queued but still coming (and
        waits out the window for it), nor no longer coming but not yet queued."""
        with self._coming_lock:
            if pending is not None:
                pending.announced = expected is not None
                self._enqueue(pending)
            if expected is not None and expected.open:
                expected.open = False
                self._coming -= 1
                if pending is None and not self._coming:
                    self._enqueue(_Pending((), wake=True))

    def _still_coming(self) -> bool:
        with self._coming_lock:
            return self._coming > 0

    def commit(self, aggregates: Sequence[Any], expected: Expected | None = None) -> None:
        """Saves the aggregates' new events in some upcoming transaction; raises what
        saving raised (IntegrityError on a conflict)."""
        self.submit(aggregates, expected).result()

    async def commit_async(
        self, aggregates: Sequence[Any], expected: Expected | None = None
    ) -> None:
        """`commit` for an event loop: the loop is told when the events are durable. A
        caller cancelled meanwhile (its client went away) leaves the commit alone: its
        events are saved with the rest of the batch."""
        if self._closed:
            raise GroupCommitClosed(_STOPPING)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        events = [e for a in aggregates for e in a.collect_events()]
        self._queue_and_close(_Pending(events, waiter=waiter), expected)
        await waiter

    def submit(self, aggregates: Sequence[Any], expected: Expected | None = None) -> Future[None]:
        """Queues the aggregates' new events (and closes `expected`, the command's
        announcement); the future is done once they are durable (or holds what saving
        raised). Cancelling it before its batch starts takes the command out; once the
        batch has started, it cannot be cancelled."""
        if self._closed:
            raise GroupCommitClosed(_STOPPING)
        done: Future[None] = Future()
        events = [e for a in aggregates for e in a.collect_events()]
        self._queue_and_close(_Pending(events, done=done), expected)
        return done

    def _refuse(self, pending: _Pending) -> None:
        if not pending.wake and pending.start():
            _finish([pending], GroupCommitClosed(_STOPPING))

    def _take_batch(self, first: _Pending) -> tuple[list[_Pending], bool]:
        if first.wake:  # nothing was waiting for what it announces
            return [], False
        batch = [first] if first.start() else []
        deadline = time.perf_counter() + self.window
        closing = False
        announced = first.announced
        while len(batch) < self.max_batch:
            try:
                remaining = deadline - time.perf_counter()
                if announced and not self._still_coming():
                    remaining = 0
                item = (
                    self._queue.get_nowait()
                    if remaining <= 0
                    else self._queue.get(timeout=remaining)
                )
            except queue.Empty:
                break
            if item is None:
                closing = True
                break
            if item.wake:  # the last command being decided was refused: look again
                continue
            if item.start():  # else cancelled while queued
                batch.append(item)
                announced = announced or item.announced
        return batch, closing

    def _serve(self, batch: list[_Pending]) -> None:
        try:
            self._commit(batch)
        except BaseException as error:  # a bug here must not stop every command
            log.exception("group_commit.failed")
            _finish(batch, error)

    def _commit(self, batch: list[_Pending]) -> None:
        if not batch:
            return
        self.batches += 1
        self.commands += len(batch)
        if len(batch) > 1:
            try:
                self._save(*(e for pending in batch for e in pending.events))
            except BaseException as error:
                if not is_conflict(error):
                    _finish(batch, error)
                    return
                # Someone in the batch conflicts: save each alone below.
                self.split_batches += 1
            else:
                _finish(batch, None)
                return
        for pending in batch:
            try:
                self._save(*pending.events)
            except BaseException as error:
                _finish([pending], error)
            else:
                _finish([pending], None)
