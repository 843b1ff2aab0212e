"""The AsyncAPI 3.0 document of the referral topics, built from the same schemas the
code uses (`slrt agency asyncapi` prints it; docs/asyncapi.json is its output)."""

from __future__ import annotations

from typing import Any

from slrt.domain.referral import Agency
from slrt.integrations import cloudevents
from slrt.integrations.kafka import Topics

_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["specversion", "id", "type", "source", "time", "data"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {
            "type": "string",
            "maxLength": 200,
            "description": "Stable across re-sends: de-duplicate by it",
        },
        "type": {"type": "string"},
        "source": {"type": "string"},
        "subject": {"type": "string", "description": "The referral id"},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"const": "application/json"},
        "dataschema": {"type": "string", "format": "uri"},
    },
}


def _message(kind: str, key: str) -> dict[str, Any]:
    name = kind.removeprefix(cloudevents.TYPE_PREFIX)
    envelope = {
        **_ENVELOPE,
        "properties": {
            **_ENVELOPE["properties"],
            "type": {"const": kind},
            "data": cloudevents.SCHEMAS[kind],
        },
    }
    return {
        "name": name,
        "title": kind,
        "contentType": "application/cloudevents+json",
        "bindings": {"kafka": {"key": {"type": "string", "description": key}}},
        "payload": envelope,
    }


def document(topics: Topics | None = None) -> dict[str, Any]:
    topics = topics or Topics()
    outbound = {
        kind.removeprefix(cloudevents.TYPE_PREFIX).replace(".", "_"): _message(kind, "household id")
        for kind in (cloudevents.CREATED, cloudevents.CANCELLED, cloudevents.EXPIRED)
    }
    inbound = {
        kind.removeprefix(cloudevents.TYPE_PREFIX).replace(".", "_"): _message(kind, "referral id")
        for kind in cloudevents.INBOUND
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "SLRT referrals (rujukan) to partner agencies",
            "version": "1.0.0",
            "description": "See docs/agency-integration.md. At-least-once both ways; "
            "de-duplicate by CloudEvent id.",
        },
        "defaultContentType": "application/cloudevents+json",
        "channels": {
            "agencyReferrals": {
                "address": topics.agency("{agency}"),
                "parameters": {"agency": {"enum": [a.value for a in Agency]}},
                "messages": outbound,
            },
            "referralResponses": {"address": topics.responses, "messages": inbound},
            "referralResponsesDeadLetters": {
                "address": topics.dead_letters,
                "description": "Answers SLRT could not apply; header slrt-dlq-reason, "
                "body {reason, topic, partition, offset, key, dead_lettered_at, message}",
                "messages": {},
            },
        },
        "operations": {
            "sendReferrals": {
                "action": "send",
                "channel": {"$ref": "#/channels/agencyReferrals"},
            },
            "receiveAnswers": {
                "action": "receive",
                "channel": {"$ref": "#/channels/referralResponses"},
            },
        },
    }
