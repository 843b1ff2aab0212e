"""Scoring models: publish a version; list every version ever published."""

from __future__ import annotations

from fastapi import APIRouter, status

from slrt.api.deps import ActorDep, RuntimeDep
from slrt.api.schemas.households import NewScoringModelVersion, ScoringModelVersionOut
from slrt.domain.access import Action, authorize

router = APIRouter(prefix="/api/v1/scoring-models", tags=["scoring"])


def _versions(runtime: RuntimeDep) -> list[ScoringModelVersionOut]:
    model = runtime.app.get_scoring_model()
    return [ScoringModelVersionOut(**v) for v in (model.versions if model else [])]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ScoringModelVersionOut)
def publish_scoring_model(
    body: NewScoringModelVersion, runtime: RuntimeDep, actor: ActorDep
) -> ScoringModelVersionOut:
    """Publishes the next version; every household is re-scored and re-ranked with it."""
    version = runtime.app.publish_scoring_model(
        actor=actor,
        intercept=body.intercept,
        weights=body.weights.model_dump(),
        household_size_weight=body.household_size_weight,
        note=body.note,
    )
    return _versions(runtime)[version - 1]


@router.get("", response_model=list[ScoringModelVersionOut])
def list_scoring_models(runtime: RuntimeDep, actor: ActorDep) -> list[ScoringModelVersionOut]:
    authorize(actor, Action.READ)
    return _versions(runtime)
