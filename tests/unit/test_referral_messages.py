"""Referral CloudEvents: what SLRT sends, what it accepts from agencies, and why not."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from slrt.integrations import asyncapi, cloudevents
from slrt.integrations.agency import answer

AT = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def acknowledgement(**data: object) -> bytes:
    referral = str(uuid4())
    body = {"agency_reference": "DK-1", **data}
    return cloudevents.encode(
        answer("acknowledged", agency="dinkes", referral_id=referral, data=body, at=AT)
    )


def test_an_acknowledgement_is_parsed() -> None:
    parsed = cloudevents.parse_answer(acknowledgement())
    assert (parsed.answer, parsed.agency, parsed.data["agency_reference"]) == (
        "acknowledged",
        "dinkes",
        "DK-1",
    )


def test_an_answer_sent_twice_has_the_same_id() -> None:
    first = answer("declined", agency="pkh", referral_id="r", data={"reason": "x"}, at=AT)
    again = answer("declined", agency="pkh", referral_id="r", data={"reason": "x"}, at=AT)
    assert first["id"] == again["id"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"", "empty message"),
        (b"{not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (json.dumps({"specversion": "0.3"}).encode(), "specversion must be 1.0"),
        (acknowledgement(agency_reference=None), "data.agency_reference is required"),
        (acknowledgement(agency="polri"), "data.agency must be one of"),
        (acknowledgement(referral_id="not-a-uuid"), "data.referral_id must be a UUID"),
    ],
)
def test_a_bad_answer_is_refused_with_its_reason(value: bytes, reason: str) -> None:
    with pytest.raises(cloudevents.BadMessage, match=reason):
        cloudevents.parse_answer(value)


def test_an_unknown_type_is_refused() -> None:
    message = json.loads(acknowledgement())
    message["type"] = "id.slrt.referral.lost.v1"
    with pytest.raises(cloudevents.BadMessage, match="unknown type"):
        cloudevents.parse_answer(json.dumps(message).encode())


def test_the_published_asyncapi_document_is_current() -> None:
    path = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
    assert json.loads(path.read_text()) == asyncapi.document(), "run: slrt agency asyncapi"
