"""A simulated partner agency, for demos and tests: `slrt agency simulate --agency dinkes`.

It behaves as an agency's integration should (docs/agency-integration.md): it consumes
its topic in a consumer group with static membership, drops duplicates by CloudEvent id,
answers each new referral with an acknowledgement (its own case number) and then an
outcome, and commits its offsets only after its answers were acknowledged by the broker.
Answer ids are derived from the referral, so an answer re-sent after a crash is the same
message and SLRT applies it once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from kafka import KafkaConsumer, KafkaProducer

from slrt.background import BackgroundLoop
from slrt.config import Settings
from slrt.integrations import cloudevents
from slrt.integrations.kafka import Topics, make_consumer, make_producer

log = structlog.get_logger("slrt.agency")

_NAMESPACE = uuid.UUID("5f7c1b1e-2f38-4c53-9a43-0d1d4e6a2b71")


def answer(
    kind: str, *, agency: str, referral_id: str, data: dict[str, Any], at: datetime
) -> dict[str, Any]:
    """An agency's answer as a CloudEvent; `kind` is acknowledged, delivered or declined."""
    event_type = f"{cloudevents.TYPE_PREFIX}{kind}.v1"
    return cloudevents.envelope(
        id=str(uuid.uuid5(_NAMESPACE, f"{agency}:{referral_id}:{kind}")),
        type=event_type,
        source=f"/agencies/{agency}",
        subject=referral_id,
        time=at,
        data={"referral_id": referral_id, "agency": agency, **data},
    )


class AgencySimulator(BackgroundLoop):
    def __init__(
        self,
        settings: Settings,
        agency: str | Sequence[str],
        *,
        outcome: str = "delivered",
        instance: str = "1",
        group_id: str | None = None,
    ) -> None:
        self.settings = settings
        #: One agency, or several answered by one consumer (a demo or a benchmark).
        self.agencies = [agency] if isinstance(agency, str) else list(agency)
        self.agency = "+".join(self.agencies)
        self.outcome = outcome  # delivered | declined | none
        self.topics = Topics.from_settings(settings)
        self.group_id = group_id or f"agency-{agency}"
        self.instance_id = f"{self.group_id}-{instance}"
        self.seen: set[str] = set()
        self.answered = 0
        self.duplicates = 0
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        super().__init__()

    def _connect(self) -> None:
        self._producer = make_producer(self.settings, client_id=f"agency-{self.agency}")
        consumer = make_consumer(
            self.settings,
            client_id=f"agency-{self.agency}",
            group_id=self.group_id,
            group_instance_id=self.instance_id,
            session_timeout_ms=10_000,
        )
        consumer.subscribe([self.topics.agency(a) for a in self.agencies])
        self._consumer = consumer

    def run_once(self) -> int:
        if self._consumer is None:
            self._connect()
        assert self._consumer is not None and self._producer is not None
        # poll(0) never completes the group join with kafka-python; 50 ms does.
        batches = self._consumer.poll(timeout_ms=50)
        sent = []
        count = 0
        for records in batches.values():
            for record in records:
                count += 1
                try:
                    message = json.loads(record.value)
                except ValueError:
                    log.warning("agency.unreadable", offset=record.offset)
                    continue
                if message.get("id") in self.seen:
                    self.duplicates += 1
                    continue
                self.seen.add(message.get("id"))
                if message.get("type") != cloudevents.CREATED:
                    continue
                sent.extend(self._answer(message["data"]))
        if sent:
            self._producer.flush(timeout=20)
            for future in sent:
                future.get(timeout=0)
        if count:
            self._consumer.commit()  # only after the answers are safely on the broker
        return count

    def _answer(self, referral: dict[str, Any]) -> list[Any]:
        assert self._producer is not None
        rid = referral["referral_id"]
        agency = referral["agency"]
        now = datetime.now(UTC)
        reference = f"{agency.upper()}-{rid[:8]}"
        answers = [
            answer(
                "acknowledged",
                agency=agency,
                referral_id=rid,
                data={"agency_reference": reference},
                at=now,
            )
        ]
        if self.outcome == "delivered":
            answers.append(
                answer(
                    "delivered",
                    agency=agency,
                    referral_id=rid,
                    data={
                        "agency_reference": reference,
                        "delivered_on": now.date().isoformat(),
                        "details": f"{referral['service']} given",
                    },
                    at=now,
                )
            )
        elif self.outcome == "declined":
            answers.append(
                answer(
                    "declined",
                    agency=agency,
                    referral_id=rid,
                    data={"agency_reference": reference, "reason": "not eligible"},
                    at=now,
                )
            )
        self.answered += 1
        return [
            self._producer.send(
                self.topics.responses,
                key=rid,
                value=cloudevents.encode(message),
                headers=[("content-type", cloudevents.CONTENT_TYPE.encode())],
            )
            for message in answers
        ]

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        if consumer is not None:
            consumer.close()
        if producer is not None:
            producer.close(timeout=5)

    @property
    def thread_name(self) -> str:
        return f"agency-{self.agency}"

    def _stopped(self) -> None:
        self.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                if self.run_once():
                    continue
            except Exception as error:
                log.warning("agency.failed", agency=self.agency, error=str(error))
                self.close()
                self._stop.wait(1.0)
                continue
            self._stop.wait(0.25)  # an idle poll spins on noida-db: rest between
