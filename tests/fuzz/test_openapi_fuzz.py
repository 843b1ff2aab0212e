"""Fuzzing from the app's own OpenAPI document, with tokens of several roles.

Every operation gets generated requests (valid and invalid by the schema) from a front
office, a village head, a Dinsos verifier, an agency and an inspector. Checks: no 5xx,
every answer matches its documented schema, status and content type, and no 2xx answer
shows or changes anything outside the caller's region.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks as st_checks

from slrt.api.app import create_app
from slrt.config import Settings
from slrt.domain.access import covers
from slrt.domain.common import Actor, Role
from slrt.runtime import Runtime, build_runtime
from slrt.security import issue_token
from tests.builders import ADMIN, DESA, DINSOS, FRONT_OFFICE, INSPECTOR, VILLAGE_HEAD, default_model
from tests.conftest import COMMON

MAX_EXAMPLES = int(os.environ.get("SLRT_FUZZ_EXAMPLES", "30"))
AGENCY = Actor("dinkes-bontang", Role.AGENCY, "64.74", agency="dinkes")
ROLES = (FRONT_OFFICE, VILLAGE_HEAD, DINSOS, AGENCY, INSPECTOR)
STATS = {"cases": 0, "calls": 0}


def _build() -> tuple[Runtime, Any, dict[Actor, str]]:
    """Built at collection, because schemathesis parametrizes from the live schema."""
    config = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tempfile.mkdtemp(prefix='slrt-fuzz-')}/fuzz.db",
        submission_windows_enforced=False,
        **COMMON,
    )
    runtime = build_runtime(config)
    runtime.app.publish_scoring_model(actor=ADMIN, note="fuzz", **default_model())
    tokens = {actor: issue_token(config, actor, now=datetime.now(UTC)) for actor in ROLES}
    return runtime, create_app(config, runtime=runtime, run_workers=False), tokens


RUNTIME, APP, TOKENS = _build()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _close_and_report() -> Iterator[None]:
    yield
    RUNTIME.close()
    shutil.rmtree(Path(RUNTIME.settings.sqlite_path).parent, ignore_errors=True)
    print(f"\nfuzz: {STATS['cases']} generated cases, {STATS['calls']} calls")


def _regions(value: Any) -> Iterator[str]:
    """The regions of the data in an answer (not of the people who acted on it)."""
    if isinstance(value, dict) and "role" in value and "user_id" in value:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "region" and isinstance(item, str):
                yield item
            else:
                yield from _regions(item)
    elif isinstance(value, list):
        for item in value:
            yield from _regions(item)


def _stays_in_region(actor: Actor, response: Any) -> None:
    if not 200 <= response.status_code < 300 or actor.role is Role.INSPECTOR:
        return
    if "json" not in response.headers.get("content-type", [""])[0]:
        return
    for region in _regions(response.json()):
        assert covers(actor.region, region), f"{actor.user_id} ({actor.region}) saw {region}"


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_survives_generated_requests(case: Any) -> None:
    STATS["cases"] += 1
    for actor in ROLES:
        STATS["calls"] += 1
        response = case.call(headers={"Authorization": f"Bearer {TOKENS[actor]}"})
        case.validate_response(
            response,
            checks=[
                st_checks.not_a_server_error,
                st_checks.status_code_conformance,
                st_checks.content_type_conformance,
                st_checks.response_schema_conformance,
            ],
        )
        _stays_in_region(actor, response)


def test_front_office_desa_is_the_one_the_fuzzer_uses() -> None:
    assert FRONT_OFFICE.region == DESA
