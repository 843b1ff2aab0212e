"""Receipts: what makes a retried command safe on a flaky connection.

A command sent with an Idempotency-Key is saved together with a receipt whose id is
derived from (user, key), in the same transaction. A retry finds the receipt and gets
the first answer back; two concurrent sends race for the receipt and only one wins.
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from slrt.domain.common import InvalidInput


class IdempotencyKeyReused(InvalidInput):
    """The same Idempotency-Key was sent with a different request."""

    title = "Idempotency-Key reused"


class CommandReceipt(Aggregate):
    @staticmethod
    def create_id(user_id: str, key: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"slrt:receipt:{user_id}:{key}")

    @event("Recorded")
    def __init__(
        self,
        user_id: str,
        key: str,
        fingerprint: str,
        command: str,
        result_id: UUID,
        result_version: int,
        timestamp: datetime | None = None,
    ) -> None:
        self.user_id = user_id
        self.key = key
        self.fingerprint = fingerprint
        self.command = command
        self.result_id = result_id
        self.result_version = result_version
