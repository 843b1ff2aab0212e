"""CommandRoute: the command routes' requests handled without FastAPI's general
request machinery when they are well formed (ADR 0009).

FastAPI handles every request the general way: it reads the body with `json.loads`,
then validates the Python objects; it solves the dependency graph, a pass over the
request per dependency and per parameter; it validates the answer again before
serializing it. For a registration that was about a third of the API process's CPU
(bench/README.md, eighth session). A command route has one fixed shape (a JSON body,
path parameters, dependencies that read only the request and its headers, the
`Response` for headers, an answer model), so CommandRoute prepares that shape once and
serves a request with one pydantic call for the body (`validate_json` on the bytes).

Only well-formed requests take this way. Anything else (another content type, an
empty body, a body, path parameter or header the models refuse, dependency
overrides) goes to FastAPI's own handler for the route, before anything is run, so
every refusal is exactly FastAPI's: the same 422 problem with the same fields. A
route of another shape gets FastAPI's handler only (`CommandRoute.fast` is False).

The fast way is in two steps, `prepare` (checks only) and `run`, kept on the route as
included (`FastCommand`), so that slrt.api.dispatch can also skip the middleware and
routing in front of the route.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import params, routing
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, serialize_response
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


@dataclass(frozen=True)
class _Dependency:
    """A dependency that reads only the request and its headers: `async def` (or an
    instance with one), no sub-dependencies, no cleanup after the answer."""

    name: str
    call: Callable[..., Awaitable[Any]]
    request_param: str | None
    #: Each header parameter (FastAPI's ModelField), its header's name, and whether it
    #: is required: worked out once, not per request.
    headers: tuple[tuple[Any, str, bool], ...]

    @classmethod
    def of(cls, dependant: Dependant) -> _Dependency | None:
        call = dependant.call
        if (
            call is None
            or dependant.name is None
            or not _is_coroutine(call)
            or dependant.dependencies
            or dependant.path_params
            or dependant.query_params
            or dependant.cookie_params
            or dependant.body_params
            or dependant.response_param_name
            or dependant.background_tasks_param_name
            or dependant.security_scopes_param_name
            or dependant.websocket_param_name
            or dependant.http_connection_param_name
        ):
            return None
        headers = tuple(
            (f, f.alias.replace("_", "-"), f.field_info.is_required())
            for f in dependant.header_params
        )
        return cls(dependant.name, call, dependant.request_param_name, headers)

    def header_values(self, request: Request) -> dict[str, Any] | None:
        """The header parameters' values, or None when a header is refused by its model."""
        values: dict[str, Any] = {}
        headers = request.headers
        for field, name, required in self.headers:
            raw = headers.get(name)
            if raw is None:
                if required:
                    return None
                values[field.name] = field.get_default()
                continue
            value, errors = field.validate(raw, values, loc=("header", field.alias))
            if errors:
                return None
            values[field.name] = value
        if self.request_param:
            values[self.request_param] = request
        return values


def _is_coroutine(call: Any) -> bool:
    if inspect.isroutine(call):
        return inspect.iscoroutinefunction(call)
    return inspect.iscoroutinefunction(getattr(call, "__call__", None))  # noqa: B004


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json"


@dataclass
class Prepared:
    """A well-formed request, checked: the endpoint's values so far (body, path
    parameters) and the dependencies still to call, with their header values."""

    values: dict[str, Any]
    calls: list[tuple[_Dependency, dict[str, Any]]]


@dataclass(frozen=True)
class FastCommand:
    """A command route's fast way, as included in one app (for slrt.api.dispatch).
    `prepare` only checks (no I/O, no dependency called): None means the request is
    not well formed, and FastAPI's handler must answer it. `run` calls the
    dependencies and the endpoint, and may raise what they raise."""

    prepare: Callable[[Request, bytes], Prepared | None]
    run: Callable[[Prepared], Awaitable[Response]]


#: The attribute of a route as included in an app (or of the route itself, when it is
#: the app's own) that holds its FastCommand.
FAST_COMMAND = "slrt_fast_command"


