"""Application scenarios, run on SQLite and on the real PostgreSQL by subclassing."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import time
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError
from sqlalchemy import func, inspect, select, text, update
from structlog.testing import capture_logs

from slrt.application import Idempotency, Outcome, SlrtApplication
from slrt.config import Settings
from slrt.domain.access import Forbidden
from slrt.domain.common import InvalidInput, NotFound, VersionMismatch
from slrt.domain.household import HouseholdRemoved
from slrt.domain.proposal import MissingBeritaAcara, ProposalNotPending, ProposalStatus
from slrt.domain.ranking import rank_scope
from slrt.domain.receipt import IdempotencyKeyReused
from slrt.domain.sla import SlaPolicy
from slrt.domain.windows import OutsideSubmissionWindow
from slrt.persistence.postgres import AuditedPostgresApplicationRecorder, partition_hash
from slrt.projections import base as projections_base
from slrt.projections import score_log
from slrt.projections.base import advance_position, projection_versions, rebuild_lock_key
from slrt.projections.household_status import (
    HouseholdStatusProjection,
    get_household_status,
    household_ranking,
    household_status,
    list_households,
)
from slrt.projections.parallel import rebuild_in_processes
from slrt.projections.proposal_list import proposal_list
from slrt.runtime import Runtime, build_runtime, create_missing_indexes, lookup_key
from tests.builders import (
    ADMIN,
    DINSOS,
    FRONT_OFFICE,
    OTHER_VILLAGE_HEAD,
    VILLAGE_HEAD,
    berita_acara,
    default_model,
    household,
    indicators,
    nik,
)
from tests.conftest import Clock


class _Thing(Aggregate):
    """Any other new aggregate, to share a batch with a conflicting event."""


class ApplicationScenarios:
    """Given/when/then scenarios against the application and its projections."""

    @pytest.fixture
    def settings(self) -> Settings:
        raise NotImplementedError

    # -- helpers --------------------------------------------------------------------

    @staticmethod
    def publish_model(runtime: Runtime, **overrides: Any) -> int:
        return runtime.app.publish_scoring_model(
            actor=ADMIN, note="test model", **{**default_model(), **overrides}
        ).version

    @staticmethod
    def submit(runtime: Runtime, kind: str = "register", **fields: Any) -> UUID:
        household_id = fields.pop("household_id", None)
        payload = fields or {"household": household()}
        return runtime.app.submit_proposal(
            actor=FRONT_OFFICE, kind=kind, payload=payload, household_id=household_id
        ).id

    @staticmethod
    def complain(runtime: Runtime, **extra: Any) -> Outcome:
        return runtime.app.receive_complaint(
            actor=FRONT_OFFICE,
            region=FRONT_OFFICE.region,
            channel="walk_in",
            complaint_type="complaint",
            category="aid_not_received",
            description="Bantuan belum diterima",
            **extra,
        )

    @staticmethod
    def approve(runtime: Runtime, proposal_id: UUID) -> None:
        runtime.app.decide_at_village(
            actor=VILLAGE_HEAD, proposal_id=proposal_id, approve=True, berita_acara=berita_acara()
        )

    @staticmethod
    def verify(runtime: Runtime, proposal_id: UUID) -> None:
        runtime.app.decide_at_dinsos(actor=DINSOS, proposal_id=proposal_id, verify=True)

    def register(self, runtime: Runtime, **household_fields: Any) -> UUID:
        proposal_id = self.submit(runtime, household=household(**household_fields))
        self.approve(runtime, proposal_id)
        self.verify(runtime, proposal_id)
        household_id = runtime.app.get_proposal(proposal_id).household_id
        assert household_id is not None
        return household_id

    def through(self, runtime: Runtime, kind: str, household_id: UUID, **payload: Any) -> UUID:
        proposal_id = self.submit(runtime, kind, household_id=household_id, **payload)
        self.approve(runtime, proposal_id)
        self.verify(runtime, proposal_id)
        return proposal_id

    @staticmethod
    def status_of(runtime: Runtime, household_id: UUID) -> dict[str, Any]:
        runtime.catch_up()
        with runtime.engine.connect() as conn:
            row = get_household_status(conn, str(household_id))
        assert row is not None
        return row

    @staticmethod
    def household_rows(runtime: Runtime) -> int:
        runtime.catch_up()
        with runtime.engine.connect() as conn:
            return len(conn.execute(select(household_status.c.household_id)).all())

    # -- the happy path -----------------------------------------------------------

    def test_verified_register_proposal_creates_a_scored_ranked_household(
        self, runtime: Runtime
    ) -> None:
        self.publish_model(runtime)
        household_id = self.register(runtime, deprived=12)

        proposal_events = runtime.app.repository.get(household_id)
        assert proposal_events.status == "active"
        row = self.status_of(runtime, household_id)
        assert row["model_version"] == 1
        assert row["score"] is not None
        assert (row["rank"], row["desil"], row["population"]) == (1, 1, 1)
        assert row["is_poor"] is True

    @staticmethod
    def listed(
        runtime: Runtime,
        *,
        q: str | None = None,
        desil: int | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> tuple[int, list[dict[str, Any]]]:
        """The household list, as GET /households gives it (every region and status)."""
        with runtime.engine.connect() as conn:
            return list_households(
                conn,
                lookup_key=lookup_key(runtime.settings),
                region=None,
                desil=desil,
                status=None,
                q=q,
                limit=limit,
                offset=offset,
            )

    def found(self, runtime: Runtime, number: str) -> set[str]:
        """The households a search for this NIK or No. KK finds."""
        runtime.catch_up()
        return {r["household_id"] for r in self.listed(runtime, q=number)[1]}

    def test_new_members_and_no_kk_replace_exactly_their_households_look_ups(
        self, runtime: Runtime
    ) -> None:
        # A person counted in two households (before the registry is cleaned up).
        first, second = household(), household()
        shared = first["members"][1]["nik"] = second["members"][1]["nik"]
        ids = []
        for data in (first, second):
            proposal_id = self.submit(runtime, household=data)
            self.approve(runtime, proposal_id)
            self.verify(runtime, proposal_id)
            ids.append(str(runtime.app.get_proposal(proposal_id).household_id))
        one, two = ids
        head = first["members"][0]["nik"]
        assert self.found(runtime, shared) == {one, two}

        # In a later batch than the registration: the stored look-ups are replaced.
        moved_in = nik(day=3, female=True)
        members = [first["members"][0], {**first["members"][1], "nik": moved_in}]
        new_kk = "6474010101209999"
        self.through(runtime, "update", UUID(one), changes={"members": members, "no_kk": new_kk})
        assert self.found(runtime, shared) == {two}
        assert self.found(runtime, moved_in) == {one}
        assert self.found(runtime, head) == {one}
        assert self.found(runtime, first["no_kk"]) == set()
        assert self.found(runtime, new_kk) == {one}
        assert self.found(runtime, second["no_kk"]) == {two}

        # Twice in one batch: only the last members are found.
        later = [nik(day=4, female=True), nik(day=5, female=True)]
        for number in later:
            members = [first["members"][0], {**first["members"][1], "nik": number}]
            self.through(runtime, "update", UUID(one), changes={"members": members})
        assert [self.found(runtime, n) for n in (moved_in, *later)] == [set(), set(), {one}]
        assert self.found(runtime, new_kk) == {one}
        assert self.found(runtime, shared) == {two}

    @staticmethod
    def ranking_rows(runtime: Runtime) -> tuple[dict[str, int], dict[str, int]]:
        """The stored desils, and the desils a full ranking of the stored scores gives."""
        runtime.catch_up()
        with runtime.engine.connect() as conn:
            stored = {
                h: d
                for h, d in conn.execute(
                    select(household_ranking.c.household_id, household_ranking.c.desil)
                )
            }
            scores = conn.execute(
                select(household_status.c.household_id, household_status.c.score).where(
                    household_status.c.status == "active"
                )
            ).all()
        return stored, {h: d for h, (_, d) in rank_scope((h, s) for h, s in scores).items()}

    def test_one_change_in_a_large_scope_ranks_as_a_full_ranking_and_the_list_shows_it(
        self, runtime: Runtime
    ) -> None:
        # Enough households that one change is placed on its own (ScopeRanking.set_score)
        # and its few ranking rows are written alone, not the scope's.
        self.publish_model(runtime)
        ids = [self.register(runtime, deprived=n % 14, members=1 + n % 3) for n in range(200)]
        stored, ranked = self.ranking_rows(runtime)
        assert stored == ranked and len(stored) == 200

        self.through(runtime, "update", ids[5], changes={"indicators": indicators(0)})
        stored, ranked = self.ranking_rows(runtime)
        assert stored == ranked
        self.through(runtime, "update", ids[6], changes={"indicators": indicators(14)})
        self.through(runtime, "remove", ids[7], reason="moved")
        stored, ranked = self.ranking_rows(runtime)
        assert stored == ranked and len(stored) == 199

        # The list, page by page: poorest first with their ranks, the removed one last.
        with runtime.engine.connect() as conn:
            scores = conn.execute(
                select(household_ranking.c.household_id, household_ranking.c.score)
            ).all()
        pages = [self.listed(runtime, limit=50, offset=offset) for offset in (0, 50, 100, 150)]
        ranks = rank_scope((h, s) for h, s in scores)
        listed = [(r["household_id"], r["rank"], r["desil"]) for _, rows in pages for r in rows]
        assert {total for total, _ in pages} == {200}
        assert listed == [
            *sorted(((h, r, d) for h, (r, d) in ranks.items()), key=lambda x: x[1]),
            (str(ids[7]), None, None),
        ]
        # One household's status: its rank counted within its desil (_ranked_before).
        with runtime.engine.connect() as conn:
            one_by_one = {
                h: (row["rank"], row["desil"])
                for h in (str(i) for i in ids)
                if (row := get_household_status(conn, h)) is not None
            }
        assert one_by_one == {**{h: ranks[h] for h in ranks}, str(ids[7]): (None, None)}
        _, rows = self.listed(runtime, desil=5, limit=7, offset=5)  # from the middle of one desil
        assert [(r["household_id"], r["rank"], r["desil"]) for r in rows] == sorted(
            ((h, r, d) for h, (r, d) in ranks.items() if d == 5), key=lambda x: x[1]
        )[5:12]

    def test_an_obsolete_index_is_dropped_and_its_successor_created_at_start(
        self, runtime: Runtime
    ) -> None:
        with runtime.engine.begin() as conn:
            conn.execute(text("DROP INDEX household_ranking_band"))
            conn.execute(
                text("CREATE INDEX household_ranking_desil ON household_ranking (scope, desil)")
            )

        create_missing_indexes(runtime.engine)

        names = {i["name"] for i in inspect(runtime.engine).get_indexes("household_ranking")}
        assert "household_ranking_band" in names and "household_ranking_desil" not in names

    def test_household_events_name_the_proposal_that_caused_them(self, runtime: Runtime) -> None:
        proposal_id = self.submit(runtime)
        self.approve(runtime, proposal_id)
        self.verify(runtime, proposal_id)
        household_id = runtime.app.get_proposal(proposal_id).household_id
        assert household_id is not None
        events = list(runtime.app.events.get(household_id))
        assert [type(e).__qualname__ for e in events] == ["Household.Registered"]
        assert events[0].proposal_id == proposal_id
        assert events[0].actor["user_id"] == DINSOS.user_id

    def test_applying_an_update_changes_score_and_ranks_in_the_scope(
        self, runtime: Runtime
    ) -> None:
        self.publish_model(runtime)
        poorer = self.register(runtime, deprived=12)
        richer = self.register(runtime, deprived=4)
        assert self.status_of(runtime, poorer)["rank"] == 1
        before = self.status_of(runtime, richer)["score"]

        self.through(runtime, "update", richer, changes={"indicators": indicators(14)})

        after = self.status_of(runtime, richer)
        assert after["score"] < before
        assert after["rank"] == 1
        assert self.status_of(runtime, poorer)["rank"] == 2

    def test_a_new_model_version_rescores_and_reranks_everyone(self, runtime: Runtime) -> None:
        self.publish_model(runtime)
        big_family = self.register(runtime, deprived=5, members=8)
        small_family = self.register(runtime, deprived=6, members=1)
        assert self.status_of(runtime, big_family)["rank"] == 1

        self.publish_model(runtime, household_size_weight=0.0)

        assert self.status_of(runtime, small_family)["rank"] == 1
        assert self.status_of(runtime, big_family)["model_version"] == 2

    def test_a_removed_household_keeps_its_data_but_leaves_the_ranking(
        self, runtime: Runtime
    ) -> None:
        self.publish_model(runtime)
        leaving = self.register(runtime, deprived=13)
        staying = self.register(runtime, deprived=10)

        self.through(runtime, "remove", leaving, reason="mampu")

        row = self.status_of(runtime, leaving)
        assert (row["status"], row["rank"], row["desil"]) == ("removed", None, None)
        assert row["head_name"] == "Budi Santoso"
        assert self.status_of(runtime, staying)["rank"] == 1
        with pytest.raises(HouseholdRemoved):
            self.submit(runtime, "update", household_id=leaving, changes={"address": "Jl. Baru"})

    def test_enrolment_adds_a_programme(self, runtime: Runtime) -> None:
        household_id = self.register(runtime)
        self.through(runtime, "enrol", household_id, programme="PKH")
        assert self.status_of(runtime, household_id)["programmes"] == ["PKH"]
        with pytest.raises(Exception, match="already enrolled"):
            self.submit(runtime, "enrol", household_id=household_id, programme="PKH")

    # -- refusals change nothing ------------------------------------------------------

    def test_a_rejected_proposal_changes_nothing(self, runtime: Runtime) -> None:
        proposal_id = self.submit(runtime)
        runtime.app.decide_at_village(
            actor=VILLAGE_HEAD,
            proposal_id=proposal_id,
            approve=False,
            reason="Rumah tangga tidak ditemukan",
            berita_acara=berita_acara(),
        )
        assert runtime.app.get_proposal(proposal_id).status is ProposalStatus.VILLAGE_REJECTED
        assert self.household_rows(runtime) == 0
        with pytest.raises(ProposalNotPending):
            self.verify(runtime, proposal_id)

    def test_a_returned_proposal_changes_nothing_until_approved_again(
        self, runtime: Runtime
    ) -> None:
        proposal_id = self.submit(runtime)
        self.approve(runtime, proposal_id)
        runtime.app.decide_at_dinsos(
            actor=DINSOS, proposal_id=proposal_id, verify=False, reason="Foto rumah kurang jelas"
        )
        assert runtime.app.get_proposal(proposal_id).status is ProposalStatus.RETURNED
        assert self.household_rows(runtime) == 0

        self.approve(runtime, proposal_id)
        self.verify(runtime, proposal_id)
        assert self.household_rows(runtime) == 1

    def test_a_withdrawn_proposal_cannot_be_approved(self, runtime: Runtime) -> None:
        proposal_id = self.submit(runtime)
        runtime.app.withdraw_proposal(
            actor=FRONT_OFFICE, proposal_id=proposal_id, reason="Diajukan ganda"
        )
        with pytest.raises(ProposalNotPending, match="withdrawn"):
            self.approve(runtime, proposal_id)

    def test_double_approval_is_refused(self, runtime: Runtime) -> None:
        proposal_id = self.submit(runtime)
        self.approve(runtime, proposal_id)
        with pytest.raises(ProposalNotPending, match="village_approved"):
            self.approve(runtime, proposal_id)

    def test_approval_without_berita_acara_is_refused(self, runtime: Runtime) -> None:
        proposal_id = self.submit(runtime)
        with pytest.raises(MissingBeritaAcara):
            runtime.app.decide_at_village(
                actor=VILLAGE_HEAD, proposal_id=proposal_id, approve=True, berita_acara=None
            )
        assert runtime.app.get_proposal(proposal_id).version == 1

    def test_invalid_nik_and_unknown_region_are_refused_at_submission(
        self, runtime: Runtime
    ) -> None:
        stored_before = runtime.app.recorder.max_notification_id()  # the SLA policy
        bad_nik = household()
        bad_nik["members"][0]["nik"] = "6474013208800001"  # day 32
        with pytest.raises(InvalidInput, match="NIK"):
            self.submit(runtime, household=bad_nik)
        unknown_region = household(region="64.74.09.1001")
        with pytest.raises(InvalidInput, match="not a Kemendagri region"):
            self.submit(runtime, household=unknown_region)
        assert runtime.app.recorder.max_notification_id() == stored_before

    def test_proposal_outside_its_window_names_the_next_window(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        clock.advance(days=10)  # 30 November
        with pytest.raises(OutsideSubmissionWindow, match="2026-12-15 to 2026-12-25"):
            self.submit(runtime)

    def test_a_village_head_cannot_decide_for_another_desa(self, runtime: Runtime) -> None:
        proposal_id = self.submit(runtime)
        with pytest.raises(Forbidden):
            runtime.app.decide_at_village(
                actor=OTHER_VILLAGE_HEAD,
                proposal_id=proposal_id,
                approve=True,
                berita_acara=berita_acara(),
            )

    def test_a_stale_expected_version_is_refused(self, runtime: Runtime) -> None:
        proposal_id = self.submit(runtime)
        self.approve(runtime, proposal_id)
        with pytest.raises(VersionMismatch):
            runtime.app.decide_at_dinsos(
                actor=DINSOS, proposal_id=proposal_id, verify=True, expected_version=1
            )

    # -- concurrency ------------------------------------------------------------------

    def test_concurrent_approvals_of_one_proposal_record_one_approval(
        self, runtime: Runtime
    ) -> None:
        proposal_id = self.submit(runtime)
        outcomes = self._race(8, lambda: self.approve(runtime, proposal_id))
        assert sorted(outcomes) == ["ProposalNotPending"] * 7 + ["ok"]
        approvals = [
            e
            for e in runtime.app.events.get(proposal_id)
            if type(e).__qualname__ == "Proposal.VillageApproved"
        ]
        assert len(approvals) == 1

    def test_concurrent_changes_to_one_household_are_all_applied(self, runtime: Runtime) -> None:
        household_id = self.register(runtime)
        programmes = ["KKS", "BPNT", "PKH", "KIP"]
        proposals = []
        for programme in programmes:
            proposal_id = self.submit(
                runtime, "enrol", household_id=household_id, programme=programme
            )
            self.approve(runtime, proposal_id)
            proposals.append(proposal_id)
        pending = iter(proposals)
        lock = threading.Lock()

        def verify_next() -> None:
            with lock:
                proposal_id = next(pending)
            self.verify(runtime, proposal_id)

        outcomes = self._race(len(proposals), verify_next)
        assert outcomes == ["ok"] * len(proposals)
        assert sorted(runtime.app.get_household(household_id).programmes) == sorted(programmes)

    def test_concurrent_commands_share_transactions_and_each_gets_its_answer(
        self, runtime: Runtime
    ) -> None:
        committer = runtime.app._committer
        assert committer is not None
        self.submit(runtime)  # the SLA policy's first use, out of the way
        batches_before, commands_before = committer.batches, committer.commands
        ids: list[UUID] = []
        outcomes = self._race(16, lambda: ids.append(self.submit(runtime)))
        assert outcomes == ["ok"] * 16
        assert len(set(ids)) == 16
        assert all(runtime.app.get_proposal(i).status is ProposalStatus.SUBMITTED for i in ids)
        assert committer.commands - commands_before == 16
        assert committer.batches - batches_before < 16

    def test_the_first_commands_on_a_fresh_store_do_not_conflict(self, runtime: Runtime) -> None:
        # The default SLA policy is stored when the runtime starts. It used to be saved
        # with the first command, so every command racing on a fresh store carried a
        # copy, their batches conflicted and each was retried.
        assert runtime.app.get_sla_policy() is not None
        committer = runtime.app._committer
        assert committer is not None
        outcomes = self._race(16, lambda: self.submit(runtime))
        assert outcomes == ["ok"] * 16
        assert committer.split_batches == 0

    # -- commands from an event loop (the HTTP routes) ----------------------------------

    @staticmethod
    def loop_committer(runtime: Runtime) -> Any:
        """What saves commands decided on an event loop: the loop committer on
        PostgreSQL, the group committer's thread on SQLite."""
        raise NotImplementedError

    @staticmethod
    def registration(runtime: Runtime) -> Any:
        return runtime.app.submit_proposal_command(
            actor=FRONT_OFFICE, kind="register", payload={"household": household()}
        )

    def test_commands_run_from_an_event_loop_share_transactions(self, runtime: Runtime) -> None:
        committer = self.loop_committer(runtime)
        assert committer is not None
        batches_before, commands_before = committer.batches, committer.commands
        commands = [
            runtime.app.submit_proposal_command(
                actor=FRONT_OFFICE, kind="register", payload={"household": household()}
            )
            for _ in range(16)
        ]
        assert not any(c.reads for c in commands)  # decided on the loop itself

        async def run_all() -> list[Outcome]:
            return await asyncio.gather(*(runtime.app.run_async(c) for c in commands))

        outcomes = asyncio.run(run_all())
        assert len({o.id for o in outcomes}) == 16
        for outcome in outcomes:
            assert runtime.app.get_proposal(outcome.id).status is ProposalStatus.SUBMITTED
        assert committer.commands - commands_before == 16
        assert committer.batches - batches_before < 16

    def test_a_keyed_registration_is_decided_on_the_loop_and_a_repeat_replays(
        self, runtime: Runtime
    ) -> None:
        # The key's receipt is not read before the first attempt; a repeated key is
        # found when its receipt collides, and the next attempt answers as before.
        offloaded: list[str] = []

        async def offload(function: Any, *args: Any) -> Any:
            offloaded.append(function.__name__)
            return await asyncio.to_thread(function, *args)

        payload = {"household": household()}
        key = Idempotency(key="k-1", fingerprint="f-1")

        def command() -> Any:
            return runtime.app.submit_proposal_command(
                actor=FRONT_OFFICE, kind="register", payload=payload, idempotency=key
            )

        async def twice() -> tuple[Outcome, Outcome]:
            first = await runtime.app.run_async(command(), offload=offload)
            reads_before_repeat = list(offloaded)
            again = await runtime.app.run_async(command(), offload=offload)
            assert reads_before_repeat == []
            return first, again

        first, again = asyncio.run(twice())
        assert offloaded == ["_decide"]  # the repeat's second attempt read the receipt
        assert (again.id, again.version, again.replayed) == (first.id, first.version, True)
        proposals = [
            n
            for n in runtime.app.recorder.select_notifications(start=1, limit=1000)
            if n.topic.endswith("Proposal.Submitted")
        ]
        assert len(proposals) == 1

    def test_concurrent_approvals_from_an_event_loop_record_one_approval(
        self, runtime: Runtime
    ) -> None:
        proposal_id = self.submit(runtime)
        commands = [
            runtime.app.decide_at_village_command(
                actor=VILLAGE_HEAD,
                proposal_id=proposal_id,
                approve=True,
                berita_acara=berita_acara(),
            )
            for _ in range(8)
        ]

        async def run_all() -> list[Any]:
            runs = (runtime.app.run_async(c) for c in commands)
            return await asyncio.gather(*runs, return_exceptions=True)

        results = asyncio.run(run_all())
        assert sorted(type(r).__name__ for r in results) == ["Outcome"] + ["ProposalNotPending"] * 7
        approvals = [
            e
            for e in runtime.app.events.get(proposal_id)
            if type(e).__qualname__ == "Proposal.VillageApproved"
        ]
        assert len(approvals) == 1

    def test_decisions_from_an_event_loop_on_records_of_every_kind(self, runtime: Runtime) -> None:
        # On PostgreSQL the records are read ahead, many commands' in one statement.
        household_id = self.register(runtime)
        update = self.submit(
            runtime, "update", household_id=household_id, changes={"indicators": indicators(2)}
        )
        withdrawn = self.submit(runtime)
        complaint = self.complain(runtime)
        commands = [
            runtime.app.decide_at_village_command(
                actor=VILLAGE_HEAD, proposal_id=update, approve=True, berita_acara=berita_acara()
            ),
            runtime.app.withdraw_proposal_command(
                actor=FRONT_OFFICE, proposal_id=withdrawn, reason="salah input"
            ),
            runtime.app.handle_complaint_command(
                actor=FRONT_OFFICE, complaint_id=complaint.id, action="acknowledge", note="ok"
            ),
        ]

        async def run_all() -> list[Outcome]:
            return await asyncio.gather(*(runtime.app.run_async(c) for c in commands))

        approved, gone, acknowledged = asyncio.run(run_all())
        assert runtime.app.get_proposal(approved.id).status is ProposalStatus.VILLAGE_APPROVED
        assert runtime.app.get_proposal(gone.id).status is ProposalStatus.WITHDRAWN
        assert runtime.app.get_complaint(acknowledged.id).version == acknowledged.version

    def test_a_decision_that_reads_more_than_was_read_ahead_is_made_in_a_worker_thread(
        self, runtime: Runtime
    ) -> None:
        household_id = self.register(runtime, deprived=3)
        proposal_id = self.submit(
            runtime, "update", household_id=household_id, changes={"indicators": indicators(12)}
        )
        self.approve(runtime, proposal_id)
        offloaded: list[str] = []

        async def offload(function: Any, *args: Any) -> Any:
            offloaded.append(function.__name__)
            return await asyncio.to_thread(function, *args)

        verify = runtime.app.decide_at_dinsos_command(
            actor=DINSOS, proposal_id=proposal_id, verify=True
        )
        asyncio.run(runtime.app.run_async(verify, offload=offload))

        assert offloaded == ["_decide"]  # verifying an update also reads the household
        assert runtime.app.get_proposal(proposal_id).status is ProposalStatus.APPLIED
        household = runtime.app.repository.get(household_id)
        assert sum(household.indicators.values()) == 12

    def test_a_decision_from_an_event_loop_on_an_unknown_record_is_not_found(
        self, runtime: Runtime
    ) -> None:
        command = runtime.app.decide_at_village_command(
            actor=VILLAGE_HEAD, proposal_id=uuid4(), approve=True, berita_acara=berita_acara()
        )
        with pytest.raises(NotFound):
            asyncio.run(runtime.app.run_async(command))

    def test_commands_from_an_event_loop_without_group_commit(
        self, settings: Settings, clock: Clock
    ) -> None:
        # Saving happens in a worker thread then; conflicts are retried the same way.
        plain = build_runtime(settings.model_copy(update={"group_commit": False}), clock=clock)
        try:
            assert plain.app._committer is None
            submitted = asyncio.run(
                plain.app.run_async(
                    plain.app.submit_proposal_command(
                        actor=FRONT_OFFICE, kind="register", payload={"household": household()}
                    )
                )
            )
            commands = [
                plain.app.decide_at_village_command(
                    actor=VILLAGE_HEAD,
                    proposal_id=submitted.id,
                    approve=True,
                    berita_acara=berita_acara(),
                )
                for _ in range(4)
            ]

            async def run_all() -> list[Any]:
                runs = (plain.app.run_async(c) for c in commands)
                return await asyncio.gather(*runs, return_exceptions=True)

            results = asyncio.run(run_all())
            assert (
                sorted(type(r).__name__ for r in results)
                == ["Outcome"] + ["ProposalNotPending"] * 3
            )
            assert plain.app.get_proposal(submitted.id).status is ProposalStatus.VILLAGE_APPROVED
        finally:
            plain.close()

    @staticmethod
    def _race(threads: int, action: Any) -> list[str]:
        barrier = threading.Barrier(threads)
        outcomes: list[str] = []

        def run() -> None:
            barrier.wait()
            try:
                action()
                outcomes.append("ok")
            except Exception as error:
                outcomes.append(type(error).__name__)

        workers = [threading.Thread(target=run) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return outcomes

    # -- projections ------------------------------------------------------------------

    def test_rebuilding_household_status_from_zero_gives_the_live_rows(
        self, runtime: Runtime
    ) -> None:
        self.publish_model(runtime)
        ids = [self.register(runtime, deprived=d, members=1 + d % 4) for d in range(2, 14, 2)]
        self.through(runtime, "update", ids[0], changes={"indicators": indicators(13)})
        self.through(runtime, "remove", ids[1], reason="moved")
        self.through(runtime, "enrol", ids[2], programme="KIP")
        self.publish_model(runtime, household_size_weight=2.5)
        live = self._snapshot(runtime)

        for worker in runtime.workers.values():
            worker.reset()
        assert self._snapshot(runtime) == live  # _snapshot catches up first
        assert len(live["household_status"]) == len(ids)

    def test_a_projection_that_is_behind_reads_many_pages_in_one_batch(
        self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.publish_model(runtime)
        for deprived in (2, 5, 8, 11):
            self.register(runtime, deprived=deprived)
        live = self._snapshot(runtime)
        total = runtime.app.recorder.max_notification_id() or 0
        assert total > 14

        proposals = runtime.workers["proposal_list"]
        proposals.reset()
        proposals.batch_size, proposals.max_batch_size = 2, 7
        # A full first page (2) says it is behind: it reads on, in bigger pages, up to 7
        # notifications in one batch.
        assert proposals.run_once() == 7
        assert proposals.position() == 7
        households = runtime.workers["household_status"]
        households.reset()
        households.batch_size, households.max_batch_size = 2, 1_000
        households.projection.MAX_ROWS = 2  # type: ignore[misc]
        monkeypatch.setattr(projections_base, "CATCH_UP_PAGE", 2)  # pages stay small
        # household_status ends the batch once it holds two events' or households' rows.
        first = households.run_once()
        with runtime.engine.connect() as conn:
            rows = conn.execute(select(household_status.c.household_id)).all()
        assert 1 <= len(rows) < 4 and first < total
        assert self._snapshot(runtime) == live  # the rest, then equal to the live rows

    def test_a_catch_up_reads_the_next_page_while_it_applies_one(
        self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for deprived in (2, 5, 8):
            self.register(runtime, deprived=deprived)
        recorder = runtime.app.recorder
        ids = [n.id for n in recorder.select_notifications(start=1, limit=10_000)]
        select_notifications = recorder.select_notifications
        second_page_asked = threading.Event()

        def select(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("start") == ids[1] + 1:  # the page after the first two
                second_page_asked.set()
            return select_notifications(*args, **kwargs)

        monkeypatch.setattr(recorder, "select_notifications", select)

        class Slow(projections_base.Projection):
            """Waits, while applying the first page, for the second page to be asked."""

            name = "slow"

            def __init__(self) -> None:
                self.applied: list[int] = []
                self.asked_while_applying = False

            def apply(self, conn: Any, event: Any, notification_id: int) -> None:
                if notification_id == ids[0]:
                    self.asked_while_applying = second_page_asked.wait(timeout=10)
                self.applied.append(notification_id)

        slow = Slow()
        worker = projections_base.ProjectionWorker(
            runtime.app, runtime.engine, slow, batch_size=2, max_batch_size=1_000
        )
        try:
            assert worker.run_once() == len(ids)
        finally:
            worker.stop()
        assert slow.asked_while_applying
        assert slow.applied == ids
        assert worker.position() == ids[-1]

    @pytest.mark.parametrize("encrypted", [False, True], ids=["plain", "encrypted"])
    def test_projections_decode_every_event_as_the_library_mapper_does(
        self, settings: Settings, clock: Clock, encrypted: bool
    ) -> None:
        if encrypted:
            key = base64.b64encode(os.urandom(32)).decode()
            settings = settings.model_copy(update={"cipher_key": key})
        runtime = build_runtime(settings, clock=clock)
        try:
            self.publish_model(runtime)
            ids = [self.register(runtime, deprived=d) for d in (3, 11)]
            self.through(runtime, "update", ids[0], changes={"address": 'Jl. "_type_" 7'})
            self.through(runtime, "enrol", ids[1], programme="PKH")
            self.through(runtime, "remove", ids[1], reason="moved")
            self.complain(runtime, reporter={"name": "Siti Aminah", "phone": "0812-3456-7890"})
            notifications = runtime.app.recorder.select_notifications(start=1, limit=10_000)
            decoder = runtime.workers["household_status"].decoder
            topics = set()
            for notification in notifications:
                fast = decoder.decode(notification)
                slow = runtime.app.mapper.to_domain_event(notification)
                assert type(fast) is type(slow)
                assert fast.__dict__ == slow.__dict__
                assert [type(v) for v in fast.__dict__.values()] == [
                    type(v) for v in slow.__dict__.values()
                ]
                topics.add(type(fast).__qualname__)
            # All of them the fast way (the quoted marker in the address is a string).
            assert decoder.fallbacks == 0
            assert {"Household.Registered", "Household.DataUpdated", "Household.Removed"} <= topics
            assert {
                "Proposal.Submitted",
                "ScoringModel.VersionPublished",
                "Complaint.Received",
            } <= (topics)
        finally:
            runtime.close()

    @staticmethod
    def _snapshot(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
        runtime.catch_up()
        with runtime.engine.connect() as conn:
            return {
                table.name: sorted(tuple(r) for r in conn.execute(select(table)))
                for table in (household_status, household_ranking, proposal_list)
            }

    def test_a_restarted_projection_resumes_where_it_stopped(
        self, settings: Settings, clock: Clock
    ) -> None:
        first = build_runtime(settings, clock=clock)
        self.publish_model(first)
        self.register(first)
        first.catch_up()
        position = first.workers["household_status"].position()
        first.close()

        second = build_runtime(settings, clock=clock)
        try:
            assert second.workers["household_status"].position() == position
            self.register(second)
            assert second.workers["household_status"].catch_up() == 5  # submit..apply
            assert self.household_rows(second) == 2
        finally:
            second.close()

    def test_a_projection_of_another_version_is_rebuilt_when_the_runtime_starts(
        self, settings: Settings, clock: Clock
    ) -> None:
        first = build_runtime(settings, clock=clock)
        self.publish_model(first)
        for deprived in (3, 9, 12):
            self.register(first, deprived=deprived)
        live = self._snapshot(first)
        score_position = first.workers["score_log"].position()
        # As a store projected by an older household_status would be: version 1, and
        # rows the new version would not have written that way.
        with first.engine.begin() as conn:
            conn.execute(
                update(projection_versions)
                .where(projection_versions.c.projection == "household_status")
                .values(version=1)
            )
            conn.execute(household_ranking.delete())
        first.close()

        second = build_runtime(settings, clock=clock)
        try:
            assert second.workers["household_status"].position() == 0
            assert second.workers["score_log"].position() == score_position
            assert self._snapshot(second) == live
        finally:
            second.close()

    def test_an_upgrade_that_adds_columns_recreates_the_projection_tables(
        self, settings: Settings, clock: Clock
    ) -> None:
        first = build_runtime(settings, clock=clock)
        self.publish_model(first)
        hid = self.register(first, deprived=9)
        first.catch_up()
        with first.engine.begin() as conn:
            before = conn.execute(select(score_log.score_log)).all()
            # A score_log of version 2 had no next_nid column (nor the index using it).
            conn.execute(text("DROP INDEX IF EXISTS ix_score_log_household_chain"))
            conn.execute(text("ALTER TABLE score_log DROP COLUMN next_nid"))
            conn.execute(
                update(projection_versions)
                .where(projection_versions.c.projection == "score_log")
                .values(version=2)
            )
        first.close()

        second = build_runtime(settings, clock=clock)
        try:
            assert second.workers["score_log"].position() == 0
            second.catch_up()
            with second.engine.connect() as conn:
                after = conn.execute(select(score_log.score_log)).all()
            assert after == before and [r.household_id for r in after] == [str(hid)]
        finally:
            second.close()


class TestOnSQLite(ApplicationScenarios):
    @staticmethod
    def loop_committer(runtime: Runtime) -> Any:
        assert runtime.app._loop_committer is None
        return runtime.app._committer

    @pytest.fixture
    def settings(self, sqlite_settings: Settings) -> Settings:
        return sqlite_settings

    def test_a_cancelled_caller_does_not_cancel_its_commit(
        self, settings: Settings, clock: Clock
    ) -> None:
        # The committer's batch waits 100 ms for more commands; the first caller gives
        # up after 20 ms (as a request whose client went away can). Its command is
        # still saved, and the committer still answers the others.
        slow = build_runtime(
            settings.model_copy(update={"group_commit_window_ms": 100}), clock=clock
        )
        try:
            stored_before = slow.app.recorder.max_notification_id() or 0

            async def scenario() -> Outcome:
                first = asyncio.create_task(slow.app.run_async(self.registration(slow)))
                second = asyncio.create_task(slow.app.run_async(self.registration(slow)))
                await asyncio.sleep(0.02)
                first.cancel()
                await asyncio.wait_for(second, timeout=10)
                last = slow.app.run_async(self.registration(slow))
                return await asyncio.wait_for(last, timeout=10)

            asyncio.run(scenario())
            assert slow.app.recorder.max_notification_id() == stored_before + 3
        finally:
            slow.close()


@pytest.mark.postgres
class TestOnPostgres(ApplicationScenarios):
    @pytest.fixture
    def settings(self, postgres_settings: Settings) -> Settings:
        return postgres_settings

    @staticmethod
    def loop_committer(runtime: Runtime) -> Any:
        return runtime.app._loop_committer

    # -- commands saved on the event loop (slrt.loop_commit) ---------------------------

    def test_a_cancelled_caller_does_not_cancel_its_commit(self, runtime: Runtime) -> None:
        # Another transaction holds the events table, so the first batch waits in the
        # database; a second command leaves as a second batch and waits there too. The
        # first caller gives up (as a request whose client went away can). Its command
        # is still saved, and so is the second once the table is free.
        app, committer = runtime.app, runtime.app._loop_committer
        assert committer is not None
        stored_before = app.recorder.max_notification_id() or 0
        batches_before = committer.batches

        async def scenario() -> Outcome:
            with runtime.engine.connect() as holder:
                holder.execute(text(f"LOCK TABLE {app.recorder.events_table_name}"))
                first = asyncio.create_task(app.run_async(self.registration(runtime)))
                await asyncio.sleep(0.2)
                second = asyncio.create_task(app.run_async(self.registration(runtime)))
                await asyncio.sleep(0.05)
                first.cancel()
                holder.commit()
            return await asyncio.wait_for(second, timeout=10)

        outcome = asyncio.run(scenario())
        assert app.get_proposal(outcome.id).status is ProposalStatus.SUBMITTED
        assert app.recorder.max_notification_id() == stored_before + 2
        assert committer.batches - batches_before == 2

    def test_a_loop_commit_on_a_connection_the_server_closed_is_saved(
        self, runtime: Runtime
    ) -> None:
        # The server ended the loop's idle connection (a restart, an idle timeout, an
        # administrator). The next batch's statement fails on it; the recovery saves
        # the batch through the pool, and the batch after it opens a new connection.
        app, committer = runtime.app, runtime.app._loop_committer
        assert committer is not None

        async def scenario() -> list[Outcome]:
            await app.run_async(self.registration(runtime))
            state = committer._states[asyncio.get_running_loop()]
            with runtime.engine.begin() as conn:
                [connection] = state.connections
                pid = connection.info.backend_pid
                conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            await asyncio.sleep(0.1)
            after_loss = await app.run_async(self.registration(runtime))
            return [after_loss, await app.run_async(self.registration(runtime))]

        outcomes = asyncio.run(scenario())
        for outcome in outcomes:
            assert app.get_proposal(outcome.id).status is ProposalStatus.SUBMITTED
        assert committer.recovered_batches == 1

    def test_two_batches_of_a_loop_in_flight_store_one_of_two_conflicting_saves(
        self, runtime: Runtime
    ) -> None:
        # Two copies of one proposal, each approved: two saves of its version 2. While
        # another transaction holds the events table, the first batch waits for it in
        # the database and the second leaves at once on a connection of its own. Once
        # the table is free, one is stored and the other is refused as a conflict.
        app, committer = runtime.app, runtime.app._loop_committer
        assert committer is not None and committer.in_flight == 2
        proposal_id = self.submit(runtime)
        copies = [app.repository.get(proposal_id) for _ in range(2)]
        for copy in copies:
            copy.approve_at_village(
                berita_acara=berita_acara(), actor=VILLAGE_HEAD.as_record(), timestamp=app.clock()
            )

        async def scenario() -> list[Any]:
            with runtime.engine.connect() as holder:
                table = app.recorder.events_table_name
                holder.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
                saves = []
                for copy in copies:
                    saves.append(asyncio.create_task(committer.commit_async([copy])))
                    await asyncio.sleep(0.2)
                state = committer._states[asyncio.get_running_loop()]
                assert len(state.saving) == 2  # both batches wait in the database
                holder.commit()
            return await asyncio.wait_for(asyncio.gather(*saves, return_exceptions=True), 10)

        outcomes = asyncio.run(scenario())
        assert sorted(type(o).__name__ for o in outcomes) == ["IntegrityError", "NoneType"]
        stored = list(app.recorder.select_events(proposal_id))
        assert [e.originator_version for e in stored] == [1, 2]
        assert app.get_proposal(proposal_id).status is ProposalStatus.VILLAGE_APPROVED

    # -- reads for decisions on the event loop (slrt.group_read) ----------------------

    def test_concurrent_decisions_read_their_records_together(self, runtime: Runtime) -> None:
        reader = runtime.app._reader
        assert reader is not None
        proposals = [self.submit(runtime) for _ in range(16)]
        batches_before, reads_before = reader.batches, reader.reads
        commands = [
            runtime.app.decide_at_village_command(
                actor=VILLAGE_HEAD, proposal_id=p, approve=True, berita_acara=berita_acara()
            )
            for p in proposals
        ]

        async def run_all() -> list[Outcome]:
            return await asyncio.gather(*(runtime.app.run_async(c) for c in commands))

        outcomes = asyncio.run(run_all())
        assert [runtime.app.get_proposal(o.id).status for o in outcomes] == [
            ProposalStatus.VILLAGE_APPROVED
        ] * 16
        assert reader.reads - reads_before == 16
        assert reader.batches - batches_before < 16

    def test_a_keyed_decision_reads_its_receipt_ahead_with_its_record(
        self, runtime: Runtime
    ) -> None:
        reader = runtime.app._reader
        assert reader is not None
        proposal_id = self.submit(runtime)
        reads_before = reader.reads

        def approval(fingerprint: str) -> Any:
            return runtime.app.decide_at_village_command(
                actor=VILLAGE_HEAD,
                proposal_id=proposal_id,
                approve=True,
                berita_acara=berita_acara(),
                idempotency=Idempotency(key="k-approve", fingerprint=fingerprint),
            )

        first = asyncio.run(runtime.app.run_async(approval("f")))
        again = asyncio.run(runtime.app.run_async(approval("f")))
        assert (again.id, again.version, again.replayed) == (first.id, first.version, True)
        with pytest.raises(IdempotencyKeyReused):
            asyncio.run(runtime.app.run_async(approval("another request")))
        assert reader.reads - reads_before == 3
        approvals = [
            e
            for e in runtime.app.events.get(proposal_id)
            if type(e).__qualname__ == "Proposal.VillageApproved"
        ]
        assert len(approvals) == 1

    # -- household_status rebuilt in several processes (slrt.projections.parallel) --

    def _households_in_both_partitions(self, runtime: Runtime) -> list[UUID]:
        """Registers households until each of two partitions holds some (ids are random),
        then changes them as village life does, with a second model version between."""
        self.publish_model(runtime)
        ids: list[UUID] = []
        while len(ids) < 6 or len({self._partition_of(runtime, i) for i in ids}) < 2:
            ids.append(self.register(runtime, deprived=len(ids) % 14))
        self.through(runtime, "update", ids[0], changes={"indicators": indicators(13)})
        self.through(runtime, "remove", ids[1], reason="moved")
        self.through(runtime, "enrol", ids[2], programme="PKH")
        self.publish_model(runtime, household_size_weight=2.5)
        self.through(runtime, "update", ids[3], changes={"indicators": indicators(1)})
        ids.append(self.register(runtime, deprived=12))
        return ids

    @staticmethod
    def _partition_of(runtime: Runtime, household_id: UUID) -> int:
        with runtime.engine.connect() as conn:
            statement = text(f"SELECT {partition_hash(':id')} % 2")
            return int(conn.execute(statement, {"id": str(household_id)}).scalar_one())

    @staticmethod
    def _household_tables(runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
        with runtime.engine.connect() as conn:
            return {
                table.name: sorted(tuple(r) for r in conn.execute(select(table)))
                for table in runtime.workers["household_status"].projection.tables
            }

    def test_a_rebuild_in_two_processes_gives_the_rows_of_the_live_projection(
        self, runtime: Runtime, settings: Settings
    ) -> None:
        self._households_in_both_partitions(runtime)
        runtime.catch_up()
        live = self._household_tables(runtime)
        last = runtime.app.recorder.max_notification_id()

        assert rebuild_in_processes(settings, "household_status", 2) == last
        assert runtime.workers["household_status"].position() == last
        assert self._household_tables(runtime) == live

    def test_partitions_applied_in_many_batches_give_the_rows_of_the_live_projection(
        self, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # In one process, so that each batch may hold two households' rows: a model
        # version published in a later batch rescores the rows the partition stored in
        # its earlier batches.
        self._households_in_both_partitions(runtime)
        runtime.catch_up()
        live = self._household_tables(runtime)
        worker = runtime.workers["household_status"]
        last = runtime.app.recorder.max_notification_id() or 0
        worker.reset()
        monkeypatch.setattr(projections_base, "CATCH_UP_PAGE", 2)  # pages stay small
        for partition in (0, 1):
            projection = HouseholdStatusProjection(lookup_key(runtime.settings))
            projection.MAX_ROWS = 2  # type: ignore[misc]
            part = projections_base.PartitionWorker(
                runtime.app,
                runtime.engine,
                projection,
                partition=partition,
                partitions=2,
                stop=last,
                batch_size=2,
                max_batch_size=1_000,
                parent=os.getppid(),
            )
            batches = 0
            while part.run_once():
                batches += 1
            assert batches >= 2  # the second model version comes in a later batch
            part.stop()
        with runtime.engine.begin() as conn:
            worker.projection.finish_rebuild(conn)
            advance_position(conn, "household_status", runtime.app.name, 0, last)
        assert self._household_tables(runtime) == live

    def test_a_partition_whose_coordinating_process_is_gone_stops_before_writing(
        self, runtime: Runtime
    ) -> None:
        self.publish_model(runtime)
        self.register(runtime)
        last = runtime.app.recorder.max_notification_id() or 0
        part = projections_base.PartitionWorker(
            runtime.app,
            runtime.engine,
            HouseholdStatusProjection(lookup_key(runtime.settings)),
            partition=0,
            partitions=1,
            stop=last,
            batch_size=500,
            max_batch_size=1_000,
            parent=os.getppid() + 1,  # not this process's parent: the coordinator died
        )
        runtime.workers["household_status"].reset()
        with pytest.raises(RuntimeError, match="process that started this rebuild is gone"):
            part.run_once()
        part.stop()
        assert self._household_tables(runtime)["household_status"] == []

    @staticmethod
    def _mark_rebuilding(runtime: Runtime) -> None:
        with runtime.engine.begin() as conn:
            conn.execute(
                update(projections_base.tracking)
                .where(projections_base.tracking.c.projection == "household_status")
                .values(notification_id=projections_base.REBUILDING)
            )

    def test_a_projection_being_rebuilt_elsewhere_is_left_alone_until_the_rebuild_ends(
        self, runtime: Runtime, settings: Settings, clock: Clock
    ) -> None:
        self.publish_model(runtime)
        self.register(runtime)
        runtime.catch_up()
        worker = runtime.workers["household_status"]
        key = rebuild_lock_key("household_status")
        with runtime.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
            # What a process of a rebuild holds while it runs.
            lock.execute(select(func.pg_advisory_lock_shared(key)))
            self._mark_rebuilding(runtime)
            self.register(runtime)
            assert worker.run_once() == 0
            starting = build_runtime(settings, clock=clock)  # a process starting meanwhile
            try:
                assert starting.workers["household_status"].position() == -1
            finally:
                starting.close()
            lock.execute(select(func.pg_advisory_unlock_shared(key)))

        # Its processes are gone and never moved the position: it stopped half-way.
        worker.catch_up()
        assert worker.position() == runtime.app.recorder.max_notification_id()
        rows = self._household_tables(runtime)
        assert len(rows["household_status"]) == 2
        assert len(rows["household_ranking"]) == 2

    def test_a_rebuild_that_stopped_half_way_is_thrown_away_at_the_next_start(
        self, runtime: Runtime, settings: Settings, clock: Clock
    ) -> None:
        self.publish_model(runtime)
        self.register(runtime)
        runtime.catch_up()
        live = self._household_tables(runtime)
        self._mark_rebuilding(runtime)  # and no process holds the rebuild's lock

        restarted = build_runtime(settings, clock=clock)
        try:
            assert restarted.workers["household_status"].position() == 0
            restarted.catch_up()
            assert self._household_tables(restarted) == live
        finally:
            restarted.close()

    def _live_then_emptied(self, runtime: Runtime) -> dict[str, list[tuple[Any, ...]]]:
        """household_status's rows as the live worker projects the households, which are
        then emptied (position 0) for a worker to start from zero."""
        self._households_in_both_partitions(runtime)
        runtime.catch_up()
        live = self._household_tables(runtime)
        runtime.workers["household_status"].reset()
        return live

    def _started_from_zero(self, settings: Settings, clock: Clock) -> list[dict[str, Any]]:
        """Starts household_status's worker in a new runtime on a store it has not
        applied; returns the log entries until it has caught up."""
        restarted = build_runtime(settings, clock=clock)
        try:
            worker = restarted.workers["household_status"]
            assert worker.position() == 0
            last = restarted.app.recorder.max_notification_id()
            with capture_logs() as logs:
                restarted.start_workers(["household_status"])
                deadline = time.monotonic() + 60
                while worker.position() != last and time.monotonic() < deadline:
                    time.sleep(0.1)
            assert worker.position() == last
            return logs
        finally:
            restarted.close()

    def test_a_worker_far_behind_from_zero_rebuilds_in_processes(
        self, runtime: Runtime, settings: Settings, clock: Clock
    ) -> None:
        live = self._live_then_emptied(runtime)
        far = settings.model_copy(
            update={"projection_rebuild_in_processes_from": 5, "projection_rebuild_processes": 2}
        )

        logs = self._started_from_zero(far, clock)

        rebuilt = [e for e in logs if e["event"] == "projection.rebuilt"]
        assert [(e["projection"], e["processes"]) for e in rebuilt] == [("household_status", 2)]
        assert self._household_tables(runtime) == live

    def test_a_worker_not_far_enough_behind_catches_up_in_its_own_process(
        self, runtime: Runtime, settings: Settings, clock: Clock
    ) -> None:
        live = self._live_then_emptied(runtime)
        last = runtime.app.recorder.max_notification_id() or 0
        near = settings.model_copy(
            update={
                "projection_rebuild_in_processes_from": last + 1,
                "projection_rebuild_processes": 2,
            }
        )

        logs = self._started_from_zero(near, clock)

        assert not [e for e in logs if e["event"] == "projection.rebuild_started"]
        assert self._household_tables(runtime) == live

    def test_a_conflicting_batch_is_a_conflict_on_a_connections_first_use(
        self, runtime: Runtime, settings: Settings
    ) -> None:
        # psycopg reported such a conflict as "pipeline aborted" when the transaction
        # ended on a fresh connection, and the library retried that as an operational
        # error, 0.2 s at a time: a conflicting group-commit batch stalled for seconds.
        append = AuditedPostgresApplicationRecorder._append_events.__wrapped__  # type: ignore[attr-defined]
        for _ in range(4):
            app = SlrtApplication(settings)  # a new pool: every connection is fresh
            try:
                copy = SlaPolicy(actor=ADMIN.as_record(), timestamp=app.clock())
                others = [_Thing() for _ in range(9)]
                events = [*copy.collect_events(), *(e for t in others for e in t.collect_events())]
                with pytest.raises(IntegrityError):
                    append(app.recorder, [app.mapper.to_stored_event(e) for e in events], [])
                for thing in others:  # nothing of the batch was written
                    with pytest.raises(AggregateNotFoundError):
                        app.repository.get(thing.id)
            finally:
                app.close()

    def test_a_save_whose_hash_records_fail_writes_no_event(self, runtime: Runtime) -> None:
        # The append is one statement: if its hash records cannot be written (here: a
        # record already holds the key of the second event's), the events inserted
        # before them in that statement are not kept either. A caller told "failed"
        # retries, and a kept event would then be a duplicate without its hash.
        app = runtime.app
        recorder = app.recorder
        assert isinstance(recorder, AuditedPostgresApplicationRecorder)
        before = recorder.max_notification_id()
        first, second = _Thing(), _Thing()
        with runtime.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO {recorder.hashes_table_name} (originator_id, "
                    "originator_version, notification_id, previous_hash, hash) "
                    "VALUES (:id, 1, 0, '\\x00', '\\x00')"
                ),
                {"id": second.id},
            )
        events = [*first.collect_events(), *second.collect_events()]
        with pytest.raises(IntegrityError):
            recorder.insert_events([app.mapper.to_stored_event(e) for e in events])

        for thing in (first, second):
            with pytest.raises(AggregateNotFoundError):
                app.repository.get(thing.id)
        assert recorder.max_notification_id() == before

    def test_processes_starting_together_on_a_fresh_database_all_start(
        self, settings: Settings, clock: Clock
    ) -> None:
        # As `slrt serve --processes 4` does: each process creates the tables and checks
        # the projection versions; concurrent CREATE TABLEs failed before the schema lock.
        start = threading.Barrier(4)
        runtimes: list[Runtime] = []
        errors: list[BaseException] = []

        def start_one() -> None:
            start.wait()
            try:
                runtimes.append(build_runtime(settings, clock=clock))
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=start_one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        try:
            assert errors == [] and len(runtimes) == 4
            self.publish_model(runtimes[0])
            hid = self.register(runtimes[1])
            assert self.status_of(runtimes[2], hid)["rank"] == 1
            with runtimes[3].engine.connect() as conn:
                versions = conn.execute(select(projection_versions)).all()
            assert len(versions) == len(runtimes[3].workers)
        finally:
            for runtime in runtimes:
                runtime.close()
