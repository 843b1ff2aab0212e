"""Complaints and SLA timers with a controllable clock, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from slrt.config import Settings
from slrt.domain.complaint import ComplaintStatus
from slrt.domain.sla import SlaPolicyVersion
from slrt.projections.sla_timers import (
    compliance,
    list_timers,
    sla_timers,
    timers_started_between,
)
from slrt.runtime import Runtime
from slrt.sla_watch import BreachWatcher
from tests.builders import ADMIN, DESA, FRONT_OFFICE, stricter_sla_rules
from tests.conftest import Clock

WITA = ZoneInfo("Asia/Makassar")


def wita(*args: int) -> datetime:
    return datetime(*args, tzinfo=WITA).astimezone(UTC)  # type: ignore[misc]


class SlaScenarios:
    @pytest.fixture
    def settings(self) -> Settings:
        raise NotImplementedError

    @staticmethod
    def receive(runtime: Runtime, category: str = "aid_not_received") -> UUID:
        return runtime.app.receive_complaint(
            actor=FRONT_OFFICE,
            region=DESA,
            channel="walk_in",
            complaint_type="complaint",
            category=category,
            description="Bantuan BPNT bulan ini belum diterima",
            reporter={"name": "Siti Aminah", "phone": "0812-3456-7890"},
        ).id

    @staticmethod
    def handle(runtime: Runtime, complaint_id: UUID, action: str, **details: Any) -> None:
        runtime.app.handle_complaint(
            actor=FRONT_OFFICE, complaint_id=complaint_id, action=action, **details
        )

    @staticmethod
    def timers(runtime: Runtime, complaint_id: UUID) -> dict[str, dict[str, Any]]:
        runtime.catch_up()
        with runtime.engine.connect() as conn:
            rows = conn.execute(select(sla_timers).where(sla_timers.c.item_id == str(complaint_id)))
            return {r.target: dict(r._mapping) for r in rows}

    @staticmethod
    def watcher(runtime: Runtime) -> BreachWatcher:
        return BreachWatcher(runtime.app, runtime.engine, interval=60, escalate=True)

    # -- deadlines in local working time ----------------------------------------------------

    def test_first_response_deadline_skips_christmas_and_the_weekend_in_wita(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        clock.now = wita(2026, 12, 23, 14, 0)  # Wednesday; 24 Dec cuti bersama, 25 Dec holiday
        complaint_id = self.receive(runtime)
        first_response = self.timers(runtime, complaint_id)["first_response"]
        # Two office hours on Wednesday, then nothing until Monday 08:00 WITA.
        assert first_response["deadline"] == wita(2026, 12, 28, 10, 0)
        assert first_response["working"] is True

    def test_acknowledging_in_time_meets_the_first_response_target(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        complaint_id = self.receive(runtime)
        clock.advance(hours=1)
        self.handle(runtime, complaint_id, "acknowledge", note="Sedang dicek ke e-warung")
        timer = self.timers(runtime, complaint_id)["first_response"]
        assert (timer["state"], timer["elapsed_seconds"]) == ("met", 3600)

    def test_timers_are_listed_page_by_page_in_deadline_order(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        complaints = []
        for _ in range(5):
            complaints.append(self.receive(runtime))
            clock.advance(minutes=10)
        for complaint_id in complaints[:2]:
            self.handle(runtime, complaint_id, "acknowledge", note="Sedang dicek")
        runtime.catch_up()

        def pages(state: str | None) -> tuple[list[str], list[str]]:
            """Every timer by pages of 3, and all at once."""
            with runtime.engine.connect() as conn:

                def page(offset: int, limit: int) -> list[str]:
                    rows = list_timers(
                        conn,
                        region=DESA,
                        now=clock.now,
                        state=state,
                        open_only=False,
                        limit=limit,
                        offset=offset,
                    )
                    return [r["timer_id"] for r in rows]

                return [t for o in range(0, 30, 3) for t in page(o, 3)], page(0, 100)

        for state, count in ((None, 10), ("met", 2), ("on_track", 8)):
            paged, whole = pages(state)
            assert paged == whole and len(whole) == len(set(whole)) == count
        with runtime.engine.connect() as conn:
            deadlines = [
                r["deadline"]
                for r in list_timers(
                    conn,
                    region=DESA,
                    now=clock.now,
                    state=None,
                    open_only=False,
                    limit=100,
                    offset=0,
                )
            ]
        assert deadlines == sorted(deadlines)

    # -- breaches -----------------------------------------------------------------

    def test_a_breach_missed_while_the_watcher_was_down_is_recorded_once_on_start(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        clock.now = wita(2026, 11, 20, 10, 0)  # Friday 10:00 WITA
        complaint_id = self.receive(runtime)
        deadline = wita(2026, 11, 20, 14, 0)
        clock.now = wita(2026, 11, 23, 9, 0)  # the watcher was down all weekend
        self.handle(runtime, complaint_id, "acknowledge", note="Maaf terlambat")  # late
        runtime.catch_up()

        assert self.watcher(runtime).run_once() == 1
        assert self.watcher(runtime).run_once() == 0  # a restarted watcher finds it recorded
        breaches = [
            e
            for e in self._events(runtime)
            if type(e).__qualname__ == "SlaBreach.Recorded" and e.target == "first_response"
        ]
        assert len(breaches) == 1
        assert breaches[0].deadline == deadline
        assert breaches[0].policy_version == 1
        assert self.timers(runtime, complaint_id)["first_response"]["breached"] is True

    def test_a_breached_complaint_is_escalated_to_the_kecamatan(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        complaint_id = self.receive(runtime)
        clock.advance(days=2)
        runtime.catch_up()
        assert self.watcher(runtime).run_once() == 1
        complaint = runtime.app.get_complaint(complaint_id)
        assert complaint.status is ComplaintStatus.ESCALATED
        assert complaint.history[-1]["to"] == "64.74.01"
        assert complaint.history[-1]["by"]["role"] == "system"

    def test_a_target_met_before_the_projection_saw_it_is_not_a_breach(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        complaint_id = self.receive(runtime)
        runtime.catch_up()
        clock.advance(hours=1)
        self.handle(runtime, complaint_id, "acknowledge", note="ok")  # not yet projected
        clock.advance(days=1)
        assert self.watcher(runtime).run_once() == 0

    def test_two_watchers_at_once_record_one_breach(self, runtime: Runtime, clock: Clock) -> None:
        complaint_id = self.receive(runtime)
        self.handle(runtime, complaint_id, "acknowledge", note="ok")
        clock.advance(days=30)  # resolution (10 working days for aid not received) missed
        runtime.catch_up()
        first, second = self.watcher(runtime), self.watcher(runtime)
        assert first.run_once() + second.run_once() == 1

    # -- policy versions --------------------------------------------------------------

    def test_a_new_policy_version_changes_only_new_timers(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        clock.now = wita(2026, 11, 17, 9, 0)  # Tuesday
        before = self.receive(runtime)
        runtime.app.publish_sla_policy(actor=ADMIN, rules=stricter_sla_rules(), note="2 jam")
        policy = runtime.app.get_sla_policy()
        assert policy is not None and policy.current is not None
        assert policy.current.version == 2
        after = self.receive(runtime)

        assert self.timers(runtime, before)["first_response"]["deadline"] == wita(2026, 11, 17, 13)
        assert self.timers(runtime, before)["first_response"]["policy_version"] == 1
        assert self.timers(runtime, after)["first_response"]["deadline"] == wita(2026, 11, 17, 11)
        assert self.timers(runtime, after)["first_response"]["policy_version"] == 2

    def test_a_reopened_complaint_gets_a_fresh_resolution_clock(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        complaint_id = self.receive(runtime, category="wrong_data")
        self.handle(runtime, complaint_id, "acknowledge", note="ok")
        self.handle(runtime, complaint_id, "resolve", outcome="Data diperbaiki lewat usulan")
        clock.advance(days=3)
        self.handle(runtime, complaint_id, "reopen", reason="Masih salah")
        runtime.catch_up()
        with runtime.engine.connect() as conn:
            states = sorted(
                r.state
                for r in conn.execute(
                    select(sla_timers).where(
                        sla_timers.c.item_id == str(complaint_id),
                        sla_timers.c.target == "resolution",
                    )
                )
            )
        assert states == ["met", "open"]

    def test_proposals_get_a_village_decision_clock(self, runtime: Runtime) -> None:
        from tests.builders import household

        proposal_id = runtime.app.submit_proposal(
            actor=FRONT_OFFICE, kind="register", payload={"household": household()}
        ).id
        timer = self.timers(runtime, proposal_id)["village_decision"]
        assert timer["deadline"] - timer["started_at"] == timedelta(days=30)

    # -- compliance -----------------------------------------------------------------------

    def test_compliance_from_the_events_equals_compliance_from_the_projection(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        clock.now = wita(2026, 11, 16, 8, 0)  # Monday
        for minutes, resolve_days in ((30, 1), (150, 3), (300, None), (600, 8), (20, None)):
            complaint_id = self.receive(runtime, category="wrong_data")
            started = clock.now
            clock.now = started + timedelta(minutes=minutes)
            self.handle(runtime, complaint_id, "acknowledge", note="ok")
            if resolve_days is not None:
                clock.now = started + timedelta(days=resolve_days)
                self.handle(runtime, complaint_id, "resolve", outcome="selesai")
            clock.now = started + timedelta(hours=1)
        self.receive(runtime, category="other")  # never answered
        clock.now = wita(2026, 12, 10, 8, 0)
        runtime.catch_up()

        window = (wita(2026, 11, 1, 0, 0), wita(2026, 12, 1, 0, 0))
        with runtime.engine.connect() as conn:
            projected = timers_started_between(conn, region="64.74", start=window[0], end=window[1])
        from_projection = compliance(projected, now=clock.now)
        from_events = compliance(self._timers_from_events(runtime), now=clock.now)
        assert from_projection == from_events
        first = next(
            r
            for r in from_projection
            if r["target"] == "first_response" and r["category"] == "wrong_data"
        )
        assert (first["met"], first["missed"], first["decided"]) == (3, 2, 5)
        assert first["median_hours"] == 2.5

    def _events(self, runtime: Runtime) -> list[Any]:
        return [
            runtime.app.mapper.to_domain_event(n)
            for n in runtime.app.recorder.select_notifications(start=1, limit=100_000)
        ]

    def _timers_from_events(self, runtime: Runtime) -> list[dict[str, Any]]:
        """Complaint clocks rebuilt straight from the event store, without the projection."""
        events = self._events(runtime)
        policies = {
            e.version: SlaPolicyVersion.from_record({"version": e.version, "rules": e.rules})
            for e in events
            if type(e).__qualname__ == "SlaPolicy.VersionPublished"
        }
        timers: dict[tuple[UUID, str], dict[str, Any]] = {}
        received: dict[UUID, Any] = {}
        for event in events:
            topic = type(event).__qualname__
            item = event.originator_id
            if topic == "Complaint.Received":
                received[item] = event
                policy = policies[event.sla_policy_version]
                for target in policy.targets_for("complaint", event.category):
                    timers[(item, target.name)] = {
                        "region": event.region,
                        "item_kind": "complaint",
                        "category": event.category,
                        "target": target.name,
                        "started_at": event.timestamp,
                        "deadline": target.deadline(event.timestamp, event.region),
                        "state": "open",
                        "elapsed_seconds": None,
                    }
            stop = {"Complaint.Acknowledged": "first_response", "Complaint.Resolved": "resolution"}
            if topic in stop and (item, stop[topic]) in timers:
                timer = timers[(item, stop[topic])]
                timer["state"] = "met" if event.timestamp <= timer["deadline"] else "missed"
                timer["elapsed_seconds"] = (event.timestamp - timer["started_at"]).total_seconds()
        return list(timers.values())


class TestSlaOnSQLite(SlaScenarios):
    @pytest.fixture
    def settings(self, sqlite_settings: Settings) -> Settings:
        return sqlite_settings


@pytest.mark.postgres
class TestSlaOnPostgres(SlaScenarios):
    @pytest.fixture
    def settings(self, postgres_settings: Settings) -> Settings:
        return postgres_settings
