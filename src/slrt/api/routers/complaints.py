"""Complaints (pengaduan): receive, acknowledge, assign, escalate, resolve, close, reopen."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel

from slrt.api.command_route import CommandRoute
from slrt.api.commands import run_command
from slrt.api.deps import ActorDep, CommandCaller, CommandDep, RuntimeDep, VersionedCommandDep
from slrt.api.errors import PROBLEM_RESPONSES
from slrt.api.read_models import state_of
from slrt.api.schemas.complaints import (
    Acknowledgement,
    Assignment,
    Closing,
    ComplaintOut,
    ComplaintSummary,
    Escalation,
    NewComplaint,
    Reopening,
    Resolution,
)
from slrt.api.schemas.proposals import Page, RegionCode
from slrt.application import Outcome
from slrt.db import snapshot
from slrt.domain.access import Action, authorize, covers
from slrt.domain.common import Actor, Role
from slrt.domain.complaint import ComplaintStatus
from slrt.projections.complaint_list import list_complaints

router = APIRouter(
    prefix="/api/v1/complaints",
    tags=["complaints"],
    responses=PROBLEM_RESPONSES,
    route_class=CommandRoute,
)


def _answer(runtime: RuntimeDep, outcome: Outcome, response: Response) -> ComplaintOut:
    complaint = outcome.aggregate or runtime.app.get_complaint(outcome.id, version=outcome.version)
    response.headers["ETag"] = f'"{complaint.version}"'
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return ComplaintOut(
        id=complaint.id,
        region=complaint.region,
        status=complaint.status.value,
        channel=complaint.channel.value,
        complaint_type=complaint.complaint_type.value,
        category=complaint.category.value,
        description=complaint.description,
        household_id=complaint.household_id,
        member_nik=complaint.masked_member_nik,
        reporter=complaint.masked_contact,
        sla_policy_version=complaint.sla_policy_version,
        escalation_level=complaint.escalation_level.value if complaint.escalation_level else None,
        assignee=complaint.assignee,
        resolution=complaint.resolution,
        history=complaint.history,
        received_at=complaint.created_on,
        updated_at=complaint.modified_on,
        version=complaint.version,
    )


def _may_read(actor: Actor, region: str, escalated_to: str | None) -> None:
    """A complaint is read where it was received, or where it was escalated to."""
    if escalated_to and covers(actor.region, escalated_to):
        return
    authorize(actor, Action.READ, region)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ComplaintOut)
async def receive_complaint(
    body: NewComplaint,
    caller: CommandDep,
    response: Response,
) -> ComplaintOut:
    """Logs a complaint; its first-response and resolution clocks start now."""
    runtime, actor = caller.runtime, caller.actor
    command = runtime.app.receive_complaint_command(
        actor=actor,
        region=body.region,
        channel=body.channel.value,
        complaint_type=body.complaint_type.value,
        category=body.category.value,
        description=body.description,
        household_id=body.household_id,
        member_nik=body.member_nik,
        reporter=body.reporter.model_dump(exclude_none=True) if body.reporter else None,
        idempotency=caller.idempotency,
    )

    def answer(outcome: Outcome) -> ComplaintOut:
        response.headers["Location"] = f"/api/v1/complaints/{outcome.id}"
        return _answer(runtime, outcome, response)

    return await run_command(runtime, command, answer)


async def _handle(
    action: str, complaint_id: UUID, body: BaseModel, caller: CommandCaller, response: Response
) -> ComplaintOut:
    runtime = caller.runtime
    command = runtime.app.handle_complaint_command(
        actor=caller.actor,
        complaint_id=complaint_id,
        action=action,
        expected_version=caller.expected_version,
        idempotency=caller.idempotency,
        **body.model_dump(mode="json", exclude_none=True),
    )
    return await run_command(runtime, command, lambda outcome: _answer(runtime, outcome, response))


@router.post("/{complaint_id}/acknowledge", response_model=ComplaintOut)
async def acknowledge(
    complaint_id: UUID,
    body: Acknowledgement,
    caller: VersionedCommandDep,
    response: Response,
) -> ComplaintOut:
    """The first response to the reporter: stops the first-response clock."""
    runtime, actor = caller.runtime, caller.actor
    command = runtime.app.handle_complaint_command(
        actor=actor,
        complaint_id=complaint_id,
        action="acknowledge",
        expected_version=caller.expected_version,
        idempotency=caller.idempotency,
        note=body.note,
    )
    return await run_command(runtime, command, lambda outcome: _answer(runtime, outcome, response))


@router.post("/{complaint_id}/assign", response_model=ComplaintOut)
async def assign(
    complaint_id: UUID,
    body: Assignment,
    caller: VersionedCommandDep,
    response: Response,
) -> ComplaintOut:
    """Assigns (or reassigns) the complaint to an office or an agency."""
    return await _handle("assign", complaint_id, body, caller, response)


@router.post("/{complaint_id}/escalate", response_model=ComplaintOut)
async def escalate(
    complaint_id: UUID,
    body: Escalation,
    caller: VersionedCommandDep,
    response: Response,
) -> ComplaintOut:
    """Sends the complaint up to the kecamatan or the kabupaten, with a reason."""
    return await _handle("escalate", complaint_id, body, caller, response)


@router.post("/{complaint_id}/resolve", response_model=ComplaintOut)
async def resolve(
    complaint_id: UUID,
    body: Resolution,
    caller: VersionedCommandDep,
    response: Response,
) -> ComplaintOut:
    """Records the outcome (and the proposal or referral it produced): stops the
    resolution clock."""
    return await _handle("resolve", complaint_id, body, caller, response)


@router.post("/{complaint_id}/close", response_model=ComplaintOut)
async def close(
    complaint_id: UUID,
    body: Closing,
    caller: VersionedCommandDep,
    response: Response,
) -> ComplaintOut:
    return await _handle("close", complaint_id, body, caller, response)


@router.post("/{complaint_id}/reopen", response_model=ComplaintOut)
async def reopen(
    complaint_id: UUID,
    body: Reopening,
    caller: VersionedCommandDep,
    response: Response,
) -> ComplaintOut:
    """Reopens a resolved or closed complaint: a fresh resolution clock starts."""
    return await _handle("reopen", complaint_id, body, caller, response)


@router.get("/{complaint_id}", response_model=ComplaintOut)
def get_complaint(
    complaint_id: UUID, runtime: RuntimeDep, actor: ActorDep, response: Response
) -> ComplaintOut:
    complaint = runtime.app.get_complaint(complaint_id)
    escalated_to = next(
        (h["to"] for h in reversed(complaint.history) if h["event"] == "escalated"), None
    )
    _may_read(actor, complaint.region, escalated_to)
    if actor.role is Role.INSPECTOR:
        runtime.app.record_inspection(
            actor=actor,
            resource="complaint",
            resource_id=str(complaint_id),
            region=complaint.region,
        )
    return _answer(runtime, Outcome(id=complaint.id, version=complaint.version), response)


@router.get("", response_model=Page[ComplaintSummary])
def list_complaints_route(
    runtime: RuntimeDep,
    actor: ActorDep,
    region: Annotated[RegionCode | None, Query(description="Default: your own region")] = None,
    state: Annotated[ComplaintStatus | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Page[ComplaintSummary]:
    """Complaints received in the region or escalated to it, newest first."""
    region = region or actor.region
    authorize(actor, Action.READ, region)
    if actor.role is Role.INSPECTOR:
        runtime.app.record_inspection(
            actor=actor, resource="complaints", resource_id=None, region=region
        )
    with snapshot(runtime.engine) as conn:
        read_model = state_of(runtime, conn, "complaint_list")
        total, rows = list_complaints(
            conn, region=region, status=state.value if state else None, limit=limit, offset=offset
        )
    return Page[ComplaintSummary](
        total=total,
        limit=limit,
        offset=offset,
        items=[ComplaintSummary(**r) for r in rows],
        read_model=read_model,
    )
