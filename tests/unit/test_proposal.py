"""The proposal lifecycle as a state machine."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from slrt.domain.proposal import (
    MissingBeritaAcara,
    Proposal,
    ProposalNotPending,
    ProposalStatus,
)
from tests.builders import DESA, DINSOS, FRONT_OFFICE, VILLAGE_HEAD, berita_acara

NOW = datetime(2026, 11, 20, 2, tzinfo=UTC)


def submitted() -> Proposal:
    return Proposal(
        kind="remove",
        region=DESA,
        household_id=None,
        payload={"reason": "mampu"},
        note=None,
        actor=FRONT_OFFICE.as_record(),
        timestamp=NOW,
    )


def test_approval_records_the_berita_acara() -> None:
    proposal = submitted()
    proposal.approve_at_village(
        berita_acara=berita_acara(), actor=VILLAGE_HEAD.as_record(), timestamp=NOW
    )
    assert proposal.status is ProposalStatus.VILLAGE_APPROVED
    assert proposal.berita_acara == berita_acara()


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {"number": "", "date": "2026-11-19", "sha256": "a" * 64},
        {"number": "BA/1", "date": "19-11-2026", "sha256": "a" * 64},
        {"number": "BA/1", "date": "2026-11-19", "sha256": "xyz"},
    ],
)
def test_approval_needs_a_complete_berita_acara(bad: object) -> None:
    with pytest.raises(MissingBeritaAcara):
        submitted().approve_at_village(
            berita_acara=bad, actor=VILLAGE_HEAD.as_record(), timestamp=NOW
        )


def test_berita_acara_cannot_be_dated_in_the_future() -> None:
    with pytest.raises(Exception, match="future"):
        submitted().approve_at_village(
            berita_acara=berita_acara(date="2026-11-21"),
            actor=VILLAGE_HEAD.as_record(),
            timestamp=NOW,
        )


def test_dinsos_cannot_verify_before_the_village_approves() -> None:
    with pytest.raises(ProposalNotPending, match="submitted"):
        submitted().verify_by_dinsos(note=None, actor=DINSOS.as_record(), timestamp=NOW)


def test_a_returned_proposal_goes_back_to_the_village() -> None:
    proposal = submitted()
    proposal.approve_at_village(
        berita_acara=berita_acara(), actor=VILLAGE_HEAD.as_record(), timestamp=NOW
    )
    proposal.return_by_dinsos(reason="data kurang", actor=DINSOS.as_record(), timestamp=NOW)
    assert proposal.status is ProposalStatus.RETURNED
    proposal.approve_at_village(
        berita_acara=berita_acara(), actor=VILLAGE_HEAD.as_record(), timestamp=NOW
    )
    assert proposal.status is ProposalStatus.VILLAGE_APPROVED


def test_every_event_records_who_acted() -> None:
    proposal = submitted()
    proposal.approve_at_village(
        berita_acara=berita_acara(), actor=VILLAGE_HEAD.as_record(), timestamp=NOW
    )
    events = proposal.collect_events()
    assert [e.actor["role"] for e in events] == ["front_office", "village_head"]  # type: ignore[attr-defined]
    assert all(e.timestamp == NOW for e in events)
