"""A household's 14 indicators: all of them, each true or false, in the BPS order."""

from __future__ import annotations

from typing import Any

import pytest

from slrt.domain.common import InvalidInput
from slrt.domain.household import validate_indicators
from slrt.domain.reference import Indicator
from tests.builders import indicators

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
