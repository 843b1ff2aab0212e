"""Generated request ids are unique: within a process by their counter, across
processes and restarts by a random half drawn once per process."""

from __future__ import annotations

import re

from slrt.api.app import RequestIds


def test_each_request_gets_a_new_id() -> None:
    new_id = RequestIds()
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_two_processes_do_not_share_ids() -> None:
    first, second = RequestIds(), RequestIds()
    assert first() != second()
    assert first.prefix != second.prefix
