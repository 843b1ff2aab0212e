"""Region activity: how actively each region updates its data."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from slrt.api.schemas.proposals import ReadModelState


class RegionActivity(BaseModel):
    code: str = Field(description="Kemendagri code", examples=["64.74"])
    name: str | None = Field(examples=["Kota Bontang"])
    submitted: int = Field(description="Proposals submitted by its front offices")
    village_approved: int = Field(description="Approved at a musyawarah desa/kelurahan")
    village_rejected: int = Field(description="Rejected at a musyawarah desa/kelurahan")
    dinsos_verified: int = Field(description="Verified by the Dinas Sosial")
    returned: int = Field(description="Sent back to the village by the Dinas Sosial")
    withdrawn: int
    applied: dict[str, int] = Field(
        description="Proposals applied (the data changed), by kind: register (households "
        "added), update, remove (mampu, moved, deceased), enrol and unenrol (programmes)",
        examples=[{"register": 3, "update": 5, "remove": 1, "enrol": 0, "unenrol": 0}],
    )
    applied_total: int
    desa_active: int = Field(description="Its desa/kelurahan with any of these steps")
    desa_total: int = Field(description="Its desa/kelurahan in Kemendagri's list")
    last_active_on: date | None = Field(description="Its last day in the period with any step")


class ActivitySummary(BaseModel):
    regions: int
    regions_updated: int = Field(
        description="Regions where at least one proposal was applied in the period"
    )
    regions_active: int = Field(description="Regions with any step in the period")
    proposals_submitted: int
    households_changed: int = Field(description="Proposals applied in the period")
    desa_active: int
    desa_total: int


class ActivityReport(BaseModel):
    region: str = Field(description="The region reported on (ID: the whole country)")
    region_name: str | None
    by: str = Field(description="The level of the regions listed")
    start: date = Field(alias="from", description="First day, in each region's local time")
    end: date = Field(alias="to", description="Last day, included")
    summary: ActivitySummary
    total: int
    limit: int
    offset: int
    items: list[RegionActivity] = Field(
        description="Most active first: households changed, then proposals submitted"
    )
    read_model: ReadModelState
