"""CommandRoute answers every request exactly as FastAPI's own handler would, and
serves the well-formed ones without FastAPI's dependency solving."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Annotated, Any, Literal
from uuid import UUID

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Request, Response
from fastapi import routing as fastapi_routing
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from starlette.middleware.errors import ServerErrorMiddleware

from slrt.api import dispatch
from slrt.api.app import BodySizeLimit, RequestContext, SlrtAPI, create_app
from slrt.api.command_route import CommandRoute
from slrt.api.deps import BearerCommand
from slrt.api.dispatch import CommandDispatch
from slrt.api.routers import complaints, proposals, referrals
from slrt.config import Settings


class Grant(BaseModel):
    kind: Literal["grant"]
    amount: int = Field(gt=0)


class Refusal(BaseModel):
    kind: Literal["refusal"]
    reason: str = Field(min_length=3)


Decision = Annotated[Grant | Refusal, Field(discriminator="kind")]


class DecisionOut(BaseModel):
    case_id: UUID
    kind: str
    caller: str
    version: int | None = None
    note: str | None = None


class Caller:
    """Reads the request and two headers, as the command callers do."""

    async def __call__(
        self,
        request: Request,
        if_match: Annotated[str | None, Header(max_length=5)] = None,
        x_caller: Annotated[str | None, Header(max_length=20)] = None,
    ) -> dict[str, Any]:
        if x_caller == "nobody":
            raise HTTPException(status_code=401, detail="who are you?")
        return {"name": x_caller or "anonymous", "version": if_match, "path": request.url.path}


CALLER = Caller()
CallerDep = Annotated[dict[str, Any], Depends(CALLER)]


class Clash(Exception):
    """A refusal of the command, answered by the app's exception handler."""


async def decide(case_id: UUID, body: Decision, caller: CallerDep, response: Response) -> Any:
    response.headers["ETag"] = '"7"'
    if caller["name"] == "clash":
        raise Clash("already decided")
    if caller["name"] == "boom":
        raise RuntimeError("a bug")
    if isinstance(body, Refusal):
        response.status_code = 202
    return DecisionOut(
        case_id=case_id,
        kind=body.kind,
        caller=caller["name"],
        version=int(caller["version"]) if caller["version"] else None,
    )


class NormalWay:
    """Counts the requests that reach the middleware inside CommandDispatch."""

    def __init__(self, app: Any, seen: list[str]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.seen.append(scope["path"])
        await self.app(scope, receive, send)


def _app(*, dispatch: str | None = "inside", seen: list[str] | None = None) -> FastAPI:
    """`dispatch`: CommandDispatch as the app's middleware ("inside"), outside all of
    FastAPI's layers as in SLRT's app ("outside", slrt.api.app.SlrtAPI), or none."""
    fast = APIRouter(prefix="/fast", route_class=CommandRoute)
    standard = APIRouter(prefix="/standard")
    for router in (fast, standard):
        router.add_api_route(
            "/{case_id}/decision",
            decide,
            methods=["POST"],
            status_code=201,
            response_model=DecisionOut,
            response_model_exclude_none=True,
        )
    app = SlrtAPI(max_request_bytes=200) if dispatch == "outside" else FastAPI()
    app.include_router(fast)
    app.include_router(standard)

    @app.exception_handler(Clash)
    async def clash(request: Request, error: Clash) -> JSONResponse:
        return JSONResponse({"title": str(error), "method": request.method}, status_code=409)

    app.add_middleware(NormalWay, seen=[] if seen is None else seen)
    if dispatch == "inside":
        app.add_middleware(CommandDispatch, fastapi=app, max_bytes=200)
    return app


@pytest.fixture(params=["inside", "outside", None], ids=["dispatched", "outside", "route only"])
def client(request: pytest.FixtureRequest) -> Iterator[TestClient]:
    """The app with CommandDispatch as its middleware, outside FastAPI's layers, and
    without it (the route's own fast way)."""
    app = _app(dispatch=request.param)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def standard_handler_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the requests FastAPI's own handler solved (its dependency solving)."""
    calls: list[int] = []
    solve = fastapi_routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi_routing, "solve_dependencies", counting)
    return calls


CASE = "6f1c2d6e-0d7b-4a3b-9a51-2f1f0c6a9e10"
JSON = {"Content-Type": "application/json"}

