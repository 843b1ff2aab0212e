"""Referral (rujukan) bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from slrt.api.schemas.proposals import Reason, SixteenDigits
from slrt.domain.referral import Agency, Urgency


class NewReferral(BaseModel):
    model_config = ConfigDict(extra="forbid")

    household_id: UUID
    member_nik: SixteenDigits | None = Field(
        default=None, description="Refer one member; omit to refer the household"
    )
    agency: Agency
    service: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="One of the agency's services, e.g. kis_card for bpjs"
    )
    reason: Reason
    urgency: Urgency = Urgency.ROUTINE
    complaint_id: UUID | None = None
    proposal_id: UUID | None = None


class Cancellation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Reason


class ReferralOut(BaseModel):
    id: UUID
    region: str
    household_id: UUID
    member_nik: str | None = Field(description="Masked: only the first and last 4 digits")
    agency: str
    service: str
    reason: str
    urgency: str
    complaint_id: UUID | None
    proposal_id: UUID | None
    status: str
    dispatched_at: datetime | None
    agency_reference: str | None
    outcome: dict[str, Any] | None
    history: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    version: int
