"""The session's Kafka-protocol broker (noida-db), started on first use and stopped after."""

from tests.kafka_broker import kafka_broker

__all__ = ["kafka_broker"]
