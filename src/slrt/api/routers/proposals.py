"""Proposals (usulan): submit, village decision, Dinsos decision, withdraw, read."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Query, Response, status

from slrt.api.command_route import CommandRoute
from slrt.api.commands import run_command
from slrt.api.deps import ActorDep, CommandDep, RuntimeDep, VersionedCommandDep
from slrt.api.disclosure import reveals_identifiers
from slrt.api.errors import PROBLEM_RESPONSES
from slrt.api.read_models import state_of
from slrt.api.schemas.proposals import (
    DinsosDecision,
    NewProposal,
    Page,
    ProposalOut,
    ProposalSummary,
    RegionCode,
    VillageDecision,
    Withdrawal,
)
from slrt.application import Outcome
from slrt.db import snapshot
from slrt.domain.access import Action, authorize
from slrt.domain.common import Actor, Role
from slrt.domain.household import member_warnings
from slrt.domain.proposal import Proposal, ProposalStatus
from slrt.domain.reference import mask_identifier, region_name
from slrt.projections.household_status import identifier_holders
from slrt.projections.proposal_list import list_proposals
from slrt.runtime import lookup_key

router = APIRouter(
    prefix="/api/v1/proposals",
    tags=["proposals"],
    responses=PROBLEM_RESPONSES,
    route_class=CommandRoute,
)

_EXAMPLE_REGISTER = {
    "kind": "register",
    "household": {
        "region": "64.74.01.1001",
        "address": "Jl. Mulawarman No. 12",
        "rt": "003",
        "rw": "005",
        "no_kk": "6474010101200001",
        "members": [
            {"nik": "6474011508800001", "name": "Budi Santoso", "relationship": "head", "sex": "L"},
            {
                "nik": "6474015508820002",
                "name": "Siti Aminah",
                "relationship": "spouse",
                "sex": "P",
            },
        ],
        "indicators": {
            "floor_area": True,
            "floor_material": True,
            "wall_material": False,
            "sanitation": True,
            "lighting": False,
            "drinking_water": True,
            "cooking_fuel": True,
            "protein": True,
            "clothing": True,
            "meals": False,
            "medical_care": True,
            "head_occupation": True,
            "head_education": True,
            "savings": True,
        },
        "pmks": ["Fakir Miskin"],
    },
    "note": "Diusulkan melalui RT 003",
}


def _out(proposal: Proposal, *, reveal: bool, duplicates: list[str] | None = None) -> ProposalOut:
    return ProposalOut(
        id=proposal.id,
        kind=proposal.kind.value,
        status=proposal.status.value,
        region=proposal.region,
        household_id=proposal.household_id,
        payload=proposal.payload if reveal else _masked(proposal.payload),
        note=proposal.note,
        berita_acara=proposal.berita_acara,
        decisions=proposal.decisions,
        submitted_by=proposal.submitted_by,  # type: ignore[arg-type]
        submitted_at=proposal.created_on,
        updated_at=proposal.modified_on,
        version=proposal.version,
        warnings=[
            *member_warnings((_household_part(proposal.payload) or {}).get("members")),
            *(duplicates or []),
        ],
    )


def _duplicates(runtime: RuntimeDep, proposal: Proposal) -> list[str]:
    """What the deliberation should settle first: a NIK or No. KK of the proposal that
    another active household lists now (one person, one household; one KK, one
    household). Read from the household read model, so a moment behind."""
    household = _household_part(proposal.payload) or {}
    identifiers = {
        f"members[{i}].nik": ("nik", m["nik"])
        for i, m in enumerate(household.get("members") or [])
        if isinstance(m, dict) and isinstance(m.get("nik"), str)
    }
    if isinstance(household.get("no_kk"), str):
        identifiers["no_kk"] = ("kk", household["no_kk"])
    besides = str(proposal.household_id) if proposal.household_id else None
    with runtime.engine.connect() as conn:
        holders = identifier_holders(
            conn, lookup_key=lookup_key(runtime.settings), identifiers=identifiers, besides=besides
        )
    return [
        f"{name} is already listed in another active household, {hid} in {region} "
        f"({region_name(region)}): settle which household the "
        f"{'person' if name != 'no_kk' else 'family card'} belongs to before the deliberation"
        for name in identifiers
        for hid, region in holders.get(name, [])
    ]


def _household_part(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The household data a proposal carries: all of it (register) or the changes."""
    part: dict[str, Any] | None = payload.get("household") or payload.get("changes")
    return part


def _masked(payload: dict[str, Any]) -> dict[str, Any]:
    """Proposals carry full NIKs and No. KK; the API shows them masked."""
    household = _household_part(payload)
    if not household:
        return payload
    shown = dict(household)
    if "no_kk" in shown:
        shown["no_kk"] = mask_identifier(shown["no_kk"])
    if "members" in shown:
        shown["members"] = [{**m, "nik": mask_identifier(m["nik"])} for m in shown["members"]]
    key = "household" if "household" in payload else "changes"
    return {**payload, key: shown}


