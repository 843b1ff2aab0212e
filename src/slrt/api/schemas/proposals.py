"""Request and response bodies for proposals and households (API shapes only)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from slrt.domain.reference import Programme, Relationship, RemovalReason

_REGION = r"\d{2}(\.\d{2}(\.\d{2}(\.\d{4})?)?)?"
RegionCode = Annotated[str, StringConstraints(pattern=f"^{_REGION}$", max_length=13)]
#: A region code, or ID: the whole country.
RegionOrCountry = Annotated[str, StringConstraints(pattern=f"^(ID|{_REGION})$", max_length=13)]
DesaCode = Annotated[str, StringConstraints(pattern=r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$")]
SixteenDigits = Annotated[str, StringConstraints(pattern=r"^\d{16}$")]
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]
Reason = Annotated[str, StringConstraints(min_length=1, max_length=1000, strip_whitespace=True)]
Note = Annotated[str, StringConstraints(max_length=1000)]


T = TypeVar("T")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Member(Strict):
    nik: SixteenDigits = Field(description="NIK: kecamatan code, DDMMYY (+40 for women), serial")
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
    relationship: Relationship
    sex: Literal["L", "P"]


class Indicators(Strict):
    """The 14 BPS indicators; true means the household has that deprivation."""

    floor_area: bool
    floor_material: bool
    wall_material: bool
    sanitation: bool
    lighting: bool
    drinking_water: bool
    cooking_fuel: bool
    protein: bool
    clothing: bool
    meals: bool
    medical_care: bool
    head_occupation: bool
    head_education: bool
    savings: bool


RtRw = Annotated[str, StringConstraints(pattern=r"^\d{1,3}$")]


class HouseholdData(Strict):
    region: DesaCode = Field(description="Kemendagri desa/kelurahan code")
    address: ShortText
    rt: RtRw
    rw: RtRw
    no_kk: SixteenDigits
    members: Annotated[list[Member], Field(min_length=1, max_length=30)]
    indicators: Indicators
    # A factory, not `= []`: pydantic deep-copies a mutable default on every request
    # that leaves it out (~0.7 % of a registration's CPU, bench/README.md).
    pmks: list[str] = Field(default_factory=list, max_length=26, json_schema_extra={"default": []})


class HouseholdChanges(Strict):
    address: ShortText | None = None
    rt: RtRw | None = None
    rw: RtRw | None = None
    no_kk: SixteenDigits | None = None
    members: Annotated[list[Member], Field(min_length=1, max_length=30)] | None = None
    indicators: Indicators | None = None
    pmks: Annotated[list[str], Field(max_length=26)] | None = None


class RegisterProposal(Strict):
    kind: Literal["register"]
    household: HouseholdData
    note: Note | None = None


class UpdateProposal(Strict):
    kind: Literal["update"]
    household_id: UUID
    changes: HouseholdChanges
    note: Note | None = None


class RemoveProposal(Strict):
    kind: Literal["remove"]
    household_id: UUID
    reason: RemovalReason
    note: Note | None = None


class EnrolProposal(Strict):
    kind: Literal["enrol"]
    household_id: UUID
    programme: Programme
    note: Note | None = None


class UnenrolProposal(Strict):
    kind: Literal["unenrol"]
    household_id: UUID
    programme: Programme
    note: Note | None = None


NewProposal = Annotated[
    RegisterProposal | UpdateProposal | RemoveProposal | EnrolProposal | UnenrolProposal,
    Field(discriminator="kind"),
]


class BeritaAcara(Strict):
    number: Annotated[str, StringConstraints(min_length=1, max_length=100, strip_whitespace=True)]
    date: date
    sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")] = Field(
        description="SHA-256 of the signed berita acara file, 64 hex digits"
    )


class VillageDecision(Strict):
    decision: Literal["approve", "reject"]
    berita_acara: BeritaAcara | None = Field(
        default=None, description="Required: the musyawarah's minutes"
    )
    reason: Reason | None = Field(default=None, description="Required when rejecting")


class DinsosDecision(Strict):
    decision: Literal["verify", "return"]
    reason: Reason | None = Field(default=None, description="Required when returning")


class Withdrawal(Strict):
    reason: Reason


class ActorOut(BaseModel):
    user_id: str
    role: str
    region: str


class ProposalOut(BaseModel):
    id: UUID
    kind: str
    status: str
    region: str
    household_id: UUID | None
    payload: dict[str, Any]
    note: str | None
    berita_acara: dict[str, str] | None
    decisions: list[dict[str, Any]]
    submitted_by: ActorOut
    submitted_at: datetime
    updated_at: datetime
    version: int
    warnings: list[str] = Field(
        default_factory=list,
        description=(
            "What the front office should check before the village deliberation: a NIK "
            "issued under a kecamatan code that Kemendagri no longer lists; and, when the "
            "proposal is read (GET), a NIK or No. KK that another active household lists"
        ),
    )


class ProposalSummary(BaseModel):
    proposal_id: UUID
    kind: str
    region: str
    household_id: UUID | None
    status: str
    submitted_at: datetime
    submitted_by: str
    berita_acara_number: str | None
    last_event: str
    last_event_at: datetime
    version: int


class ReadModelState(BaseModel):
    """How current the list is: read models follow the event store a moment behind."""

    name: str = Field(description="The read model the list comes from")
    position: int | None = Field(
        description="The last event the list includes (null while several processes rebuild it)"
    )
    lag: int = Field(
        description="Events recorded after that one (not all of them need change the list)"
    )
    rebuilding: bool = Field(
        description=(
            "Being built from zero (after an upgrade, a repair, or as a new read model): "
            "older rows are missing until it reaches the last event recorded when it began"
        )
    )


class Page(BaseModel, Generic[T]):
    total: int
    limit: int
    offset: int
    items: list[T]
    read_model: ReadModelState
