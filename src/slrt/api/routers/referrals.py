"""Referrals (rujukan) to partner agencies: create, read, cancel.

Creating a referral only stores it; the outbox sends it to the agency's Kafka topic
afterwards (ADR 0007), so a broker outage never fails this request.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Response, status

from slrt.api.command_route import CommandRoute
from slrt.api.commands import run_command
from slrt.api.deps import ActorDep, CommandDep, RuntimeDep, VersionedCommandDep
from slrt.api.errors import PROBLEM_RESPONSES
from slrt.api.schemas.referrals import Cancellation, NewReferral, ReferralOut
from slrt.application import Outcome
from slrt.domain.access import Action, authorize, authorize_agency
from slrt.domain.common import Role

router = APIRouter(
    prefix="/api/v1/referrals",
    tags=["referrals"],
    responses=PROBLEM_RESPONSES,
    route_class=CommandRoute,
)


def _answer(runtime: RuntimeDep, outcome: Outcome, response: Response) -> ReferralOut:
    referral = outcome.aggregate or runtime.app.get_referral(outcome.id, version=outcome.version)
    response.headers["ETag"] = f'"{referral.version}"'
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return ReferralOut(
        id=referral.id,
        region=referral.region,
        household_id=referral.household_id,
        member_nik=referral.masked_member_nik,
        agency=referral.agency,
        service=referral.service,
        reason=referral.reason,
        urgency=referral.urgency,
        complaint_id=referral.complaint_id,
        proposal_id=referral.proposal_id,
        status=referral.status.value,
        dispatched_at=referral.dispatched_at,
        agency_reference=referral.agency_reference,
        outcome=referral.outcome,
        history=referral.history,
        created_at=referral.created_on,
        updated_at=referral.modified_on,
        version=referral.version,
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ReferralOut)
async def create_referral(
    body: NewReferral,
    caller: CommandDep,
    response: Response,
) -> ReferralOut:
    """Refers a household or one member to an agency; its acknowledgement clock starts."""
    runtime, actor = caller.runtime, caller.actor
    command = runtime.app.create_referral_command(
        actor=actor,
        household_id=body.household_id,
        member_nik=body.member_nik,
        agency=body.agency.value,
        service=body.service,
        reason=body.reason,
        urgency=body.urgency.value,
        complaint_id=body.complaint_id,
        proposal_id=body.proposal_id,
        idempotency=caller.idempotency,
    )

    def answer(outcome: Outcome) -> ReferralOut:
        response.headers["Location"] = f"/api/v1/referrals/{outcome.id}"
        return _answer(runtime, outcome, response)

    return await run_command(runtime, command, answer)


@router.get("/{referral_id}", response_model=ReferralOut)
def get_referral(
    referral_id: UUID, runtime: RuntimeDep, actor: ActorDep, response: Response
) -> ReferralOut:
    """Read in its region; an agency user reads only its own agency's referrals."""
    referral = runtime.app.get_referral(referral_id)
    authorize_agency(actor, Action.READ, referral.agency)
    authorize(actor, Action.READ, referral.region)
    if actor.role is Role.INSPECTOR:
        runtime.app.record_inspection(
            actor=actor, resource="referral", resource_id=str(referral_id), region=referral.region
        )
    return _answer(runtime, Outcome(id=referral.id, version=referral.version), response)


@router.post("/{referral_id}/cancel", response_model=ReferralOut)
async def cancel_referral(
    referral_id: UUID,
    body: Cancellation,
    caller: VersionedCommandDep,
    response: Response,
) -> ReferralOut:
    """SLRT withdraws an open referral; the agency is told on its topic."""
    runtime, actor = caller.runtime, caller.actor
    command = runtime.app.cancel_referral_command(
        actor=actor,
        referral_id=referral_id,
        reason=body.reason,
        expected_version=caller.expected_version,
        idempotency=caller.idempotency,
    )
    return await run_command(runtime, command, lambda outcome: _answer(runtime, outcome, response))