class CommandRoute(APIRoute):
    """An APIRoute that serves its well-formed requests itself when its shape allows
    (see the module's docstring); OpenAPI, routing and errors are FastAPI's."""

    fast: bool = False

    def get_route_handler(self) -> Handler:
        standard = super().get_route_handler()
        fast = self._fast_handler(standard)
        self.fast = fast is not None
        return fast or standard

    def _effective(self) -> Any:
        """This route as included in the app: what APIRoute.get_route_handler builds
        its handler from (FastAPI ≥ 0.16x keeps an inclusion's prefix, dependencies
        and overrides in a context beside the route)."""
        context_var = getattr(routing, "_effective_route_context_var", None)
        context = context_var.get() if context_var is not None else None
        if context is not None and context.original_route is self:
            return context
        return self

    def _fast_handler(self, standard: Handler) -> Handler | None:
        route = self._effective()
        dependant = route.dependant
        endpoint = dependant.call if dependant is not None else None
        dependencies = [_Dependency.of(d) for d in dependant.dependencies] if dependant else []
        if (
            endpoint is None
            or not inspect.iscoroutinefunction(endpoint)
            or len(dependant.body_params) != 1
            or dependant.query_params
            or dependant.header_params
            or dependant.cookie_params
            or dependant.request_param_name
            or dependant.background_tasks_param_name
            or dependant.security_scopes_param_name
            or dependant.response_param_name is None
            or route.response_field is None
            or not isinstance(route.response_class, DefaultPlaceholder)
            or any(d is None for d in dependencies)
        ):
            return None
        body_field = dependant.body_params[0]
        info = body_field.field_info
        if not isinstance(info, params.Body) or isinstance(info, params.Form) or info.embed:
            return None
        body: TypeAdapter[Any] = TypeAdapter(Annotated[info.annotation, info])  # type: ignore[arg-type]
        body_name = body_field.name
        path_params = tuple(dependant.path_params)
        solved = [d for d in dependencies if d is not None]
        response_name = dependant.response_param_name
        field = route.response_field
        status_code = route.status_code or 200
        overrides = route.dependency_overrides_provider
        options = {
            "include": route.response_model_include,
            "exclude": route.response_model_exclude,
            "by_alias": route.response_model_by_alias,
            "exclude_unset": route.response_model_exclude_unset,
            "exclude_defaults": route.response_model_exclude_defaults,
            "exclude_none": route.response_model_exclude_none,
        }

        def prepare(request: Request, raw: bytes) -> Prepared | None:
            if overrides is not None and getattr(overrides, "dependency_overrides", None):
                return None
            if not raw or not _is_json(request.headers.get("content-type")):
                return None
            try:
                values: dict[str, Any] = {body_name: body.validate_json(raw)}
            except ValidationError:
                return None
            for param in path_params:
                value, errors = param.validate(
                    request.path_params.get(param.alias), {}, loc=("path", param.alias)
                )
                if errors:
                    return None
                values[param.name] = value
            calls = []
            for dependency in solved:
                arguments = dependency.header_values(request)
                if arguments is None:
                    return None
                calls.append((dependency, arguments))
            return Prepared(values, calls)

        async def run(prepared: Prepared) -> Response:
            values = prepared.values
            for dependency, arguments in prepared.calls:
                values[dependency.name] = await dependency.call(**arguments)
            sub_response = Response()
            del sub_response.headers["content-length"]
            sub_response.status_code = None  # type: ignore[assignment]
            values[response_name] = sub_response
            content = await serialize_response(
                field=field,
                response_content=await endpoint(**values),
                dump_json=True,
                **options,
            )
            response = Response(
                content=content,
                status_code=sub_response.status_code or status_code,
                media_type="application/json",
            )
            response.headers.raw.extend(sub_response.headers.raw)
            return response

        async def handle(request: Request) -> Response:
            prepared = prepare(request, await request.body())  # the body stays on the request
            if prepared is None:
                return await standard(request)
            return await run(prepared)

        setattr(route, FAST_COMMAND, FastCommand(prepare, run))
        return handle
