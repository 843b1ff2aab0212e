"""Household and scoring-model bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from slrt.api.schemas.proposals import Indicators


class HouseholdOut(BaseModel):
    id: UUID
    region: str
    region_name: str | None
    status: str
    removal_reason: str | None
    address: str
    rt: str
    rw: str
    no_kk: str = Field(description="Masked: only the first and last 4 digits")
    members: list[dict[str, Any]] = Field(description="NIKs are masked")
    indicators: dict[str, bool]
    deprivations: int
    is_poor: bool = Field(description="At least 9 of the 14 BPS indicators")
    pmks: list[str]
    programmes: list[str]
    score: float | None = Field(description="Welfare score; lower is poorer")
    model_version: int | None
    rank: int | None = Field(description="1 = poorest in the ranking scope")
    desil: int | None = Field(description="1–10; desil 1 is the poorest tenth of the scope")
    ranking_scope: str
    scope_population: int | None
    last_proposal_id: UUID | None
    version: int
    ranked_as_of_event: int | None = Field(
        description="Notification id of the last event the ranking had applied"
    )
    registered_at: datetime
    updated_at: datetime


class HouseholdSummary(BaseModel):
    household_id: UUID
    region: str
    status: str
    head_name: str
    address: str
    rt: str
    rw: str
    member_count: int
    deprivations: int
    is_poor: bool
    programmes: list[str]
    score: float | None
    model_version: int | None
    rank: int | None
    desil: int | None
    scope: str
    last_event_at: datetime


Weight = Annotated[float, Field(ge=-1000, le=1000, allow_inf_nan=False)]


class Weights(BaseModel):
    """One weight per BPS indicator: how much that deprivation lowers the welfare score."""

    model_config = ConfigDict(extra="forbid")

    floor_area: Weight
    floor_material: Weight
    wall_material: Weight
    sanitation: Weight
    lighting: Weight
    drinking_water: Weight
    cooking_fuel: Weight
    protein: Weight
    clothing: Weight
    meals: Weight
    medical_care: Weight
    head_occupation: Weight
    head_education: Weight
    savings: Weight


class NewScoringModelVersion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    intercept: Weight
    weights: Weights
    household_size_weight: Weight = Field(description="Multiplies ln(number of members)")
    note: Annotated[str, StringConstraints(min_length=1, max_length=1000)]


class ScoringModelVersionOut(BaseModel):
    version: int
    intercept: float
    weights: dict[str, float]
    household_size_weight: float
    note: str
    published_at: datetime


assert set(Weights.model_fields) == set(Indicators.model_fields)
