"""New aggregate ids: random version-4 UUIDs read from os.urandom in blocks."""

from __future__ import annotations

import os
import threading
from uuid import UUID

from slrt.domain.common import new_id


def test_ids_are_version_4_and_distinct_across_blocks_and_threads() -> None:
    drawn: list[UUID] = [new_id() for _ in range(1_000)]  # several blocks of 256
    others: list[UUID] = []
    thread = threading.Thread(target=lambda: others.extend(new_id() for _ in range(300)))
    thread.start()
    thread.join()
    every = drawn + others
    assert all(i.version == 4 and i.variant == "specified in RFC 4122" for i in every)
    assert len(set(every)) == len(every)


def test_a_forked_child_does_not_draw_the_parents_next_ids() -> None:
    new_id()  # the parent holds unread bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.write(write, b"".join(new_id().bytes for _ in range(3)))
        os._exit(0)
    os.close(write)
    child = os.read(read, 48)
    os.waitpid(pid, 0)
    parent = b"".join(new_id().bytes for _ in range(3))
    assert len(child) == 48
    assert child != parent


def test_an_id_is_what_uuid_makes_of_the_same_bytes() -> None:
    from slrt.domain import common

    for _ in range(600):  # across blocks
        buffer, offset = common._random_ids.buffer, common._random_ids.offset
        drawn = new_id()
        if offset >= len(buffer):
            buffer, offset = common._random_ids.buffer, 0
        expected = UUID(bytes=buffer[offset : offset + 16], version=4)
        assert drawn == expected
        assert (str(drawn), drawn.is_safe, hash(drawn)) == (
            str(expected),
            expected.is_safe,
            hash(expected),
        )
