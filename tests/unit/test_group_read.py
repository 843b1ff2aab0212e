"""The group reader: concurrent reads answered from one statement, each caller its own
share; failures, cancelled callers and a closed reader."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any
from uuid import UUID, uuid4

import pytest

from slrt.group_commit import GroupCommitClosed
from slrt.group_read import GroupReader


class _Store:
    """Stored events by aggregate; a read can be held, to let callers queue up."""

    def __init__(self, events: dict[UUID, list[Any]], error: BaseException | None = None) -> None:
        self.events = events
        self.error = error
        self.asked: list[list[UUID]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, ids: list[UUID]) -> dict[UUID, list[Any]]:
        self.asked.append(ids)
        self.started.set()
        assert self.release.wait(10)
        if self.error is not None:
            raise self.error
        return {i: self.events[i] for i in ids if i in self.events}


def test_callers_waiting_together_are_read_in_one_statement_and_get_their_own_share() -> None:
    a, b, c, unknown = uuid4(), uuid4(), uuid4(), uuid4()
    store = _Store({a: ["a1", "a2"], b: ["b1"], c: ["c1"]})
    store.release.clear()
    reader = GroupReader(store, max_batch=100)

    async def read_all() -> list[dict[UUID, list[Any]]]:
        first = asyncio.ensure_future(reader.read_async([a]))
        await asyncio.to_thread(store.started.wait, 5)  # the first read holds the reader
        rest = [reader.read_async(ids) for ids in ([b], [c, a], [unknown])]
        waiting = asyncio.gather(*rest)
        await asyncio.sleep(0.05)
        store.release.set()
        return [await first, *await waiting]

    try:
        answers = asyncio.run(read_all())
    finally:
        reader.close()
    assert answers == [{a: ["a1", "a2"]}, {b: ["b1"]}, {c: ["c1"], a: ["a1", "a2"]}, {unknown: []}]
    assert store.asked == [[a], [b, c, a, unknown]]  # one statement for the three waiting
    assert (reader.batches, reader.reads) == (2, 4)


def _read_while_the_first_holds_the_reader(
    reader: GroupReader, store: _Store, ids: list[UUID]
) -> None:
    """Reads ids[0] alone, and the other ids (one read each) while it holds the reader."""
    store.release.clear()
    store.started.clear()

    async def read_all() -> None:
        first = asyncio.ensure_future(reader.read_async(ids[:1]))
        await asyncio.to_thread(store.started.wait, 5)
        rest = asyncio.gather(*(reader.read_async([i]) for i in ids[1:]))
        await asyncio.sleep(0.05)
        store.release.set()
        await first
        await rest

    asyncio.run(read_all())


def test_a_batch_holds_at_most_max_batch_ids_unless_one_caller_asks_for_more() -> None:
    ids = [uuid4() for _ in range(5)]
    store = _Store({i: [str(i)] for i in ids})
    reader = GroupReader(store, max_batch=2)
    try:
        _read_while_the_first_holds_the_reader(reader, store, ids)
    finally:
        reader.close()
    assert [len(asked) for asked in store.asked] == [1, 2, 2]


def test_a_batch_smaller_than_the_last_waits_the_window_for_more() -> None:
    ids = [uuid4() for _ in range(6)]
    store = _Store({i: [str(i)] for i in ids})
    reader = GroupReader(store, max_batch=100, window=1.0)

    async def two_apart() -> None:
        lone = asyncio.ensure_future(reader.read_async([ids[4]]))
        await asyncio.sleep(0.2)  # well within the window: the batch is still waiting
        await asyncio.gather(lone, reader.read_async([ids[5]]))

    try:
        _read_while_the_first_holds_the_reader(
            reader, store, ids[:4]
        )  # a batch of 1, then one of 3
        asyncio.run(two_apart())
    finally:
        reader.close()
    assert store.asked[-1] == [ids[4], ids[5]]  # the second waited for and joined the first


def test_a_lone_caller_waits_for_nobody() -> None:
    a, b = uuid4(), uuid4()
    store = _Store({a: ["a1"], b: ["b1"]})
    reader = GroupReader(store, max_batch=100, window=60.0)
    started = time.monotonic()
    try:
        assert asyncio.run(reader.read_async([a])) == {a: ["a1"]}  # nothing read before
        assert asyncio.run(reader.read_async([b])) == {b: ["b1"]}  # after a batch of one
    finally:
        reader.close()
    assert time.monotonic() - started < 30  # neither waited out the 60 s window
    assert store.asked == [[a], [b]]


def test_the_window_ends_and_fewer_are_read() -> None:
    ids = [uuid4() for _ in range(5)]
    store = _Store({i: [str(i)] for i in ids})
    reader = GroupReader(store, max_batch=100, window=0.05)
    try:
        _read_while_the_first_holds_the_reader(reader, store, ids[:4])
        assert asyncio.run(reader.read_async([ids[4]])) == {ids[4]: [str(ids[4])]}
    finally:
        reader.close()
    assert store.asked[-1] == [ids[4]]


def test_a_failed_read_fails_its_callers_and_the_reader_goes_on() -> None:
    a = uuid4()
    store = _Store({a: ["a1"]}, error=ConnectionError("server closed the connection"))
    reader = GroupReader(store, max_batch=10)
    try:
        with pytest.raises(ConnectionError):
            asyncio.run(reader.read_async([a]))
        store.error = None
        assert asyncio.run(reader.read_async([a])) == {a: ["a1"]}
    finally:
        reader.close()


def test_a_caller_that_went_away_does_not_stop_the_others() -> None:
    a, b = uuid4(), uuid4()
    store = _Store({a: ["a1"], b: ["b1"]})
    store.release.clear()
    reader = GroupReader(store, max_batch=10)

    async def one_gives_up() -> dict[UUID, list[Any]]:
        gone = asyncio.ensure_future(reader.read_async([a]))
        await asyncio.to_thread(store.started.wait, 5)
        stays = asyncio.ensure_future(reader.read_async([b]))
        gone.cancel()
        store.release.set()
        return await stays

    try:
        assert asyncio.run(one_gives_up()) == {b: ["b1"]}
    finally:
        reader.close()


def test_a_closed_reader_refuses_reads_as_the_service_stopping() -> None:
    reader = GroupReader(_Store({}), max_batch=10)
    reader.close()
    with pytest.raises(GroupCommitClosed):
        asyncio.run(reader.read_async([uuid4()]))
