"""A household's history for inspectors: timeline, rank history and explanation, dossier.

Reads only. Same region rules as every read (inspectors read anywhere), and every read
by an inspector is itself recorded as an event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from slrt.api.deps import ActorDep, RuntimeDep
from slrt.api.disclosure import reveals_identifiers
from slrt.api.errors import PROBLEM_RESPONSES
from slrt.domain.access import Action, authorize
from slrt.domain.common import Actor, Role
from slrt.dossier import build_dossier
from slrt.inspection import TIMELINE_KINDS, VERIFY_SCOPES, Inspector
from slrt.runtime import Runtime

#: The dossier's `verify` was a boolean: `true` verified the whole store.
_FORMER_VERIFY = {"true": "store", "false": "none"}

router = APIRouter(prefix="/api/v1/households", tags=["inspection"], responses=PROBLEM_RESPONSES)

From = Annotated[
    datetime | None,
    Query(alias="from", description="ISO 8601 with offset, e.g. 2026-03-01T00:00:00+08:00"),
]
To = Annotated[datetime | None, Query(alias="to", description="ISO 8601 with offset; default now")]


def _read(runtime: Runtime, actor: Actor, household_id: UUID, resource: str) -> str:
    """Authorizes the read and records it when an inspector reads; returns the region."""
    household = runtime.app.get_household(household_id)
    authorize(actor, Action.READ, household.region)
    if actor.role is Role.INSPECTOR:
        runtime.app.record_inspection(
            actor=actor, resource=resource, resource_id=str(household_id), region=household.region
        )
    return household.region


@router.get("/{household_id}/history")
def household_history(
    household_id: UUID,
    runtime: RuntimeDep,
    actor: ActorDep,
    start: From = None,
    end: To = None,
    kind: Annotated[
        list[str] | None,
        Query(description=f"Repeatable; among {', '.join(TIMELINE_KINDS)}. Default: all"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Every event that touched the household, in order: proposals and their decisions
    (with the berita acara), the household's own changes, complaints, referrals, score
    changes, the changes of desil and those of rank that follow its own data or the
    model (rank-history has every change of rank), and inspections. Times are in the
    region's offset."""
    region = _read(runtime, actor, household_id, "household_history")
    entries = Inspector(runtime).timeline(
        household_id,
        kinds=set(kind) if kind else None,
        start=start,
        end=end,
        reveal=reveals_identifiers(actor, region),
    )
    return {
        "household_id": str(household_id),
        "total": len(entries),
        "limit": limit,
        "offset": offset,
        "items": entries[offset : offset + limit],
    }


@router.get("/{household_id}/rank-history")
def rank_history(
    household_id: UUID,
    runtime: RuntimeDep,
    actor: ActorDep,
    start: From = None,
    end: To = None,
    changes: Annotated[
        Literal["rank", "desil"],
        Query(
            description=(
                "`rank` (default): every change of rank. `desil`: only the changes of "
                "desil and those that follow the household's own data or the model; "
                "`not_listed` counts the rest (in a large scope the rank moves with most "
                "events of the scope)."
            )
        ),
    ] = "rank",
    limit: Annotated[
        int,
        Query(
            ge=1,
            le=100_000,
            description=(
                "Points per page, the earliest first (in a large scope a year holds a "
                "change of rank for most events of the scope: ~100,000)"
            ),
        ),
    ] = 1000,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Rank and desil at every change in the period, computed from the score log; a
    page of the points, with their `total`."""
    _read(runtime, actor, household_id, "rank_history")
    history = Inspector(runtime).rank_history(household_id, start, end, changes=changes)
    points = history["points"]
    return {
        **history,
        "total": len(points),
        "limit": limit,
        "offset": offset,
        "points": points[offset : offset + limit],
    }


@router.get("/{household_id}/rank-explanation")
def rank_explanation(
    household_id: UUID,
    runtime: RuntimeDep,
    actor: ActorDep,
    start: Annotated[
        datetime, Query(alias="from", description="ISO 8601 with offset: the earlier instant")
    ],
    end: To = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="Households named per group")] = 100,
) -> dict[str, Any]:
    """Why rank and desil changed between `from` and `to`: own data (which proposal,
    which indicators, score delta), the scoring model (old → new version), and the
    population (households that entered, left, or crossed it), with a summary in
    Bahasa Indonesia and English."""
    _read(runtime, actor, household_id, "rank_explanation")
    return Inspector(runtime).rank_explanation(household_id, start, end, limit=limit)


@router.get("/{household_id}/dossier", response_class=HTMLResponse)
def dossier(
    household_id: UUID,
    runtime: RuntimeDep,
    actor: ActorDep,
    as_of: Annotated[list[datetime] | None, Query(description="Repeatable instants")] = None,
    start: From = None,
    end: To = None,
    verify: Annotated[
        str,
        Query(
            pattern=f"^({'|'.join((*VERIFY_SCOPES, *_FORMER_VERIFY))})$",
            description=(
                "The hash chain check: `records` (default) checks every event of the "
                "household and of the records that touched it (proposals, complaints, "
                "referrals) against their hash records and chains; `store` checks the "
                "whole log against its anchors (reads every event: minutes on a large "
                "store); `none` skips it. `true` and `false`, this parameter's values "
                "before it named a scope, still mean `store` and `none`."
            ),
        ),
    ] = "records",
) -> HTMLResponse:
    """A self-contained HTML dispute dossier (no external assets)."""
    _read(runtime, actor, household_id, "dossier")
    html = build_dossier(
        Inspector(runtime),
        household_id,
        viewer=actor,
        as_of=as_of or [],
        start=start,
        end=end,
        verify=_FORMER_VERIFY.get(verify, verify),
    )
    return HTMLResponse(html)
