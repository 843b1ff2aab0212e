"""A household's 14 indicators (all of them, each true or false, in the BPS order) and its
members' relationships."""

from __future__ import annotations

from typing import Any

import pytest

from slrt.domain.common import InvalidInput
from slrt.domain.household import validate_indicators, validate_members
from slrt.domain.reference import Indicator
from tests.builders import household, indicators

ALL = indicators(9)


def test_the_indicators_come_back_in_the_bps_order() -> None:
    shuffled = dict(reversed(list(ALL.items())))
    checked = validate_indicators(shuffled)
    assert list(checked) == [i.value for i in Indicator]
    assert checked == ALL


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "must be an object"),
        ({k: v for k, v in ALL.items() if k != "meals"}, "indicators: missing meals"),
        ({**ALL, "car": True}, "indicators: unknown car"),
        ({**ALL, "meals": 1}, "each indicator must be true or false"),
        ({**ALL, "meals": "true"}, "each indicator must be true or false"),
        ({**ALL, "meals": None}, "each indicator must be true or false"),
    ],
)
def test_incomplete_or_not_yes_no_indicators_are_refused(value: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        validate_indicators(value)


def test_each_relationship_is_recorded_as_its_value() -> None:
    members = household(members=3)["members"]
    checked = validate_members(members)
    assert [m["relationship"] for m in checked] == ["head", "spouse", "child"]
    assert all(type(m["relationship"]) is str for m in checked)  # stored as plain text


@pytest.mark.parametrize("relationship", [None, 1, True, "Head", "kepala", "", ["head"], {}])
def test_a_relationship_that_is_not_one_of_the_list_is_refused(relationship: Any) -> None:
    members = household(members=2)["members"]
    members[1]["relationship"] = relationship
    with pytest.raises(InvalidInput, match=r"members\[1\]\.relationship must be one of head,"):
        validate_members(members)
