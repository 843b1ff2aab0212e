"""The store's orjson encoder writes what the library's JSON encoder writes, and leaves
to the library whatever orjson would write differently."""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)

from slrt.application import SlrtApplication
from slrt.config import Settings
from slrt.persistence.encoding import OrjsonTranscoder
from tests.builders import household

AT = datetime(2026, 12, 4, 8, 30, 15, 123456, tzinfo=UTC)


class Colour(enum.Enum):
    RED = 1


class Kind(enum.StrEnum):
    REGISTER = "register"


class Code(str):
    pass


def _both() -> tuple[JSONTranscoder, OrjsonTranscoder]:
    library, ours = JSONTranscoder(), OrjsonTranscoder()
    for transcoder in (library, ours):
        for transcoding in (UUIDAsHex(), DatetimeAsISO(), DecimalAsStr()):
            transcoder.register(transcoding)
    return library, ours


def _registration_state() -> dict[str, Any]:
    data = household(members=4)
    return {
        "timestamp": AT,
        "originator_topic": "slrt.domain.proposal:Proposal",
        "kind": "register",
        "region": data["region"],
        "household_id": None,
        "payload": {"household": data},
        "note": 'Diusulkan "RT 003"\n\ttab \x00 \x1f \x7f é 😀 \u2028',
        "actor": {"id": "fo-1", "role": "front_office", "region": "64.74.01.1001"},
    }


SAME_BYTES = [
    _registration_state(),
    {"household_id": uuid4(), "at": AT, "amount": Decimal("1.50"), "n": -(2**63)},
    {"nested": {"at": AT, "amount": Decimal(2), "dates": [AT, AT]}, "t": (1, "a", None)},
    {"ids": [uuid4()], "deep": {"id": uuid4()}},  # nested UUIDs: the library's way
    {"kind": Kind.REGISTER, "code": Code("x"), "big": 2**70, "ok": True},
    {"keys": {1: "a", Kind.REGISTER: "b", Code("c"): "d"}},  # not str keys
    {"list": [{"a": [{"b": uuid4()}]}]},
    {},
]


@pytest.mark.parametrize("state", SAME_BYTES)
def test_the_same_bytes_as_the_library(state: dict[str, Any]) -> None:
    library, ours = _both()
    assert ours.encode(state) == library.encode(state)


def test_floats_decode_to_the_same_values() -> None:
    library, ours = _both()
    state = {"small": 1e-05, "big": 1e16, "plain": 0.1, "list": [2.5, -0.0], "nan": float("nan")}
    decoded = library.decode(ours.encode(state))
    expected = library.decode(library.encode(state))
    assert repr(decoded) == repr(expected)  # repr: NaN is not equal to itself
    assert "NaN" in ours.encode(state).decode()  # not null, as orjson would write it


@pytest.mark.parametrize(
    "state",
    [{"colour": Colour.RED}, {"nested": [Colour.RED]}, {"day": date(2026, 12, 4)}, {"s": {1, 2}}],
)
def test_what_the_library_refuses_is_refused_alike(state: dict[str, Any]) -> None:
    library, ours = _both()
    with pytest.raises(TranscodingNotRegisteredError):
        library.encode(state)
    with pytest.raises(TranscodingNotRegisteredError):
        ours.encode(state)


def test_a_registration_is_encoded_by_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    library, ours = _both()
    state = {**_registration_state(), "household_id": uuid4()}
    expected = library.encode(state)

    def refuse(self: JSONTranscoder, obj: Any) -> bytes:
        raise AssertionError("the library's encoder was used")

    monkeypatch.setattr(JSONTranscoder, "encode", refuse)
    assert ours.encode(state) == expected


def test_the_application_encodes_with_orjson(sqlite_settings: Settings) -> None:
    app = SlrtApplication(sqlite_settings)
    try:
        transcoder = app.mapper.transcoder
        assert type(transcoder) is OrjsonTranscoder
        assert transcoder.decode(transcoder.encode({"id": UUID(int=1)})) == {"id": UUID(int=1)}
    finally:
        app.close()
