"""The scoring model: a pure function of indicators, members and version."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from slrt.domain.common import InvalidInput
from slrt.domain.scoring import ScoringModel
from tests.builders import ADMIN, default_model, indicators

NOW = datetime(2026, 11, 20, tzinfo=UTC)


def publish(model: ScoringModel, **overrides: object) -> None:
    model.publish(
        **{**default_model(), **overrides}, note="n", actor=ADMIN.as_record(), timestamp=NOW
    )


def test_each_deprivation_lowers_the_score() -> None:
    model = ScoringModel(actor=ADMIN.as_record(), timestamp=NOW)
    publish(model)
    version = model.current
    assert version is not None
    scores = [version.score(indicators(d), 3) for d in range(15)]
    assert scores == sorted(scores, reverse=True)
    assert len(set(scores)) == 15


def test_the_same_inputs_give_the_same_score() -> None:
    model = ScoringModel(actor=ADMIN.as_record(), timestamp=NOW)
    publish(model)
    version = model.current
    assert version is not None
    assert version.score(indicators(7), 4) == version.score(indicators(7), 4)


def test_versions_are_numbered_and_kept() -> None:
    model = ScoringModel(actor=ADMIN.as_record(), timestamp=NOW)
    publish(model)
    publish(model, intercept=90.0)
    assert [v["version"] for v in model.versions] == [1, 2]
    assert model.get_version(1).intercept == 100.0
    assert model.get_version(2).intercept == 90.0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "3", True, 10_000])
def test_weights_must_be_finite_numbers(bad: object) -> None:
    model = ScoringModel(actor=ADMIN.as_record(), timestamp=NOW)
    weights = {**default_model()["weights"], "meals": bad}
    with pytest.raises(InvalidInput):
        publish(model, weights=weights)
