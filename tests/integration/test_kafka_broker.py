"""The noida-db Kafka broker with kafka-python, as the outbox and inbox will use them.

See docs/kafka-broker-notes.md for what these pin down and why the settings are what they are.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.serializer import DefaultSerializer
from kafka.structs import OffsetAndMetadata

from tests.kafka_broker import KafkaBroker, kafka_broker  # noqa: F401

pytestmark = pytest.mark.kafka

# The outbox producer settings recommended in docs/kafka-broker-notes.md, with shorter
# timeouts so the tests stay quick.
PRODUCER: dict[str, Any] = {
    "acks": "all",
    "enable_idempotence": True,
    "linger_ms": 5,
    "request_timeout_ms": 2_000,
    "delivery_timeout_ms": 4_000,
    "max_block_ms": 2_000,
    "bootstrap_timeout_ms": 2_000,
    "retry_backoff_ms": 100,
    "reconnect_backoff_ms": 100,
    "reconnect_backoff_max_ms": 1_000,
}
# The inbox consumer: no group, assign + seek to offsets kept in the inbox's own database.
CONSUMER: dict[str, Any] = {
    "group_id": None,
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "isolation_level": "read_committed",
    "bootstrap_timeout_ms": 5_000,
}
# Bound for "fails fast": the configured timeout plus generous slack for a loaded CI box.
SLACK_S = 6.0


def unique_topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, bootstrap_timeout_ms=5_000)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    finally:
        admin.close()


def read_from(
    bootstrap: str, offsets: dict[TopicPartition, int], expected: int, timeout_s: float = 10.0
) -> list[Any]:
    """assign() + seek() to explicit offsets, then poll (0 ms + short sleep) until done."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, **CONSUMER)
    try:
        consumer.assign(list(offsets))
        for tp, offset in offsets.items():
            consumer.seek(tp, offset)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            batch = consumer.poll(timeout_ms=0)
            if not batch:
                time.sleep(0.05)  # an idle fetch returns at once on noida-db: don't spin
            for tp_records in batch.values():
                records.extend(tp_records)
        return records
    finally:
        consumer.close()


def send_with_retries(
    producer: KafkaProducer, topic: str, value: bytes, within_s: float
) -> list[KafkaError]:
    """Send one record as an outbox loop would: retry on errors until acked or out of time."""
    errors: list[KafkaError] = []
    deadline = time.monotonic() + within_s
    while True:
        try:
            producer.send(topic, key=b"case-1", value=value).get(timeout=within_s)
            return errors
        except KafkaError as exc:
            errors.append(exc)
            if time.monotonic() >= deadline:
                raise AssertionError(f"not acked within {within_s}s: {errors}") from exc


@pytest.fixture
def own_broker() -> Iterator[KafkaBroker]:
    """A private broker for tests that stop, restart or kill it."""
    with KafkaBroker() as broker:
        yield broker


def test_idempotent_keyed_produce_then_assign_and_seek(kafka_broker: KafkaBroker) -> None:  # noqa: F811
    topic = unique_topic("referrals")
    create_topic(kafka_broker.bootstrap, topic, partitions=3)
    producer = KafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap, key_serializer=DefaultSerializer(), **PRODUCER
    )
    try:
        futures = [
            producer.send(
                topic,
                key=f"case-{i % 4}",
                value=f"event-{i}".encode(),
                headers=[("event_id", f"ev-{i}".encode()), ("event_type", b"ReferralSent")],
            )
            for i in range(20)
        ]
        producer.flush(timeout=10)
        metadata = [future.get(timeout=1) for future in futures]
    finally:
        producer.close(timeout=5)

    partitions_by_key: dict[str, set[int]] = defaultdict(set)
    for i, md in enumerate(metadata):
        partitions_by_key[f"case-{i % 4}"].add(md.partition)
    assert all(len(parts) == 1 for parts in partitions_by_key.values()), partitions_by_key

    # Everything, from the beginning of each partition, in per-key order with headers.
    tps = [TopicPartition(topic, p) for p in range(3)]
    records = read_from(kafka_broker.bootstrap, dict.fromkeys(tps, 0), expected=20)
    assert len(records) == 20
    by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for record in records:
        by_key[record.key].append(record.value)
        headers = dict(record.headers)
        assert headers["event_type"] == b"ReferralSent"
        assert headers["event_id"] == b"ev-" + record.value.removeprefix(b"event-")
    for key, values in by_key.items():
        expected = [f"event-{i}".encode() for i in range(20) if f"case-{i % 4}".encode() == key]
        assert values == expected

    # Resume from explicit offsets (as the inbox will from its own database): skip the
    # first two records of every partition that has any.
    counts = {tp: sum(1 for md in metadata if md.partition == tp.partition) for tp in tps}
    resume = {tp: min(2, n) for tp, n in counts.items()}
    tail = read_from(kafka_broker.bootstrap, resume, expected=20 - sum(resume.values()))
    assert len(tail) == 20 - sum(resume.values())
    for record in tail:
        assert record.offset >= resume[TopicPartition(record.topic, record.partition)]


