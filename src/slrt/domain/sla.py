"""SLA policy: how long each step of a complaint, proposal or referral may take.

A policy version maps (item kind, category or "*") to targets such as "first response
within 4 working hours". A category's rule overrides its kind's "*" rule target by
target, and inherits the targets it does not name. Time is counted in the region's own
time zone (WIB/WITA/WIT) and, for working-time targets, only in office hours on working
days (see `slrt.domain.calendar` and ADR 0005).

Policies are versioned: publishing a version is a `SlaPolicy.VersionPublished` event. An
item keeps the version in force when its first clock started (a complaint records it on
`Complaint.Received`), so a policy change applies to new timers only.

What each target measures is fixed here, in `TARGET_CLOCKS`, not in the policy data: the
policy says how long, the code says from which milestone to which.

A breach is recorded later, by the tracked timer process, as an event of its own. It must
carry enough to be judged forever without recomputation:

- the item's kind and id, and its region (for the dashboard's scope);
- the target's name and the policy version it came from;
- the clock's start (milestone and instant) and the deadline, both UTC, as computed when
  the clock started (holiday data can change with a new lokal-id release; a recorded
  deadline does not);
- when the breach was observed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from slrt.domain.calendar import GOVERNMENT_OFFICE, Duration, DurationUnit, WorkingCalendar
from slrt.domain.common import InvalidInput, NotFound
from slrt.domain.complaint import ComplaintCategory
from slrt.domain.proposal import ProposalKind
from slrt.domain.reference import region_timezone

ANY_CATEGORY = "*"
MAX_HOURS = 24 * 366
MAX_DAYS = 366
_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ItemKind(StrEnum):
    COMPLAINT = "complaint"
    PROPOSAL = "proposal"
    REFERRAL = "referral"


@dataclass(frozen=True)
class TargetClock:
    """The milestones that start a target's clock and those that stop it."""

    starts: tuple[str, ...]
    stops: tuple[str, ...]


#: What each target name measures, per item kind. Milestones are the items' events in
#: snake case; the timer process maps events to them.
TARGET_CLOCKS: dict[ItemKind, dict[str, TargetClock]] = {
    ItemKind.COMPLAINT: {
        "first_response": TargetClock(starts=("received",), stops=("acknowledged",)),
        # A reopened complaint gets a fresh resolution clock under its original version.
        "resolution": TargetClock(starts=("received", "reopened"), stops=("resolved",)),
    },
    ItemKind.PROPOSAL: {
        "village_decision": TargetClock(
            starts=("submitted", "dinsos_returned"),
            stops=("village_approved", "village_rejected", "withdrawn"),
        ),
        "dinsos_verification": TargetClock(
            starts=("village_approved",), stops=("dinsos_verified", "dinsos_returned", "withdrawn")
        ),
    },
    ItemKind.REFERRAL: {
        # An agency may deliver or decline without a separate acknowledgement.
        "acknowledgement": TargetClock(
            starts=("created",),
            stops=("acknowledged", "delivered", "declined", "expired", "cancelled"),
        ),
        "outcome": TargetClock(
            starts=("acknowledged",), stops=("delivered", "declined", "expired", "cancelled")
        ),
    },
}


def _categories(kind: ItemKind) -> frozenset[str] | None:
    """The categories a kind's rules may name; None when any slug will do (referral
    services are not a closed list)."""
    if kind is ItemKind.COMPLAINT:
        return frozenset(c.value for c in ComplaintCategory)
    if kind is ItemKind.PROPOSAL:
        return frozenset(k.value for k in ProposalKind)
    return None


@dataclass(frozen=True)
class SlaTarget:
    """One promise: `name` is met within `amount` `unit`s of working or calendar time."""

    name: str
    amount: int
    unit: DurationUnit
    working: bool

    @property
    def duration(self) -> Duration:
        return Duration(self.amount, self.unit)

    def deadline(
        self,
        started_at: datetime,
        region: str,
        *,
        calendar: WorkingCalendar = GOVERNMENT_OFFICE,
    ) -> datetime:
        """When the target falls due (UTC), counted in the region's local time."""
        return calendar.add_duration(
            started_at, self.duration, working=self.working, tz=region_timezone(region)
        )

    def describe(self) -> str:
        kind = "working" if self.working else "calendar"
        unit = self.unit.value[:-1] if self.amount == 1 else self.unit.value
        return f"{self.amount} {kind} {unit}"

    def as_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "amount": self.amount,
            "unit": self.unit.value,
            "working": self.working,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SlaTarget:
        return cls(
            name=str(record["name"]),
            amount=int(record["amount"]),
            unit=DurationUnit(record["unit"]),
            working=bool(record["working"]),
        )


RuleKey = tuple[str, str]


