"""Generated request ids are unique: within a process by their counter, across
processes and restarts by a random half drawn once per process."""

from __future__ import annotations

import re

import pytest

import slrt.logging
from slrt.api.app import RequestIds


def test_each_request_gets_a_new_id() -> None:
    new_id = RequestIds()
    ids = [new_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(re.fullmatch(r"[a-z]{15}-[0-9a-f]{16}", i) for i in ids)


@pytest.mark.usefixtures("no_detector")
def test_a_log_line_with_a_new_id_does_not_go_through_the_detector() -> None:
    for _ in range(50):  # processes
        new_id = RequestIds()
        new_id.counter = iter([0, 5, 10**9, 2**63])
        for _ in range(4):
            request_id = new_id()
            assert slrt.logging.mask_text(request_id) == request_id


def test_two_processes_do_not_share_ids() -> None:
    first, second = RequestIds(), RequestIds()
    assert first() != second()
    assert first.prefix != second.prefix
