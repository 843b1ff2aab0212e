"""Complaint and SLA bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from slrt.api.schemas.proposals import DesaCode, Reason, SixteenDigits
from slrt.domain.complaint import (
    AssigneeKind,
    ComplaintCategory,
    ComplaintChannel,
    ComplaintType,
    EscalationLevel,
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reporter(Strict):
    name: Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
    phone: Annotated[str, StringConstraints(min_length=6, max_length=20)] | None = None


class NewComplaint(Strict):
    region: DesaCode = Field(description="The desa/kelurahan where it was received")
    channel: ComplaintChannel
    complaint_type: ComplaintType
    category: ComplaintCategory
    description: Annotated[str, StringConstraints(min_length=1, max_length=4000)]
    household_id: UUID | None = None
    member_nik: SixteenDigits | None = None
    reporter: Reporter | None = Field(default=None, description="Omit for an anonymous report")


class Acknowledgement(Strict):
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None


class Assignment(Strict):
    assignee_kind: AssigneeKind
    assignee: Annotated[str, StringConstraints(min_length=2, max_length=64)] = Field(
        description="An office's region code, or an agency code such as dinkes"
    )
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None


class Escalation(Strict):
    level: EscalationLevel
    reason: Reason


class Resolution(Strict):
    outcome: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    proposal_id: UUID | None = None
    referral_id: UUID | None = None


class Closing(Strict):
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None


class Reopening(Strict):
    reason: Reason


class ComplaintOut(BaseModel):
    id: UUID
    region: str
    status: str
    channel: str
    complaint_type: str
    category: str
    description: str
    household_id: UUID | None
    member_nik: str | None = Field(description="Masked")
    reporter: dict[str, str] | None = Field(description="Masked contact")
    sla_policy_version: int
    escalation_level: str | None
    assignee: dict[str, str] | None
    resolution: dict[str, Any] | None
    history: list[dict[str, Any]]
    received_at: datetime
    updated_at: datetime
    version: int


class ComplaintSummary(BaseModel):
    complaint_id: UUID
    region: str
    status: str
    channel: str
    complaint_type: str
    category: str
    household_id: UUID | None
    escalated_to: str | None
    assignee: str | None
    received_at: datetime
    last_event_at: datetime
    version: int


class TimerOut(BaseModel):
    timer_id: str
    item_kind: str
    item_id: UUID
    region: str
    category: str | None
    target: str
    duration: str
    working: bool
    policy_version: int
    started_at: datetime
    deadline: datetime
    sla_state: Literal["on_track", "at_risk", "breached", "met", "missed"]
    seconds_left: float | None = Field(description="Negative when overdue; null once stopped")
    breached: bool
    stopped_at: datetime | None


class ComplianceRow(BaseModel):
    region: str
    item_kind: str
    category: str | None
    target: str
    clocks: int
    decided: int
    met: int
    missed: int
    share_met: float | None
    median_hours: float | None
    p90_hours: float | None


class NewSlaPolicyVersion(Strict):
    rules: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=200)]
    note: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