@dataclass(frozen=True)
class SlaPolicyVersion:
    """One published version of the policy: (kind, category or "*") → targets."""

    version: int
    rules: dict[RuleKey, tuple[SlaTarget, ...]]

    def targets_for(self, kind: str, category: str | None) -> tuple[SlaTarget, ...]:
        """The kind's "*" targets, each replaced by the category's own target of that name,
        then any targets only the category has."""
        item_kind = _item_kind(kind)
        merged = {t.name: t for t in self.rules.get((item_kind.value, ANY_CATEGORY), ())}
        if category is not None and category != ANY_CATEGORY:
            merged.update({t.name: t for t in self.rules.get((item_kind.value, category), ())})
        return tuple(merged.values())

    def deadlines(
        self,
        kind: str,
        category: str | None,
        started_at: datetime,
        region: str,
        *,
        milestone: str | None = None,
        calendar: WorkingCalendar = GOVERNMENT_OFFICE,
    ) -> dict[str, datetime]:
        """Each target's deadline (UTC) for an item whose clocks start at `started_at` in
        `region`. With `milestone`, only the targets whose clock that milestone starts
        (e.g. "village_approved" starts Dinsos verification, not the village decision)."""
        clocks = TARGET_CLOCKS[_item_kind(kind)]
        return {
            target.name: target.deadline(started_at, region, calendar=calendar)
            for target in self.targets_for(kind, category)
            if milestone is None or milestone in clocks[target.name].starts
        }

    def as_record(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "rules": [
                {
                    "kind": kind,
                    "category": category,
                    "targets": [t.as_record() for t in targets],
                }
                for (kind, category), targets in self.rules.items()
            ],
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> SlaPolicyVersion:
        return cls(
            version=int(record["version"]),
            rules={
                (rule["kind"], rule["category"]): tuple(
                    SlaTarget.from_record(t) for t in rule["targets"]
                )
                for rule in record["rules"]
            },
        )


def _item_kind(kind: Any, *, field: str = "kind") -> ItemKind:
    try:
        return ItemKind(str(kind))
    except ValueError:
        allowed = ", ".join(k.value for k in ItemKind)
        raise InvalidInput(f"{field} must be one of {allowed}", field=field) from None


def _validate_target(value: Any, *, kind: ItemKind, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be an object", field=field)
    unknown = sorted(value.keys() - {"name", "amount", "unit", "working"})
    if unknown:
        raise InvalidInput(f"{field} has unknown fields {unknown}", field=field)
    name = value.get("name")
    known = TARGET_CLOCKS[kind]
    if name not in known:
        raise InvalidInput(
            f"{field}.name must be one of {', '.join(known)} for a {kind.value}",
            field=f"{field}.name",
        )
    try:
        unit = DurationUnit(str(value.get("unit")))
    except ValueError:
        raise InvalidInput(f"{field}.unit must be hours or days", field=f"{field}.unit") from None
    amount = value.get("amount")
    limit = MAX_HOURS if unit is DurationUnit.HOURS else MAX_DAYS
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= limit:
        raise InvalidInput(
            f"{field}.amount must be a whole number of {unit.value} from 1 to {limit}",
            field=f"{field}.amount",
        )
    working = value.get("working")
    if not isinstance(working, bool):
        raise InvalidInput(
            f"{field}.working must be true (office hours on working days) or false (calendar time)",
            field=f"{field}.working",
        )
    return {"name": name, "amount": amount, "unit": unit.value, "working": working}


def validate_rules(value: Any) -> list[dict[str, Any]]:
    """Rules as published: a list of {kind, category, targets}. Each kind has a "*" rule;
    no (kind, category) twice; no target twice in a rule; categories and target names are
    those the kind knows; amounts are whole hours or days within a year."""
    if not isinstance(value, list) or not value:
        raise InvalidInput("rules must be a non-empty list of rules", field="rules")
    rules: list[dict[str, Any]] = []
    seen: set[RuleKey] = set()
    for index, raw in enumerate(value):
        field = f"rules[{index}]"
        if not isinstance(raw, dict):
            raise InvalidInput(f"{field} must be an object", field=field)
        kind = _item_kind(raw.get("kind"), field=f"{field}.kind")
        category = raw.get("category")
        allowed = _categories(kind)
        if category != ANY_CATEGORY and (
            not isinstance(category, str)
            or not _SLUG.match(category)
            or (allowed is not None and category not in allowed)
        ):
            names = ", ".join(sorted(allowed)) if allowed else "a lower-case slug"
            raise InvalidInput(
                f'{field}.category must be "*" or {names} for a {kind.value}',
                field=f"{field}.category",
            )
        if (kind.value, category) in seen:
            raise InvalidInput(f"{field} repeats the rule for {kind.value}/{category}", field=field)
        seen.add((kind.value, category))
        raw_targets = raw.get("targets")
        if not isinstance(raw_targets, list):
            raise InvalidInput(f"{field}.targets must be a list", field=f"{field}.targets")
        targets = [
            _validate_target(t, kind=kind, field=f"{field}.targets[{i}]")
            for i, t in enumerate(raw_targets)
        ]
        names_used = [t["name"] for t in targets]
        if len(set(names_used)) != len(names_used):
            raise InvalidInput(f"{field}.targets names a target twice", field=f"{field}.targets")
        rules.append({"kind": kind.value, "category": category, "targets": targets})
    missing = [k.value for k in ItemKind if (k.value, ANY_CATEGORY) not in seen]
    if missing:
        raise InvalidInput(
            f'rules need a "*" rule for every kind; missing {", ".join(missing)}',
            field="rules",
        )
    return rules


class SlaPolicy(Aggregate):
    """The national SLA policy; every published version is kept forever."""

    NAME = "national"

    @staticmethod
    def create_id() -> UUID:
        return SlaPolicy.id_for()

    @staticmethod
    def id_for(name: str = NAME) -> UUID:
        return uuid5(NAMESPACE_URL, f"slrt:sla-policy:{name}")

    @event("Created")
    def __init__(self, actor: dict[str, str], timestamp: datetime | None = None) -> None:
        self.versions: list[dict[str, Any]] = []

    def publish(
        self, *, rules: Any, note: str, actor: dict[str, str], timestamp: datetime
    ) -> SlaPolicyVersion:
        """A new version, in force for timers started from now on."""
        record = validate_rules(rules)
        version = len(self.versions) + 1
        self._version_published(
            version=version, rules=record, note=note, actor=actor, timestamp=timestamp
        )
        return self.get_version(version)

    @event("VersionPublished")
    def _version_published(
        self,
        version: int,
        rules: list[dict[str, Any]],
        note: str,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        self.versions.append(
            {
                "version": version,
                "rules": rules,
                "note": note,
                "published_at": timestamp.isoformat(),
                "published_by": actor,
            }
        )

    @property
    def current(self) -> SlaPolicyVersion | None:
        return SlaPolicyVersion.from_record(self.versions[-1]) if self.versions else None

    def get_version(self, number: int) -> SlaPolicyVersion:
        if not 1 <= number <= len(self.versions):
            raise NotFound(f"SLA policy version {number} does not exist")
        return SlaPolicyVersion.from_record(self.versions[number - 1])

    def version_at(self, at: datetime) -> SlaPolicyVersion | None:
        """The version that was in force at `at` (the last one published by then)."""
        in_force = [v for v in self.versions if datetime.fromisoformat(v["published_at"]) <= at]
        return SlaPolicyVersion.from_record(in_force[-1]) if in_force else None


def _target(name: str, amount: int, unit: str, *, working: bool) -> dict[str, Any]:
    return {"name": name, "amount": amount, "unit": unit, "working": working}


# A starting policy. The 4-hour first response follows Banyuwangi's "UGD Kemiskinan";
# aid not received needs the bank, e-warung or programme office, so it gets longer.
DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "kind": ItemKind.COMPLAINT.value,
        "category": ANY_CATEGORY,
        "targets": [
            _target("first_response", 4, "hours", working=True),
            _target("resolution", 5, "days", working=True),
        ],
    },
    {
        "kind": ItemKind.COMPLAINT.value,
        "category": ComplaintCategory.AID_NOT_RECEIVED.value,
        "targets": [_target("resolution", 10, "days", working=True)],
    },
    {
        "kind": ItemKind.PROPOSAL.value,
        "category": ANY_CATEGORY,
        "targets": [
            _target("village_decision", 30, "days", working=False),
            _target("dinsos_verification", 14, "days", working=False),
        ],
    },
    {
        "kind": ItemKind.REFERRAL.value,
        "category": ANY_CATEGORY,
        "targets": [
            _target("acknowledgement", 2, "days", working=True),
            _target("outcome", 10, "days", working=True),
        ],
    },
]


class SlaBreach(Aggregate):
    """A deadline passed with its target unmet: recorded once, and kept forever.

    The id is derived from the timer (item, target, the milestone that started it), so
    a second detection of the same breach (after a restart, or by a second process)
    conflicts and is dropped instead of recorded twice.
    """

    @staticmethod
    def create_id(timer_id: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"slrt:sla-breach:{timer_id}")

    @event("Recorded")
    def __init__(
        self,
        timer_id: str,
        item_kind: str,
        item_id: UUID,
        region: str,
        category: str | None,
        target: str,
        policy_version: int,
        started_at: datetime,
        deadline: datetime,
        actor: dict[str, str],
        timestamp: datetime | None = None,
    ) -> None:
        self.timer_id = timer_id
        self.item_kind = item_kind
        self.item_id = item_id
        self.region = region
        self.category = category
        self.target = target
        self.policy_version = policy_version
        self.started_at = started_at
        self.deadline = deadline