def _answer(runtime: RuntimeDep, actor: Actor, outcome: Outcome, response: Response) -> ProposalOut:
    """The proposal as the command left it (the same answer again for a replayed key)."""
    proposal = outcome.aggregate or runtime.app.get_proposal(outcome.id, version=outcome.version)
    response.headers["ETag"] = f'"{proposal.version}"'
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _out(proposal, reveal=reveals_identifiers(actor, proposal.region))


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProposalOut)
async def submit_proposal(
    body: Annotated[NewProposal, Body(openapi_examples={"register": {"value": _EXAMPLE_REGISTER}})],
    caller: CommandDep,
    response: Response,
) -> ProposalOut:
    """A front office logs a proposal to register, update, remove, enrol or unenrol a household."""
    runtime, actor = caller.runtime, caller.actor
    data = body.model_dump(mode="json", exclude_none=True)
    kind = data.pop("kind")
    household_id = data.pop("household_id", None)
    note = data.pop("note", None)
    command = runtime.app.submit_proposal_command(
        actor=actor,
        kind=kind,
        payload=data,
        household_id=UUID(household_id) if household_id else None,
        note=note,
        idempotency=caller.idempotency,
    )

    def answer(outcome: Outcome) -> ProposalOut:
        response.headers["Location"] = f"/api/v1/proposals/{outcome.id}"
        return _answer(runtime, actor, outcome, response)

    return await run_command(runtime, command, answer)


@router.post("/{proposal_id}/village-decision", response_model=ProposalOut)
async def decide_at_village(
    proposal_id: UUID,
    body: VillageDecision,
    caller: VersionedCommandDep,
    response: Response,
) -> ProposalOut:
    """The musyawarah desa's decision, with its berita acara (number, date, SHA-256)."""
    runtime, actor = caller.runtime, caller.actor
    command = runtime.app.decide_at_village_command(
        actor=actor,
        proposal_id=proposal_id,
        approve=body.decision == "approve",
        berita_acara=body.berita_acara.model_dump(mode="json") if body.berita_acara else None,
        reason=body.reason,
        expected_version=caller.expected_version,
        idempotency=caller.idempotency,
    )
    return await run_command(
        runtime, command, lambda outcome: _answer(runtime, actor, outcome, response)
    )


@router.post("/{proposal_id}/dinsos-decision", response_model=ProposalOut)
async def decide_at_dinsos(
    proposal_id: UUID,
    body: DinsosDecision,
    caller: VersionedCommandDep,
    response: Response,
) -> ProposalOut:
    """Dinsos verifies (the household changes at once) or returns the proposal to the village."""
    runtime, actor = caller.runtime, caller.actor
    command = runtime.app.decide_at_dinsos_command(
        actor=actor,
        proposal_id=proposal_id,
        verify=body.decision == "verify",
        reason=body.reason,
        expected_version=caller.expected_version,
        idempotency=caller.idempotency,
    )
    return await run_command(
        runtime, command, lambda outcome: _answer(runtime, actor, outcome, response)
    )


@router.post("/{proposal_id}/withdraw", response_model=ProposalOut)
async def withdraw_proposal(
    proposal_id: UUID,
    body: Withdrawal,
    caller: VersionedCommandDep,
    response: Response,
) -> ProposalOut:
    runtime, actor = caller.runtime, caller.actor
    command = runtime.app.withdraw_proposal_command(
        actor=actor,
        proposal_id=proposal_id,
        reason=body.reason,
        expected_version=caller.expected_version,
        idempotency=caller.idempotency,
    )
    return await run_command(
        runtime, command, lambda outcome: _answer(runtime, actor, outcome, response)
    )


@router.get("/{proposal_id}", response_model=ProposalOut)
def get_proposal(
    proposal_id: UUID, runtime: RuntimeDep, actor: ActorDep, response: Response
) -> ProposalOut:
    proposal = runtime.app.get_proposal(proposal_id)
    authorize(actor, Action.READ, proposal.region)
    if actor.role is Role.INSPECTOR:
        runtime.app.record_inspection(
            actor=actor, resource="proposal", resource_id=str(proposal_id), region=proposal.region
        )
    response.headers["ETag"] = f'"{proposal.version}"'
    return _out(
        proposal,
        reveal=reveals_identifiers(actor, proposal.region),
        duplicates=_duplicates(runtime, proposal),
    )


@router.get("", response_model=Page[ProposalSummary])
def list_proposals_route(
    runtime: RuntimeDep,
    actor: ActorDep,
    region: Annotated[RegionCode | None, Query()] = None,
    status_: Annotated[ProposalStatus | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Page[ProposalSummary]:
    """Proposals in a region (default: the caller's own), newest first."""
    region = region or actor.region
    authorize(actor, Action.READ, region)
    if actor.role is Role.INSPECTOR:
        runtime.app.record_inspection(
            actor=actor, resource="proposals", resource_id=None, region=region
        )
    with snapshot(runtime.engine) as conn:
        read_model = state_of(runtime, conn, "proposal_list")
        total, rows = list_proposals(
            conn,
            region=None if region == "ID" else region,
            status=status_.value if status_ else None,
            limit=limit,
            offset=offset,
        )
    return Page[ProposalSummary](
        total=total,
        limit=limit,
        offset=offset,
        items=[ProposalSummary(**r) for r in rows],
        read_model=read_model,
    )
