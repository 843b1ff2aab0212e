"""Projection batches pause the cyclic garbage collector, and give it back."""

import gc

from slrt.projections.base import cyclic_gc_paused


def test_overlapping_pauses_resume_the_collector_when_the_last_ends() -> None:
    assert gc.isenabled()
    first, second = cyclic_gc_paused(), cyclic_gc_paused()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the other batch still runs
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_a_batch_that_fails_resumes_the_collector() -> None:
    try:
        with cyclic_gc_paused():
            raise RuntimeError("batch failed")
    except RuntimeError:
        pass
    assert gc.isenabled()


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
