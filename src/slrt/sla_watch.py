"""The breach watcher: records every missed SLA deadline, once, even after downtime.

It keeps no state of its own. Each pass asks the sla_timers read model for clocks whose
deadline has passed without a recorded breach, checks each against the item's own
events in the event store (a lagging read model must not cause a false breach), and
records `SlaBreach.Recorded`. The breach's id is derived from the timer, so a second
pass, a restart or a second watcher cannot record it twice. A watcher that was down
across deadlines records them all on its first pass.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

import structlog
from sqlalchemy import Engine

from slrt.application import SlrtApplication
from slrt.background import BackgroundLoop
from slrt.domain.sla import TARGET_CLOCKS, ItemKind
from slrt.projections.sla_timers import milestone_of, overdue_timers

log = structlog.get_logger("slrt.sla")


class BreachWatcher(BackgroundLoop):
    name = "sla_breaches"

    def __init__(
        self,
        app: SlrtApplication,
        engine: Engine,
        *,
        interval: float,
        escalate: bool,
        grace: timedelta = timedelta(0),
    ) -> None:
        self.app = app
        self.engine = engine
        self.interval = interval
        self.escalate = escalate
        self.grace = grace
        super().__init__()

    def run_once(self) -> int:
        """One pass; returns how many breaches it recorded."""
        now = self.app.clock()
        with self.engine.connect() as conn:
            overdue = overdue_timers(conn, now=now, grace=self.grace)
        recorded = 0
        for timer in overdue:
            if self._met_in_time(timer):
                continue  # the read model has not seen the stop yet
            if self.app.record_breach(timer=timer, escalate=self.escalate) is not None:
                recorded += 1
                log.info(
                    "sla.breached",
                    item_kind=timer["item_kind"],
                    item_id=timer["item_id"],
                    target=timer["target"],
                    deadline=timer["deadline"].isoformat(),
                )
        return recorded

    def _met_in_time(self, timer: dict[str, Any]) -> bool:
        clock = TARGET_CLOCKS[ItemKind(timer["item_kind"])][timer["target"]]
        events: list[Any] = list(self.app.events.get(UUID(timer["item_id"])))
        for event in events:
            found = milestone_of(event)
            if (
                found is not None
                and found[1] in clock.stops
                and timer["started_at"] <= event.timestamp <= timer["deadline"]
            ):
                return True
        return False

    # Deadlines pass with time, not with events: the loop does not wait on wake-ups.

    def _loop(self) -> None:
        log.info("sla.watcher_started")
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                log.exception("sla.watch_failed")
            self._stop.wait(self.interval)
