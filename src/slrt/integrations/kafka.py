"""Kafka clients built from Settings, with the settings measured in
docs/kafka-broker-notes.md (idempotent acks=all producer, assign+seek consumer)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import structlog
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.serializer import DefaultSerializer

from slrt.config import Settings
from slrt.domain.referral import Agency

log = structlog.get_logger("slrt.kafka")


@dataclass(frozen=True)
class Topics:
    """Topic names, all under one configurable prefix."""

    prefix: str = "slrt."

    def agency(self, agency: str) -> str:
        return f"{self.prefix}referrals.{agency}"

    @property
    def responses(self) -> str:
        return f"{self.prefix}referral-responses"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}referral-responses.dlq"

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics:
        return cls(prefix=settings.kafka_topic_prefix)


def _quiet_client_logs() -> None:
    # kafka-python logs every failed reconnect at ERROR; the outbox and inbox log the
    # outage once per round themselves.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def connection_options(settings: Settings) -> dict[str, Any]:
    if not settings.kafka_bootstrap_servers:
        msg = "SLRT_KAFKA_BOOTSTRAP_SERVERS is not set"
        raise RuntimeError(msg)
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers.split(","),
        "security_protocol": settings.kafka_security_protocol,
        "bootstrap_timeout_ms": 5_000,
        "retry_backoff_ms": 100,
        "reconnect_backoff_ms": 100,
        "reconnect_backoff_max_ms": 2_000,
    }
    if settings.kafka_sasl_mechanism:
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password,
        )
    if settings.kafka_ssl_cafile:
        options["ssl_cafile"] = settings.kafka_ssl_cafile
    return options


def make_producer(settings: Settings, client_id: str) -> KafkaProducer:
    """Raises KafkaTimeoutError after 5 s when no broker answers."""
    _quiet_client_logs()
    return KafkaProducer(
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        max_in_flight_requests_per_connection=5,
        linger_ms=5,
        request_timeout_ms=5_000,
        delivery_timeout_ms=15_000,
        max_block_ms=5_000,
        key_serializer=DefaultSerializer(),
        **connection_options(settings),
    )


def make_consumer(settings: Settings, client_id: str, **extra: Any) -> KafkaConsumer:
    _quiet_client_logs()
    options: dict[str, Any] = {
        "client_id": client_id,
        "group_id": None,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": 500,
        **connection_options(settings),
    }
    options.update(extra)
    return KafkaConsumer(**options)


def ensure_topics(settings: Settings, *, partitions: int | None = None) -> None:
    """Creates every referral topic that does not exist yet ("already exists" is fine).
    Where the platform team creates topics and SLRT may not, a refusal is only logged."""
    _quiet_client_logs()
    topics = Topics.from_settings(settings)
    count = partitions or settings.kafka_response_partitions
    wanted = [topics.agency(a.value) for a in Agency] + [topics.responses, topics.dead_letters]
    admin = KafkaAdminClient(client_id="slrt-admin", **connection_options(settings))
    try:
        for name in wanted:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            name,
                            num_partitions=count,
                            replication_factor=settings.kafka_replication_factor,
                        )
                    ]
                )
            except TopicAlreadyExistsError:
                pass
            except Exception as error:  # e.g. no CreateTopics ACL in production
                log.warning("kafka.topic_not_created", topic=name, error=str(error))
    finally:
        admin.close()
