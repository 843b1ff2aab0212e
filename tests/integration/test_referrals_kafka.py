"""Referrals over Kafka on the real broker (noida-db): outbox, simulated agency, inbox.

Crashes are simulated in-process: a fail point raises between two steps, the worker is
abandoned, and a fresh one is started on the same database and broker.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from sqlalchemy import select

from slrt.api.app import create_app
from slrt.config import Settings
from slrt.domain.inbox import InboxPosition
from slrt.integrations import cloudevents
from slrt.integrations.agency import AgencySimulator, answer
from slrt.integrations.inbox import ReferralInbox
from slrt.integrations.kafka import Topics
from slrt.integrations.outbox import ReferralOutbox, wait_until
from slrt.projections.sla_timers import sla_timers
from slrt.runtime import Runtime, build_runtime
from tests.api.conftest import headers
from tests.builders import ADMIN, FRONT_OFFICE, household
from tests.conftest import COMMON
from tests.kafka_broker import KafkaBroker

pytestmark = pytest.mark.kafka


class SimulatedCrash(Exception):
    """Stands for the process dying at a fail point."""


def crash_at(point: str) -> Callable[[str], None]:
    def fail(reached: str) -> None:
        if reached == point:
            raise SimulatedCrash(point)

    return fail


def read_topic(bootstrap: str, topic: str, timeout: float = 10.0) -> list[Any]:
    """Every record on the topic, from the beginning to its current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, bootstrap_timeout_ms=5000)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in tps):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for batch in consumer.poll(timeout_ms=100).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def event_names(runtime: Runtime, referral_id: UUID) -> list[str]:
    return [type(e).__name__ for e in runtime.app.events.get(referral_id)]


