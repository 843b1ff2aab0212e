"""SLA: the policy, the timers, the front office's work queue, compliance figures."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status

from slrt.api.deps import ActorDep, CommandDep, RuntimeDep
from slrt.api.errors import PROBLEM_RESPONSES
from slrt.api.schemas.complaints import ComplianceRow, NewSlaPolicyVersion, TimerOut
from slrt.api.schemas.proposals import RegionCode
from slrt.domain.access import Action, authorize
from slrt.domain.common import Actor, InvalidInput, Role
from slrt.projections.sla_timers import compliance, list_timers, timers_started_between

router = APIRouter(prefix="/api/v1", tags=["sla"], responses=PROBLEM_RESPONSES)

TimerState = Literal["on_track", "at_risk", "breached", "met", "missed"]


def _readable_region(runtime: RuntimeDep, actor: Actor, region: str | None, what: str) -> str:
    region = region or actor.region
    authorize(actor, Action.READ, region)
    if actor.role is Role.INSPECTOR:
        runtime.app.record_inspection(actor=actor, resource=what, resource_id=None, region=region)
    return region


@router.get("/queues/front-office", response_model=list[TimerOut])
def front_office_queue(
    runtime: RuntimeDep,
    actor: ActorDep,
    region: Annotated[RegionCode | None, Query(description="Default: your own region")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TimerOut]:
    """What the desk must do now: every running clock in the region, earliest deadline first."""
    region = _readable_region(runtime, actor, region, "queue")
    with runtime.engine.connect() as conn:
        rows = list_timers(
            conn,
            region=region,
            now=runtime.app.clock(),
            state=None,
            open_only=True,
            limit=limit,
            offset=0,
        )
    return [TimerOut(**r) for r in rows]


@router.get("/sla/timers", response_model=list[TimerOut])
def sla_timers(
    runtime: RuntimeDep,
    actor: ActorDep,
    region: Annotated[RegionCode | None, Query(description="Default: your own region")] = None,
    state: Annotated[TimerState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> list[TimerOut]:
    """Timers with their deadlines, time left and state (on track, at risk, breached;
    met or missed once stopped)."""
    region = _readable_region(runtime, actor, region, "sla_timers")
    with runtime.engine.connect() as conn:
        rows = list_timers(
            conn,
            region=region,
            now=runtime.app.clock(),
            state=state,
            open_only=False,
            limit=limit,
            offset=offset,
        )
    return [TimerOut(**r) for r in rows]


@router.get("/sla/compliance", response_model=list[ComplianceRow])
def sla_compliance(
    runtime: RuntimeDep,
    actor: ActorDep,
    region: Annotated[RegionCode | None, Query(description="Default: your own region")] = None,
    from_: Annotated[
        datetime | None, Query(alias="from", description="Default: 30 days ago")
    ] = None,
    to: Annotated[datetime | None, Query(description="Default: now")] = None,
) -> list[ComplianceRow]:
    """For clocks started in [from, to): share met within SLA, median and p90 hours to
    the first response and to resolution, per region, category and target."""
    region = _readable_region(runtime, actor, region, "sla_compliance")
    now = runtime.app.clock()
    end = _aware(to, "to") if to else now
    start = _aware(from_, "from") if from_ else end - timedelta(days=30)
    if start >= end:
        raise InvalidInput("from must be before to", field="from")
    with runtime.engine.connect() as conn:
        timers = timers_started_between(conn, region=region, start=start, end=end)
    return [ComplianceRow(**row) for row in compliance(timers, now=now)]


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None:
        raise InvalidInput(
            f"{field} needs a time zone, e.g. 2026-11-20T08:00:00+08:00", field=field
        )
    return value.astimezone(UTC)


@router.get("/sla/policies")
def list_sla_policies(runtime: RuntimeDep, actor: ActorDep) -> list[dict[str, Any]]:
    """Every published version of the SLA policy."""
    authorize(actor, Action.READ)
    policy = runtime.app.get_sla_policy()
    return list(policy.versions) if policy else []


@router.post("/sla/policies", status_code=status.HTTP_201_CREATED)
def publish_sla_policy(
    body: NewSlaPolicyVersion,
    caller: CommandDep,
    response: Response,
) -> dict[str, Any]:
    """Publishes the next version; it applies to clocks started from now on."""
    runtime, actor = caller.runtime, caller.actor
    outcome = runtime.app.publish_sla_policy(
        actor=actor, rules=body.rules, note=body.note, idempotency=caller.idempotency
    )
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    policy = runtime.app.get_sla_policy(outcome.version)
    assert policy is not None
    return dict(policy.versions[-1])
