"""Dependencies shared by the routers: the runtime, the caller, If-Match, Idempotency-Key.

They are `async def` on purpose: they only compute (the caller's token is verified once
and then remembered), and FastAPI runs a plain `def` dependency in its thread pool, a
hand-over to another thread per dependency per request."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from typing import Annotated

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
        scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("send a bearer token: Authorization: Bearer <token>")
        tokens: TokenVerifier = request.app.state.tokens
        actor = tokens.actor(token)
        runtime: Runtime = request.app.state.runtime
        if actor.user_id in runtime.deactivated:
            raise Unauthenticated(f"user {actor.user_id} has been deactivated")
        return replace(actor, request_id=getattr(request.state, "request_id", None))


get_actor = BearerCaller(
    scheme_name="HTTPBearer",
    auto_error=False,
    description="A JWT from your identity provider, or from `slrt users token <user>`",
)
ActorDep = Annotated[Actor, Depends(get_actor)]


_VERSION = re.compile(r"[0-9]{1,9}")


async def expected_version(
    if_match: Annotated[
        str | None,
        Header(max_length=40, description='The version from the ETag of your last GET, e.g. "3"'),
    ] = None,
) -> int | None:
    """If-Match: the command applies only if the record is still at that version."""
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not _VERSION.fullmatch(value):  # str.isdigit() also accepts "²", which int() refuses
        raise InvalidInput('If-Match must be an ETag such as "3"', field="If-Match")
    return int(value)


ExpectedVersionDep = Annotated[int | None, Depends(expected_version)]

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


async def idempotency(
    request: Request,
    idempotency_key: Annotated[
        str | None,
        Header(
            max_length=255,
            description=(
                "Any unique string (e.g. a UUID) chosen by the client. A retry with the same "
                "key and body returns the first answer and changes nothing; the same key "
                "with a different body is a 422."
            ),
        ),
    ] = None,
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


IdempotencyDep = Annotated[Idempotency | None, Depends(idempotency)]
