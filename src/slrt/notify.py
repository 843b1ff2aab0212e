"""Wakes this process's projections and processes when any process records events.

On PostgreSQL, every transaction that appends events also sends `NOTIFY` on the events
table's channel (the eventsourcing library does it, in the same transaction, so the
notice arrives only after the events are committed). An `EventListener` keeps one
connection that `LISTEN`s on that channel and wakes the workers at once, so a worker in
`slrt worker` follows commands made by the API process without waiting for its next poll.

The notice is only a hint: workers still poll (`SLRT_PROJECTION_POLL_INTERVAL_SECONDS`),
so a lost notice or a dropped connection delays them by at most one poll interval, and
the listener reconnects on its own. SQLite has no such channel; there, workers in the
same process are woken by the save itself, and others poll.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import structlog
from psycopg import sql

from slrt.background import BackgroundLoop

log = structlog.get_logger("slrt.notify")


class EventListener(BackgroundLoop):
    name = "event-listener"

    def __init__(
        self,
        conninfo: str,
        channel: str,
        wake: Callable[[], None],
        *,
        retry_seconds: float = 1.0,
    ) -> None:
        self.conninfo = conninfo
        self.channel = channel
        self.on_events = wake
        self.retry_seconds = retry_seconds
        #: True while a connection is listening (for /health and tests).
        self.listening = False
        self.notices = 0
        super().__init__()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception as error:  # reconnect; the workers poll meanwhile
                log.warning("listener.disconnected", channel=self.channel, error=str(error))
            self.listening = False
            self._stop.wait(self.retry_seconds)

    def _listen(self) -> None:
        with psycopg.connect(
            self.conninfo, autocommit=True, application_name="slrt-listener"
        ) as conn:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
            self.listening = True
            log.info("listener.listening", channel=self.channel)
            # Events committed while we were not listening are found by the wake-up
            # that follows (re)connecting.
            self.on_events()
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=0.5, stop_after=1):
                    self.notices += 1
                    self.on_events()
