"""Inspection scenarios (as-of replay, rank audit, timeline, dossier) on SQLite and
PostgreSQL by subclassing."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from slrt.config import Settings
from slrt.domain.common import NotFound
from slrt.domain.scoring import ModelVersion
from slrt.dossier import build_dossier
from slrt.inspection import Inspector, notable
from slrt.projections import score_log
from slrt.projections.household_status import get_household_status
from slrt.runtime import Runtime, build_runtime
from tests.builders import (
    ADMIN,
    DESA,
    DINSOS,
    FRONT_OFFICE,
    INSPECTOR,
    VILLAGE_HEAD,
    berita_acara,
    default_model,
    household,
    indicators,
)
from tests.conftest import Clock

FLAT_MODEL = {
    "intercept": 100.0,
    "weights": {k: 1.0 for k in default_model()["weights"]},
    "household_size_weight": 0.0,
}


def rebuilt_by_hand(runtime: Runtime, at: datetime) -> dict[str, dict[str, Any]]:
    """Every household's data, score, rank and desil from the events up to `at`, folded
    here without the projections (ADR 0002's rules restated)."""
    app = runtime.app
    model: ModelVersion | None = None
    households: dict[str, dict[str, Any]] = {}
    for notification in app.recorder.select_notifications(start=1, limit=1_000_000):
        event: Any = app.mapper.to_domain_event(notification)
        if event.timestamp > at:
            continue
        topic = type(event).__qualname__
        hid = str(event.originator_id)
        if topic == "ScoringModel.VersionPublished":
            model = ModelVersion.from_record(event.model)
        elif topic == "Household.Registered":
            households[hid] = {
                "indicators": event.data["indicators"],
                "members": len(event.data["members"]),
                "status": "active",
                "programmes": [],
            }
        elif topic == "Household.DataUpdated":
            if "indicators" in event.changes:
                households[hid]["indicators"] = event.changes["indicators"]
            if "members" in event.changes:
                households[hid]["members"] = len(event.changes["members"])
        elif topic == "Household.Removed":
            households[hid]["status"] = "removed"
        elif topic == "Household.Enrolled":
            households[hid]["programmes"] = sorted(
                [*households[hid]["programmes"], event.programme]
            )
        if topic.startswith("Household."):
            households[hid]["version"] = event.originator_version
    ranked = []
    for hid, state in households.items():
        state.update(score=None, model_version=None, rank=None, desil=None)
        if model is not None and state["status"] == "active":
            state["score"] = model.score(state["indicators"], state["members"])
            state["model_version"] = model.version
            ranked.append((state["score"], hid))
    ranked.sort()
    for rank, (_, hid) in enumerate(ranked, 1):
        households[hid]["rank"] = rank
        households[hid]["desil"] = (10 * (rank - 1)) // len(ranked) + 1
        households[hid]["population"] = len(ranked)
    return households


def assert_explained_as_by_hand(
    inspector: Inspector,
    hid: UUID,
    start: datetime,
    end: datetime,
    first: dict[str, dict[str, Any]],
    last: dict[str, dict[str, Any]],
) -> None:
    """The explanation names exactly the households that, by the events folded by hand,
    entered, left or crossed the household between the two instants, and its parts add
    up to the change of rank."""
    me = str(hid)
    if first.get(me, {}).get("rank") is None or last.get(me, {}).get("rank") is None:
        return
    answer = inspector.rank_explanation(hid, start, end, limit=1000)
    key1, key2 = (first[me]["score"], me), (last[me]["score"], me)
    expected: dict[str, list[str]] = {
        g: []
        for g in (
            "entered_ahead",
            "entered_behind",
            "left_ahead",
            "left_behind",
            "moved_ahead",
            "fell_behind",
        )
    }
    for x in sorted(set(first) | set(last)):
        if x == me:
            continue
        s1 = first.get(x, {}).get("score")
        s2 = last.get(x, {}).get("score")
        a1 = s1 is not None and (s1, x) < key1
        a2 = s2 is not None and (s2, x) < key2
        if s1 is None and s2 is not None:
            expected["entered_ahead" if a2 else "entered_behind"].append(x)
        elif s1 is not None and s2 is None:
            expected["left_ahead" if a1 else "left_behind"].append(x)
        elif s1 is not None and s2 is not None and a1 != a2 and a1 != ((s2, x) < key1):
            expected["moved_ahead" if a2 else "fell_behind"].append(x)
    population = answer["causes"]["population"]
    got = {g: [h["household_id"] for h in population[g]["households"]] for g in expected}
    assert got == expected, (start, hid)
    passed = sum(
        ((s2, x) < key2) - ((s1, x) < key1)
        for x in first
        if x != me and x in last
        for s1, s2 in [(first[x]["score"], last[x]["score"])]
        if s1 is not None and s2 is not None and not any(x in v for v in expected.values())
    )
    assert population["passed_by_own_score_change"] == passed
    assert answer["after"]["rank"] - answer["before"]["rank"] == (
        len(expected["entered_ahead"])
        - len(expected["left_ahead"])
        + len(expected["moved_ahead"])
        - len(expected["fell_behind"])
        + passed
    )


class InspectionScenarios:
    @pytest.fixture
    def settings(self) -> Settings:
        raise NotImplementedError

    @pytest.fixture
    def runtime(
        self, settings: Settings, clock: Clock, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[Runtime]:
        # Checkpoints every few score changes, so that ranks are read from checkpoints,
        # from the log before the first one, and from the current scores.
        monkeypatch.setattr(score_log, "CHECKPOINT_MIN_ROWS", 4)
        runtime = build_runtime(settings, clock=clock)
        yield runtime
        runtime.close()

    @pytest.fixture
    def inspector(self, runtime: Runtime) -> Inspector:
        return Inspector(runtime)

    # -- helpers: every command moves the clock on seven minutes -------------------------

    @staticmethod
    def publish(runtime: Runtime, clock: Clock, model: dict[str, Any] | None = None) -> None:
        clock.advance(minutes=7)
        runtime.app.publish_scoring_model(actor=ADMIN, note="model", **(model or default_model()))

    @staticmethod
    def propose(
        runtime: Runtime, clock: Clock, kind: str, payload: dict[str, Any], hid: UUID | None = None
    ) -> UUID:
        app = runtime.app
        clock.advance(minutes=7)
        proposal_id = app.submit_proposal(
            actor=FRONT_OFFICE, kind=kind, payload=payload, household_id=hid
        ).id
        clock.advance(minutes=7)
        app.decide_at_village(
            actor=VILLAGE_HEAD, proposal_id=proposal_id, approve=True, berita_acara=berita_acara()
        )
        clock.advance(minutes=7)
        app.decide_at_dinsos(actor=DINSOS, proposal_id=proposal_id, verify=True)
        return proposal_id

    def register(self, runtime: Runtime, clock: Clock, deprived: int, members: int = 2) -> UUID:
        payload = {"household": household(deprived=deprived, members=members)}
        proposal_id = self.propose(runtime, clock, "register", payload)
        hid = runtime.app.get_proposal(proposal_id).household_id
        assert hid is not None
        return hid

    def update(self, runtime: Runtime, clock: Clock, hid: UUID, deprived: int) -> UUID:
        changes = {"changes": {"indicators": indicators(deprived)}}
        return self.propose(runtime, clock, "update", changes, hid)

    def remove(self, runtime: Runtime, clock: Clock, hid: UUID) -> UUID:
        return self.propose(runtime, clock, "remove", {"reason": "mampu"}, hid)

    @staticmethod
    def complain(
        runtime: Runtime,
        hid: UUID,
        *,
        channel: str = "sms_whatsapp",
        category: str = "aid_not_received",
        description: str = "BPNT belum diterima",
    ) -> UUID:
        complaint: UUID = runtime.app.receive_complaint(
            actor=FRONT_OFFICE,
            region=DESA,
            channel=channel,
            complaint_type="complaint",
            category=category,
            description=description,
            household_id=hid,
        ).id
        return complaint

    @staticmethod
    def explain(
        runtime: Runtime, inspector: Inspector, hid: UUID, start: datetime
    ) -> dict[str, Any]:
        runtime.catch_up()
        return inspector.rank_explanation(hid, start)

    # -- as-of replay ---------------------------------------------------------------

    def test_as_of_replay_equals_the_state_rebuilt_by_hand_at_any_instant(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        self.publish(runtime, clock)
        hids = [self.register(runtime, clock, d) for d in (2, 5, 8, 8, 11, 13)]
        self.update(runtime, clock, hids[0], 12)
        self.publish(runtime, clock, FLAT_MODEL)
        self.remove(runtime, clock, hids[4])
        hids.append(self.register(runtime, clock, 7, members=5))
        self.propose(runtime, clock, "enrol", {"programme": "PKH"}, hids[1])
        self.update(runtime, clock, hids[2], 3)
        runtime.catch_up()

        stamps = sorted(
            {
                runtime.app.mapper.to_domain_event(n).timestamp
                for n in runtime.app.recorder.select_notifications(start=1, limit=10_000)
            }
        )
        instants = [s + timedelta(seconds=d) for s in stamps for d in (-1, 0, 150)]
        for at in instants:
            expected = rebuilt_by_hand(runtime, at)
            for hid in hids:
                if str(hid) not in expected:
                    with pytest.raises(NotFound):
                        inspector.household_as_of(hid, at)
                    continue
                want = expected[str(hid)]
                got = inspector.household_as_of(hid, at)
                assert got["indicators"] == want["indicators"], at
                assert len(got["members"]) == want["members"]
                assert (got["status"], got["programmes"], got["version"]) == (
                    want["status"],
                    want["programmes"],
                    want["version"],
                )
                assert (got["score"], got["model_version"], got["rank"], got["desil"]) == (
                    want["score"],
                    want["model_version"],
                    want["rank"],
                    want["desil"],
                ), (at, hid)
                if want["rank"] is not None:
                    assert got["scope_population"] == want["population"]
        last = rebuilt_by_hand(runtime, clock.now)
        for start in instants[::4]:
            first = rebuilt_by_hand(runtime, start)
            for hid in hids:
                assert_explained_as_by_hand(inspector, hid, start, clock.now, first, last)
        # A period that ends in the past reads each household's last change in it.
        end = instants[-20]
        last = rebuilt_by_hand(runtime, end)
        for start in [i for i in instants[::6] if i <= end]:
            first = rebuilt_by_hand(runtime, start)
            for hid in hids:
                assert_explained_as_by_hand(inspector, hid, start, end, first, last)

    def test_explanations_are_right_when_projections_follow_command_by_command(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        # As a running server does: each change lands in its own projection batch, so the
        # score log's chain of rows per household goes through the stored state.
        self.publish(runtime, clock)
        runtime.catch_up()
        hids = [self.register(runtime, clock, d) for d in (2, 5, 8, 11)]
        runtime.catch_up()
        for hid, deprived in ((hids[0], 12), (hids[0], 4), (hids[1], 9), (hids[0], 13)):
            self.update(runtime, clock, hid, deprived)
            runtime.catch_up()
        self.publish(runtime, clock, FLAT_MODEL)
        runtime.catch_up()
        self.update(runtime, clock, hids[2], 3)
        runtime.catch_up()

        with runtime.engine.connect() as conn:
            rows = conn.execute(
                score_log.score_log.select().order_by(
                    score_log.score_log.c.household_id, score_log.score_log.c.notification_id
                )
            ).all()
        previous: dict[str, int | None] = {}
        following: dict[tuple[str, int | None], int] = {}
        for row in rows:
            assert row.prev_nid == previous.get(row.household_id), row
            following[(row.household_id, row.prev_nid)] = row.notification_id
            previous[row.household_id] = row.notification_id
        for row in rows:
            assert row.next_nid == following.get((row.household_id, row.notification_id)), row
        stamps = sorted(
            runtime.app.mapper.to_domain_event(n).timestamp
            for n in runtime.app.recorder.select_notifications(start=1, limit=10_000)
        )
        last = rebuilt_by_hand(runtime, clock.now)
        for start in stamps[::3]:
            first = rebuilt_by_hand(runtime, start)
            for hid in hids:
                assert_explained_as_by_hand(inspector, hid, start, clock.now, first, last)
        for end in stamps[-12::4]:
            last = rebuilt_by_hand(runtime, end)
            for start in [s for s in stamps[::4] if s <= end]:
                first = rebuilt_by_hand(runtime, start)
                for hid in hids:
                    assert_explained_as_by_hand(inspector, hid, start, end, first, last)

    def test_checkpoints_fall_where_one_batch_puts_them_when_applied_command_by_command(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        # The count of log rows since a scope's last checkpoint is kept across batches;
        # a rebuild in one batch must take its checkpoints at the same events.
        self.publish(runtime, clock)
        runtime.catch_up()
        hids = []
        for deprived in range(10):
            hids.append(self.register(runtime, clock, deprived))
            runtime.catch_up()
        for n, hid in enumerate(hids * 2):
            self.update(runtime, clock, hid, (n * 5) % 14)
            runtime.catch_up()
        self.update(runtime, clock, hids[0], 7)  # one row after the last checkpoint
        runtime.catch_up()

        def heads() -> list[tuple[Any, ...]]:
            with runtime.engine.connect() as conn:
                table = score_log.score_checkpoint_heads
                return [tuple(r) for r in conn.execute(table.select().order_by(*table.c))]

        live = heads()
        assert len(live) >= 3
        worker = runtime.workers["score_log"]
        worker.reset()
        worker.catch_up()
        assert heads() == live

    def test_as_of_now_agrees_with_the_household_status_projection(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        self.publish(runtime, clock)
        hids = [self.register(runtime, clock, d) for d in (1, 4, 4, 9, 14)]
        self.update(runtime, clock, hids[1], 10)
        runtime.catch_up()
        with runtime.engine.connect() as conn:
            for hid in hids:
                row = get_household_status(conn, str(hid))
                assert row is not None
                got = inspector.household_as_of(hid, clock.now)
                assert (got["score"], got["rank"], got["desil"]) == (
                    row["score"],
                    row["rank"],
                    row["desil"],
                )

    # -- rank explanations: exactly the causes that produced the change ------------------

    def test_own_data_change_is_explained_by_its_proposal_and_indicators(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        self.publish(runtime, clock)
        for d in (4, 6, 8):
            self.register(runtime, clock, d)
        h = self.register(runtime, clock, 12)
        start = clock.now
        proposal_id = self.update(runtime, clock, h, 5)

        answer = self.explain(runtime, inspector, h, start)

        assert (answer["before"]["rank"], answer["after"]["rank"]) == (1, 3)
        causes = answer["causes"]
        [own] = causes["own_data"]
        assert own["proposal_id"] == str(proposal_id)
        before, after = indicators(12), indicators(5)
        assert own["changed"] == sorted(k for k in before if before[k] != after[k])
        assert own["score_delta"] > 0
        assert own["berita_acara"]["number"] == "BA/001/XI/2026"
        assert causes["model"] == []
        population = causes["population"]
        assert population["passed_by_own_score_change"] == 2
        for group in ("entered_ahead", "left_ahead", "moved_ahead", "fell_behind"):
            assert population[group]["count"] == 0
        assert "usulan" in answer["summary"]["id"] and "proposal" in answer["summary"]["en"]

    def test_a_neighbour_crossing_is_explained_by_naming_it(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        self.publish(runtime, clock)
        x = self.register(runtime, clock, 4)
        h = self.register(runtime, clock, 6)
        start = clock.now
        proposal_id = self.update(runtime, clock, x, 12)

        answer = self.explain(runtime, inspector, h, start)

        assert (answer["before"]["rank"], answer["after"]["rank"]) == (1, 2)
        causes = answer["causes"]
        assert causes["own_data"] == [] and causes["model"] == []
        moved = causes["population"]["moved_ahead"]
        assert [m["household_id"] for m in moved["households"]] == [str(x)]
        [change] = moved["households"][0]["changes"]
        assert (change["cause"], change["proposal_id"]) == ("own_data", str(proposal_id))
        assert causes["population"]["passed_by_own_score_change"] == 0

    def test_entries_and_removals_are_named_with_their_side(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        self.publish(runtime, clock)
        z = self.register(runtime, clock, 10)
        h = self.register(runtime, clock, 6)
        start = clock.now
        y = self.register(runtime, clock, 12)
        self.remove(runtime, clock, z)
        w = self.register(runtime, clock, 2)

        population = self.explain(runtime, inspector, h, start)["causes"]["population"]

        named = {
            group: [m["household_id"] for m in population[group]["households"]]
            for group in ("entered_ahead", "entered_behind", "left_ahead", "left_behind")
        }
        assert named == {
            "entered_ahead": [str(y)],
            "entered_behind": [str(w)],
            "left_ahead": [str(z)],
            "left_behind": [],
        }
        assert (population["population_before"], population["population_after"]) == (2, 3)
        assert population["passed_by_own_score_change"] == 0

    def test_a_model_change_is_explained_by_its_versions(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        self.publish(runtime, clock)
        h = self.register(runtime, clock, 6, members=1)
        x = self.register(runtime, clock, 5, members=8)
        start = clock.now
        self.publish(runtime, clock, FLAT_MODEL)

        answer = self.explain(runtime, inspector, h, start)

        assert (answer["before"]["rank"], answer["after"]["rank"]) == (2, 1)
        causes = answer["causes"]
        assert causes["own_data"] == []
        [model] = causes["model"]
        assert (model["from_version"], model["to_version"]) == (1, 2)
        fell = causes["population"]["fell_behind"]["households"]
        assert [f["household_id"] for f in fell] == [str(x)]
        assert [c["cause"] for c in fell[0]["changes"]] == ["model"]
        assert causes["population"]["passed_by_own_score_change"] == 0

    def test_rank_history_matches_the_rank_at_each_change(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        self.publish(runtime, clock)
        h = self.register(runtime, clock, 6)
        others = [self.register(runtime, clock, d) for d in (9, 3, 11)]
        self.update(runtime, clock, h, 13)
        self.remove(runtime, clock, others[2])
        runtime.catch_up()

        points = inspector.rank_history(h)["points"]

        assert [(p["rank"], p["desil"]) for p in points] == [
            (None, None),
            (1, 1),
            (2, 6),
            (2, 4),
            (3, 6),
            (1, 1),
        ]
        for point in points[1:]:
            at = datetime.fromisoformat(point["at"])
            assert inspector.household_as_of(h, at)["rank"] == point["rank"]

    def test_desil_changes_leave_out_the_moves_of_rank_alone(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        self.publish(runtime, clock)
        h = self.register(runtime, clock, 2)  # the least deprived: last of every ranking
        for deprived in (8, 9, 10, 11, 12, 13):
            self.register(runtime, clock, deprived)
        self.update(runtime, clock, h, 14)  # its own change: to the top
        runtime.catch_up()

        every = inspector.rank_history(h)
        desil = inspector.rank_history(h, changes="desil")

        # Last of n households: desil (n - 1) * 10 // n + 1, i.e. 6, 7, 8, 9, 9, 9 for
        # n = 2 … 7: the rank moves each time, the desil not at 6 and 7.
        assert [(p["rank"], p["desil"], p["cause"]) for p in desil["points"]] == [
            (None, None, "start"),
            (1, 1, "entered"),
            *[(n, (n - 1) * 10 // n + 1, "population") for n in (2, 3, 4, 5)],
            (1, 1, "own_data"),
        ]
        assert desil["not_listed"] == len(every["points"]) - 7 == 2
        assert every["not_listed"] == 0
        timeline = inspector.timeline(h, kinds={"rank"})
        assert [e["notification_id"] for e in timeline] == [
            p["notification_id"] for p in desil["points"][1:]
        ]
        kept = {p["notification_id"] for p in desil["points"]}
        for previous, point in zip(every["points"], every["points"][1:], strict=False):
            if point["notification_id"] not in kept:
                assert point["cause"] == "population"
                assert point["desil"] == previous["desil"] and point["rank"] != previous["rank"]

    def test_the_desil_changes_summed_by_the_database_are_those_of_every_point(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        """`changes=desil` and the timeline sum the moves up in SQL (window functions on
        both backends); they must list exactly `notable` of every point, and count them."""
        rng = random.Random(15)
        self.publish(runtime, clock)
        households = [
            self.register(runtime, clock, rng.randint(2, 14), members=rng.randint(1, 6))
            for _ in range(16)
        ]
        middle = clock.now
        removed: set[UUID] = set()
        for step in range(14):
            if step == 7:
                self.publish(runtime, clock, FLAT_MODEL)
            elif step % 4 == 3:
                gone = rng.choice([h for h in households if h not in removed])
                self.remove(runtime, clock, gone)
                removed.add(gone)
            elif step % 4 == 1:
                households.append(self.register(runtime, clock, rng.randint(2, 14)))
            else:
                self.update(runtime, clock, rng.choice(households), rng.randint(0, 14))
        runtime.catch_up()

        by_population = 0
        for h in households:
            for start in (None, middle):
                every = inspector.rank_history(h, start)
                desil = inspector.rank_history(h, start, changes="desil")
                assert desil["points"] == notable(every["points"])
                assert desil["not_listed"] == len(every["points"]) - len(desil["points"])
                by_population += sum(p["cause"] == "population" for p in desil["points"])
            timeline = inspector.timeline(h, kinds={"rank"})
            assert [e["notification_id"] for e in timeline] == [
                p["notification_id"] for p in notable(inspector.rank_history(h)["points"])[1:]
            ]
        assert by_population > 10  # the scenario moves desils by others' changes

    # -- timeline and dossier -------------------------------------------------------------

    def test_a_complaint_from_receipt_to_close_appears_in_the_timeline(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        self.publish(runtime, clock)
        h = self.register(runtime, clock, 8)
        complaint = self.complain(runtime, h)
        for action, details in (
            ("acknowledge", {"note": "dicek"}),
            ("resolve", {"outcome": "Sudah disalurkan e-warung"}),
            ("close", {}),
        ):
            clock.advance(minutes=30)
            runtime.app.handle_complaint(
                actor=FRONT_OFFICE, complaint_id=complaint, action=action, **details
            )
        runtime.catch_up()

        complaints = inspector.timeline(h, kinds={"complaint"})
        assert [e["what"] for e in complaints] == [
            "Complaint.Received",
            "Complaint.Acknowledged",
            "Complaint.Resolved",
            "Complaint.Closed",
        ]

    def test_timeline_lists_every_event_that_touched_the_household_in_order(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        self.publish(runtime, clock)
        h = self.register(runtime, clock, 8)
        clock.advance(minutes=7)
        self.complain(
            runtime, h, channel="walk_in", category="wrong_data", description="Data lantai salah"
        )
        update = self.update(runtime, clock, h, 11)
        runtime.app.record_inspection(
            actor=INSPECTOR, resource="household", resource_id=str(h), region=DESA
        )
        runtime.catch_up()

        entries = inspector.timeline(h)

        what = [e["what"] for e in entries if e["kind"] not in ("score", "rank")]
        assert what == [
            "Proposal.Submitted",
            "Proposal.VillageApproved",
            "Proposal.DinsosVerified",
            "Proposal.Applied",
            "Household.Registered",
            "Complaint.Received",
            "Proposal.Submitted",
            "Proposal.VillageApproved",
            "Proposal.DinsosVerified",
            "Proposal.Applied",
            "Household.DataUpdated",
            "Inspection.Recorded",
        ]
        assert all(e["at"].endswith("+08:00") for e in entries)  # WITA, Kota Bontang
        updated = next(e for e in entries if e["what"] == "Household.DataUpdated")
        assert updated["caused_by_proposal"] == str(update)
        assert updated["who"]["user_id"] == DINSOS.user_id
        assert updated["document"]["number"] == "BA/001/XI/2026"
        registered = next(e for e in entries if e["what"] == "Household.Registered")
        assert all("*" in m["nik"] for m in registered["details"]["data"]["members"])
        assert [e["details"]["cause"] for e in entries if e["kind"] == "score"] == [
            "entered",
            "own_data",
        ]
        only = inspector.timeline(h, kinds={"complaint", "inspection"})
        assert [e["kind"] for e in only] == ["complaint", "inspection"]
        later = inspector.timeline(h, start=datetime.fromisoformat(updated["at"]))
        from_update = datetime.fromisoformat(updated["at"])
        assert later and all(datetime.fromisoformat(e["at"]) >= from_update for e in later)
        assert "Complaint.Received" not in [e["what"] for e in later]

    def test_dossier_is_self_contained_html_with_chart_and_verification(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        self.publish(runtime, clock)
        h = self.register(runtime, clock, 8)
        middle = clock.now
        self.register(runtime, clock, 12)
        runtime.catch_up()

        html = build_dossier(
            inspector,
            h,
            viewer=INSPECTOR,
            as_of=[middle, clock.now],
            start=None,
            end=None,
        )

        assert html.startswith("<!DOCTYPE html>")
        assert "<svg" in html and "<script" not in html
        assert "src=" not in html and "href=" not in html
        assert "Hash chain verification" in html
        assert "Penjelasan perubahan peringkat" in html
        # By default the chains of the dossier's own records: the household and the
        # proposal that registered it (its 4 events and the household's 1).
        assert "class='ok'>intact" in html
        assert "audit of 2 record(s)" in html and "5 events" in html
        # Rank changes are in their own section, not repeated in the timeline.
        assert "rank/desil changed" not in html
        assert "Proposal.Applied" in html.split("<h2>Timeline / Riwayat</h2>")[1]

    def test_a_dossiers_records_are_the_household_and_what_touched_it(
        self, runtime: Runtime, clock: Clock, inspector: Inspector
    ) -> None:
        self.publish(runtime, clock)
        h = self.register(runtime, clock, 8)
        other = self.register(runtime, clock, 5)
        update = self.update(runtime, clock, h, 12)
        complaint = self.complain(runtime, h, channel="walk_in")
        runtime.catch_up()
        registration = next(
            UUID(e["aggregate_id"])
            for e in inspector.timeline(h, kinds={"proposal"})
            if e["what"] == "Proposal.Submitted" and UUID(e["aggregate_id"]) != update
        )

        records = inspector.records(h)

        assert records[0] == h
        assert sorted(records[1:]) == sorted([registration, update, complaint])
        assert other not in records


class TestInspectionOnSqlite(InspectionScenarios):
    @pytest.fixture
    def settings(self, sqlite_settings: Settings) -> Settings:
        return sqlite_settings


@pytest.mark.postgres
class TestInspectionOnPostgres(InspectionScenarios):
    @pytest.fixture
    def settings(self, postgres_settings: Settings) -> Settings:
        return postgres_settings
