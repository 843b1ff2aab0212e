"""Scoring model: a versioned, published proxy-means-test model of welfare.

A household's welfare score is a pure function of (indicators, members, model
version). A lower score means poorer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from itertools import compress
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from slrt.domain.common import InvalidInput, NotFound
from slrt.domain.reference import Indicator

MAX_WEIGHT = 1_000.0


@dataclass(frozen=True)
class ModelVersion:
    version: int
    intercept: float
    weights: dict[str, float]
    household_size_weight: float

    def score(self, indicators: dict[str, bool], member_count: int) -> float:
        """Welfare = intercept − Σ weight × deprivation − size weight × ln(members)."""
        # The weights of the present indicators, summed in the indicators' order (the
        # order fixes the float result); compress/map keep the loop in C.
        deprivation = sum(compress(map(self.weights.__getitem__, indicators), indicators.values()))
        size_term = self.household_size_weight * math.log(max(member_count, 1))
        return round(self.intercept - deprivation - size_term, 6)

    def as_record(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "intercept": self.intercept,
            "weights": dict(self.weights),
            "household_size_weight": self.household_size_weight,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> ModelVersion:
        return cls(
            version=int(record["version"]),
            intercept=float(record["intercept"]),
            weights={k: float(v) for k, v in record["weights"].items()},
            household_size_weight=float(record["household_size_weight"]),
        )


def _number(value: Any, *, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInput(f"{field} must be a finite number", field=field)
    if abs(value) > MAX_WEIGHT:
        raise InvalidInput(
            f"{field} must be between -{MAX_WEIGHT:g} and {MAX_WEIGHT:g}", field=field
        )
    return float(value)


def validate_weights(weights: Any) -> dict[str, float]:
    """A weight for each of the 14 indicators, no more and no fewer."""
    if not isinstance(weights, dict):
        raise InvalidInput("weights must be an object of the 14 indicators", field="weights")
    expected = {i.value for i in Indicator}
    if weights.keys() != expected:
        missing = sorted(expected - weights.keys())
        unknown = sorted(weights.keys() - expected)
        raise InvalidInput(
            f"weights: missing {missing or 'none'}, unknown {unknown or 'none'}", field="weights"
        )
    return {i.value: _number(weights[i.value], field=f"weights.{i.value}") for i in Indicator}


class ScoringModel(Aggregate):
    """The national scoring model; every published version is kept forever."""

    NAME = "national"

    @staticmethod
    def create_id() -> UUID:
        return ScoringModel.id_for()

    @staticmethod
    def id_for(name: str = NAME) -> UUID:
        return uuid5(NAMESPACE_URL, f"slrt:scoring-model:{name}")

    @event("Created")
    def __init__(self, actor: dict[str, str], timestamp: datetime | None = None) -> None:
        self.versions: list[dict[str, Any]] = []

    def publish(
        self,
        *,
        intercept: Any,
        weights: Any,
        household_size_weight: Any,
        note: str,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> ModelVersion:
        model = ModelVersion(
            version=len(self.versions) + 1,
            intercept=_number(intercept, field="intercept"),
            weights=validate_weights(weights),
            household_size_weight=_number(household_size_weight, field="household_size_weight"),
        )
        self._version_published(
            model=model.as_record(), note=note, actor=actor, timestamp=timestamp
        )
        return model

    @event("VersionPublished")
    def _version_published(
        self, model: dict[str, Any], note: str, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.versions.append({**model, "note": note, "published_at": timestamp.isoformat()})

    @property
    def current(self) -> ModelVersion | None:
        return ModelVersion.from_record(self.versions[-1]) if self.versions else None

    def get_version(self, number: int) -> ModelVersion:
        if not 1 <= number <= len(self.versions):
            raise NotFound(f"scoring model version {number} does not exist")
        return ModelVersion.from_record(self.versions[number - 1])


# A transparent starting model for demos and tests: heavier weights for the
# deprivations that best separate the poorest (food, assets, income).
DEFAULT_WEIGHTS: dict[str, float] = {
    Indicator.FLOOR_AREA: 3.0,
    Indicator.FLOOR_MATERIAL: 4.0,
    Indicator.WALL_MATERIAL: 4.0,
    Indicator.SANITATION: 4.5,
    Indicator.LIGHTING: 3.5,
    Indicator.DRINKING_WATER: 3.0,
    Indicator.COOKING_FUEL: 4.0,
    Indicator.PROTEIN: 6.0,
    Indicator.CLOTHING: 3.5,
    Indicator.MEALS: 7.0,
    Indicator.MEDICAL_CARE: 5.5,
    Indicator.HEAD_OCCUPATION: 7.5,
    Indicator.HEAD_EDUCATION: 5.0,
    Indicator.SAVINGS: 7.5,
}
DEFAULT_INTERCEPT = 100.0
DEFAULT_HOUSEHOLD_SIZE_WEIGHT = 6.0
