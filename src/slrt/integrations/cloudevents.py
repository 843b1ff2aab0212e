"""Referral messages as CloudEvents 1.0 (structured mode, JSON), and their schemas.

Outbound (SLRT → agency, topic `slrt.referrals.<agency>`, key = household id):
`id.slrt.referral.created.v1`, `…cancelled.v1`, `…expired.v1`. The CloudEvent `id` is
the stored event's id (`<referral id>/<version>`): stable across re-sends, so an agency
de-duplicates by it.

Inbound (agency → SLRT, topic `slrt.referral-responses`, key = referral id):
`id.slrt.referral.acknowledged.v1`, `…delivered.v1`, `…declined.v1`.

A new, incompatible payload gets a new version in the type name (`….v2`); both are
published side by side while agencies move over. `SCHEMAS` holds the JSON Schema of
each type's `data`; docs/agency-integration.md and docs/asyncapi.yaml are written from
the same definitions.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from slrt.domain.referral import Agency, Urgency

SPEC_VERSION = "1.0"
TYPE_PREFIX = "id.slrt.referral."
SOURCE = "/slrt/referrals"
CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
SCHEMA_BASE = "https://slrt.example.id/schemas/"

CREATED = "id.slrt.referral.created.v1"
CANCELLED = "id.slrt.referral.cancelled.v1"
EXPIRED = "id.slrt.referral.expired.v1"
ACKNOWLEDGED = "id.slrt.referral.acknowledged.v1"
DELIVERED = "id.slrt.referral.delivered.v1"
DECLINED = "id.slrt.referral.declined.v1"

#: Stored event class name -> outbound CloudEvent type.
OUTBOUND = {"Created": CREATED, "Cancelled": CANCELLED, "Expired": EXPIRED}
#: Inbound CloudEvent type -> the answer it carries.
INBOUND = {ACKNOWLEDGED: "acknowledged", DELIVERED: "delivered", DECLINED: "declined"}

_UUID = {"type": "string", "format": "uuid"}
_REFERENCE = {"type": "string", "minLength": 1, "maxLength": 100}
_ANSWER_BASE = {
    "referral_id": _UUID,
    "agency": {"type": "string", "enum": [a.value for a in Agency]},
    "agency_reference": _REFERENCE,
}

SCHEMAS: dict[str, dict[str, Any]] = {
    CREATED: {
        "type": "object",
        "required": [
            "referral_id",
            "household_id",
            "region",
            "agency",
            "service",
            "reason",
            "urgency",
            "created_at",
        ],
        "properties": {
            "referral_id": _UUID,
            "household_id": _UUID,
            "region": {"type": "string", "pattern": r"^\d{2}\.\d{2}\.\d{2}\.\d{4}$"},
            "member_nik": {
                "type": ["string", "null"],
                "pattern": r"^\d{16}$",
                "description": "Personal data (UU 27/2022): process only for this referral",
            },
            "agency": {"type": "string", "enum": [a.value for a in Agency]},
            "service": {"type": "string"},
            "reason": {"type": "string", "maxLength": 1000},
            "urgency": {"type": "string", "enum": [u.value for u in Urgency]},
            "complaint_id": {**_UUID, "type": ["string", "null"]},
            "proposal_id": {**_UUID, "type": ["string", "null"]},
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    CANCELLED: {
        "type": "object",
        "required": ["referral_id", "reason", "cancelled_at"],
        "properties": {
            "referral_id": _UUID,
            "reason": {"type": "string"},
            "cancelled_at": {"type": "string", "format": "date-time"},
        },
    },
    EXPIRED: {
        "type": "object",
        "required": ["referral_id", "target", "deadline", "expired_at"],
        "properties": {
            "referral_id": _UUID,
            "target": {"type": "string", "enum": ["acknowledgement", "outcome"]},
            "deadline": {"type": "string", "format": "date-time"},
            "expired_at": {"type": "string", "format": "date-time"},
        },
    },
    ACKNOWLEDGED: {
        "type": "object",
        "required": ["referral_id", "agency", "agency_reference"],
        "properties": _ANSWER_BASE,
    },
    DELIVERED: {
        "type": "object",
        "required": ["referral_id", "agency", "delivered_on", "details"],
        "properties": {
            **_ANSWER_BASE,
            "delivered_on": {"type": "string", "format": "date"},
            "details": {"type": "string", "minLength": 1, "maxLength": 2000},
        },
    },
    DECLINED: {
        "type": "object",
        "required": ["referral_id", "agency", "reason"],
        "properties": {
            **_ANSWER_BASE,
            "reason": {"type": "string", "minLength": 1, "maxLength": 1000},
        },
    },
}


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def event_id(originator_id: UUID, version: int) -> str:
    """The stored event's identity: the same on every re-send."""
    return f"{originator_id}/{version}"


