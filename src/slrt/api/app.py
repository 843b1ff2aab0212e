"""create_app(settings): the HTTP composition root. Nothing happens at import."""

from __future__ import annotations

import gc
import itertools
import re
import secrets
import string
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI

from slrt.api import errors
from slrt.api.dispatch import CommandDispatch
from slrt.api.routers import complaints, health, households, proposals, regions, scoring, sla
from slrt.api.routers import inspection as inspection_routes
from slrt.api.routers import referrals as referral_routes
from slrt.config import Settings
from slrt.logging import cache_loggers, configure_logging
from slrt.runtime import Runtime, build_runtime
from slrt.security import TokenVerifier

log = structlog.get_logger("slrt.api")

ASGIApp = Callable[
    [dict[str, Any], Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]], Awaitable[None]
]


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


class RequestIds:
    """New request ids of 32 characters: 15 random letters drawn once per process (70
    bits), a dash, and a counter in hex. Unique across processes and restarts like a
    UUID4, without drawing 16 random bytes from the kernel per request (~1 % of a
    command's CPU). The counter's digits follow a dash after a letter, so the log
    masking never takes them for a NIK or a phone number (its detector costs ~0.5 ms a
    line)."""

    def __init__(self) -> None:
        self.prefix = "".join(secrets.choice(string.ascii_lowercase) for _ in range(15))
        self.counter = itertools.count()

    def __call__(self) -> str:
        return f"{self.prefix}-{next(self.counter):016x}"


class RequestContext:
    """Gives every request an id: the client's `X-Request-ID` when it is a plain token of
    at most 64 characters, else a new one. It is bound to the request's log lines,
    recorded on the events the request causes (`request.state.request_id`) and sent back
    in `X-Request-ID`. Plain ASGI: Starlette's BaseHTTPMiddleware cost ~10% of a
    command's CPU time under load."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.new_id = RequestIds()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else self.new_id()
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            request_id=request_id, method=scope["method"], path=scope["path"]
        )
        header = (b"x-request-id", request_id.encode())

        async def send_with_id(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodySizeLimit:
    """Refuses request bodies over the limit with 413, whether or not Content-Length is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        received = 0

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        response = errors.problem(
            413, "Payload too large", f"request bodies are limited to {self.max_bytes} bytes"
        )
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(k.encode(), v.encode()) for k, v in response.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": response.body})


class _TooLarge(Exception):
    pass


class SlrtAPI(FastAPI):
    """FastAPI with two layers outside its own middleware: RequestContext, then
    CommandDispatch. A well-formed command is answered by CommandDispatch before
    FastAPI's outer layers (its server-error, telemetry and body-limit middleware, one
    pass each per request): 0.91–0.98× the API process's CPU per command in four A/B
    runs of five (bench/README.md, seventeenth session). It answers errors with the
    app's own exception handlers, the 500 one included. Every other request goes through
    FastAPI's whole stack as before, with its request id."""

    def __init__(self, *, max_request_bytes: int | None = None, **kwargs: Any) -> None:
        self.max_request_bytes = max_request_bytes
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:  # type: ignore[override]
        own = super().build_middleware_stack()
        return RequestContext(CommandDispatch(own, fastapi=self, max_bytes=self.max_request_bytes))


#: The cyclic garbage collector's first threshold in a serving process (Python's
#: default is 700 allocations): a request allocates thousands of objects, so it ran
#: several young collections per request.
SERVING_GC_THRESHOLD = 10_000


def settle_heap() -> None:
    """Puts what start-up allocated (modules, reference data, the application) out of
    the cyclic garbage collector's sight, and lets it run less often. Its full
    collections walked that whole heap while the event loop waited: measured at 32
    clients, one process, registrations' p99 went from 77–84 ms to 29–30 ms and their
    CPU from 0.72–0.73 to 0.57–0.61 ms (bench/README.md). What start-up allocated lives
    as long as the process; reference counting still frees the rest."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(SERVING_GC_THRESHOLD, *gc.get_threshold()[1:])


def create_app(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    run_workers: bool = True,
    serving: bool = False,
) -> FastAPI:
    """Builds the API. With `run_workers`, the projection workers run in this process
    (the embedded default: one command runs everything). `serving`: this process serves
    the API until it ends (`slrt serve`), so its start-up heap is settled (settle_heap);
    tests, which build many apps in one process, leave the collector alone."""
    owned = runtime is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        active = runtime or build_runtime(settings)
        app.state.runtime = active
        active.followed.start()
        if run_workers:
            active.start_workers()
        if serving:
            settle_heap()
        log.info("api.started", database="postgresql" if settings.is_postgres else "sqlite")
        try:
            yield
        finally:
            active.followed.stop()
            if owned:
                active.close()
            else:
                active.stop_workers()

    app = SlrtAPI(
        max_request_bytes=settings.max_request_bytes,
        title="SLRT — Sistem Layanan Rujukan Terpadu",
        version="0.1.0",
        description=(
            "Event-sourced case management for Indonesia's integrated social-protection "
            "referral system. Errors are RFC 9457 problem details."
        ),
        lifespan=lifespan,
        # FastAPI's OpenTelemetry hooks asked the OpenTelemetry API on every request
        # whether a provider was configured (~2 % of a command's CPU). SLRT reports
        # through its structured logs instead (each command: request id, caller, outcome).
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    if runtime is not None:
        app.state.runtime = runtime
    app.state.tokens = TokenVerifier(settings)
    errors.install(app)

    for router in (
        proposals.router,
        households.router,
        complaints.router,
        referral_routes.router,
        sla.router,
        scoring.router,
        health.router,
        inspection_routes.router,
        regions.router,
    ):
        app.include_router(router)
    # Inside FastAPI's own layers (its error and telemetry middleware): BodySizeLimit,
    # then Starlette's exception middleware and the router. Outside them: SlrtAPI's.
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes)
    return app


def api_process() -> FastAPI:
    """The API of one of several serving processes (`slrt serve --processes N`): settings
    from the environment; the projection workers run in a process of their own."""
    settings = Settings()
    configure_logging(settings)
    cache_loggers()
    return create_app(settings, run_workers=False, serving=True)
