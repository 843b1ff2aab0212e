"""RFC 9457 problem details for every error, in one place.

Nothing a client sends may produce a 500; internal names and stack traces never
reach a response.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from slrt.domain.access import Forbidden
from slrt.domain.common import (
    ConcurrentEdit,
    DomainError,
    IllegalTransition,
    InvalidInput,
    NotFound,
    VersionMismatch,
)
from slrt.domain.windows import OutsideSubmissionWindow
from slrt.group_commit import GroupCommitClosed
from slrt.security import Unauthenticated

log = structlog.get_logger("slrt.api")

PROBLEM = "application/problem+json"
_TYPE_BASE = "https://slrt.example.id/problems/"


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> JSONResponse:
    reserved = {"type", "title", "status", "detail", "instance"}
    body = {k: v for k, v in extensions.items() if k not in reserved}
    body.update(type=type_, title=title, status=status, detail=detail)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _status_of(error: DomainError) -> int:
    if isinstance(error, Unauthenticated):
        return 401
    if isinstance(error, InvalidInput):
        return 422
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Forbidden):
        return 403
    if isinstance(error, VersionMismatch):
        return 412
    if isinstance(error, IllegalTransition | ConcurrentEdit | OutsideSubmissionWindow):
        return 409
    return 400


def _slug(error: DomainError) -> str:
    name = type(error).__name__
    return "".join("-" + c.lower() if c.isupper() else c for c in name).lstrip("-")


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


async def domain_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, DomainError)
    status = _status_of(error)
    log.info(
        "request.refused",
        outcome=status,
        reason=type(error).__name__,
        detail=error.detail,
        path=request.url.path,
    )
    extensions = {k: _jsonable(v) for k, v in error.context.items()}
    headers = {}
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="slrt"'
    if isinstance(error, VersionMismatch) and "current_version" in error.context:
        headers["ETag"] = f'"{error.context["current_version"]}"'
    return problem(
        status,
        error.title,
        error.detail,
        type_=_TYPE_BASE + _slug(error),
        headers=headers or None,
        **extensions,
    )


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "request")


async def validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    errors = [
        {"field": "body", "message": "the body is not valid JSON"}
        if e.get("type") == "json_invalid"
        else {"field": _location(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
        for e in error.errors()
    ]
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
    log.info("request.invalid", outcome=422, path=request.url.path, errors=errors[:5])
    return problem(
        422,
        "Invalid request",
        summary or "the request is not valid",
        type_=_TYPE_BASE + "invalid-request",
        errors=errors,
    )


async def http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else "request refused"
    return problem(error.status_code, _reason_phrase(error.status_code), detail)


async def stopping(request: Request, error: Exception) -> JSONResponse:
    """A command that reached the committer as the process was stopping: not saved."""
    log.info("request.refused", outcome=503, reason="stopping", path=request.url.path)
    return problem(
        503,
        "Service Unavailable",
        "the service is restarting and did not save the command: send it again "
        "(with the same Idempotency-Key) in a few seconds",
        headers={"Retry-After": "5"},
    )


async def unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.exception("request.failed", path=request.url.path)
    return problem(500, "Internal error", "the server failed; the error was logged")


def _reason_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def install(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(GroupCommitClosed, stopping)
    app.add_exception_handler(Exception, unexpected_error)


class Problem(BaseModel):
    """RFC 9457 problem details. Extra members (e.g. `field`, `errors`) may follow."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str


def _problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM: {"schema": Problem.model_json_schema()}},
    }


#: Documented on every router, so integrators (and the fuzzer) know every answer.
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem_response("The body could not be read (e.g. not UTF-8)"),
    401: _problem_response("No valid bearer token"),
    403: _problem_response("Outside your role or region"),
    404: _problem_response("Unknown id"),
    409: _problem_response("Illegal transition, outside the submission window, or a conflict"),
    412: _problem_response("If-Match names a version that is no longer current"),
    413: _problem_response("Body larger than the limit"),
    422: _problem_response("Invalid input; `errors` lists each problem"),
}
