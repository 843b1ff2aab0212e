"""The referral outbox: publishes stored referral events to the agencies' topics.

The event store is the outbox. This tracked process reads the notification log from its
position, sends each referral event (Created, Cancelled, Expired) as a CloudEvent to
`slrt.referrals.<agency>`, keyed by household id so one household's messages stay in
order, waits for the broker to acknowledge all of them (acks=all, idempotent producer),
records `Referral.Dispatched`, and only then moves its position. A crash anywhere before
the position moves means the batch is sent again: at least once, never lost; every
message carries the stored event's id so agencies drop the duplicates.

HTTP commands never touch Kafka. When the broker is down the outbox logs, backs off and
tries again; the referrals wait in the event store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import structlog
from kafka import KafkaProducer
from sqlalchemy import Engine

from slrt.application import SlrtApplication
from slrt.background import BackgroundLoop
from slrt.config import Settings
from slrt.integrations import cloudevents
from slrt.integrations.kafka import Topics, ensure_topics, make_producer
from slrt.projections.base import PositionMoved, advance_position, read_position

log = structlog.get_logger("slrt.outbox")

_TOPIC_PREFIX = "slrt.domain.referral:Referral."
PUBLISHED = frozenset(_TOPIC_PREFIX + name for name in cloudevents.OUTBOUND)

FailPoint = Callable[[str], None]


class ReferralOutbox(BackgroundLoop):
    name = "referral_outbox"

    def __init__(
        self,
        app: SlrtApplication,
        engine: Engine,
        settings: Settings,
        *,
        batch_size: int | None = None,
        poll_interval: float | None = None,
        fail_point: FailPoint | None = None,
    ) -> None:
        self.app = app
        self.engine = engine
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.batch_size = batch_size or settings.referral_outbox_batch_size
        self.poll_interval = poll_interval or settings.referral_poll_interval_seconds
        #: Tests inject crashes here: called with "sent" (the broker acknowledged the
        #: batch) and "dispatched" (Dispatched recorded), both before the position moves.
        self.fail_point = fail_point
        self._producer: KafkaProducer | None = None
        self._topics_ready = False
        super().__init__()
        self.published = 0
        self.last_error: str | None = None
        self.last_published_at: datetime | None = None
        #: Seconds from each sent event's timestamp to the broker's acknowledgement.
        self.publish_lags: list[float] = []
        self.keep_lags = False

    # -- position -----------------------------------------------------------------------

    def position(self) -> int:
        with self.engine.connect() as conn:
            return read_position(conn, self.name)

    def _advance(self, old: int, new: int) -> None:
        with self.engine.begin() as conn:
            advance_position(conn, self.name, self.app.name, old, new)

    def lag(self) -> int:
        """Notifications recorded but not yet looked at by the outbox."""
        return max(0, (self.app.recorder.max_notification_id() or 0) - self.position())

    def status(self) -> dict[str, Any]:
        position = self.position()
        head = self.app.recorder.max_notification_id() or 0
        return {
            "position": position,
            "lag": max(0, head - position),
            "published": self.published,
            "last_published_at": self.last_published_at.isoformat()
            if self.last_published_at
            else None,
            "last_error": self.last_error,
        }

    # -- publishing ---------------------------------------------------------------------

    def _get_producer(self) -> KafkaProducer:
        if self._producer is None:
            if not self._topics_ready:
                ensure_topics(self.settings)
                self._topics_ready = True
            self._producer = make_producer(self.settings, client_id="slrt-outbox")
        return self._producer

    def _reset_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=1)
            except Exception:  # a producer that failed is replaced, not repaired
                log.debug("outbox.producer_close_failed")

    def run_once(self) -> int:
        """Publishes the next batch; returns how many notifications it moved past.
        Raises on a broker error (nothing is recorded; the batch is sent again)."""
        start = self.position()
        notifications = self.app.recorder.select_notifications(
            start=start + 1, limit=self.batch_size
        )
        if not notifications:
            return 0
        events = [self.app.mapper.to_domain_event(n) for n in notifications if n.topic in PUBLISHED]
        if events:
            self._publish(events)
        self._advance(start, notifications[-1].id)
        return len(notifications)

    def _publish(self, events: list[Any]) -> None:
        producer = self._get_producer()
        referrals: dict[UUID, Any] = {}
        futures = []
        for event in events:
            referral = referrals.get(event.originator_id)
            if referral is None:
                # A Created event holds all the message needs: no read for it.
                is_created = type(event).__name__ == "Created"
                referral = (
                    event.mutate(None) if is_created else self.app.get_referral(event.originator_id)
                )
                referrals[event.originator_id] = referral
            message = cloudevents.outbound(event, referral)
            futures.append(
                (
                    event,
                    self.topics.agency(referral.agency),
                    producer.send(
                        self.topics.agency(referral.agency),
                        key=str(referral.household_id),
                        value=cloudevents.encode(message),
                        headers=[
                            ("content-type", cloudevents.CONTENT_TYPE.encode()),
                            ("ce_id", message["id"].encode()),
                            ("ce_type", message["type"].encode()),
                        ],
                    ),
                )
            )
        producer.flush(timeout=20)
        for _, _, future in futures:
            future.get(timeout=0)  # raises the send's error, if any
        acked = datetime.now(UTC)
        if self.keep_lags:
            self.publish_lags.extend((acked - e.timestamp).total_seconds() for e, _, _ in futures)
        self._fail("sent")
        self.app.mark_dispatched(
            {e.originator_id: topic for e, topic, _ in futures if type(e).__name__ == "Created"},
            created={e.originator_id: e for e, _, _ in futures if type(e).__name__ == "Created"},
        )
        self._fail("dispatched")
        self.published += len(futures)
        self.last_published_at = acked

    def _fail(self, point: str) -> None:
        if self.fail_point is not None:
            self.fail_point(point)

    def catch_up(self) -> int:
        total = 0
        while read := self.run_once():
            total += read
        return total

    # -- the background thread ------------------------------------------------------------

    def _stopped(self) -> None:
        self._reset_producer()

    def _loop(self) -> None:
        log.info("outbox.started", position=self.position())
        backoff = 1.0
        while not self._stop.is_set():
            try:
                if self.run_once():
                    self.last_error = None
                    backoff = 1.0
                    continue
            except PositionMoved as error:
                log.info("outbox.position_moved", detail=str(error))
                continue
            except Exception as error:  # broker down, timeouts: back off and resend
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("outbox.publish_failed", error=self.last_error, retry_in=backoff)
                self._reset_producer()
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            self._wake.wait(self.poll_interval)
            self._wake.clear()
        log.info("outbox.stopped", position=self.position())


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Polls `condition` until it holds or `timeout` seconds pass (tests, bench)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True
