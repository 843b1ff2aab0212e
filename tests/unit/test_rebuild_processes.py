"""Waiting for the processes of a rebuild (slrt.projections.parallel)."""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time

from slrt.projections.parallel import wait_for

spawn = multiprocessing.get_context("spawn")


def test_a_rebuild_being_stopped_ends_its_processes() -> None:
    children = [spawn.Process(target=time.sleep, args=(60,)) for _ in range(2)]
    for child in children:
        child.start()
    stopping = threading.Event()
    threading.Timer(0.5, stopping.set).start()
    started = time.monotonic()

    wait_for(children, stopping)

    assert time.monotonic() - started < 30
    assert [child.is_alive() for child in children] == [False, False]
    assert all(child.exitcode != 0 for child in children)


def test_a_failed_process_ends_the_others() -> None:
    # A rebuild cannot finish once one partition has failed: waiting for the others to
    # apply the rest of the log would only delay the workers' rebuild from zero.
    failing = spawn.Process(target=sys.exit, args=(3,))
    sleeping = spawn.Process(target=time.sleep, args=(60,))
    for child in (failing, sleeping):
        child.start()
    started = time.monotonic()

    wait_for([failing, sleeping], threading.Event())

    assert time.monotonic() - started < 30
    assert failing.exitcode == 3
    assert not sleeping.is_alive()
    assert sleeping.exitcode != 0


def test_processes_that_succeed_are_waited_for() -> None:
    children = [spawn.Process(target=time.sleep, args=(0.5,)) for _ in range(2)]
    for child in children:
        child.start()

    wait_for(children, threading.Event())

    assert [child.exitcode for child in children] == [0, 0]
