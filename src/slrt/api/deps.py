"""Dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from slrt.domain.common import Actor, InvalidInput, Role
from slrt.domain.reference import require_region
from slrt.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_actor(
    x_user_id: Annotated[str, Header(min_length=1, max_length=100)],
    x_role: Annotated[Role, Header()],
    x_region: Annotated[str, Header(max_length=13)],
) -> Actor:
    """Who is calling. Until token authentication lands (issue 3) the caller states
    it in headers: for development and demos only, never expose this to a network."""
    region = x_region if x_region == "ID" else require_region(x_region, field="X-Region")
    if x_role is Role.SYSTEM:
        raise InvalidInput("role system is reserved for SLRT's own processes", field="X-Role")
    return Actor(user_id=x_user_id, role=x_role, region=region)


ActorDep = Annotated[Actor, Depends(get_actor)]


def expected_version(
    if_match: Annotated[
        str | None,
        Header(description='The version from the ETag of your last GET, e.g. "3"'),
    ] = None,
) -> int | None:
    """If-Match: the command applies only if the record is still at that version."""
    if if_match is None:
        return None
    value = if_match.strip().removeprefix("W/").strip('"')
    if not value.isdigit():
        raise InvalidInput('If-Match must be an ETag such as "3"', field="If-Match")
    return int(value)


ExpectedVersionDep = Annotated[int | None, Depends(expected_version)]
