"""Deactivated users: every serving process refuses their tokens within about a second.

A bearer token stays valid until it expires, and each process remembers the tokens it
has accepted (`TokenVerifier`). Deactivating a user (`slrt users deactivate`) records a
`User.Deactivated` event; each process reads those events from the event store when it
starts and then every `interval` seconds, and the caller dependency refuses a token
whose user is on the list, whether the token was accepted before or not."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any
from uuid import UUID

import structlog
from eventsourcing.utils import get_topic

from slrt.background import BackgroundLoop
from slrt.domain.user import User

log = structlog.get_logger("slrt.users")

#: The topic of the event that ends a user's access.
DEACTIVATED = get_topic(User.Deactivated)  # type: ignore[attr-defined]


@lru_cache(maxsize=10_000)
def _aggregate_id(user_id: str) -> UUID:
    return User.create_id(user_id)


class DeactivatedUsers(BackgroundLoop):
    """The users an admin has deactivated, by their aggregate ids (the event carries no
    user name). Reads only the notifications recorded since the last read, filtered by
    topic, so a refresh costs two small queries however large the store is. A CLI
    command that builds a runtime does not read them; `start` does."""

    name = "deactivated-users"

    def __init__(self, recorder: Any, *, interval: float = 1.0) -> None:
        super().__init__()
        self.recorder = recorder
        self.interval = interval
        self._ids: frozenset[UUID] = frozenset()
        self._position = 0
        self._lock = threading.Lock()

    def __contains__(self, user_id: object) -> bool:
        return isinstance(user_id, str) and _aggregate_id(user_id) in self._ids

    def start(self) -> None:
        """Reads every deactivation so far (before the first request is served), then
        follows new ones in a thread."""
        self.refresh()
        super().start()

    def refresh(self) -> None:
        """Reads the deactivations recorded since the last refresh (through a partial
        index of that topic: a fresh process does not scan the whole store)."""
        with self._lock:
            stop = self.recorder.max_notification_id() or 0
            if stop <= self._position:
                return
            found = set(self._ids)
            found.update(
                originator_id
                for _, originator_id in self.recorder.select_followed(
                    DEACTIVATED, self._position, stop
                )
            )
            if len(found) > len(self._ids):
                log.info("users.deactivated_seen", count=len(found) - len(self._ids))
            self._ids = frozenset(found)
            self._position = stop

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception:  # the store is unreachable: keep the list, try again
                log.warning("users.refresh_failed", exc_info=True)
