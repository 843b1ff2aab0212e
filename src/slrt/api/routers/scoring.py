"""Scoring models: publish a version; list every version ever published."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from slrt.api.deps import ActorDep, CommandDep, RuntimeDep
from slrt.api.errors import PROBLEM_RESPONSES
from slrt.api.schemas.households import NewScoringModelVersion, ScoringModelVersionOut
from slrt.domain.access import Action, authorize

router = APIRouter(prefix="/api/v1/scoring-models", tags=["scoring"], responses=PROBLEM_RESPONSES)


def _versions(runtime: RuntimeDep, version: int | None = None) -> list[ScoringModelVersionOut]:
    model = runtime.app.get_scoring_model(version)
    return [ScoringModelVersionOut(**v) for v in (model.versions if model else [])]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ScoringModelVersionOut)
def publish_scoring_model(
    body: NewScoringModelVersion,
    caller: CommandDep,
    response: Response,
) -> ScoringModelVersionOut:
    """Publishes the next version; every household is re-scored and re-ranked with it."""
    runtime, actor = caller.runtime, caller.actor
    outcome = runtime.app.publish_scoring_model(
        actor=actor,
        intercept=body.intercept,
        weights=body.weights.model_dump(),
        household_size_weight=body.household_size_weight,
        note=body.note,
        idempotency=caller.idempotency,
    )
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return _versions(runtime, outcome.version)[-1]


@router.get("", response_model=list[ScoringModelVersionOut])
def list_scoring_models(runtime: RuntimeDep, actor: ActorDep) -> list[ScoringModelVersionOut]:
    authorize(actor, Action.READ)
    return _versions(runtime)
