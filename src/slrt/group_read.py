"""Group read: the stored events of the aggregates that concurrent commands decide on,
read for many commands with one statement.

A command on an existing record (a village decision, a complaint's handling) reads its
aggregate before deciding. Read one by one, each read is a statement and a round trip
of its own, and a hand-over to a worker thread and back (ADR 0009). The reader takes
whatever ids are waiting (up to `max_batch`), reads their events in one statement in its
own thread, and hands each caller its share on the caller's event loop (one hand-over per
loop and batch, `settle_on_loops`, shared with the group committer). While one read is
in flight, the next batch gathers by itself.

A batch also waits a little for more (`window`: `SLRT_GROUP_READ_WINDOW_MS`, 1 ms by
default), but only while it holds fewer ids than the previous batch read: a read's
cost is mostly the batch's, not its ids' (a statement, a hand-over to this thread and
back, the decisions and the append that follow as a batch of their own), so under load
a batch that leaves as soon as its first read arrives costs every command more.
Measured with two API processes and 32 clients on approvals: 1.1–1.2× the rate and
0.8–0.9× the machine's CPU per approval (bench/README.md, twentieth session; ADR 0014).
A lone caller waits for nobody: after a batch of one, the next expects one.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from slrt.group_commit import BatchingThread, GroupCommitClosed, settle_on_loops

#: Reads the stored events of the given aggregates, in version order per aggregate;
#: an aggregate with no events may be left out.
ReadMany = Callable[[list[UUID]], Mapping[UUID, list[Any]]]


def _closed() -> GroupCommitClosed:
    return GroupCommitClosed("the service is stopping; the command was not run")


@dataclass(slots=True)
class _Pending:
    ids: Sequence[UUID]
    waiter: asyncio.Future[dict[UUID, list[Any]]]


class GroupReader(BatchingThread[_Pending]):
    def __init__(self, read_many: ReadMany, *, max_batch: int, window: float = 0.0) -> None:
        self._read_many = read_many
        self.max_batch = max_batch
        self.window = window
        #: The ids the previous batch read: a batch with fewer waits up to `window`.
        self._expected = 0
        self.batches = 0
        self.reads = 0
        super().__init__("group-read")

    async def read_async(self, ids: Sequence[UUID]) -> dict[UUID, list[Any]]:
        """The stored events of each aggregate (an empty list for one with none)."""
        if self._closed:
            raise _closed()
        waiter: asyncio.Future[dict[UUID, list[Any]]] = asyncio.get_running_loop().create_future()
        self._enqueue(_Pending(ids, waiter))
        return await waiter

    def _refuse(self, pending: _Pending) -> None:
        settle_on_loops([(pending.waiter, None, _closed())])

    def _take_batch(self, first: _Pending) -> tuple[list[_Pending], bool]:
        batch, count, closing = [first], len(first.ids), False
        deadline = time.monotonic() + self.window
        while count < self.max_batch:
            # Fewer than the previous batch: wait for more until the deadline.
            left = deadline - time.monotonic() if count < self._expected else 0.0
            try:
                item = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                closing = True
                break
            batch.append(item)
            count += len(item.ids)
        self._expected = count
        return batch, closing

    def _serve(self, batch: list[_Pending]) -> None:
        self.batches += 1
        self.reads += len(batch)
        try:
            found = self._read_many(list({i: None for p in batch for i in p.ids}))
        except BaseException as error:  # every caller hears it; the reader goes on
            settle_on_loops([(p.waiter, None, error) for p in batch])
            return
        # A caller gone meanwhile is skipped: a read changes nothing.
        settle_on_loops([(p.waiter, {i: found.get(i, []) for i in p.ids}, None) for p in batch])
