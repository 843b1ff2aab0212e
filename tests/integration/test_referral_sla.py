"""Referral SLA clocks: acknowledgement and outcome deadlines, and expiry, without Kafka."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import select

from slrt.config import Settings
from slrt.domain.inbox import InboxItem
from slrt.projections.event_index import household_events
from slrt.projections.sla_timers import sla_timers
from slrt.runtime import Runtime
from slrt.sla_watch import BreachWatcher
from tests.builders import ADMIN, FRONT_OFFICE, household
from tests.conftest import Clock


class ReferralSlaScenarios:
    @pytest.fixture
    def settings(self) -> Settings:
        raise NotImplementedError

    @staticmethod
    def refer(runtime: Runtime) -> UUID:
        household_id = runtime.app.import_household(actor=ADMIN, data=household(), source="test").id
        return runtime.app.create_referral(
            actor=FRONT_OFFICE,
            household_id=household_id,
            agency="bpjs",
            service="kis_card",
            reason="Tidak punya KIS",
        ).id

    @staticmethod
    def acknowledge(runtime: Runtime, referral_id: UUID, offset: int = 0) -> None:
        position = runtime.app.start_inbox_position("responses", 0)
        result = runtime.app.record_agency_answers(
            position=lambda: runtime.app.repository.get(position.id),
            items=[
                InboxItem(
                    offset=offset,
                    message_id=f"ack-{referral_id}",
                    referral_id=referral_id,
                    agency="bpjs",
                    answer="acknowledged",
                    data={"agency_reference": "KIS-9"},
                )
            ],
            dead_letter=lambda dead: None,
        )
        assert result.applied == 1

    @staticmethod
    def timers(runtime: Runtime, referral_id: UUID) -> dict[str, dict[str, Any]]:
        runtime.catch_up()
        with runtime.engine.connect() as conn:
            rows = conn.execute(select(sla_timers).where(sla_timers.c.item_id == str(referral_id)))
            return {r.target: dict(r._mapping) for r in rows}

    def test_a_new_referral_starts_the_acknowledgement_clock(self, runtime: Runtime) -> None:
        timers = self.timers(runtime, self.refer(runtime))
        assert set(timers) == {"acknowledgement"}
        assert timers["acknowledgement"]["state"] == "open"
        assert timers["acknowledgement"]["category"] == "kis_card"

    def test_the_acknowledgement_stops_it_and_starts_the_outcome_clock(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        referral_id = self.refer(runtime)
        clock.advance(hours=1)
        self.acknowledge(runtime, referral_id)
        timers = self.timers(runtime, referral_id)
        assert timers["acknowledgement"]["state"] == "met"
        assert timers["outcome"]["state"] == "open"

    def test_no_answer_by_the_deadline_expires_the_referral(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        referral_id = self.refer(runtime)
        self.timers(runtime, referral_id)
        clock.advance(days=7)  # 2 working days, and then some
        watcher = BreachWatcher(runtime.app, runtime.engine, interval=60, escalate=True)
        assert watcher.run_once() == 1
        assert runtime.app.get_referral(referral_id).status.value == "expired"
        assert self.timers(runtime, referral_id)["acknowledgement"]["state"] == "missed"

    def test_a_referral_appears_in_the_households_timeline(self, runtime: Runtime) -> None:
        referral_id = self.refer(runtime)
        self.acknowledge(runtime, referral_id)
        household_id = runtime.app.get_referral(referral_id).household_id
        runtime.catch_up()
        with runtime.engine.connect() as conn:
            rows = household_events(conn, str(household_id))
        topics = [row.topic for row in rows if row.aggregate_id == str(referral_id)]
        assert topics == ["Referral.Created", "Referral.Acknowledged"]


class TestReferralSlaOnSQLite(ReferralSlaScenarios):
    @pytest.fixture
    def settings(self, sqlite_settings: Settings) -> Settings:
        return sqlite_settings


@pytest.mark.postgres
class TestReferralSlaOnPostgres(ReferralSlaScenarios):
    @pytest.fixture
    def settings(self, postgres_settings: Settings) -> Settings:
        return postgres_settings
