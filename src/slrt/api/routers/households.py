"""Households: current data with score, rank and desil; search within a region."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from slrt.api.deps import ActorDep, RuntimeDep
from slrt.api.disclosure import reveals_identifiers
from slrt.api.errors import PROBLEM_RESPONSES
from slrt.api.read_models import state_of
from slrt.api.schemas.households import HouseholdOut, HouseholdSummary
from slrt.api.schemas.proposals import Page, RegionCode
from slrt.db import snapshot
from slrt.domain.access import Action, authorize
from slrt.domain.common import Role
from slrt.domain.reference import kabupaten_of, mask_identifier, region_name
from slrt.inspection import Inspector
from slrt.projections.household_status import get_household_status, list_households
from slrt.runtime import lookup_key

router = APIRouter(prefix="/api/v1/households", tags=["households"], responses=PROBLEM_RESPONSES)


@router.get("/{household_id}", response_model=HouseholdOut)
def get_household(
    household_id: UUID,
    runtime: RuntimeDep,
    actor: ActorDep,
    response: Response,
    as_of: Annotated[
        datetime | None,
        Query(description="Replay: the household as the system knew it at this instant"),
    ] = None,
) -> HouseholdOut:
    """The household as recorded now; score, rank and desil as the ranking last derived them.
    With `as_of`, the household, score, model version, rank and desil at that instant."""
    household = runtime.app.get_household(household_id)
    authorize(actor, Action.READ, household.region)
    if actor.role is Role.INSPECTOR:
        runtime.app.record_inspection(
            actor=actor,
            resource="household",
            resource_id=str(household_id),
            region=household.region,
        )
    reveal = reveals_identifiers(actor, household.region)
    if as_of is not None:
        return HouseholdOut(
            **Inspector(runtime).household_as_of(household_id, as_of, reveal=reveal)
        )
    shown = (lambda value: value) if reveal else mask_identifier
    with snapshot(runtime.engine) as conn:
        derived = get_household_status(conn, str(household_id)) or {}
    response.headers["ETag"] = f'"{household.version}"'
    return HouseholdOut(
        id=household.id,
        region=household.region,
        region_name=region_name(household.region),
        status=household.status,
        removal_reason=household.removal_reason,
        address=household.address,
        rt=household.rt,
        rw=household.rw,
        no_kk=shown(household.no_kk),
        members=[{**m, "nik": shown(m["nik"])} for m in household.members],
        indicators=household.indicators,
        deprivations=sum(household.indicators.values()),
        is_poor=household.is_poor,
        pmks=household.pmks,
        programmes=household.programmes,
        score=derived.get("score"),
        model_version=derived.get("model_version"),
        rank=derived.get("rank"),
        desil=derived.get("desil"),
        ranking_scope=kabupaten_of(household.region),
        scope_population=derived.get("population"),
        last_proposal_id=household.last_proposal_id,
        version=household.version,
        ranked_as_of_event=derived.get("last_notification_id"),
        registered_at=household.created_on,
        updated_at=household.modified_on,
    )


@router.get("", response_model=Page[HouseholdSummary])
def list_households_route(
    runtime: RuntimeDep,
    actor: ActorDep,
    region: Annotated[RegionCode | None, Query(description="Default: your own region")] = None,
    desil: Annotated[int | None, Query(ge=1, le=10)] = None,
    status: Annotated[str | None, Query(pattern="^(active|removed)$")] = None,
    q: Annotated[
        str | None,
        Query(
            min_length=2, max_length=100, description="A NIK / No. KK, or part of a name/address"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Page[HouseholdSummary]:
    """Households in a region, poorest first within each ranking scope."""
    region = region or actor.region
    authorize(actor, Action.READ, region)
    if actor.role is Role.INSPECTOR:
        runtime.app.record_inspection(
            actor=actor, resource="households", resource_id=None, region=region
        )
    with snapshot(runtime.engine) as conn:
        read_model = state_of(runtime, conn, "household_status")
        total, rows = list_households(
            conn,
            lookup_key=lookup_key(runtime.settings),
            region=None if region == "ID" else region,
            desil=desil,
            status=status,
            q=q,
            limit=limit,
            offset=offset,
        )
    return Page[HouseholdSummary](
        total=total,
        limit=limit,
        offset=offset,
        items=[HouseholdSummary(**r) for r in rows],
        read_model=read_model,
    )
