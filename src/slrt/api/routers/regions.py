"""Regions: how actively each one updates its data (Kemensos rewards the most active)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query

from slrt.api.deps import ActorDep, RuntimeDep
from slrt.api.errors import PROBLEM_RESPONSES
from slrt.api.read_models import state_of
from slrt.api.schemas.proposals import RegionOrCountry
from slrt.api.schemas.regions import ActivityReport
from slrt.db import snapshot
from slrt.domain.access import NATIONAL, Action, authorize
from slrt.domain.common import Role
from slrt.domain.reference import region_name, region_timezone, require_region
from slrt.projections.region_activity import activity_period, activity_report

router = APIRouter(prefix="/api/v1/regions", tags=["regions"], responses=PROBLEM_RESPONSES)

Level = Literal["province", "kabupaten", "kecamatan", "desa"]


@router.get("/activity", response_model=ActivityReport, response_model_by_alias=True)
def region_activity(
    runtime: RuntimeDep,
    actor: ActorDep,
    region: Annotated[
        RegionOrCountry | None,
        Query(description="Default: your own region. ID: the whole country"),
    ] = None,
    by: Annotated[
        Level | None,
        Query(
            description="The level to list: at or below `region`. Default: kabupaten/kota "
            "for the country or a province, else one level down"
        ),
    ] = None,
    start: Annotated[
        date | None,
        Query(alias="from", description="First day (YYYY-MM-DD); default 29 days before `to`"),
    ] = None,
    end: Annotated[
        date | None, Query(alias="to", description="Last day, included; default today")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
) -> ActivityReport:
    """How actively each region inside `region` updates its data in a period: proposals
    submitted, decided at the village and by Dinsos, and applied (households added,
    changed, removed, enrolled), with how many of its desa/kelurahan took part. Every
    region Kemendagri lists appears, those without any activity too: the most active
    first. Days are counted in each desa's own time zone (WIB, WITA, WIT)."""
    code = region or actor.region
    authorize(actor, Action.READ, code)
    national = code == NATIONAL
    if not national:
        require_region(code)
    period = activity_period(
        region=code,
        by=by,
        start=start,
        end=end,
        today=runtime.app.clock().astimezone(region_timezone(code)).date(),
    )
    if actor.role is Role.INSPECTOR:
        runtime.app.record_inspection(
            actor=actor, resource="region_activity", resource_id=None, region=code
        )
    with snapshot(runtime.engine) as conn:
        read_model = state_of(runtime, conn, "region_activity")
        report = activity_report(conn, region=None if national else code, **period)
    items = report["items"]
    return ActivityReport.model_validate(
        {
            "region": code,
            "region_name": "Indonesia" if national else region_name(code),
            "by": period["by"],
            "from": period["start"],
            "to": period["end"],
            "summary": report["summary"],
            "total": len(items),
            "limit": limit,
            "offset": offset,
            "items": items[offset : offset + limit],
            "read_model": read_model,
        }
    )
