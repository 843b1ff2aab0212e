"""Dependencies shared by the routers: the runtime, the caller, If-Match, Idempotency-Key.

They are `async def` on purpose: they only compute (the caller's token is verified once
and then remembered), and FastAPI runs a plain `def` dependency in its thread pool, a
hand-over to another thread per dependency per request."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.security import HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from slrt.application import Idempotency
from slrt.domain.common import Actor, InvalidInput
from slrt.runtime import Runtime
from slrt.security import TokenVerifier, Unauthenticated


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class BearerCaller(HTTPBearer):
    """The caller, from a valid bearer token, with the request's id (recorded on every
    event the request causes). Every endpoint but health and the OpenAPI document needs
    one. One dependency that is also the OpenAPI security scheme: FastAPI resolves each
    dependency with its own pass over the request (~20 µs each under load), and the
    scheme as a sub-dependency of the caller was one more."""

    async def __call__(self, request: Request) -> Actor:  # type: ignore[override]
        return self.actor(request)

    @staticmethod
    def actor(request: Request) -> Actor:
        scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("send a bearer token: Authorization: Bearer <token>")
        tokens: TokenVerifier = request.app.state.tokens
        actor = tokens.actor(token)
        runtime: Runtime = request.app.state.runtime
        if actor.user_id in runtime.deactivated:
            raise Unauthenticated(f"user {actor.user_id} has been deactivated")
        # The id RequestContext put in the scope's state (read without Starlette's
        # State wrapper, which request.state builds on first use).
        return actor.for_request(request.scope.get("state", {}).get("request_id"))


#: One OpenAPI security scheme, whichever of the callers below a route takes.
_SCHEME: dict[str, Any] = {
    "scheme_name": "HTTPBearer",
    "auto_error": False,
    "description": "A JWT from your identity provider, or from `slrt users token <user>`",
}
get_actor = BearerCaller(**_SCHEME)
ActorDep = Annotated[Actor, Depends(get_actor)]


_VERSION = re.compile(r"[0-9]{1,9}")


IfMatch = Annotated[
    str | None,
    Header(max_length=40, description='The version from the ETag of your last GET, e.g. "3"'),
]


async def expected_version(if_match: IfMatch = None) -> int | None:
    """If-Match: the command applies only if the record is still at that version."""
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not _VERSION.fullmatch(value):  # str.isdigit() also accepts "²", which int() refuses
        raise InvalidInput('If-Match must be an ETag such as "3"', field="If-Match")
    return int(value)


_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


IdempotencyKey = Annotated[
    str | None,
    Header(
        max_length=255,
        description=(
            "Any unique string (e.g. a UUID) chosen by the client. A retry with the same "
            "key and body returns the first answer and changes nothing; the same key "
            "with a different body is a 422."
        ),
    ),
]


async def idempotency(
    request: Request, idempotency_key: IdempotencyKey = None
) -> Idempotency | None:
    if idempotency_key is None:
        return None
    if not _KEY.match(idempotency_key):
        raise InvalidInput(
            "Idempotency-Key must be 1–255 visible ASCII characters", field="Idempotency-Key"
        )
    body = await request.body()
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = body
    digest = hashlib.sha256(request.method.encode() + b" " + request.url.path.encode() + b"\n")
    digest.update(canonical)
    return Idempotency(key=idempotency_key, fingerprint=digest.hexdigest())


@dataclass(frozen=True)
class CommandCaller:
    """Who sends a command, through which runtime, with which Idempotency-Key and, for
    commands on an existing record, which If-Match version."""

    runtime: Runtime
    actor: Actor
    idempotency: Idempotency | None
    expected_version: int | None = None


class BearerCommand(BearerCaller):
    """The caller of a command that creates a record, as one dependency: FastAPI
    resolves each dependency with its own pass over the request: the runtime, the
    caller and the Idempotency-Key as three dependencies cost ~7 % more CPU per
    registration (measured, bench/README.md). It is the bearer scheme too."""

    async def __call__(  # type: ignore[override]
        self, request: Request, idempotency_key: IdempotencyKey = None
    ) -> CommandCaller:
        return await self.caller(request, idempotency_key)

    async def caller(
        self, request: Request, idempotency_key: str | None, if_match: str | None = None
    ) -> CommandCaller:
        """The caller, with If-Match's version when given; built whole for both kinds
        of command (dataclasses.replace inspected the fields on every call)."""
        return CommandCaller(
            runtime=request.app.state.runtime,
            actor=self.actor(request),
            idempotency=await idempotency(request, idempotency_key),
            expected_version=await expected_version(if_match),
        )


class BearerVersionedCommand(BearerCommand):
    """The caller of a command on an existing record: BearerCommand, and If-Match."""

    async def __call__(  # type: ignore[override]
        self,
        request: Request,
        if_match: IfMatch = None,
        idempotency_key: IdempotencyKey = None,
    ) -> CommandCaller:
        return await self.caller(request, idempotency_key, if_match)


CommandDep = Annotated[CommandCaller, Depends(BearerCommand(**_SCHEME))]
VersionedCommandDep = Annotated[CommandCaller, Depends(BearerVersionedCommand(**_SCHEME))]
