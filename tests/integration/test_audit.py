"""Tamper evidence, on SQLite and on the real PostgreSQL: history is built through the
real commands, then rows are changed behind the application's back with plain SQL,
as someone with database access would, and `verify` must name what changed."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.application import Application

from slrt import audit, cli
from slrt.application import SlrtApplication
from slrt.config import Settings
from slrt.domain.common import ConcurrentEdit
from slrt.domain.user import User
from slrt.persistence.chain import GENESIS
from tests.builders import (
    ADMIN,
    DINSOS,
    FRONT_OFFICE,
    VILLAGE_HEAD,
    berita_acara,
    default_model,
    household,
    indicators,
)
from tests.conftest import Clock


@dataclass(frozen=True)
class History:
    """What the commands stored: a proposal with versions 1–4 and two households."""

    proposal_id: UUID
    household_id: UUID
    other_household_id: UUID


def positions(
    report: audit.VerificationReport,
) -> list[tuple[str, int | None, str | None, int | None]]:
    return [(f.kind, f.notification_id, f.originator_id, f.version) for f in report.findings]


class AuditScenarios:
    #: The eventsourcing tables of application `slrt`, and the log position column.
    events_table: str
    hashes_table: str
    anchors_table: str
    position_column: str

    @pytest.fixture
    def settings(self) -> Settings:
        raise NotImplementedError

    @pytest.fixture
    def history(self, app: SlrtApplication) -> History:
        app.publish_scoring_model(actor=ADMIN, note="test model", **default_model())
        proposal_id = self.register(app)
        household_id = app.get_proposal(proposal_id).household_id
        other = app.get_proposal(self.register(app)).household_id
        assert household_id is not None and other is not None
        update = app.submit_proposal(
            actor=FRONT_OFFICE,
            kind="update",
            payload={"changes": {"indicators": indicators(14)}},
            household_id=household_id,
        ).id
        self.decide(app, update)
        return History(proposal_id, household_id, other)

    # -- helpers ------------------------------------------------------------------------

    @classmethod
    def register(cls, app: SlrtApplication) -> UUID:
        proposal_id = app.submit_proposal(
            actor=FRONT_OFFICE, kind="register", payload={"household": household()}
        ).id
        cls.decide(app, proposal_id)
        return proposal_id

    @staticmethod
    def decide(app: SlrtApplication, proposal_id: UUID) -> None:
        app.decide_at_village(
            actor=VILLAGE_HEAD, proposal_id=proposal_id, approve=True, berita_acara=berita_acara()
        )
        app.decide_at_dinsos(actor=DINSOS, proposal_id=proposal_id, verify=True)

    def sql(self, settings: Settings, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Runs SQL straight on the database, behind the application's back."""
        raise NotImplementedError

    def db_id(self, originator_id: UUID) -> Any:
        raise NotImplementedError

    def position_of(self, settings: Settings, originator_id: UUID, version: int) -> int:
        [(position,)] = self.sql(
            settings,
            f"SELECT {self.position_column} FROM {self.events_table} "
            "WHERE originator_id = %s AND originator_version = %s",
            self.db_id(originator_id),
            version,
        )
        return int(position)

    def delete_aggregate(self, settings: Settings, originator_id: UUID) -> None:
        for table in (self.events_table, self.hashes_table):
            self.sql(
                settings,
                f"DELETE FROM {table} WHERE originator_id = %s",
                self.db_id(originator_id),
            )

    # -- an untouched store -------------------------------------------------------------

    def test_the_event_tables_are_named_after_the_application(
        self, settings: Settings, history: History
    ) -> None:
        for table in (self.events_table, self.hashes_table, self.anchors_table):
            assert self.sql(settings, f"SELECT COUNT(*) FROM {table}")[0][0] >= 0
        [(events,)] = self.sql(settings, f"SELECT COUNT(*) FROM {self.events_table}")
        [(hashes,)] = self.sql(settings, f"SELECT COUNT(*) FROM {self.hashes_table}")
        assert events == hashes > 10

    def test_an_untouched_store_verifies(self, settings: Settings, history: History) -> None:
        report = audit.verify_store(settings)

        assert report.ok, report.render()
        assert report.events == report.hash_records > 10
        assert report.anchored_up_to is None

    def test_each_event_is_chained_to_the_previous_event_of_its_aggregate(
        self, app: SlrtApplication, settings: Settings, history: History
    ) -> None:
        records = {
            r.originator_version: r
            for r in audit.audited_recorder(app).select_hash_records(None, 1000)
            if r.originator_id == history.proposal_id
        }
        assert sorted(records) == [1, 2, 3, 4]
        assert records[1].previous_hash == GENESIS
        for version in (2, 3, 4):
            assert records[version].previous_hash == records[version - 1].hash
            assert records[version].notification_id == self.position_of(
                settings, history.proposal_id, version
            )

    def test_anchors_cover_the_log_as_it_grows(
        self, app: SlrtApplication, settings: Settings, history: History
    ) -> None:
        first = audit.anchor_store(settings, note="monthly")
        self.register(app)
        second = audit.anchor_store(settings)
        third = audit.anchor_store(settings)

        assert first is not None and second is not None
        assert second.max_notification_id > first.max_notification_id
        assert third == second  # nothing new to anchor
        report = audit.verify_store(settings)
        assert report.ok, report.render()
        assert (report.anchors, report.anchored_up_to) == (2, second.max_notification_id)

    # -- tampering ----------------------------------------------------------------------

    def test_an_altered_event_is_named_with_its_position(
        self, settings: Settings, history: History
    ) -> None:
        position = self.position_of(settings, history.proposal_id, 2)
        self.sql(
            settings,
            f"UPDATE {self.events_table} SET state = %s "
            "WHERE originator_id = %s AND originator_version = %s",
            b'{"approve": false}',
            self.db_id(history.proposal_id),
            2,
        )

        report = audit.verify_store(settings)

        assert positions(report) == [("altered", position, str(history.proposal_id), 2)]

    def test_a_deleted_event_is_reported_removed(
        self, settings: Settings, history: History
    ) -> None:
        position = self.position_of(settings, history.proposal_id, 2)
        self.sql(
            settings,
            f"DELETE FROM {self.events_table} WHERE {self.position_column} = %s",
            position,
        )

        report = audit.verify_store(settings)

        assert positions(report) == [("removed", position, str(history.proposal_id), 2)]

    def test_an_event_deleted_with_its_hash_record_leaves_a_gap_in_the_chain(
        self, settings: Settings, history: History
    ) -> None:
        before = self.position_of(settings, history.proposal_id, 1)
        after = self.position_of(settings, history.proposal_id, 3)
        for table in (self.events_table, self.hashes_table):
            self.sql(
                settings,
                f"DELETE FROM {table} WHERE originator_id = %s AND originator_version = 2",
                self.db_id(history.proposal_id),
            )

        report = audit.verify_store(settings)

        assert positions(report) == [("removed", None, str(history.proposal_id), 2)]
        assert f"between notifications {before} and {after}" in report.findings[0].detail

    def test_two_swapped_events_of_an_aggregate_are_reported_reordered(
        self, settings: Settings, history: History
    ) -> None:
        oid = self.db_id(history.proposal_id)
        rows = self.sql(
            settings,
            f"SELECT originator_version, topic, state FROM {self.events_table} "
            "WHERE originator_id = %s AND originator_version IN (2, 3)",
            oid,
        )
        content = {version: (topic, bytes(state)) for version, topic, state in rows}
        for version, other in ((2, 3), (3, 2)):
            self.sql(
                settings,
                f"UPDATE {self.events_table} SET topic = %s, state = %s "
                "WHERE originator_id = %s AND originator_version = %s",
                *content[other],
                oid,
                version,
            )

        report = audit.verify_store(settings)

        pid = str(history.proposal_id)
        assert positions(report) == [
            ("reordered", self.position_of(settings, history.proposal_id, 2), pid, 2),
            ("reordered", self.position_of(settings, history.proposal_id, 3), pid, 3),
        ]
        assert "holds the event recorded as version 3" in report.findings[0].detail

    def test_events_moved_to_other_log_positions_are_reported_reordered(
        self, settings: Settings, history: History
    ) -> None:
        second = self.position_of(settings, history.proposal_id, 2)
        third = self.position_of(settings, history.proposal_id, 3)
        swap = f"UPDATE {self.events_table} SET {self.position_column} = %s "
        swap += f"WHERE {self.position_column} = %s"
        self.sql(settings, swap, -1, second)
        self.sql(settings, swap, second, third)
        self.sql(settings, swap, third, -1)

        report = audit.verify_store(settings)

        pid = str(history.proposal_id)
        assert positions(report) == [("reordered", second, pid, 3), ("reordered", third, pid, 2)]
        assert f"recorded at notification {second}, now at {third}" in report.findings[1].detail

    def test_an_event_without_a_hash_record_is_reported_inserted(
        self, settings: Settings, history: History
    ) -> None:
        position = self.position_of(settings, history.other_household_id, 1)
        self.sql(
            settings,
            f"DELETE FROM {self.hashes_table} WHERE notification_id = %s",
            position,
        )

        report = audit.verify_store(settings)

        assert positions(report) == [("inserted", position, str(history.other_household_id), 1)]

    # -- checking some records' chains only (a dossier's) ---------------------------

    def test_a_records_check_reads_those_records_only(
        self, app: SlrtApplication, settings: Settings, history: History
    ) -> None:
        ids = [history.proposal_id, history.household_id]
        [(events,)] = self.sql(
            settings,
            f"SELECT COUNT(*) FROM {self.events_table} WHERE originator_id IN (%s, %s)",
            *map(self.db_id, ids),
        )
        self.sql(
            settings,
            f"UPDATE {self.events_table} SET state = %s WHERE originator_id = %s",
            b"{}",
            self.db_id(history.other_household_id),
        )

        report = audit.verify_chains(audit.audited_recorder(app), ids)

        assert report.ok, report.render()
        assert (report.aggregates, report.events, report.hash_records) == (2, events, events)
        assert not audit.verify_store(settings).ok
        assert "2 record(s)" in report.render() and "slrt audit verify" in report.render()

    @pytest.mark.parametrize(
        "tampering",
        [
            "alter_one_event",
            "delete_one_event",
            "delete_one_event_and_its_hash",
            "delete_first_events_and_their_hashes",
            "swap_log_positions",
            "swap_log_positions_with_their_hashes",
            "delete_one_hash",
        ],
    )
    def test_a_records_check_names_what_the_whole_log_check_names(
        self, app: SlrtApplication, settings: Settings, history: History, tampering: str
    ) -> None:
        getattr(self, tampering)(settings, history.proposal_id)
        ids = [history.household_id, history.proposal_id, history.other_household_id]

        found = positions(audit.verify_chains(audit.audited_recorder(app), ids))

        assert found and found == positions(audit.verify_store(settings))

    def alter_one_event(self, settings: Settings, oid: UUID) -> None:
        self.sql(
            settings,
            f"UPDATE {self.events_table} SET state = %s "
            "WHERE originator_id = %s AND originator_version = 2",
            b"{}",
            self.db_id(oid),
        )

    def delete_one_event(self, settings: Settings, oid: UUID) -> None:
        self.sql(
            settings,
            f"DELETE FROM {self.events_table} WHERE originator_id = %s AND originator_version = 3",
            self.db_id(oid),
        )

    def delete_one_event_and_its_hash(self, settings: Settings, oid: UUID) -> None:
        for table in (self.events_table, self.hashes_table):
            self.sql(
                settings,
                f"DELETE FROM {table} WHERE originator_id = %s AND originator_version = 2",
                self.db_id(oid),
            )

    def delete_first_events_and_their_hashes(self, settings: Settings, oid: UUID) -> None:
        for table in (self.events_table, self.hashes_table):
            self.sql(
                settings,
                f"DELETE FROM {table} WHERE originator_id = %s AND originator_version <= 2",
                self.db_id(oid),
            )

    def swap_log_positions(self, settings: Settings, oid: UUID) -> None:
        second, third = self.position_of(settings, oid, 2), self.position_of(settings, oid, 3)
        swap = f"UPDATE {self.events_table} SET {self.position_column} = %s "
        swap += f"WHERE {self.position_column} = %s"
        for new, old in ((-1, second), (second, third), (third, -1)):
            self.sql(settings, swap, new, old)

    def swap_log_positions_with_their_hashes(self, settings: Settings, oid: UUID) -> None:
        second, third = self.position_of(settings, oid, 2), self.position_of(settings, oid, 3)
        self.swap_log_positions(settings, oid)
        swap = f"UPDATE {self.hashes_table} SET notification_id = %s "
        swap += "WHERE notification_id = %s"
        for new, old in ((-1, second), (second, third), (third, -1)):
            self.sql(settings, swap, new, old)

    def delete_one_hash(self, settings: Settings, oid: UUID) -> None:
        self.sql(
            settings,
            f"DELETE FROM {self.hashes_table} WHERE originator_id = %s AND originator_version = 1",
            self.db_id(oid),
        )

    def test_an_anchor_catches_a_whole_aggregate_removed_with_its_hashes(
        self, settings: Settings, history: History
    ) -> None:
        anchor = audit.anchor_store(settings)
        assert anchor is not None
        self.delete_aggregate(settings, history.other_household_id)

        report = audit.verify_store(settings)

        assert positions(report) == [("removed", anchor.max_notification_id, None, None)]
        assert "1 removed" in report.findings[0].detail

    def test_an_anchor_catches_the_end_of_the_log_cut_off(
        self, settings: Settings, history: History
    ) -> None:
        anchor = audit.anchor_store(settings)
        assert anchor is not None
        for table, column in (
            (self.events_table, self.position_column),
            (self.hashes_table, "notification_id"),
        ):
            self.sql(
                settings, f"DELETE FROM {table} WHERE {column} > %s", anchor.max_notification_id - 2
            )

        report = audit.verify_store(settings)

        assert positions(report) == [("removed", anchor.max_notification_id, None, None)]
        assert "2 removed" in report.findings[0].detail
        assert f"ends at notification {anchor.max_notification_id - 2}" in report.render()

    def test_an_anchor_kept_outside_catches_a_rewrite_that_also_removed_the_anchors(
        self, settings: Settings, history: History
    ) -> None:
        anchor = audit.anchor_store(settings)
        assert anchor is not None
        kept = audit.ExternalAnchor.parse(
            str(audit.ExternalAnchor(anchor.max_notification_id, anchor.digest))
        )
        self.delete_aggregate(settings, history.other_household_id)
        self.sql(settings, f"DELETE FROM {self.anchors_table}")

        assert audit.verify_store(settings).ok  # the database alone can no longer tell
        report = audit.verify_store(settings, external_anchors=[kept])
        assert positions(report) == [("altered", anchor.max_notification_id, None, None)]

    def test_an_encrypted_store_is_verified_without_decrypting(
        self, settings: Settings, clock: Clock
    ) -> None:
        key = base64.b64encode(os.urandom(32)).decode()
        encrypted = settings.model_copy(update={"cipher_key": key})
        app = SlrtApplication(encrypted, clock=clock)
        try:
            app.publish_scoring_model(actor=ADMIN, note="test model", **default_model())
            proposal_id = self.register(app)
        finally:
            app.close()
        position = self.position_of(settings, proposal_id, 1)
        self.sql(
            settings,
            f"UPDATE {self.events_table} SET state = %s WHERE {self.position_column} = %s",
            b"not even ciphertext",
            position,
        )
        without_key = settings.model_copy(update={"cipher_key": None})

        report = audit.verify_store(without_key)

        assert positions(report) == [("altered", position, str(proposal_id), 1)]

    # -- the write path -----------------------------------------------------------------

    def test_an_event_is_not_stored_when_its_hash_record_cannot_be(
        self, app: SlrtApplication, settings: Settings
    ) -> None:
        user_id = User.create_id("ghost")
        self.sql(
            settings,
            f"INSERT INTO {self.hashes_table} "
            "(originator_id, originator_version, notification_id, previous_hash, hash) "
            "VALUES (%s, 1, 999, %s, %s)",
            self.db_id(user_id),
            GENESIS,
            GENESIS,
        )

        with pytest.raises(ConcurrentEdit):
            app.register_user(actor=ADMIN, user_id="ghost", role="front_office", region="64.74")

        assert not app.has_user("ghost")
        assert (app.recorder.max_notification_id() or 0) == 0

    def test_history_stored_before_hashing_is_sealed_once_and_noted(
        self, settings: Settings, clock: Clock
    ) -> None:
        env = settings.eventsourcing_env()
        env["PERSISTENCE_MODULE"] = env["PERSISTENCE_MODULE"].replace(
            "slrt.persistence", "eventsourcing"
        )
        legacy = LegacyApplication(env=env)
        user = User.register(
            user_id="old", role="admin", region="ID", agency=None, actor={}, timestamp=clock()
        )
        legacy.save(user)
        user.deactivate(actor={}, timestamp=clock())
        legacy.save(user)
        legacy.close()

        app = SlrtApplication(settings, clock=clock)
        app.close()

        report = audit.verify_store(settings)
        assert report.ok, report.render()
        assert (report.events, report.anchors, report.anchored_up_to) == (2, 1, 2)
        [(note,)] = self.sql(settings, f"SELECT note FROM {self.anchors_table}")
        assert "sealed history" in note

    # -- the command --------------------------------------------------------------------

    def test_the_command_exits_1_and_names_what_was_tampered(
        self, settings: Settings, history: History, capsys: pytest.CaptureFixture[str]
    ) -> None:
        def run(*argv: str) -> int:
            return cli._audit(settings, cli.parser().parse_args(["audit", *argv]))

        assert run("anchor", "--note", "BA/001") == 0
        assert "anchor #1" in capsys.readouterr().out
        assert run("verify") == 0
        assert "OK" in capsys.readouterr().out

        position = self.position_of(settings, history.household_id, 1)
        self.sql(
            settings,
            f"UPDATE {self.events_table} SET topic = %s WHERE {self.position_column} = %s",
            "slrt.domain.household:Household.Removed",
            position,
        )

        assert run("verify", "--json") == 1
        out = json.loads(capsys.readouterr().out)
        assert out["ok"] is False
        assert out["findings"][0]["notification_id"] == position
        assert out["findings"][0]["originator_id"] == str(history.household_id)
        assert run("anchor") == 1  # a tampered log is not anchored
        assert "not anchored" in capsys.readouterr().err

    def test_a_dossier_checks_its_own_records_or_the_whole_store(
        self, settings: Settings, history: History, tmp_path: Path
    ) -> None:
        def dossier(household_id: UUID, *options: str) -> str:
            out = tmp_path / "dossier.html"
            argv = ["inspect", "household", str(household_id), "--out", str(out), *options]
            assert cli._inspect(settings, cli.parser().parse_args(argv)) == 0
            html = out.read_text(encoding="utf-8")
            return html.split("<h2>Hash chain verification</h2>")[1].split("<h2>")[0]

        assert "class='ok'>intact" in dossier(history.household_id)
        # The village decision's berita acara number rewritten in place (still an event
        # that decodes, so the dossier can show it).
        oid = self.db_id(history.proposal_id)
        [(state,)] = self.sql(
            settings,
            f"SELECT state FROM {self.events_table} "
            "WHERE originator_id = %s AND originator_version = 2",
            oid,
        )
        assert b"BA/001/XI/2026" in bytes(state)
        self.sql(
            settings,
            f"UPDATE {self.events_table} SET state = %s "
            "WHERE originator_id = %s AND originator_version = 2",
            bytes(state).replace(b"BA/001/XI/2026", b"BA/999/XI/2026"),
            oid,
        )

        tampered = dossier(history.household_id)
        assert "NOT intact" in tampered and "record(s)" in tampered
        assert f"aggregate {history.proposal_id} version 2" in tampered
        assert "class='ok'>intact" in dossier(history.other_household_id)
        whole = dossier(history.other_household_id, "--verify", "store")
        assert "NOT intact" in whole and "anchor(s)" in whole
        assert "not requested" in dossier(history.household_id, "--no-verify")


class LegacyApplication(Application[UUID]):
    """SLRT's store as the library alone wrote it, before hash records existed."""

    name = "slrt"


class TestOnSQLite(AuditScenarios):
    events_table = "stored_events"
    hashes_table = "stored_event_hashes"
    anchors_table = "stored_audit_anchors"
    position_column = "rowid"

    @pytest.fixture
    def settings(self, sqlite_settings: Settings) -> Settings:
        return sqlite_settings

    def sql(self, settings: Settings, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(settings.sqlite_path) as conn:
            return conn.execute(statement.replace("%s", "?"), params).fetchall()

    def db_id(self, originator_id: UUID) -> Any:
        return originator_id.hex


@pytest.mark.postgres
class TestOnPostgres(AuditScenarios):
    events_table = "slrt_events"
    hashes_table = "slrt_event_hashes"
    anchors_table = "slrt_audit_anchors"
    position_column = "notification_id"

    @pytest.fixture
    def settings(self, postgres_settings: Settings) -> Settings:
        return postgres_settings

    def sql(self, settings: Settings, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            cursor = conn.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def db_id(self, originator_id: UUID) -> Any:
        return originator_id
