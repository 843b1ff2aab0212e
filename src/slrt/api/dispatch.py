"""CommandDispatch: a well-formed command request goes straight to its route's fast way
(slrt.api.command_route), past the rest of the middleware and FastAPI's routing.

After CommandRoute, a registration still spent ~10 % of the API process's CPU in the
layers between the request-id middleware and the route: the body-size middleware,
FastAPI's dependency exit stacks, and the router's walk through the included routers to
the route, then its handler wrappers (bench/README.md, ninth session); FastAPI's own
outer layers (server errors, telemetry, body limit) cost ~5 % more (seventeenth
session). In SLRT's app this layer sits just inside RequestContext, outside all of
FastAPI's (slrt.api.app.SlrtAPI); it may also be added as an app's middleware. For a
POST to a command route's path with a JSON body of declared length within the limit,
it reads the body, and if the route's `prepare` finds it well formed, runs it and
answers a refusal raised by a dependency or the command with the app's exception
handlers, chosen as Starlette's exception middleware chooses them, and an unexpected
error as FastAPI's server-error layer does (its 500 handler answers, then the error is
raised to the server), so the answer is the same problem answer as by the normal way.
Everything else, including a body the route's models refuse, goes the normal way (the
body it read is handed on unchanged), so every other answer is exactly FastAPI's.

A route is taken only if, for its path with sample parameters, it is the first POST
route of the app that matches (as the router would choose it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette._utils import get_route_path, is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from slrt.api.command_route import FAST_COMMAND, FastCommand, _is_json

_PARAMETER = re.compile(r"{([^}:]+)(?::[^}]+)?}")
_SAMPLES = {"uuid": "00000000-0000-4000-8000-000000000000", "int": "1", "float": "1"}


@dataclass(frozen=True)
class _Entry:
    command: FastCommand
    path_regex: re.Pattern[str]
    convertors: dict[str, Convertor[Any]]


class CommandDispatch:
    """See the module's docstring. `max_bytes`: the largest body taken this way (the
    body-size middleware it passes by refuses larger ones); None for no limit."""

    def __init__(self, app: ASGIApp, fastapi: FastAPI, max_bytes: int | None = None) -> None:
        self.app = app
        self.fastapi = fastapi
        self.max_bytes = max_bytes
        self._static: dict[str, _Entry] | None = None
        self._dynamic: list[_Entry] = []
        self._status_handlers: dict[int, Any] = {}
        self._class_handlers: dict[Any, Any] = {}
        self._error_handler: Any = None
        self._debug = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if self._static is None:
            self._build()
        match = self._match(get_route_path(scope))
        length = self._declared_length(scope) if match is not None else None
        if match is None or length is None:
            await self.app(scope, receive, send)
            return
        entry, path_params = match
        body, left = await _read(receive)
        if left is not None or len(body) != length:  # the client left, or sent another length
            await self.app(scope, _replay(body, left, receive), send)
            return
        scope["path_params"] = path_params
        request = Request(scope, receive)
        request._body = body  # what Request.body() returns, for the handlers that read it
        prepared = entry.command.prepare(request, body)
        if prepared is None:
            del scope["path_params"]
            await self.app(scope, _replay(body, None, receive), send)
            return
        try:
            response: Response | None = await entry.command.run(prepared)
        except Exception as error:
            handler = self._handler(error)
            if handler is None:  # as FastAPI's server-error layer: answer 500, then raise
                server_error = ServerErrorMiddleware(
                    _raising(error), self._error_handler, self._debug
                )
                await server_error(scope, receive, send)
                return
            if is_async_callable(handler):
                response = await handler(request, error)
            else:
                response = await run_in_threadpool(handler, request, error)
            error.__traceback__ = None  # as Starlette: a reused error gathers tracebacks
        if response is not None:
            await response(scope, receive, send)

    def _handler(self, error: Exception) -> Any:
        """The app's exception handler for an error, other than the server-error one,
        as Starlette's exception middleware chooses it: an HTTPException's status first,
        then the error's classes in order; None if none takes it."""
        handler = None
        if isinstance(error, HTTPException):
            handler = self._status_handlers.get(error.status_code)
        if handler is None:
            handler = next(
                (self._class_handlers[c] for c in type(error).__mro__ if c in self._class_handlers),
                None,
            )
        return handler

    def _declared_length(self, scope: Scope) -> int | None:
        """The body's declared length if the fast way may take it: JSON, Content-Length
        given and within the limit, no Expect header (100-continue is uvicorn's)."""
        length = None
        json = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if length is not None or not value.isdigit():
                    return None
                length = int(value)
            elif name == b"content-type":
                json = _is_json(value.decode("latin-1"))
            elif name in (b"transfer-encoding", b"expect"):
                return None
        if not json or length is None or length == 0:
            return None
        if self.max_bytes is not None and length > self.max_bytes:
            return None
        return length

    def _match(self, path: str) -> tuple[_Entry, dict[str, Any]] | None:
        assert self._static is not None
        entry = self._static.get(path)
        if entry is not None:
            return entry, {}
        for entry in self._dynamic:
            found = entry.path_regex.match(path)
            if found is not None:
                params = {k: entry.convertors[k].convert(v) for k, v in found.groupdict().items()}
                return entry, params
        return None

    def _build(self) -> None:
        """The command routes of the app that the router would choose for their paths."""
        contexts = list(iter_route_contexts(self.fastapi.routes))
        static: dict[str, _Entry] = {}
        for context in contexts:
            command = getattr(context, FAST_COMMAND, None)
            path_format = context.path_format
            if command is None or path_format is None or "POST" not in (context.methods or ()):
                continue
            sample = _sample_path(path_format)
            if _first_post_route(contexts, sample) is not context:
                continue
            entry = _Entry(command, context.path_regex, dict(context.param_convertors))
            if entry.convertors:
                self._dynamic.append(entry)
            else:
                static[path_format] = entry
        for key, handler in self.fastapi.exception_handlers.items():
            if key in (500, Exception):  # as FastAPI's stack: the server-error layer's
                self._error_handler = handler
            elif isinstance(key, int):
                self._status_handlers[key] = handler
            else:
                self._class_handlers[key] = handler
        self._debug = self.fastapi.debug
        self._static = static

    def routes(self) -> list[str]:
        """The paths (with their parameters) this dispatcher takes, for tests."""
        if self._static is None:
            self._build()
        assert self._static is not None
        return sorted([*self._static, *(e.path_regex.pattern for e in self._dynamic)])


def _raising(error: Exception) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise error

    return app


def _sample_path(path_format: str) -> str:
    return _PARAMETER.sub(lambda m: _SAMPLES.get(_convertor_name(m.group(0)), "x"), path_format)


def _convertor_name(parameter: str) -> str:
    return parameter.strip("{}").partition(":")[2]


def _first_post_route(contexts: Iterable[Any], path: str) -> Any:
    """The route the router would choose for a POST to `path`; a route of another kind
    (a mount, say) that matches the path counts as chosen, since it may take any method."""
    for context in contexts:
        regex = getattr(context, "path_regex", None)
        if regex is None or regex.match(path):
            methods = getattr(context, "methods", None)
            if methods is None or "POST" in methods:
                return context
    return None


async def _read(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body; or what came before the client left, and its disconnect message."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, left: Message | None, receive: Receive) -> Receive:
    """A receive that hands on what `_read` read, then continues with `receive`."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": left is not None}]
    if left is not None:
        pending.append(left)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
