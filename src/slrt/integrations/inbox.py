"""The referral inbox: applies agencies' answers exactly once.

It reads `slrt.referral-responses` with assign + seek, without a consumer group: the
consumed offsets live in SLRT's own event store, as `InboxPosition` aggregates (one per
partition). An answer's domain event (e.g. `Referral.Acknowledged`) and its offset are
saved in one transaction, so a crash before it leaves both unwritten (the message is read
again) and a crash after it leaves both written (the consumer seeks past it on start).
A second consumer on the same partition conflicts on the position instead of applying
the answer twice. An answer whose CloudEvent id was already applied only moves the
position.

A message that cannot be parsed, names an unknown referral, comes from the wrong agency
or would make an illegal transition is copied to `slrt.referral-responses.dlq` with the
reason (header and body), and the position records `DeadLettered` with the reason: it is
never dropped silently and never blocks the partition.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from slrt.application import SlrtApplication
from slrt.background import BackgroundLoop
from slrt.config import Settings
from slrt.domain.inbox import InboxItem, InboxPosition
from slrt.integrations import cloudevents
from slrt.integrations.kafka import Topics, ensure_topics, make_consumer, make_producer

log = structlog.get_logger("slrt.inbox")

FailPoint = Callable[[str], None]


class ReferralInbox(BackgroundLoop):
    name = "referral_inbox"

    def __init__(
        self,
        app: SlrtApplication,
        settings: Settings,
        *,
        poll_interval: float | None = None,
        fail_point: FailPoint | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.poll_interval = poll_interval or settings.referral_poll_interval_seconds
        #: Tests inject crashes here: "received" (before the database write), "written"
        #: (after it), "dead_lettered" (DLQ copies on the broker, transaction not committed).
        self.fail_point = fail_point
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._positions: dict[int, InboxPosition] = {}
        self._confirmed: dict[int, int] = {}
        #: The version of each position's last snapshot taken by this inbox (0: none yet,
        #: so the first save after a start snapshots a long position).
        self._snapshotted: dict[int, int] = {}
        super().__init__()
        self.applied = 0
        self.duplicates = 0
        self.dead_lettered = 0
        self.last_error: str | None = None

    # -- connection -----------------------------------------------------------------------

    def connect(self) -> None:
        """Assigns every partition and seeks to the stored positions."""
        consumer = make_consumer(self.settings, client_id="slrt-inbox")
        try:
            partitions = consumer.partitions_for_topic(self.topics.responses) or set()
            if not partitions:
                ensure_topics(self.settings)
                consumer.topics()  # refresh the metadata
                partitions = consumer.partitions_for_topic(self.topics.responses) or set()
            if not partitions:
                msg = f"topic {self.topics.responses} does not exist"
                raise RuntimeError(msg)
            tps = [TopicPartition(self.topics.responses, p) for p in sorted(partitions)]
            consumer.assign(tps)
            end = consumer.end_offsets(tps)
            for tp in tps:
                position = self.app.start_inbox_position(tp.topic, tp.partition)
                self._positions[tp.partition] = position
                self._confirmed[tp.partition] = position.version
                self._snapshotted[tp.partition] = 0
                # After a broker crash the stored offset can lie past the end: the records
                # written next take those offsets and must not be skipped.
                consumer.seek(tp, min(position.next_offset, end[tp]))
        except Exception:
            consumer.close()
            raise
        self._consumer = consumer
        log.info(
            "inbox.connected",
            topic=self.topics.responses,
            positions={p: pos.next_offset for p, pos in self._positions.items()},
        )

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        try:
            if consumer is not None:
                consumer.close()
            if producer is not None:
                producer.close(timeout=5)
        except Exception:  # closing a client of a broker that is gone
            log.debug("inbox.close_failed")

    # -- consuming ----------------------------------------------------------------------

    def run_once(self) -> int:
        """Handles what one poll returns, one transaction per partition; returns how many
        records it read."""
        if self._consumer is None:
            self.connect()
        assert self._consumer is not None
        batches = self._consumer.poll(timeout_ms=0)
        for tp in sorted(batches, key=lambda t: t.partition):
            self.handle(tp.partition, batches[tp])
        return sum(len(records) for records in batches.values())

    def _position(self, partition: int) -> Callable[[], InboxPosition]:
        def load() -> InboxPosition:
            position = self._positions[partition]
            if position.version != self._confirmed[partition]:
                # A failed save left unsaved changes on it: read it as stored.
                position = self.app.inbox_position(position.id)
                self._positions[partition] = position
            return position

        return load

    def _confirm(self, partition: int) -> None:
        """Notes the position as saved; snapshots it every INBOX_SNAPSHOT_INTERVAL
        versions (a failed snapshot is only logged: the next save tries again)."""
        position = self._positions[partition]
        self._confirmed[partition] = position.version
        since = position.version - self._snapshotted.get(partition, 0)
        if since < self.app.INBOX_SNAPSHOT_INTERVAL:
            return
        try:
            self.app.snapshot_inbox_position(position)
        except Exception:
            log.exception("inbox.snapshot_failed", partition=partition)
            return
        self._snapshotted[partition] = position.version

    def handle(self, partition: int, records: list[ConsumerRecord]) -> None:
        items = []
        for record in records:
            if record.offset < self._positions[partition].next_offset:
                continue  # consumed before the restart that re-read it
            try:
                answer = cloudevents.parse_answer(record.value)
            except cloudevents.BadMessage as error:
                items.append(InboxItem(offset=record.offset, refused=f"unparseable: {error}"))
                continue
            items.append(
                InboxItem(
                    offset=record.offset,
                    message_id=answer.message_id,
                    referral_id=answer.referral_id,
                    agency=answer.agency,
                    answer=answer.answer,
                    data=answer.data,
                )
            )
        if not items:
            return
        self._fail("received")
        by_offset = {record.offset: record for record in records}

        def dead_letter(dead: list[tuple[InboxItem, str]]) -> None:
            self._dead_letter([(by_offset[item.offset], reason) for item, reason in dead])
            self._fail("dead_lettered")

        result = self.app.record_agency_answers(
            position=self._position(partition), items=items, dead_letter=dead_letter
        )
        self._confirm(partition)
        self.applied += result.applied
        self.duplicates += result.duplicates
        self.dead_lettered += len(result.dead_lettered)
        for offset, reason in result.dead_lettered:
            log.warning("inbox.dead_lettered", partition=partition, offset=offset, reason=reason)
        self._fail("written")

    def _dead_letter(self, dead: list[tuple[ConsumerRecord, str]]) -> None:
        """Copies each message to the DLQ with its reason (header and body), and waits
        until the broker has them all."""
        if self._producer is None:
            self._producer = make_producer(self.settings, client_id="slrt-inbox-dlq")
        futures = []
        for record, reason in dead:
            try:
                original: Any = json.loads(record.value) if record.value else None
            except (ValueError, UnicodeDecodeError):
                original = (record.value or b"").decode("utf-8", errors="replace")
            key = record.key.decode("utf-8", errors="replace") if record.key else None
            body = {
                "reason": reason,
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "key": key,
                "dead_lettered_at": datetime.now(UTC).isoformat(),
                "message": original,
            }
            origin = f"{record.topic}/{record.partition}/{record.offset}"
            futures.append(
                self._producer.send(
                    self.topics.dead_letters,
                    key=key,
                    value=json.dumps(body).encode(),
                    headers=[
                        ("slrt-dlq-reason", reason.encode()[:1000]),
                        ("slrt-dlq-origin", origin.encode()),
                    ],
                )
            )
        self._producer.flush(timeout=20)
        for future in futures:
            future.get(timeout=0)

    def _fail(self, point: str) -> None:
        if self.fail_point is not None:
            self.fail_point(point)

    def status(self) -> dict[str, Any]:
        return {
            "positions": {p: pos.next_offset for p, pos in self._positions.items()},
            "applied": self.applied,
            "duplicates": self.duplicates,
            "dead_lettered": self.dead_lettered,
            "last_error": self.last_error,
        }

    # -- the background thread ------------------------------------------------------------

    # Answers come from Kafka, not from saves here: the loop does not wait on wake-ups.

    def _stopped(self) -> None:
        self.close()

    def _loop(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if self.run_once():
                    backoff = 1.0
                    continue
            except Exception as error:  # broker or database down: reconnect and re-seek
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("inbox.failed", error=self.last_error, retry_in=backoff)
                self.close()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            # Never poll with a long timeout: noida-db answers empty fetches at once.
            self._stop.wait(self.poll_interval)
        log.info("inbox.stopped", positions={p: v.next_offset for p, v in self._positions.items()})
