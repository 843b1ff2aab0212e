"""Rare events every serving process follows: deactivated users, SLA policy versions.

Each serving process reads these events from the event store when it starts, before it
serves a request, and then every `interval` seconds, through a partial index per topic
(`slrt.persistence.chain.FOLLOWED_TOPICS`), so a read costs what there is of them, not
a scan of the store. What they give is then known in memory on every request:
- a deactivated user's tokens are refused, including unexpired tokens accepted before;
- a complaint's SLA clocks start under the policy in force without reading the store,
  so a complaint is decided on the event loop like a registration (ADR 0009). A policy
  published by another process is in force here within about `interval`; the complaint
  records the version it used.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from uuid import UUID

import structlog
from eventsourcing.utils import get_topic

from slrt.background import BackgroundLoop
from slrt.domain.sla import SlaPolicy
from slrt.domain.user import User

if TYPE_CHECKING:
    from slrt.application import SlrtApplication

log = structlog.get_logger("slrt.followed")

#: The topic of the event that ends a user's access.
DEACTIVATED = get_topic(User.Deactivated)  # type: ignore[attr-defined]
#: The topic of a new SLA policy version.
POLICY_PUBLISHED = get_topic(SlaPolicy.VersionPublished)  # type: ignore[attr-defined]

#: What a follower is told: (notification id, originator id) of each new event.
Seen = Callable[[list[tuple[int, UUID]]], None]


class Follower(BackgroundLoop):
    """Reads the followed topics' events recorded since the last read and tells their
    subscribers. `start` reads everything so far before returning."""

    name = "followed-events"

    def __init__(self, recorder: Any, *, interval: float = 1.0) -> None:
        super().__init__()
        self.recorder = recorder
        self.interval = interval
        self._subscribers: list[tuple[str, Seen]] = []
        self._position = 0
        self._lock = threading.Lock()

    def subscribe(self, topic: str, seen: Seen) -> None:
        self._subscribers.append((topic, seen))

    def start(self) -> None:
        self.refresh()
        super().start()

    def refresh(self) -> None:
        with self._lock:
            stop = self.recorder.max_notification_id() or 0
            if stop <= self._position:
                return
            for topic, seen in self._subscribers:
                found = self.recorder.select_followed(topic, self._position, stop)
                if found:
                    seen(found)
            self._position = stop

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # the store is unreachable: keep what is known, try again
                log.warning("followed.refresh_failed", exc_info=True)


@lru_cache(maxsize=10_000)
def _user_aggregate_id(user_id: str) -> UUID:
    return User.create_id(user_id)


class DeactivatedUsers:
    """The users an admin has deactivated, by aggregate id (the event names no user)."""

    def __init__(self) -> None:
        self._ids: frozenset[UUID] = frozenset()

    def __contains__(self, user_id: object) -> bool:
        return isinstance(user_id, str) and _user_aggregate_id(user_id) in self._ids

    def seen(self, found: list[tuple[int, UUID]]) -> None:
        ids = self._ids | {originator_id for _, originator_id in found}
        if len(ids) > len(self._ids):
            log.info("users.deactivated_seen", count=len(ids) - len(self._ids))
        self._ids = frozenset(ids)


class PolicyInForce:
    """Tells the application the SLA policy version in force when one is published."""

    def __init__(self, app: SlrtApplication) -> None:
        self.app = app

    def seen(self, found: list[tuple[int, UUID]]) -> None:
        if any(originator_id == SlaPolicy.id_for() for _, originator_id in found):
            self.app.reload_sla_policy_in_force()
