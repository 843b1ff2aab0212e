"""GET /api/v1/regions/activity: a region's activity in updating its data, over HTTP."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.api.test_proposals_api import assert_problem, register, submit
from tests.builders import ADMIN, DINSOS, FRONT_OFFICE, INSPECTOR

ACTIVITY = "/api/v1/regions/activity"


def test_dinsos_sees_its_kecamatan_most_active_first(api: Api) -> None:
    register(api)
    submit(api)
    api.runtime.catch_up()

    answer = api.get(ACTIVITY, DINSOS)

    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["region"], report["region_name"], report["by"]) == (
        "64.74",
        "Kota Bontang",
        "kecamatan",
    )
    assert (report["from"], report["to"]) == ("2026-10-22", "2026-11-20")  # the clock's day
    assert [item["code"] for item in report["items"]] == ["64.74.01", "64.74.02", "64.74.03"]
    first = report["items"][0]
    assert (first["submitted"], first["applied"]["register"], first["applied_total"]) == (2, 1, 1)
    assert report["summary"]["regions_updated"] == 1
    assert report["read_model"]["name"] == "region_activity"
    assert report["read_model"]["lag"] == 0


def test_the_country_by_kabupaten_pages_through_every_one(api: Api) -> None:
    register(api)
    api.runtime.catch_up()

    page = api.get(ACTIVITY, ADMIN, params={"region": "ID", "limit": 2, "offset": 1}).json()

    assert (page["total"], page["limit"], page["offset"], len(page["items"])) == (514, 2, 1, 2)
    assert page["items"][0]["applied_total"] == 0  # the only active one, 64.74, was first


def test_an_inspector_s_read_is_recorded(api: Api) -> None:
    before = api.events()
    assert api.get(ACTIVITY, INSPECTOR, params={"region": "64"}).status_code == 200
    assert api.events() == before + 1


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"by": "province"}, "at or below"),
        ({"from": "2026-11-20", "to": "2026-11-01"}, "on or before"),
        ({"from": "2020-01-01"}, "days at most"),
        ({"from": "2026-13-01"}, "from"),
        ({"region": "64.74.09"}, "not a Kemendagri region"),
        ({"region": "Bontang"}, "region"),
        ({"by": "rt"}, "by"),
    ],
)
def test_a_report_that_cannot_be_made_is_a_problem(
    api: Api, params: dict[str, str], mentions: str
) -> None:
    before = api.events()
    assert_problem(api.get(ACTIVITY, DINSOS, params=params), 422, mentions=mentions)
    assert api.events() == before


def test_another_region_is_forbidden(api: Api) -> None:
    assert_problem(api.get(ACTIVITY, FRONT_OFFICE, params={"region": "64.74"}), 403, mentions="")
