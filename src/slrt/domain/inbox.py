"""InboxPosition: how far SLRT has consumed one partition of an inbound Kafka topic.

The position is an aggregate in the event store, so recording "offset N was consumed"
is saved in the same transaction as the domain event the message caused: the answer
and the offset commit together or not at all. Its id is derived from (topic, partition),
so two consumers handling the same offset conflict instead of both applying it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from slrt.domain.common import IllegalTransition


@dataclass(frozen=True)
class InboxItem:
    """One consumed message: an agency's answer, or why it could not even be read."""

    offset: int
    message_id: str | None = None
    referral_id: UUID | None = None
    agency: str | None = None
    answer: str | None = None  # acknowledged | delivered | declined
    data: dict[str, Any] = field(default_factory=dict)
    #: Set when the message cannot be parsed; it goes to the dead-letter topic.
    refused: str | None = None


@dataclass
class InboxResult:
    applied: int = 0
    duplicates: int = 0
    #: (offset, reason) of each message sent to the dead-letter topic.
    dead_lettered: list[tuple[int, str]] = field(default_factory=list)


class AlreadyConsumed(IllegalTransition):
    """This offset was consumed before (by this consumer before a crash, or another one)."""


class InboxPosition(Aggregate):
    @staticmethod
    def create_id(topic: str, partition: int) -> UUID:
        return uuid5(NAMESPACE_URL, f"slrt:inbox-position:{topic}:{partition}")

    @event("Started")
    def __init__(
        self, topic: str, partition: int, actor: dict[str, str], timestamp: datetime
    ) -> None:
        self.topic = topic
        self.partition = partition
        #: The next offset to read: the last consumed offset + 1.
        self.next_offset = 0
        self.consumed = 0
        self.dead_lettered = 0

    def check_next(self, offset: int) -> None:
        if offset < self.next_offset:
            raise AlreadyConsumed(
                f"{self.topic}[{self.partition}] offset {offset} was already consumed "
                f"(next is {self.next_offset})"
            )

    def consume(
        self,
        *,
        offset: int,
        message_id: str,
        referral_id: UUID,
        outcome: str,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        """`outcome` is "applied", or "duplicate" for a message id applied before."""
        self.check_next(offset)
        self._consumed(
            offset=offset,
            message_id=message_id,
            referral_id=referral_id,
            outcome=outcome,
            actor=actor,
            timestamp=timestamp,
        )

    @event("Consumed")
    def _consumed(
        self,
        offset: int,
        message_id: str,
        referral_id: UUID,
        outcome: str,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        self.next_offset = offset + 1
        self.consumed += 1

    def dead_letter(
        self,
        *,
        offset: int,
        message_id: str | None,
        reason: str,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        """The message was copied to the dead-letter topic with `reason`."""
        self.check_next(offset)
        self._dead_lettered(
            offset=offset, message_id=message_id, reason=reason, actor=actor, timestamp=timestamp
        )

    @event("DeadLettered")
    def _dead_lettered(
        self,
        offset: int,
        message_id: str | None,
        reason: str,
        actor: dict[str, str],
        timestamp: datetime,
    ) -> None:
        self.next_offset = offset + 1
        self.dead_lettered += 1
