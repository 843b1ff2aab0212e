"""How actively each region updates its data: the steps of its desa's proposals per day
in the desa's own time zone, every listed region shown (the idle ones too), the most
active first; rebuilt from zero to the same report. On SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text

from slrt.config import Settings
from slrt.domain.common import Actor, InvalidInput, Role
from slrt.domain.reference import desa_count, regions_below
from slrt.projections.region_activity import activity_period, activity_report
from slrt.runtime import Runtime
from tests.builders import (
    DINSOS,
    FRONT_OFFICE,
    OTHER_DESA,
    VILLAGE_HEAD,
    berita_acara,
    household,
    indicators,
)
from tests.conftest import Clock

OTHER_FRONT_OFFICE = Actor("fo-other", Role.FRONT_OFFICE, OTHER_DESA)
OTHER_VILLAGE_HEAD = Actor("kades-other", Role.VILLAGE_HEAD, OTHER_DESA)
JAKARTA_DESA = regions_below("31.71", 13)[0]  # WIB: an hour behind Bontang's WITA
JAKARTA = {
    "front_office": Actor("fo-jakarta", Role.FRONT_OFFICE, JAKARTA_DESA),
    "village_head": Actor("kades-jakarta", Role.VILLAGE_HEAD, JAKARTA_DESA),
}
NOV_20, NOV_21 = date(2026, 11, 20), date(2026, 11, 21)


class RegionActivityScenarios:
    @pytest.fixture
    def settings(self) -> Settings:
        raise NotImplementedError

    @staticmethod
    def submit(
        runtime: Runtime, actor: Actor, kind: str, payload: Any, hid: UUID | None = None
    ) -> UUID:
        proposal_id: UUID = runtime.app.submit_proposal(
            actor=actor, kind=kind, payload=payload, household_id=hid
        ).id
        return proposal_id

    def activity(self, runtime: Runtime, clock: Clock) -> None:
        """Bontang Kuala (64.74.01.1001, WITA): a registration submitted at 23:30 on the
        20th, approved and applied on the 21st, then an update applied and a withdrawal;
        64.74.02.1001: a registration rejected at the village; a Jakarta desa (WIB): a
        registration submitted at 23:30 WITA on the 20th, which is 22:30 there."""
        clock.now = clock.now.replace(hour=15, minute=30)  # 23:30 WITA, 22:30 WIB, 20 Nov
        added = self.submit(runtime, FRONT_OFFICE, "register", {"household": household()})
        jakarta = self.submit(
            runtime,
            JAKARTA["front_office"],
            "register",
            {"household": household(region=JAKARTA_DESA)},
        )
        clock.advance(hours=1)  # 00:30 WITA on the 21st, 23:30 WIB still the 20th
        runtime.app.decide_at_village(
            actor=VILLAGE_HEAD, proposal_id=added, approve=True, berita_acara=berita_acara()
        )
        runtime.app.decide_at_village(
            actor=JAKARTA["village_head"],
            proposal_id=jakarta,
            approve=True,
            berita_acara=berita_acara(),
        )
        clock.advance(hours=8)  # the 21st everywhere
        runtime.app.decide_at_dinsos(actor=DINSOS, proposal_id=added, verify=True)
        hid = runtime.app.get_proposal(added).household_id
        changed = self.submit(
            runtime, FRONT_OFFICE, "update", {"changes": {"indicators": indicators(12)}}, hid
        )
        runtime.app.decide_at_village(
            actor=VILLAGE_HEAD, proposal_id=changed, approve=True, berita_acara=berita_acara()
        )
        runtime.app.decide_at_dinsos(actor=DINSOS, proposal_id=changed, verify=True)
        dropped = self.submit(
            runtime, FRONT_OFFICE, "update", {"changes": {"indicators": indicators(3)}}, hid
        )
        runtime.app.withdraw_proposal(actor=FRONT_OFFICE, proposal_id=dropped, reason="salah")
        rejected = self.submit(
            runtime, OTHER_FRONT_OFFICE, "register", {"household": household(region=OTHER_DESA)}
        )
        runtime.app.decide_at_village(
            actor=OTHER_VILLAGE_HEAD,
            proposal_id=rejected,
            approve=False,
            reason="bukan warga",
            berita_acara=berita_acara(),
        )
        runtime.catch_up()

    @staticmethod
    def report(
        runtime: Runtime, region: str | None, by: str, start: date, end: date
    ) -> dict[str, Any]:
        with runtime.engine.connect() as conn:
            return activity_report(conn, region=region, by=by, start=start, end=end)

    def test_each_step_is_counted_for_its_desa_and_the_most_active_come_first(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        self.activity(runtime, clock)

        report = self.report(runtime, "64.74", "kecamatan", NOV_20, NOV_21)

        assert [r["code"] for r in report["items"]] == ["64.74.01", "64.74.02", "64.74.03"]
        utara, selatan, barat = report["items"]
        assert utara | {"applied": None} == {
            "code": "64.74.01",
            "name": "Bontang Utara",
            "submitted": 3,
            "village_approved": 2,
            "village_rejected": 0,
            "dinsos_verified": 2,
            "returned": 0,
            "withdrawn": 1,
            "applied": None,
            "applied_total": 2,
            "desa_active": 1,
            "desa_total": desa_count("64.74.01"),
            "last_active_on": NOV_21,
        }
        assert utara["applied"] == {
            "register": 1,
            "update": 1,
            "remove": 0,
            "enrol": 0,
            "unenrol": 0,
        }
        assert (selatan["submitted"], selatan["village_rejected"], selatan["applied_total"]) == (
            1,
            1,
            0,
        )
        assert barat["submitted"] == barat["desa_active"] == 0
        assert barat["last_active_on"] is None
        assert report["summary"] == {
            "regions": 3,
            "regions_updated": 1,
            "regions_active": 2,
            "proposals_submitted": 4,
            "households_changed": 2,
            "desa_active": 2,
            "desa_total": desa_count("64.74"),
        }

    def test_days_are_the_desa_s_own_local_days(self, runtime: Runtime, clock: Clock) -> None:
        self.activity(runtime, clock)

        bontang_20th = self.report(runtime, "64.74.01.1001", "desa", NOV_20, NOV_20)
        jakarta_20th = self.report(runtime, JAKARTA_DESA, "desa", NOV_20, NOV_20)

        # Submitted at 23:30 WITA, approved at 00:30 WITA the next day; in Jakarta both
        # at 22:30 and 23:30 WIB on the 20th.
        [bontang] = bontang_20th["items"]
        [jakarta] = jakarta_20th["items"]
        assert (bontang["submitted"], bontang["village_approved"]) == (1, 0)
        assert (jakarta["submitted"], jakarta["village_approved"]) == (1, 1)

    def test_the_country_lists_every_kabupaten_kota(self, runtime: Runtime, clock: Clock) -> None:
        self.activity(runtime, clock)

        report = self.report(runtime, None, "kabupaten", NOV_20, NOV_21)

        assert report["summary"]["regions"] == len(report["items"]) == 514
        assert [r["code"] for r in report["items"][:2]] == ["64.74", "31.71"]
        assert report["summary"]["regions_updated"] == 1
        assert report["summary"]["regions_active"] == 2
        assert report["summary"]["desa_total"] == desa_count(None)

    def test_a_period_outside_the_activity_counts_nothing(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        self.activity(runtime, clock)

        report = self.report(runtime, "64.74", "desa", date(2026, 11, 22), date(2026, 12, 31))

        assert report["summary"]["proposals_submitted"] == 0
        assert report["summary"]["regions"] == desa_count("64.74")

    def test_a_rebuild_from_zero_gives_the_same_report(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        self.activity(runtime, clock)
        live = self.report(runtime, None, "desa", NOV_20, NOV_21)["items"][:5]

        worker = runtime.workers["region_activity"]
        worker.reset()
        worker.batch_size = worker.max_batch_size = 3  # many batches: proposals span them
        worker.catch_up()

        assert self.report(runtime, None, "desa", NOV_20, NOV_21)["items"][:5] == live
        assert live[0]["applied_total"] == 2


class TestRegionActivityOnSqlite(RegionActivityScenarios):
    @pytest.fixture
    def settings(self, sqlite_settings: Settings) -> Settings:
        return sqlite_settings


@pytest.mark.postgres
class TestRegionActivityOnPostgres(RegionActivityScenarios):
    @pytest.fixture
    def settings(self, postgres_settings: Settings) -> Settings:
        return postgres_settings

    def test_each_report_is_planned_for_its_own_period(
        self, runtime: Runtime, clock: Clock
    ) -> None:
        """A statement run often is prepared (psycopg), and PostgreSQL then may keep one
        generic plan for every period: a month's plan for a year took the country's
        report from ~1 s to ~2 s (bench/README.md, twenty-fourth session)."""
        self.activity(runtime, clock)
        with runtime.engine.connect() as conn:
            for _ in range(12):
                activity_report(conn, region=None, by="kabupaten", start=NOV_20, end=NOV_21)
            plans = conn.execute(
                text(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
                    "WHERE statement LIKE 'SELECT %FROM region_activity%'"
                )
            ).all()
        assert len(plans) == 2  # the report's two, prepared as any statement run this often
        assert [generic for generic, _ in plans] == [0] * len(plans)
        assert all(custom >= 6 for _, custom in plans)


@pytest.mark.parametrize(
    ("region", "by", "start", "end", "field"),
    [
        ("64.74", "province", None, None, "by"),
        ("64.74.01.1001", "kecamatan", None, None, "by"),
        ("64.74", None, NOV_21, NOV_20, "from"),
        ("ID", None, date(2020, 1, 1), NOV_20, "from"),
    ],
)
def test_a_period_or_level_that_cannot_be_reported_is_refused(
    region: str, by: str | None, start: date | None, end: date | None, field: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        activity_period(region=region, by=by, start=start, end=end, today=NOV_21)
    assert refused.value.context.get("field") == field


def test_the_default_period_is_the_30_days_to_today_at_the_level_below() -> None:
    assert activity_period(region="ID", by=None, start=None, end=None, today=NOV_21) == {
        "by": "kabupaten",
        "start": date(2026, 10, 23),
        "end": NOV_21,
    }
    assert (
        activity_period(region="64.74", by=None, start=None, end=None, today=NOV_21)["by"]
        == "kecamatan"
    )