def test_restart_keeps_acknowledged_records_and_committed_offsets(
    own_broker: KafkaBroker,
) -> None:
    topic = unique_topic("answers")
    group = unique_topic("group")
    tp = TopicPartition(topic, 0)
    create_topic(own_broker.bootstrap, topic, partitions=1)
    producer = KafkaProducer(bootstrap_servers=own_broker.bootstrap, **PRODUCER)
    try:
        for i in range(5):
            producer.send(topic, key=b"case-1", value=f"before-{i}".encode()).get(timeout=10)

        committer = KafkaConsumer(
            bootstrap_servers=own_broker.bootstrap, group_id=group, enable_auto_commit=False
        )
        try:
            committer.assign([tp])
            committer.commit({tp: OffsetAndMetadata(3, "", -1)})
        finally:
            committer.close()

        port = own_broker.port
        own_broker.restart()
        assert own_broker.port == port

        # The same idempotent producer carries on after a graceful restart.
        producer.send(topic, key=b"case-1", value=b"after-0").get(timeout=10)
    finally:
        producer.close(timeout=5)

    values = [r.value for r in read_from(own_broker.bootstrap, {tp: 0}, expected=6)]
    assert values == [f"before-{i}".encode() for i in range(5)] + [b"after-0"]

    checker = KafkaConsumer(
        bootstrap_servers=own_broker.bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        assert checker.committed(tp) == 3
    finally:
        checker.close()


def test_producer_fails_fast_while_broker_is_down(own_broker: KafkaBroker) -> None:
    topic = unique_topic("outbox")
    producer = KafkaProducer(bootstrap_servers=own_broker.bootstrap, **PRODUCER)
    try:
        producer.send(topic, key=b"case-1", value=b"up").get(timeout=10)
        own_broker.stop()

        # A topic the producer knows: the record expires after delivery_timeout_ms.
        started = time.monotonic()
        future = producer.send(topic, key=b"case-1", value=b"down")
        with pytest.raises(KafkaTimeoutError):
            future.get(timeout=30)
        elapsed = time.monotonic() - started
        assert elapsed < PRODUCER["delivery_timeout_ms"] / 1000 + SLACK_S, elapsed

        # A topic it has no metadata for: send() itself raises after max_block_ms.
        started = time.monotonic()
        with pytest.raises(KafkaTimeoutError):
            producer.send(unique_topic("unknown"), value=b"down")
        elapsed = time.monotonic() - started
        assert elapsed < PRODUCER["max_block_ms"] / 1000 + SLACK_S, elapsed

        # flush() with a timeout does not hang either.
        producer.send(topic, key=b"case-1", value=b"queued")
        started = time.monotonic()
        with pytest.raises(KafkaTimeoutError):
            producer.flush(timeout=1)
        assert time.monotonic() - started < 1 + SLACK_S

        # A new producer cannot bootstrap: the constructor gives up after
        # bootstrap_timeout_ms (the default would block for 30 s).
        started = time.monotonic()
        with pytest.raises(KafkaTimeoutError):
            KafkaProducer(bootstrap_servers=own_broker.bootstrap, **PRODUCER)
        elapsed = time.monotonic() - started
        assert elapsed < PRODUCER["bootstrap_timeout_ms"] / 1000 + SLACK_S, elapsed

        # Back up: the same producer works again without being recreated, though the
        # first attempt can still fail: a record appended to a batch created during the
        # outage (here the "queued" one) shares that batch's delivery deadline.
        own_broker.start()
        errors = send_with_retries(producer, topic, b"up-again", within_s=20)
        assert len(errors) <= 2, errors
    finally:
        producer.close(timeout=5)


def test_kill_loses_only_the_last_second_and_producer_recovers(own_broker: KafkaBroker) -> None:
    """noida-db snapshots its state about once a second; SIGKILL loses what came after."""
    topic = unique_topic("crash")
    tp = TopicPartition(topic, 0)
    producer = KafkaProducer(bootstrap_servers=own_broker.bootstrap, **PRODUCER)
    try:
        for i in range(5):
            producer.send(topic, key=b"case-1", value=f"old-{i}".encode()).get(timeout=10)
        time.sleep(2.5)  # > the snapshot interval, so these are on disk
        own_broker.kill()
        own_broker.start()

        # The idempotent producer may see one OutOfOrderSequenceNumberError (its sequence
        # numbers are ahead of the restored state), then carries on.
        errors: list[KafkaError] = []
        for i in range(3):
            errors += send_with_retries(producer, topic, f"new-{i}".encode(), within_s=20)
        assert len(errors) <= 1, errors
    finally:
        producer.close(timeout=5)

    values = [r.value for r in read_from(own_broker.bootstrap, {tp: 0}, expected=8)]
    assert values == [f"old-{i}".encode() for i in range(5)] + [
        f"new-{i}".encode() for i in range(3)
    ]
