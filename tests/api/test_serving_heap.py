"""A serving process puts its start-up heap out of the cyclic collector's sight."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from slrt.api.app import SERVING_GC_THRESHOLD, create_app
from slrt.config import Settings


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector as it was, afterwards."""
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_a_serving_process_settles_its_start_up_heap(sqlite_settings: Settings) -> None:
    with TestClient(create_app(sqlite_settings, run_workers=False, serving=True)) as client:
        assert client.get("/api/v1/health").status_code == 200
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == SERVING_GC_THRESHOLD


@pytest.mark.usefixtures("collector")
def test_an_app_built_for_tests_leaves_the_collector_alone(sqlite_settings: Settings) -> None:
    threshold = gc.get_threshold()
    with TestClient(create_app(sqlite_settings, run_workers=False)) as client:
        assert client.get("/api/v1/health").status_code == 200
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == threshold