#: (name, path tail, content, headers)
REQUESTS: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("a grant", CASE, b'{"kind": "grant", "amount": 3}', {**JSON, "X-Caller": "siti"}),
    ("a refusal, own status", CASE, b'{"kind": "refusal", "reason": "late"}', JSON),
    ("If-Match", CASE, b'{"kind": "grant", "amount": 1}', {**JSON, "If-Match": "4"}),
    (
        "charset",
        CASE,
        b'{"kind":"grant","amount":2}',
        {"Content-Type": "application/json; charset=utf-8"},
    ),
    ("not JSON", CASE, b'{"kind": "grant", ', JSON),
    ("wrong type", CASE, b'{"kind": "grant", "amount": "many"}', JSON),
    ("refused value", CASE, b'{"kind": "grant", "amount": 0}', JSON),
    ("unknown kind", CASE, b'{"kind": "loan"}', JSON),
    ("missing field", CASE, b'{"kind": "refusal"}', JSON),
    ("not an object", CASE, b"[1, 2]", JSON),
    ("empty body", CASE, b"", JSON),
    ("no content type", CASE, b'{"kind": "grant", "amount": 3}', {}),
    ("text/plain", CASE, b'{"kind": "grant", "amount": 3}', {"Content-Type": "text/plain"}),
    ("+json", CASE, b'{"kind": "grant", "amount": 3}', {"Content-Type": "application/x+json"}),
    ("bad path id", "not-a-uuid", b'{"kind": "grant", "amount": 3}', JSON),
    ("header too long", CASE, b'{"kind": "grant", "amount": 3}', {**JSON, "If-Match": "123456"}),
    ("refused caller", CASE, b'{"kind": "grant", "amount": 3}', {**JSON, "X-Caller": "nobody"}),
    ("refused caller, bad body", CASE, b"{", {**JSON, "X-Caller": "nobody"}),
    ("refused command", CASE, b'{"kind": "grant", "amount": 3}', {**JSON, "X-Caller": "clash"}),
    ("a bug", CASE, b'{"kind": "grant", "amount": 3}', {**JSON, "X-Caller": "boom"}),
    ("over the limit", CASE, b'{"kind": "refusal", "reason": "' + b"x" * 300 + b'"}', JSON),
]


def _answer(
    client: TestClient, prefix: str, tail: str, content: bytes, headers: dict[str, str]
) -> Any:
    answer = client.post(f"/{prefix}/{tail}/decision", content=content, headers=headers)
    # SlrtAPI gives each request its own id (sent back: test_inspection_api).
    shown = {k: v for k, v in answer.headers.items() if k not in ("date", "server", "x-request-id")}
    return answer.status_code, shown, answer.content


@pytest.mark.parametrize(
    ("name", "tail", "content", "headers"), REQUESTS, ids=[r[0] for r in REQUESTS]
)
def test_the_fast_route_answers_as_fastapi_does(
    client: TestClient, name: str, tail: str, content: bytes, headers: dict[str, str]
) -> None:
    fast = _answer(client, "fast", tail, content, headers)
    assert fast == _answer(client, "standard", tail, content, headers)


def test_well_formed_commands_skip_fastapis_dependency_solving(
    client: TestClient, standard_handler_calls: list[int]
) -> None:
    status, _, content = _answer(client, "fast", *REQUESTS[0][1:])
    assert (status, standard_handler_calls) == (201, [])
    assert b'"caller":"siti"' in content
    _answer(client, "standard", *REQUESTS[0][1:])
    assert standard_handler_calls == [1]


def test_a_refused_request_is_answered_by_fastapi(
    client: TestClient, standard_handler_calls: list[int]
) -> None:
    status, _, _ = _answer(client, "fast", CASE, b'{"kind": "grant", "amount": 0}', JSON)
    assert (status, standard_handler_calls) == (422, [1])


def test_dependency_overrides_are_honoured() -> None:
    app = _app()

    async def someone() -> dict[str, Any]:
        return {"name": "override", "version": None}

    app.dependency_overrides[CALLER] = someone
    with TestClient(app) as client:
        status, _, content = _answer(client, "fast", *REQUESTS[0][1:])
    assert status == 201
    assert b'"caller":"override"' in content


