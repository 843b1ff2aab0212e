"""The loop committer's batching and its edges, on a store in memory (the PostgreSQL
store itself: tests/integration/test_application.py and test_postgres_recorder.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent

from slrt.group_commit import GroupCommitClosed
from slrt.loop_commit import LoopCommitter


class _Aggregate:
    def __init__(self, name: str) -> None:
        self.name = name

    def collect_events(self) -> list[str]:
        return [self.name]


def _encode(name: str) -> StoredEvent:
    return StoredEvent(originator_id=name, originator_version=1, topic="t", state=name.encode())


class _PgConn:
    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    def finish(self) -> None:
        self._connection.closed = True


class _Connection:
    def __init__(self) -> None:
        self.closed = False
        self.pgconn = _PgConn(self)

    async def close(self) -> None:
        self.closed = True


class _Store:
    """Appends held until released (so commands queue behind a batch); can refuse a
    name as a conflict or fail a batch as a lost connection would."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.stored: dict[str, int] = {}
        self.release = asyncio.Event()
        self.release.set()
        self.conflicting: set[str] = set()
        self.lose_next = False
        self.connections: list[_Connection] = []
        self.recovered: list[tuple[list[str], BaseException, str]] = []

    async def connect(self) -> _Connection:
        self.connections.append(_Connection())
        return self.connections[-1]

    async def append(self, connection: _Connection, stored: Sequence[StoredEvent]) -> list[int]:
        assert not connection.closed
        names = [str(s.originator_id) for s in stored]
        self.batches.append(names)
        await self.release.wait()
        if self.lose_next:
            self.lose_next = False
            self._store(names)  # committed, but the answer never comes
            raise OSError("server closed the connection unexpectedly")
        if self.conflicting & set(names):
            raise IntegrityError("duplicate key")
        return self._store(names)

    def append_after(self, stored: Sequence[StoredEvent], error: BaseException) -> list[int]:
        names = [str(s.originator_id) for s in stored]
        self.recovered.append((names, error, threading.current_thread().name))
        return [self.stored[n] for n in names]  # found stored, as the look-up would

    def _store(self, names: list[str]) -> list[int]:
        for name in names:
            self.stored[name] = len(self.stored) + 1
        return [self.stored[n] for n in names]


def _committer(
    store: _Store, recorded: list[Any] | None = None, in_flight: int = 1
) -> LoopCommitter:
    return LoopCommitter(
        store,
        encode=_encode,
        recorded=(recorded.extend if recorded is not None else lambda _: None),
        max_batch=3,
        in_flight=in_flight,
    )


async def _held(committer: LoopCommitter, store: _Store, name: str) -> asyncio.Task[None]:
    """A command whose batch is being saved, held in the store until released."""
    store.release.clear()
    task = asyncio.create_task(committer.commit_async([_Aggregate(name)]))
    while not store.batches:
        await asyncio.sleep(0.001)
    return task


def test_commands_queued_while_a_batch_is_saved_leave_together_as_the_next() -> None:
    store, recorded = _Store(), []
    committer = _committer(store, recorded)

    async def scenario() -> None:
        first = await _held(committer, store, "a")
        rest = [
            asyncio.create_task(committer.commit_async([_Aggregate(n)]))
            for n in ("b", "c", "d", "e")
        ]
        await asyncio.sleep(0.01)
        assert store.batches == [["a"]]  # one batch in flight at a time
        store.release.set()
        await asyncio.gather(first, *rest)

    asyncio.run(scenario())
    # The four queued behind "a" leave as soon as it is saved, max_batch at a time.
    assert store.batches == [["a"], ["b", "c", "d"], ["e"]]
    assert [(r.domain_event, r.notification.id) for r in recorded] == [
        ("a", 1),
        ("b", 2),
        ("c", 3),
        ("d", 4),
        ("e", 5),
    ]
    assert (committer.batches, committer.commands) == (3, 5)
    assert len(store.connections) == 1  # the loop's connection, kept between batches


def test_a_conflict_in_a_batch_fails_only_its_command() -> None:
    store = _Store()
    store.conflicting = {"b"}
    committer = _committer(store)

    async def scenario() -> list[Any]:
        runs = (committer.commit_async([_Aggregate(n)]) for n in ("a", "b", "c"))
        return await asyncio.gather(*runs, return_exceptions=True)

    outcomes = asyncio.run(scenario())
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], IntegrityError)
    assert store.batches == [["a", "b", "c"], ["a"], ["b"], ["c"]]
    assert set(store.stored) == {"a", "c"}
    assert committer.split_batches == 1


def test_a_batch_whose_answer_is_lost_goes_to_the_recovery_in_a_worker_thread() -> None:
    store, recorded = _Store(), []
    store.lose_next = True
    committer = _committer(store, recorded)

    async def scenario() -> None:
        await asyncio.gather(*(committer.commit_async([_Aggregate(n)]) for n in ("a", "b")))
        await committer.commit_async([_Aggregate("c")])

    asyncio.run(scenario())
    [(names, error, thread)] = store.recovered
    assert names == ["a", "b"] and isinstance(error, OSError)
    assert thread != threading.main_thread().name
    assert [r.notification.id for r in recorded] == [1, 2, 3]
    # The broken connection was closed; the next batch opened another.
    assert [c.closed for c in store.connections] == [True, False]
    assert committer.recovered_batches == 1