class ReferralScenarios:
    @pytest.fixture
    def database_url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def broker(self, kafka_broker: KafkaBroker) -> KafkaBroker:
        return kafka_broker

    @pytest.fixture
    def settings(self, database_url: str, broker: KafkaBroker) -> Settings:
        return Settings(
            _env_file=None,
            database_url=database_url,
            kafka_bootstrap_servers=broker.bootstrap,
            kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
            referral_poll_interval_seconds=0.05,
            **COMMON,
        )

    @pytest.fixture
    def runtime(self, settings: Settings) -> Iterator[Runtime]:
        runtime = build_runtime(settings)
        yield runtime
        runtime.close()

    @pytest.fixture
    def topics(self, settings: Settings) -> Topics:
        return Topics.from_settings(settings)

    @staticmethod
    def refer(runtime: Runtime, agency: str = "dinkes", service: str = "health_check") -> UUID:
        household_id = runtime.app.import_household(actor=ADMIN, data=household(), source="test").id
        return runtime.app.create_referral(
            actor=FRONT_OFFICE,
            household_id=household_id,
            agency=agency,
            service=service,
            reason="Perlu pemeriksaan kesehatan",
        ).id

    @staticmethod
    def send_answers(settings: Settings, *messages: bytes, key: str = "k") -> None:
        assert settings.kafka_bootstrap_servers is not None
        producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
        for message in messages:
            producer.send(Topics.from_settings(settings).responses, key=key.encode(), value=message)
        producer.flush()
        producer.close()

    @staticmethod
    def acknowledgement(referral_id: UUID, agency: str = "dinkes") -> bytes:
        return cloudevents.encode(
            answer(
                "acknowledged",
                agency=agency,
                referral_id=str(referral_id),
                data={"agency_reference": "DK-001"},
                at=datetime.now(UTC),
            )
        )

    @staticmethod
    def drain(inbox: ReferralInbox, until: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not until():
            assert time.monotonic() < deadline, "the inbox did not get there in time"
            if not inbox.run_once():
                time.sleep(0.05)

    # -- outbound ---------------------------------------------------------------------------

    def test_a_referral_created_through_the_api_arrives_as_a_cloudevent(
        self, runtime: Runtime, settings: Settings, topics: Topics
    ) -> None:
        household_id = runtime.app.import_household(actor=ADMIN, data=household(), source="test").id
        app = create_app(settings, runtime=runtime, run_workers=False)
        with TestClient(app) as client:
            created = client.post(
                "/api/v1/referrals",
                json={
                    "household_id": str(household_id),
                    "agency": "bpjs",
                    "service": "kis_card",
                    "reason": "Tidak punya KIS",
                },
                headers=headers(FRONT_OFFICE, settings),
            )
            assert created.status_code == 201, created.text
            assert client.get("/api/v1/health").json()["referral_outbox"]["lag"] > 0
            runtime.processes["referral_outbox"].catch_up()
            assert client.get("/api/v1/health").json()["referral_outbox"]["lag"] == 0
        referral_id = created.json()["id"]
        (record,) = read_topic(settings.kafka_bootstrap_servers or "", topics.agency("bpjs"))
        message = json.loads(record.value)
        assert record.key == str(household_id).encode()
        assert message["specversion"] == "1.0"
        assert message["type"] == "id.slrt.referral.created.v1"
        assert message["id"] == f"{referral_id}/1"
        assert message["subject"] == referral_id
        assert {"source", "time", "datacontenttype", "dataschema"} <= message.keys()
        required = cloudevents.SCHEMAS[message["type"]]["required"]
        assert all(message["data"].get(name) is not None for name in required)
        assert dict(record.headers)["ce_id"] == message["id"].encode()
        assert runtime.app.get_referral(UUID(referral_id)).status.value == "dispatched"

    def test_the_simulated_agencys_answers_come_back_and_change_the_referral(
        self, runtime: Runtime, settings: Settings
    ) -> None:
        referral_id = self.refer(runtime)
        agency = AgencySimulator(settings, "dinkes", group_id=f"g-{uuid.uuid4().hex[:8]}")
        runtime.start_workers(["referral_outbox", "referral_inbox"])
        agency.start()
        try:
            assert wait_until(
                lambda: runtime.app.get_referral(referral_id).status.value == "delivered", 20
            )
        finally:
            agency.stop()
            runtime.stop_workers()
        names = event_names(runtime, referral_id)
        assert names == ["Created", "Dispatched", "Acknowledged", "Delivered"]
        runtime.catch_up()
        with runtime.engine.connect() as conn:
            rows = conn.execute(
                select(sla_timers.c.target, sla_timers.c.state).where(
                    sla_timers.c.item_id == str(referral_id)
                )
            ).all()
        assert sorted(rows) == [("acknowledgement", "met"), ("outcome", "met")]

    def test_a_publisher_killed_after_sending_loses_nothing(
        self, runtime: Runtime, settings: Settings, topics: Topics
    ) -> None:
        referrals = {self.refer(runtime) for _ in range(5)}
        for point in ("sent", "dispatched"):
            crashing = ReferralOutbox(
                runtime.app, runtime.engine, settings, fail_point=crash_at(point)
            )
            with pytest.raises(SimulatedCrash):
                crashing.run_once()
            crashing.stop()
        ReferralOutbox(runtime.app, runtime.engine, settings).catch_up()
        records = read_topic(settings.kafka_bootstrap_servers or "", topics.agency("dinkes"))
        ids = [json.loads(r.value)["id"] for r in records]
        assert len(ids) == 15  # sent three times: duplicates allowed
        assert set(ids) == {f"{r}/1" for r in referrals}  # de-duplicated: none missing
        assert all(event_names(runtime, r).count("Dispatched") == 1 for r in referrals)

    # -- inbound ----------------------------------------------------------------------------

    @pytest.mark.parametrize("point", ["received", "written"])
    def test_an_inbox_killed_while_handling_an_answer_applies_it_once(
        self, runtime: Runtime, settings: Settings, point: str
    ) -> None:
        referral_id = self.refer(runtime)
        runtime.processes["referral_outbox"].catch_up()
        message = self.acknowledgement(referral_id)
        self.send_answers(settings, message, message)  # the agency sent it twice
        crashing = ReferralInbox(runtime.app, settings, fail_point=crash_at(point))
        with pytest.raises(SimulatedCrash):
            self.drain(crashing, lambda: False)
        crashing.close()  # the process is gone; its consumer with it
        fresh = ReferralInbox(runtime.app, settings)
        try:
            self.drain(fresh, lambda: sum(fresh.status()["positions"].values()) == 2)
        finally:
            fresh.close()
        assert event_names(runtime, referral_id).count("Acknowledged") == 1
        assert runtime.app.get_referral(referral_id).agency_reference == "DK-001"

    def test_the_inbox_snapshots_its_positions_and_a_new_one_starts_from_them(
        self, runtime: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(runtime.app, "INBOX_SNAPSHOT_INTERVAL", 2)
        referrals = [self.refer(runtime) for _ in range(3)]
        runtime.processes["referral_outbox"].catch_up()
        self.send_answers(settings, *(self.acknowledgement(r) for r in referrals))
        first = ReferralInbox(runtime.app, settings)
        try:
            self.drain(first, lambda: sum(first.status()["positions"].values()) == 3)
        finally:
            first.close()
        [partition] = [p for p, offset in first.status()["positions"].items() if offset]
        position_id = InboxPosition.create_id(Topics.from_settings(settings).responses, partition)
        _, snapshots = runtime.app._inbox_positions()
        [latest] = snapshots.get(position_id, desc=True, limit=1)

        again = ReferralInbox(runtime.app, settings)
        try:
            again.connect()
            started = again.status()["positions"]
        finally:
            again.close()

        assert latest.originator_version >= 3  # taken while answers were handled
        assert started == first.status()["positions"]

    def test_two_inboxes_on_one_partition_apply_an_answer_once(
        self, runtime: Runtime, settings: Settings
    ) -> None:
        referral_id = self.refer(runtime)
        first = ReferralInbox(runtime.app, settings)
        second = ReferralInbox(runtime.app, settings)
        first.connect()
        second.connect()  # both start from the same stored offset
        self.send_answers(settings, self.acknowledgement(referral_id))
        try:
            self.drain(first, lambda: first.applied == 1)
            self.drain(second, lambda: sum(second.status()["positions"].values()) == 1)
        finally:
            first.close()
            second.close()
        assert second.applied == 0
        assert event_names(runtime, referral_id).count("Acknowledged") == 1

    def test_bad_answers_go_to_the_dead_letter_topic_with_a_reason(
        self, runtime: Runtime, settings: Settings, topics: Topics
    ) -> None:
        referral_id = self.refer(runtime)
        cancelled = self.refer(runtime)
        runtime.app.cancel_referral(actor=FRONT_OFFICE, referral_id=cancelled, reason="salah")
        self.send_answers(
            settings,
            b"{not json",
            self.acknowledgement(uuid.uuid4()),
            self.acknowledgement(cancelled),
            self.acknowledgement(referral_id, agency="bpjs"),
            self.acknowledgement(referral_id),  # behind the bad ones: not blocked
        )
        inbox = ReferralInbox(runtime.app, settings, fail_point=None)
        crashing = ReferralInbox(runtime.app, settings, fail_point=crash_at("dead_lettered"))
        with pytest.raises(SimulatedCrash):
            self.drain(crashing, lambda: False)
        crashing.close()
        try:
            self.drain(inbox, lambda: inbox.applied == 1)
        finally:
            inbox.close()
        assert event_names(runtime, referral_id).count("Acknowledged") == 1
        dead = read_topic(settings.kafka_bootstrap_servers or "", topics.dead_letters)
        # Copied before the crash and again after it: at least once, keyed by origin.
        reasons = {
            int(dict(r.headers)["slrt-dlq-origin"].decode().rsplit("/", 1)[1]): dict(r.headers)[
                "slrt-dlq-reason"
            ].decode()
            for r in dead
        }
        assert len(dead) >= 4 and sorted(reasons) == [0, 1, 2, 3]
        assert reasons[0].startswith("unparseable: not JSON")
        assert reasons[1].startswith("NotFound: referral")
        assert reasons[2].startswith("ReferralClosed")
        assert reasons[3].startswith("InvalidInput") and "addressed to dinkes" in reasons[3]
        assert all(json.loads(r.value)["reason"] for r in dead)
        position = InboxPosition.create_id(topics.responses, dead[0].partition)
        stored = [type(e).__name__ for e in runtime.app.events.get(position)]
        assert stored.count("DeadLettered") == 4  # recorded exactly once each


class TestReferralsOnSQLite(ReferralScenarios):
    @pytest.fixture
    def database_url(self, tmp_path: Any) -> str:
        return f"sqlite:///{tmp_path}/slrt.db"


@pytest.mark.postgres
class TestReferralsOnPostgres(ReferralScenarios):
    @pytest.fixture
    def database_url(self, postgres_database: str) -> str:
        return postgres_database

    def test_referrals_created_while_the_broker_is_down_go_out_when_it_is_back(
        self, database_url: str
    ) -> None:
        with KafkaBroker() as broker:
            settings = Settings(
                _env_file=None,
                database_url=database_url,
                kafka_bootstrap_servers=broker.bootstrap,
                referral_poll_interval_seconds=0.05,
                **COMMON,
            )
            runtime = build_runtime(settings)
            outbox: ReferralOutbox = runtime.processes["referral_outbox"]
            try:
                outbox.start()
                broker.stop()
                started = time.monotonic()
                referrals = {self.refer(runtime) for _ in range(5)}
                assert time.monotonic() - started < 2  # commands never wait for Kafka
                assert wait_until(lambda: outbox.last_error is not None, 15)
                assert outbox.status()["lag"] > 0
                broker.start()
                assert wait_until(lambda: outbox.lag() == 0, 30)
            finally:
                runtime.close()
            records = read_topic(broker.bootstrap, Topics().agency("dinkes"))
            assert {json.loads(r.value)["id"] for r in records} == {f"{r}/1" for r in referrals}