def test_every_daily_command_route_takes_the_fast_way(sqlite_settings: Settings) -> None:
    """A FastAPI upgrade that changes the routes' shape must not slow them silently."""
    create_app(sqlite_settings, run_workers=False)
    commands = [
        route
        for router in (proposals.router, complaints.router, referrals.router)
        for route in router.routes
        if isinstance(route, APIRoute)
        and any(isinstance(d.call, BearerCommand) for d in route.dependant.dependencies)
    ]
    assert len(commands) == 13
    assert [route.path for route in commands if not getattr(route, "fast", False)] == []


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_well_formed_commands_pass_by_the_rest_of_the_stack(where: str) -> None:
    """CommandDispatch answers them itself; whatever it declines goes the normal way,
    with its body intact (the answers are compared above)."""
    seen: list[str] = []
    with TestClient(_app(dispatch=where, seen=seen)) as client:
        assert _answer(client, "fast", *REQUESTS[0][1:])[0] == 201
        assert seen == []
        refused = _answer(client, "fast", CASE, b'{"kind": "grant", "amount": 0}', JSON)
        assert refused[0] == 422
        chunked = client.post(
            f"/fast/{CASE}/decision",
            content=iter([b'{"kind": "grant",', b' "amount": 3}']),
            headers={**JSON, "X-Caller": "siti"},
        )
        assert (chunked.status_code, chunked.json()["caller"]) == (201, "siti")
        assert _answer(client, "standard", *REQUESTS[0][1:])[0] == 201
    path = f"/fast/{CASE}/decision"
    assert seen == [path, path, f"/standard/{CASE}/decision"]


def test_a_route_the_router_would_not_choose_is_not_dispatched() -> None:
    """An earlier route that takes the same POST path wins, as in FastAPI's router."""
    app = FastAPI()
    first = APIRouter(prefix="/fast")

    @first.post("/{anything}/decision")
    async def earlier(anything: str) -> dict[str, str]:
        return {"route": "earlier"}

    app.include_router(first)
    app.include_router(_app(dispatch=None).router)
    app.add_middleware(CommandDispatch, fastapi=app)
    with TestClient(app) as client:
        answer = client.post(f"/fast/{CASE}/decision", json={"kind": "grant", "amount": 3})
    assert answer.json() == {"route": "earlier"}
    assert _dispatcher(app).routes() == []


async def _replayed(body: bytes, more: list[Any]) -> list[Any]:
    messages = iter(more)

    async def receive() -> Any:
        return next(messages)

    read, left = await dispatch._read(receive)
    replay = dispatch._replay(read, left, receive)
    return [await replay() for _ in range(2 if left is not None else 1)]


def test_a_client_that_leaves_mid_body_is_handed_on_as_it_left() -> None:
    disconnect = {"type": "http.disconnect"}
    part = {"type": "http.request", "body": b'{"kind"', "more_body": True}
    assert asyncio.run(_replayed(b"", [part, disconnect])) == [part, disconnect]
    whole = [
        {"type": "http.request", "body": b"ab", "more_body": True},
        {"type": "http.request", "body": b"c", "more_body": False},
    ]
    assert asyncio.run(_replayed(b"", whole)) == [
        {"type": "http.request", "body": b"abc", "more_body": False}
    ]


def _dispatcher(app: FastAPI) -> CommandDispatch:
    layer: Any = app.build_middleware_stack()
    while not isinstance(layer, CommandDispatch):
        layer = layer.app
    return layer


def test_slrts_app_dispatches_outside_fastapis_own_layers(sqlite_settings: Settings) -> None:
    """RequestContext, then CommandDispatch, then FastAPI's stack (its server-error
    layer first), in which BodySizeLimit still refuses what is too large."""
    stack: Any = create_app(sqlite_settings, run_workers=False).build_middleware_stack()
    layers = []
    while hasattr(stack, "app"):
        layers.append(type(stack))
        stack = stack.app
    assert layers[:3] == [RequestContext, CommandDispatch, ServerErrorMiddleware]
    assert BodySizeLimit in layers[3:]


def test_every_daily_command_route_is_dispatched(sqlite_settings: Settings) -> None:
    routes = _dispatcher(create_app(sqlite_settings, run_workers=False)).routes()
    assert len(routes) == 13
    assert "/api/v1/proposals" in routes
    assert r"^/api/v1/proposals/(?P<proposal_id>[^/]+)/village\-decision$" in routes