def test_a_failed_recovery_fails_the_batchs_commands() -> None:
    store = _Store()
    store.lose_next = True

    def refuse(stored: Sequence[StoredEvent], error: BaseException) -> list[int]:
        raise IntegrityError("duplicate key")

    store.append_after = refuse  # type: ignore[method-assign]
    committer = _committer(store)

    async def scenario() -> None:
        await committer.commit_async([_Aggregate("a")])

    with pytest.raises(IntegrityError):
        asyncio.run(scenario())


def test_a_cancelled_caller_leaves_its_command_in_the_batch() -> None:
    store = _Store()
    committer = _committer(store)

    async def scenario() -> None:
        holding = await _held(committer, store, "a")
        queued = asyncio.create_task(committer.commit_async([_Aggregate("b")]))
        kept = asyncio.create_task(committer.commit_async([_Aggregate("c")]))
        await asyncio.sleep(0.01)
        queued.cancel()
        store.release.set()
        await asyncio.gather(holding, kept)

    asyncio.run(scenario())
    assert store.batches == [["a"], ["b", "c"]]
    assert set(store.stored) == {"a", "b", "c"}


def test_each_loop_has_its_own_connection_and_an_ended_loops_is_closed() -> None:
    store = _Store()
    committer = _committer(store)
    asyncio.run(committer.commit_async([_Aggregate("a")]))
    asyncio.run(committer.commit_async([_Aggregate("b")]))  # a new loop
    assert [c.closed for c in store.connections] == [True, False]
    committer.close()
    assert [c.closed for c in store.connections] == [True, True]
    with pytest.raises(GroupCommitClosed):
        asyncio.run(committer.commit_async([_Aggregate("c")]))
    assert set(store.stored) == {"a", "b"}


def test_a_batch_in_flight_when_the_committer_closes_is_saved_and_its_connection_closed() -> None:
    store = _Store()
    committer = _committer(store)

    async def scenario() -> None:
        first = await _held(committer, store, "a")
        committer.close()  # as the service stops, with "a" being saved
        store.release.set()
        await first

    asyncio.run(scenario())
    assert set(store.stored) == {"a"}
    assert [c.closed for c in store.connections] == [True]


def test_a_batch_cancelled_with_its_loop_cancels_its_callers_and_starts_no_other() -> None:
    store = _Store()
    committer = _committer(store)

    async def scenario() -> None:
        first = await _held(committer, store, "a")
        second = asyncio.create_task(committer.commit_async([_Aggregate("b")]))
        await asyncio.sleep(0.01)
        state = committer._states[asyncio.get_running_loop()]
        [saving] = state.saving
        saving.cancel()  # as asyncio.run does to what is left when it ends
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(first, timeout=5)
        await asyncio.sleep(0.01)
        assert not state.saving and not second.done()
        second.cancel()

    asyncio.run(scenario())
    assert store.batches == [["a"]]


def test_a_second_batch_starts_once_as_many_wait_as_the_one_in_flight_holds() -> None:
    store, recorded = _Store(), []
    committer = _committer(store, recorded, in_flight=2)

    async def scenario() -> None:
        store.release.clear()
        first = [asyncio.create_task(committer.commit_async([_Aggregate(n)])) for n in ("a", "b")]
        await asyncio.sleep(0.01)
        assert store.batches == [["a", "b"]]
        c = asyncio.create_task(committer.commit_async([_Aggregate("c")]))
        await asyncio.sleep(0.01)
        assert store.batches == [["a", "b"]]  # one waits; the batch in flight holds two
        d = asyncio.create_task(committer.commit_async([_Aggregate("d")]))
        await asyncio.sleep(0.01)
        assert store.batches == [["a", "b"], ["c", "d"]]  # two in flight
        e = asyncio.create_task(committer.commit_async([_Aggregate("e")]))
        f = asyncio.create_task(committer.commit_async([_Aggregate("f")]))
        await asyncio.sleep(0.01)
        assert len(store.batches) == 2  # no third while two are in flight
        store.release.set()
        await asyncio.gather(*first, c, d, e, f)

    asyncio.run(scenario())
    assert store.batches == [["a", "b"], ["c", "d"], ["e", "f"]]
    assert sorted(r.domain_event for r in recorded) == ["a", "b", "c", "d", "e", "f"]
    # Each batch in flight had its own connection; both were kept for the next.
    assert len(store.connections) == 2 and not any(c.closed for c in store.connections)
    committer.close()
    assert all(c.closed for c in store.connections)


def test_one_in_flight_keeps_the_rest_waiting_however_many_they_are() -> None:
    store = _Store()
    committer = _committer(store, in_flight=1)

    async def scenario() -> None:
        first = await _held(committer, store, "a")
        rest = [asyncio.create_task(committer.commit_async([_Aggregate(n)])) for n in ("b", "c")]
        await asyncio.sleep(0.01)
        assert store.batches == [["a"]]
        store.release.set()
        await asyncio.gather(first, *rest)

    asyncio.run(scenario())
    assert store.batches == [["a"], ["b", "c"]]
