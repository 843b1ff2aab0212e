"""Group commit on the event loop: the HTTP routes' commands saved without a thread.

The group committer (slrt.group_commit) saves batches in a thread of its own, and each
batch crosses threads twice: its commands are handed to the committer, their answers
back to the loop, and each time one thread waits for the GIL that the other holds. With
PostgreSQL, a command decided on an event loop is saved here instead, on that loop, with
an asynchronous connection (ADR 0012):

- a command's events are encoded and queued; if no batch of this loop is being saved,
  one is started at the end of the loop's turn with whatever is queued by then;
- while a batch is being saved, the loop goes on deciding the next requests, whose
  commands queue up and leave as the next batch as soon as it is saved. There is no
  window: a batch is as large as the commands that came while the last one was saved
  (`max_batch` at most);
- up to `in_flight` batches of a loop are saved at once, each on its own connection
  (`SLRT_GROUP_COMMIT_IN_FLIGHT`, 2 by default): another starts before the one being
  saved ends only once as many commands wait as the smallest batch being saved holds.
  Approvals reach the committer in waves (a group read's callers are decided in one
  turn of the loop), and a wave that waited for the batch before it left the loop idle
  while that batch was committed: two in flight gave approvals 1.04× the rate at 0.97×
  the API's CPU per approval. Starting the second with whatever waits (one or two
  registrations) made registrations' batches small: 0.88× the rate, 1.11× the CPU;
  with the rule, registrations are unchanged (bench/README.md, twenty-third session).
  The batches in flight take the event table's lock one after the other in the
  database, as any two processes' do; a command of one that conflicts with the other
  is refused as any conflict is;
- a batch that conflicts is saved again one command at a time (each caller then hears
  only its own conflict), as in the group committer;
- a statement that fails otherwise (a lost connection, after which the batch may or
  may not be stored; a lock timeout) is handed to the store's recovery in a worker
  thread (`LoopStore.append_after`): the synchronous append, with its retries and its
  look-up of a batch whose answer was lost.

A caller is told its events are durable once its batch's transaction has committed. A
caller cancelled meanwhile (its client went away) leaves its command in the batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from eventsourcing.persistence import IntegrityError, Notification, Recording, StoredEvent

from slrt.group_commit import GroupCommitClosed

log = structlog.get_logger("slrt.loop_commit")


class LoopStore(Protocol):
    """What the committer needs of the event store (the PostgreSQL recorder)."""

    async def connect(self) -> Any:
        """A new asynchronous connection, in autocommit."""

    async def append(self, connection: Any, stored_events: Sequence[StoredEvent]) -> list[int]:
        """Stores the events in one transaction on `connection`; their notification ids.
        Raises IntegrityError on a conflict (nothing stored); any other error is the
        driver's own."""

    def append_after(self, stored_events: Sequence[StoredEvent], error: BaseException) -> list[int]:
        """Called in a worker thread when `append` failed with `error`, not a conflict:
        stores the events unless the failed attempt did (looked up when its outcome is
        unknown) and returns their notification ids; retries as the synchronous append
        does. Raises IntegrityError on a conflict."""


@dataclass(slots=True)
class _Pending:
    events: list[Any]
    stored: list[StoredEvent]
    waiter: asyncio.Future[None]


@dataclass
class _LoopState:
    """One event loop's queue, its batches in flight (each with its number of commands)
    and its idle connections."""

    loop: asyncio.AbstractEventLoop
    queued: list[_Pending] = field(default_factory=list)
    saving: dict[asyncio.Task[None], int] = field(default_factory=dict)
    starting: bool = False
    connections: list[Any] = field(default_factory=list)


