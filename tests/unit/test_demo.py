"""Demo data: a small kabupaten loaded through the real commands, then read back."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy import select

from slrt.config import Settings
from slrt.demo import generate
from slrt.domain.ranking import desil
from slrt.domain.reference import validate_nik
from slrt.projections.household_status import list_households
from slrt.projections.proposal_list import proposal_list
from slrt.runtime import Runtime, build_runtime

#: The 24th of a month, inside the DTKS window: this month's proposals are still pending.
NOW = datetime(2026, 3, 24, 3, 0, tzinfo=UTC)
PENDING = ("submitted", "village_approved", "returned")


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Runtime, str]]:
    path: Path = tmp_path_factory.mktemp("demo") / "slrt.db"
    settings = Settings(database_url=f"sqlite:///{path}")
    summary = generate(settings, region="64.74", households=30, seed=11, now=NOW)
    runtime = build_runtime(settings)
    runtime.catch_up()
    yield runtime, summary
    runtime.close()


def _households(runtime: Runtime) -> list[dict[str, object]]:
    with runtime.engine.connect() as conn:
        _, rows = list_households(
            conn,
            lookup_key=b"k",
            region=None,
            desil=None,
            status=None,
            q=None,
            limit=10_000,
            offset=0,
        )
        return rows


def test_registered_households_are_scored_and_ranked_one_to_n_per_scope(
    loaded: tuple[Runtime, str],
) -> None:
    runtime, _ = loaded
    households = _households(runtime)
    assert households
    ranks: dict[str, list[int]] = defaultdict(list)
    for household in households:
        if household["status"] == "active":
            assert isinstance(household["score"], float)
            assert isinstance(household["rank"], int)
            ranks[str(household["scope"])].append(household["rank"])
    assert set(ranks) == {"64.74"}
    for scope_ranks in ranks.values():
        assert sorted(scope_ranks) == list(range(1, len(scope_ranks) + 1))
    population = len(ranks["64.74"])
    for household in households:
        if household["status"] == "active":
            assert household["desil"] == desil(int(household["rank"]), population)  # type: ignore[call-overload]


def test_scoring_model_version_2_is_current_and_scores_every_household(
    loaded: tuple[Runtime, str],
) -> None:
    runtime, _ = loaded
    model = runtime.app.get_scoring_model()
    assert model is not None and model.current is not None
    assert model.current.version == 2
    assert {h["model_version"] for h in _households(runtime)} == {2}


def test_every_member_nik_is_valid_and_unique(loaded: tuple[Runtime, str]) -> None:
    runtime, _ = loaded
    niks = []
    for row in _households(runtime):
        household = runtime.app.get_household(UUID(str(row["household_id"])))
        for member in household.members:
            validate_nik(member["nik"], sex=member["sex"])
            assert member["nik"][:6] == household.region[:8].replace(".", "")
            niks.append(member["nik"])
    assert len(niks) == len(set(niks))


def test_some_proposals_are_still_pending_and_none_happened_after_now(
    loaded: tuple[Runtime, str],
) -> None:
    runtime, summary = loaded
    with runtime.engine.connect() as conn:
        rows = conn.execute(select(proposal_list.c.status, proposal_list.c.last_event_at)).all()
    assert any(status in PENDING for status, _ in rows)
    assert all(at <= NOW for _, at in rows)
    assert "households registered" in summary


def _fingerprint(runtime: Runtime) -> list[tuple[object, ...]]:
    """What the seed decides. Not ids (uuid4), nor ranks, which break equal scores by id."""
    columns = ("head_name", "address", "members", "score", "status", "programmes")
    return sorted(tuple(h[c] for c in columns) for h in _households(runtime))


def test_the_same_seed_gives_the_same_households(
    tmp_path: Path, loaded: tuple[Runtime, str]
) -> None:
    first, summary = loaded
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'again.db'}")
    assert generate(settings, region="64.74", households=30, seed=11, now=NOW) == summary
    again = build_runtime(settings)
    try:
        again.catch_up()
        assert _fingerprint(again) == _fingerprint(first)
    finally:
        again.close()


@pytest.mark.parametrize("region", ["64", "64.74.01", "64.74.01.1001", "99.99", "Bontang"])
def test_only_a_known_kabupaten_kota_is_accepted(tmp_path: Path, region: str) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'slrt.db'}")
    with pytest.raises(ValueError, match="region"):
        generate(settings, region=region, households=3, seed=1, now=NOW)


def test_demo_data_if_empty_loads_into_a_fresh_store_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `make run` on a fresh machine: the store holds only what a runtime stores at start
    # (the default SLA policy) and the demo users, and must still get its demo data.
    from slrt.cli import main

    monkeypatch.setenv("SLRT_DATABASE_URL", f"sqlite:///{tmp_path / 'slrt.db'}")
    monkeypatch.setenv("SLRT_LOG_LEVEL", "WARNING")
    assert main(["users", "demo", "--region", "64.74"]) == 0
    capsys.readouterr()

    assert main(["demo-data", "--region", "64.74", "--households", "5", "--if-empty"]) == 0
    assert "demo data:" in capsys.readouterr().out
    assert main(["demo-data", "--region", "64.74", "--households", "5", "--if-empty"]) == 0
    assert "demo data not loaded" in capsys.readouterr().out
