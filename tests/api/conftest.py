"""An HTTP client on the real app, on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from slrt.api.app import create_app
from slrt.config import Settings
from slrt.domain.common import Actor
from slrt.runtime import Runtime, build_runtime
from slrt.security import issue_token
from tests.conftest import Clock


def headers(actor: Actor, settings: Settings) -> dict[str, str]:
    token = issue_token(settings, actor, now=datetime.now(UTC))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def settings(request: pytest.FixtureRequest) -> Settings:
    fixture = "sqlite_settings" if request.param == "sqlite" else "postgres_settings"
    value: Settings = request.getfixturevalue(fixture)
    return value


@pytest.fixture
def runtime(settings: Settings, clock: Clock) -> Iterator[Runtime]:
    runtime = build_runtime(settings, clock=clock)
    yield runtime
    runtime.close()


class Api:
    """The client plus what a test needs to know: how many events are stored."""

    def __init__(self, client: TestClient, runtime: Runtime) -> None:
        self.client = client
        self.runtime = runtime

    def headers(self, actor: Actor) -> dict[str, str]:
        return headers(actor, self.runtime.settings)

    def events(self) -> int:
        return self.runtime.app.recorder.max_notification_id() or 0

    def post(self, path: str, actor: Actor, body: Any, **kwargs: Any) -> Any:
        extra = kwargs.pop("headers", {})
        return self.client.post(path, json=body, headers={**self.headers(actor), **extra}, **kwargs)

    def get(self, path: str, actor: Actor, **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers(actor), **kwargs)


@pytest.fixture
def api(settings: Settings, runtime: Runtime) -> Iterator[Api]:
    app = create_app(settings, runtime=runtime, run_workers=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client, runtime)