class LoopCommitter:
    def __init__(
        self,
        store: LoopStore,
        *,
        encode: Callable[[Any], StoredEvent],
        recorded: Callable[[list[Recording[Any]]], None],
        max_batch: int,
        in_flight: int = 1,
    ) -> None:
        self._store = store
        self.in_flight = in_flight
        self._encode = encode
        self._recorded = recorded
        self.max_batch = max_batch
        self.batches = 0
        self.commands = 0
        #: Batches that conflicted and were saved again one command at a time.
        self.split_batches = 0
        #: Batches whose statement failed without a conflict and went to the store's
        #: recovery in a worker thread.
        self.recovered_batches = 0
        self._states: dict[asyncio.AbstractEventLoop, _LoopState] = {}
        self._closed = False

    async def commit_async(self, aggregates: Sequence[Any]) -> None:
        """Saves the aggregates' new events in an upcoming batch of this loop; returns
        once they are durable, or raises what saving raised (IntegrityError on a
        conflict)."""
        if self._closed:
            raise GroupCommitClosed("the service is stopping; the command was not saved")
        state = self._state()
        events = [e for a in aggregates for e in a.collect_events()]
        stored = [self._encode(e) for e in events]
        waiter: asyncio.Future[None] = state.loop.create_future()
        state.queued.append(_Pending(events, stored, waiter))
        self._start_soon(state)
        await waiter

    def close(self) -> None:
        """Refuses later commands and closes the idle connections. (A batch still being
        saved on a running loop ends first: the server stops serving before this.)"""
        self._closed = True
        for state in self._states.values():
            _close_now(state)
        self._states.clear()

    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._states.get(loop)
        if state is None:
            for gone in [s for s in self._states.values() if s.loop.is_closed()]:
                _close_now(gone)  # a loop that ended (asyncio.run in tests, say)
                del self._states[gone.loop]
            state = self._states[loop] = _LoopState(loop)
        return state

    def _start_soon(self, state: _LoopState) -> None:
        """A batch starts at the end of this turn of the loop, unless one is already
        about to start or none may start yet (`_may_start`; then the next starts when a
        batch ends)."""
        if not state.starting and self._may_start(state):
            state.starting = True
            state.loop.call_soon(self._start, state)

    def _start(self, state: _LoopState) -> None:
        state.starting = False
        if not self._may_start(state):
            return
        batch = state.queued[: self.max_batch]
        del state.queued[: self.max_batch]
        state.saving[state.loop.create_task(self._save(state, batch))] = len(batch)

    def _may_start(self, state: _LoopState) -> bool:
        """Commands wait, and either no batch is being saved, or fewer than `in_flight`
        are and at least as many commands wait as the smallest of them holds."""
        if not state.queued:
            return False
        if not state.saving:
            return True
        fewer = len(state.saving) < self.in_flight
        return fewer and len(state.queued) >= min(state.saving.values())

    async def _save(self, state: _LoopState, batch: list[_Pending]) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.batches += 1
        self.commands += len(batch)
        try:
            await self._append(state, batch)
        except IntegrityError as error:
            if len(batch) == 1:
                _answer(batch, error)
            else:  # someone in the batch conflicts: each alone, in order
                self.split_batches += 1
                for pending in batch:
                    try:
                        await self._append(state, [pending])
                    except Exception as own:
                        _answer([pending], own)
        except asyncio.CancelledError:  # the loop is ending: no next batch
            for pending in batch:
                pending.waiter.cancel()
            raise
        except Exception as error:
            log.exception("loop_commit.failed", commands=len(batch))
            _answer(batch, error)
        finally:
            state.saving.pop(task, None)
        self._start_soon(state)

    async def _append(self, state: _LoopState, batch: list[_Pending]) -> None:
        """Saves the batch in one transaction, then answers each of its callers."""
        stored = [s for pending in batch for s in pending.stored]
        connection = state.connections.pop() if state.connections else None
        try:
            if connection is None or connection.closed:
                connection = await self._store.connect()
            ids = await self._store.append(connection, stored)
        except IntegrityError:
            await self._keep(state, connection)  # the server answered: still usable
            raise
        except Exception as error:
            if connection is not None:
                await connection.close()
            self.recovered_batches += 1
            ids = await asyncio.to_thread(self._store.append_after, stored, error)
        else:
            await self._keep(state, connection)
        events = [e for pending in batch for e in pending.events]
        self._recorded(
            [
                Recording(event, _notification(s, notification_id))
                for event, s, notification_id in zip(events, stored, ids, strict=True)
            ]
        )
        _answer(batch, None)

    async def _keep(self, state: _LoopState, connection: Any) -> None:
        """The connection stays for the loop's next batch, unless the committer was
        closed meanwhile (then nothing else will close it)."""
        if self._closed:
            await connection.close()
        else:
            state.connections.append(connection)


def _answer(batch: list[_Pending], error: BaseException | None) -> None:
    """Tells each caller still waiting that its events are durable, or what failed. A
    caller gone meanwhile is skipped; a failure it missed is logged."""
    for pending in batch:
        if pending.waiter.done():
            if error is not None:
                log.warning("loop_commit.unsaved_after_cancel", error=repr(error))
        elif error is None:
            pending.waiter.set_result(None)
        else:
            pending.waiter.set_exception(error)


def _notification(stored: StoredEvent, notification_id: int) -> Notification:
    return Notification(
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=stored.state,
        id=notification_id,
    )


def _close_now(state: _LoopState) -> None:
    """Closes a loop's idle connections from any thread: closing a psycopg connection
    waits for nothing (it sends Terminate and closes the socket)."""
    connections, state.connections = state.connections, []
    for connection in connections:
        if not connection.closed:
            connection.pgconn.finish()
