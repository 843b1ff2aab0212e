"""`created`: the aggregates the commands create on their hot path, held to the
library's own creation (`cls(**fields)`) and to its replay of the event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.domain import Aggregate

from slrt.domain.common import created
from slrt.domain.complaint import Complaint
from slrt.domain.proposal import Proposal

NOW = datetime(2026, 12, 5, 3, 0, tzinfo=UTC)
ID = UUID("6d1f2c4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f")
ACTOR = {"user_id": "fo-1", "role": "front_office", "region": "35.07.01.2001"}

CASES: list[tuple[type[Aggregate], str, dict[str, Any]]] = [
    (
        Proposal,
        "Submitted",
        {
            "kind": "register",
            "region": "35.07.01.2001",
            "household_id": None,
            "payload": {"household": {"region": "35.07.01.2001", "members": []}},
            "note": "Diusulkan melalui RT 003",
            "actor": ACTOR,
        },
    ),
    (
        Complaint,
        "Received",
        {
            "region": "35.07.01.2001",
            "channel": "walk_in",
            "complaint_type": "complaint",
            "category": "aid_not_received",
            "description": "Belum menerima bantuan",
            "household_id": UUID("0f0e0d0c-0b0a-4908-8706-050403020100"),
            "member_nik": None,
            "reporter": {"name": "Siti Aminah", "phone": "0812-3456-7890"},
            "sla_policy_version": 3,
            "actor": ACTOR,
        },
    ),
]


@pytest.mark.parametrize(("cls", "event", "fields"), CASES, ids=["proposal", "complaint"])
def test_created_is_the_librarys_creation(
    cls: type[Aggregate], event: str, fields: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cls, "create_id", staticmethod(lambda: ID))
    ours = created(cls, event, timestamp=NOW, **fields)
    library = cls(**fields, timestamp=NOW)
    # The same state (version, timestamps, the pending event itself, field by field)...
    assert vars(ours) == vars(library)
    assert type(ours.pending_events[0]) is type(library.pending_events[0])
    assert ours.id == ID and ours.version == 1 and ours.created_on == NOW
    # ...and the library, replaying the event, builds the same aggregate.
    replayed = ours.pending_events[0].mutate(None)
    assert replayed is not None
    assert {k: v for k, v in vars(replayed).items() if k != "_pending_events"} == {
        k: v for k, v in vars(ours).items() if k != "_pending_events"
    }


def test_created_refuses_what_the_init_does_not_take() -> None:
    # A field the aggregate's __init__ does not take is an error, not silently dropped.
    fields = {**CASES[0][2], "colour": "red"}
    with pytest.raises(TypeError):
        created(Proposal, "Submitted", timestamp=NOW, **fields)
