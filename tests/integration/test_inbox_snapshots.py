"""An inbox position records an event for every consumed message: it is loaded from its
latest snapshot and the events after it, not replayed from its first event. On SQLite
and on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from uuid import uuid4

import pytest

from slrt.application import SYSTEM_ACTOR, SlrtApplication
from slrt.config import Settings
from slrt.domain.inbox import InboxPosition

TOPIC = "slrt.referral-responses"


class InboxSnapshotScenarios:
    @pytest.fixture
    def settings(self) -> Settings:
        raise NotImplementedError

    @staticmethod
    def consume(app: SlrtApplication, position: InboxPosition, count: int) -> None:
        for _ in range(count):
            position.consume(
                offset=position.next_offset,
                message_id=str(uuid4()),
                referral_id=uuid4(),
                outcome="applied",
                actor=SYSTEM_ACTOR.as_record(),
                timestamp=app.clock(),
            )
            app.save(position)

    def test_a_position_is_loaded_from_its_latest_snapshot_and_the_events_after_it(
        self, app: SlrtApplication
    ) -> None:
        position = app.start_inbox_position(TOPIC, 0)
        self.consume(app, position, 30)
        app.snapshot_inbox_position(position)
        self.consume(app, position, 5)

        loaded = app.start_inbox_position(TOPIC, 0)

        assert (loaded.version, loaded.next_offset, loaded.consumed) == (
            position.version,
            35,
            35,
        )

    def test_a_snapshot_is_what_the_load_starts_from(self, app: SlrtApplication) -> None:
        position = app.start_inbox_position(TOPIC, 1)
        self.consume(app, position, 12)
        taken = InboxPosition.Snapshot.take(position)
        _, snapshots = app._inbox_positions()
        # Stored as if the position had dead-lettered 7 messages by then: a load that
        # starts from the snapshot says 7, a replay of the events 0.
        snapshots.put([replace(taken, state={**taken.state, "dead_lettered": 7})])
        self.consume(app, position, 3)

        loaded = app.inbox_position(position.id)

        assert (loaded.version, loaded.next_offset, loaded.dead_lettered) == (
            position.version,
            15,
            7,
        )
        assert app.repository.get(position.id).dead_lettered == 0  # the events alone


class TestInboxSnapshotsOnSqlite(InboxSnapshotScenarios):
    @pytest.fixture
    def settings(self, sqlite_settings: Settings) -> Settings:
        return sqlite_settings


@pytest.mark.postgres
class TestInboxSnapshotsOnPostgres(InboxSnapshotScenarios):
    @pytest.fixture
    def settings(self, postgres_settings: Settings) -> Settings:
        return postgres_settings