def envelope(
    *, id: str, type: str, source: str, subject: str, time: datetime, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "specversion": SPEC_VERSION,
        "id": id,
        "type": type,
        "source": source,
        "subject": subject,
        "time": _iso(time),
        "datacontenttype": "application/json",
        "dataschema": f"{SCHEMA_BASE}{type}.json",
        "data": data,
    }


def outbound(event: Any, referral: Any) -> dict[str, Any]:
    """The CloudEvent for a stored Referral event (Created, Cancelled or Expired)."""
    name = type(event).__qualname__.rsplit(".", 1)[-1]
    kind = OUTBOUND[name]
    rid = str(event.originator_id)
    if name == "Created":
        data: dict[str, Any] = {
            "referral_id": rid,
            "household_id": str(event.household_id),
            "region": event.region,
            "member_nik": event.member_nik,
            "agency": event.agency,
            "service": event.service,
            "reason": event.reason,
            "urgency": event.urgency,
            "complaint_id": str(event.complaint_id) if event.complaint_id else None,
            "proposal_id": str(event.proposal_id) if event.proposal_id else None,
            "created_at": _iso(event.timestamp),
        }
    elif name == "Cancelled":
        data = {"referral_id": rid, "reason": event.reason, "cancelled_at": _iso(event.timestamp)}
    else:
        data = {
            "referral_id": rid,
            "target": event.target,
            "deadline": _iso(event.deadline),
            "expired_at": _iso(event.timestamp),
        }
    return envelope(
        id=event_id(event.originator_id, event.originator_version),
        type=kind,
        source=SOURCE,
        subject=rid,
        time=event.timestamp,
        data=data,
    )


def encode(cloud_event: dict[str, Any]) -> bytes:
    return json.dumps(cloud_event, separators=(",", ":"), ensure_ascii=False).encode()


class BadMessage(ValueError):
    """The message is not a CloudEvent SLRT understands; the reason says why."""


@dataclass(frozen=True)
class Answer:
    """An agency's answer, parsed and checked against its schema."""

    message_id: str
    answer: str  # acknowledged | delivered | declined
    referral_id: UUID
    agency: str
    data: dict[str, Any]


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _check(data: dict[str, Any], schema: dict[str, Any]) -> None:
    """The subset of JSON Schema our schemas use: required, type string, enum, length."""
    for name in schema["required"]:
        if data.get(name) is None:
            raise BadMessage(f"data.{name} is required")
    for name, rule in schema["properties"].items():
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadMessage(f"data.{name} must be a string")
        if "enum" in rule and value not in rule["enum"]:
            raise BadMessage(f"data.{name} must be one of {', '.join(rule['enum'])}")
        if len(value) < rule.get("minLength", 0) or len(value) > rule.get("maxLength", 10_000):
            raise BadMessage(f"data.{name} has the wrong length")
        if rule.get("format") == "uuid":
            try:
                UUID(value)
            except ValueError:
                raise BadMessage(f"data.{name} must be a UUID") from None
        if rule.get("format") == "date":
            try:
                if not _DATE.match(value):
                    raise ValueError(value)
                date.fromisoformat(value)
            except ValueError:
                raise BadMessage(f"data.{name} must be a date YYYY-MM-DD") from None


def parse_answer(value: bytes | None) -> Answer:
    """Parses an inbound CloudEvent; raises BadMessage with the reason."""
    if not value:
        raise BadMessage("empty message")
    try:
        message = json.loads(value)
    except (ValueError, UnicodeDecodeError) as error:
        raise BadMessage(f"not JSON: {error}") from None
    if not isinstance(message, dict):
        raise BadMessage("not a JSON object")
    if message.get("specversion") != SPEC_VERSION:
        raise BadMessage("specversion must be 1.0 (structured-mode CloudEvent)")
    for attribute in ("id", "type", "source"):
        if not isinstance(message.get(attribute), str) or not message[attribute]:
            raise BadMessage(f"CloudEvent attribute {attribute} is required")
    kind = message["type"]
    if kind not in INBOUND:
        raise BadMessage(f"unknown type {kind!r}; expected one of {', '.join(INBOUND)}")
    data = message.get("data")
    if not isinstance(data, dict):
        raise BadMessage("data must be a JSON object")
    _check(data, SCHEMAS[kind])
    if len(message["id"]) > 200:
        raise BadMessage("id must be at most 200 characters")
    return Answer(
        message_id=message["id"],
        answer=INBOUND[kind],
        referral_id=UUID(data["referral_id"]),
        agency=data["agency"],
        data=data,
    )
