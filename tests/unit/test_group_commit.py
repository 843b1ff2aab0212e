"""The committer's edges: cancelled callers, a closed committer, failing saves."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from eventsourcing.persistence import IntegrityError
from structlog.testing import capture_logs

from slrt.group_commit import GroupCommitClosed, GroupCommitter


class _Aggregate:
    def __init__(self, event: Any) -> None:
        self.event = event

    def collect_events(self) -> list[Any]:
        return [self.event]


class _Store:
    """A save that can be held (to let commands queue up) and can refuse events."""

    def __init__(self, refuse: Any = None, error: BaseException | None = None) -> None:
        self.saved: list[Any] = []
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.refuse = refuse
        self.error = error or IntegrityError("duplicate key")

    def __call__(self, *events: Any) -> None:
        self.calls += 1
        self.started.set()
        assert self.release.wait(10)
        if self.refuse is not None and self.refuse in events:
            raise self.error
        self.saved.extend(events)


def test_a_command_cancelled_while_queued_is_not_saved_and_the_committer_goes_on() -> None:
    store = _Store()
    store.release.clear()
    committer = GroupCommitter(store, window=0.0, max_batch=10)
    try:
        holding = committer.submit([_Aggregate("first")])
        assert store.started.wait(5)  # "first" is being saved; the next ones queue
        cancelled = committer.submit([_Aggregate("cancelled")])
        kept = committer.submit([_Aggregate("kept")])
        assert cancelled.cancel()
        assert not holding.cancel()  # its batch has started: too late to take it out
        store.release.set()

        holding.result(timeout=5)
        kept.result(timeout=5)
        committer.commit([_Aggregate("after")])

        assert store.saved == ["first", "kept", "after"]
    finally:
        committer.close()


def test_what_is_queued_when_closing_is_saved_and_later_commands_are_refused() -> None:
    store = _Store()
    store.release.clear()
    committer = GroupCommitter(store, window=0.0, max_batch=10)
    first = committer.submit([_Aggregate(1)])
    assert store.started.wait(5)
    queued = committer.submit([_Aggregate(2)])
    closing = threading.Thread(target=committer.close)
    closing.start()
    time.sleep(0.05)
    store.release.set()
    closing.join(10)

    first.result(timeout=5)
    queued.result(timeout=5)
    assert store.saved == [1, 2]
    with pytest.raises(GroupCommitClosed):
        committer.commit([_Aggregate(3)])

    async def from_the_loop() -> None:
        await asyncio.wait_for(committer.commit_async([_Aggregate(4)]), 5)

    with pytest.raises(GroupCommitClosed):
        asyncio.run(from_the_loop())
    assert store.saved == [1, 2]


def test_a_failing_save_fails_its_commands_and_the_committer_goes_on() -> None:
    store = _Store(refuse="bad", error=OSError("disk full"))
    committer = GroupCommitter(store, window=0.0, max_batch=10)
    try:
        with pytest.raises(OSError, match="disk full"):
            committer.commit([_Aggregate("bad")])
        committer.commit([_Aggregate("good")])
        assert store.saved == ["good"]
    finally:
        committer.close()


def test_a_cancelled_callers_failed_save_is_logged() -> None:
    store = _Store(refuse="conflicting")
    store.release.clear()
    committer = GroupCommitter(store, window=0.0, max_batch=10)

    async def scenario() -> None:
        waiting = asyncio.create_task(committer.commit_async([_Aggregate("conflicting")]))
        await asyncio.to_thread(store.started.wait, 5)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        store.release.set()
        # The committer answers after the caller left; its answer reaches the loop.
        await asyncio.wait_for(committer.commit_async([_Aggregate("next")]), 5)
        await asyncio.sleep(0.05)

    try:
        with capture_logs() as logs:
            asyncio.run(scenario())
    finally:
        committer.close()
    assert store.saved == ["next"]
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == [
        "group_commit.unsaved_after_cancel"
    ]


def test_callers_on_a_loop_are_answered_together_each_with_its_own_outcome() -> None:
    """Commands queued while a batch is saved go together in the next one; when one of
    them conflicts, the batch is saved again one by one and only that caller fails."""
    store = _Store(refuse="conflicting")
    store.release.clear()
    committer = GroupCommitter(store, window=0.0, max_batch=10)

    async def scenario() -> list[Any]:
        first = asyncio.create_task(committer.commit_async([_Aggregate("first")]))
        await asyncio.to_thread(store.started.wait, 5)
        names = ["a", "conflicting", "b", "c"]
        tasks = [asyncio.create_task(committer.commit_async([_Aggregate(n)])) for n in names]
        await asyncio.sleep(0.05)  # all queued behind the held batch
        store.release.set()
        return await asyncio.wait_for(asyncio.gather(first, *tasks, return_exceptions=True), 5)

    try:
        outcomes = asyncio.run(scenario())
    finally:
        committer.close()
    assert [type(o).__name__ for o in outcomes] == [
        "NoneType",
        "NoneType",
        "IntegrityError",
        "NoneType",
        "NoneType",
    ]
    assert store.saved == ["first", "a", "b", "c"]
    assert (committer.batches, committer.split_batches) == (2, 1)


# -- how long a batch waits ---------------------------------------------------------------
# A window of a minute: a batch that waited it out would fail these tests' 10 s timeouts.


def test_a_batch_waits_for_a_command_still_being_decided() -> None:
    store = _Store()
    committer = GroupCommitter(store, window=60.0, max_batch=10)
    try:
        first, second = committer.expect(), committer.expect()
        saved_first = committer.submit([_Aggregate("first")], first)
        assert not store.started.wait(0.2)  # held for "second", still being decided
        saved_second = committer.submit([_Aggregate("second")], second)
        saved_first.result(timeout=10)
        saved_second.result(timeout=10)
        assert (committer.batches, store.saved) == (1, ["first", "second"])
    finally:
        committer.close()


def test_an_announced_batch_is_saved_once_nothing_else_is_being_decided() -> None:
    store = _Store()
    committer = GroupCommitter(store, window=60.0, max_batch=10)
    try:
        committer.submit([_Aggregate("alone")], committer.expect()).result(timeout=10)
        refused = committer.expect()  # decided, but refused: it will never be queued
        refused.close()
        refused.close()  # counted out once: "later" below is still counted
        later = committer.expect()
        first = committer.submit([_Aggregate("first")], committer.expect())
        time.sleep(0.2)
        assert store.calls == 1  # only "alone" saved: "first" is held for "later"
        committer.submit([_Aggregate("later")], later).result(timeout=10)
        first.result(timeout=10)
        assert (committer.batches, store.saved) == (2, ["alone", "first", "later"])
    finally:
        committer.close()


def test_a_batch_held_for_a_command_that_is_then_refused_is_saved_at_once() -> None:
    store = _Store()
    committer = GroupCommitter(store, window=60.0, max_batch=10)
    try:
        refused = committer.expect()
        first = committer.submit([_Aggregate("first")], committer.expect())
        assert not store.started.wait(0.2)  # held for "refused", still being decided
        refused.close()  # refused after all: nothing else is being decided
        first.result(timeout=10)
        later = committer.submit([_Aggregate("later")], committer.expect())
        later.result(timeout=10)  # the wake-up left behind holds nothing up either
        assert (committer.batches, store.saved) == (2, ["first", "later"])
    finally:
        committer.close()


def test_an_unannounced_command_waits_the_window_for_others() -> None:
    """A command decided without waiting for anything (on the event loop itself) is not
    announced; its batch waits the window for the requests behind it."""
    store = _Store()
    committer = GroupCommitter(store, window=1.0, max_batch=10)
    try:
        first = committer.submit([_Aggregate("first")])
        time.sleep(0.05)
        second = committer.submit([_Aggregate("second")])
        first.result(timeout=10)
        second.result(timeout=10)
        assert (committer.batches, store.saved) == (1, ["first", "second"])
    finally:
        committer.close()
