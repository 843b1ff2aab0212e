"""The anchor process: extends the log's anchor digest on a schedule.

An anchor covers every hash record up to a notification id; removing events written
before it is then detectable by `slrt audit verify`, even together with their hash
records (ADR 0006). Anchoring often shrinks the window an anchor does not cover yet.
"""

from __future__ import annotations

from typing import Any

import structlog
from eventsourcing.application import Application

from slrt.audit import AuditUnavailable, audited_recorder, write_anchor
from slrt.background import BackgroundLoop

log = structlog.get_logger("slrt.audit")


class AnchorProcess(BackgroundLoop):
    name = "audit_anchor"

    def __init__(self, app: Application[Any], *, interval: float) -> None:
        self.app = app
        self.interval = interval
        super().__init__()

    def run_once(self) -> None:
        anchor = write_anchor(audited_recorder(self.app), note="periodic")
        if anchor is not None:
            log.info(
                "audit.anchored",
                anchor_id=anchor.anchor_id,
                up_to=anchor.max_notification_id,
                events=anchor.event_count,
            )

    # Anchors follow the clock, not each save: the loop does not wait on wake-ups.

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except AuditUnavailable:
                log.warning("audit.anchor_unavailable")
                return
            except Exception:
                log.exception("audit.anchor_failed")
