"""Inspection over HTTP: timeline, as-of replay, rank audit and dossier, on SQLite and
PostgreSQL. Reads only, region rules as for every read, inspectors' reads recorded."""

from __future__ import annotations

from typing import Any

from slrt.domain.common import Actor, Role
from tests.api.conftest import Api
from tests.api.test_proposals_api import PROPOSALS, approve, register, submit, verify
from tests.builders import (
    ADMIN,
    FRONT_OFFICE,
    INSPECTOR,
    OTHER_DESA,
    default_model,
    household,
    indicators,
)
from tests.conftest import Clock

HOUSEHOLDS = "/api/v1/households"
OTHER_FRONT_OFFICE = Actor("fo-other", Role.FRONT_OFFICE, OTHER_DESA)


def publish_model(api: Api) -> None:
    assert (
        api.post("/api/v1/scoring-models", ADMIN, {**default_model(), "note": "v1"}).status_code
        == 201
    )


def update(api: Api, household_id: str, deprived: int) -> str:
    body = {
        "kind": "update",
        "household_id": household_id,
        "changes": {"indicators": indicators(deprived)},
    }
    answer = submit(api, body)
    assert answer.status_code == 201, answer.text
    proposal_id: str = answer.json()["id"]
    assert approve(api, proposal_id).status_code == 200
    assert verify(api, proposal_id).status_code == 200
    return proposal_id


def recorded_reads(api: Api, after: int) -> list[tuple[str, str]]:
    events: list[Any] = [
        api.runtime.app.mapper.to_domain_event(n)
        for n in api.runtime.app.recorder.select_notifications(start=after + 1, limit=100)
    ]
    return [(e.resource, e.actor["user_id"]) for e in events]


def test_inspector_reads_the_timeline_and_the_read_is_recorded(api: Api, clock: Clock) -> None:
    publish_model(api)
    household_id = register(api, deprived=8)
    api.runtime.catch_up()
    before = api.events()

    answer = api.get(f"{HOUSEHOLDS}/{household_id}/history", INSPECTOR, params={"limit": 3})

    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["total"] > 3 and len(page["items"]) == 3
    first = page["items"][0]
    assert first["what"] == "Proposal.Submitted" and first["at"].endswith("+08:00")
    assert recorded_reads(api, before) == [("household_history", INSPECTOR.user_id)]
    only = api.get(
        f"{HOUSEHOLDS}/{household_id}/history", INSPECTOR, params={"kind": "household"}
    ).json()
    assert [i["what"] for i in only["items"]] == ["Household.Registered"]


def test_timeline_names_the_request_that_caused_each_event(api: Api, clock: Clock) -> None:
    publish_model(api)
    body = {"kind": "register", "household": household(deprived=8)}
    submitted = api.post(PROPOSALS, FRONT_OFFICE, body, headers={"X-Request-ID": "req-submit-1"})
    assert submitted.headers["X-Request-ID"] == "req-submit-1"
    proposal_id = submitted.json()["id"]
    assert approve(api, proposal_id).status_code == 200
    verified = verify(api, proposal_id)
    household_id = verified.json()["household_id"]
    api.runtime.catch_up()

    items = api.get(f"{HOUSEHOLDS}/{household_id}/history", INSPECTOR).json()["items"]

    by_event = {i["what"]: i.get("request_id") for i in items}
    assert by_event["Proposal.Submitted"] == "req-submit-1"
    # Requests without the header get a generated id, answered in X-Request-ID.
    assert by_event["Proposal.DinsosVerified"] == verified.headers["X-Request-ID"]
    assert by_event["Household.Registered"] == verified.headers["X-Request-ID"]
    assert by_event["Proposal.VillageApproved"] not in (None, by_event["Proposal.DinsosVerified"])


def test_a_request_id_that_is_not_a_plain_token_is_replaced(api: Api) -> None:
    for given in ("has spaces in it", "x" * 65, "line\nbreak"):
        answer = api.client.get("/api/v1/health", headers={"X-Request-ID": given})
        assert answer.status_code == 200
        assert answer.headers["X-Request-ID"] != given
        assert len(answer.headers["X-Request-ID"]) == 32


def test_as_of_returns_the_household_as_the_system_knew_it(api: Api, clock: Clock) -> None:
    publish_model(api)
    household_id = register(api, deprived=8)
    clock.advance(hours=1)
    middle = clock.now
    clock.advance(hours=1)
    update(api, household_id, 12)
    api.runtime.catch_up()

    then = api.get(f"{HOUSEHOLDS}/{household_id}", INSPECTOR, params={"as_of": middle.isoformat()})
    now = api.get(f"{HOUSEHOLDS}/{household_id}", INSPECTOR).json()

    assert then.status_code == 200, then.text
    assert then.json()["indicators"] == indicators(8)
    assert now["indicators"] == indicators(12)
    assert then.json()["version"] == 1 and now["version"] == 2
    assert then.json()["score"] > now["score"]
    assert (then.json()["rank"], then.json()["desil"]) == (1, 1)


def test_rank_explanation_names_the_household_that_entered_ahead(api: Api, clock: Clock) -> None:
    publish_model(api)
    household_id = register(api, deprived=6)
    clock.advance(hours=1)
    start = clock.now
    clock.advance(hours=1)
    poorer = register(api, deprived=13)
    api.runtime.catch_up()

    answer = api.get(
        f"{HOUSEHOLDS}/{household_id}/rank-explanation",
        INSPECTOR,
        params={"from": start.isoformat()},
    )

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["before"]["rank"], body["after"]["rank"]) == (1, 2)
    entered = body["causes"]["population"]["entered_ahead"]["households"]
    assert [e["household_id"] for e in entered] == [poorer]
    assert "rumah tangga" in body["summary"]["id"] and "household" in body["summary"]["en"]
    history = api.get(f"{HOUSEHOLDS}/{household_id}/rank-history", INSPECTOR).json()
    assert [(p["rank"], p["desil"]) for p in history["points"]][-2:] == [(1, 1), (2, 6)]
    path = f"{HOUSEHOLDS}/{household_id}/rank-history"
    desil = api.get(path, INSPECTOR, params={"changes": "desil"}).json()
    assert (desil["changes"], desil["not_listed"]) == ("desil", 0)  # every move changed it
    assert desil["points"] == history["points"]
    refused = api.get(path, INSPECTOR, params={"changes": "score"})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"


def test_rank_history_comes_in_pages_with_its_total(api: Api, clock: Clock) -> None:
    publish_model(api)
    household_id = register(api, deprived=6)
    for deprived in (13, 12, 11, 10):  # each poorer one enters ahead: the rank moves
        clock.advance(hours=1)
        register(api, deprived=deprived)
    api.runtime.catch_up()
    path = f"{HOUSEHOLDS}/{household_id}/rank-history"

    every = api.get(path, INSPECTOR).json()
    page = api.get(path, INSPECTOR, params={"limit": 2, "offset": 1}).json()
    beyond = api.get(path, INSPECTOR, params={"offset": 50}).json()

    assert every["total"] == len(every["points"]) >= 5
    assert [p["rank"] for p in every["points"]][-5:] == [1, 2, 3, 4, 5]
    assert (page["total"], page["limit"], page["offset"]) == (every["total"], 2, 1)
    assert page["points"] == every["points"][1:3]
    assert (beyond["total"], beyond["points"]) == (every["total"], [])
    for wrong in ({"limit": 0}, {"limit": 100_001}, {"offset": -1}):
        refused = api.get(path, INSPECTOR, params=wrong)
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"


def test_dossier_is_one_self_contained_html_page(api: Api) -> None:
    publish_model(api)
    household_id = register(api, deprived=8)
    api.runtime.catch_up()

    answer = api.get(f"{HOUSEHOLDS}/{household_id}/dossier", INSPECTOR, params={"verify": False})

    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert "<svg" in answer.text and "<script" not in answer.text


def test_dossier_verifies_its_own_records_unless_asked_for_the_whole_store(api: Api) -> None:
    household_id = register(api, deprived=8)
    api.runtime.catch_up()
    path = f"{HOUSEHOLDS}/{household_id}/dossier"

    def verification(verify: str | None) -> str:
        params = {} if verify is None else {"verify": verify}
        answer = api.get(path, INSPECTOR, params=params)
        assert answer.status_code == 200, answer.text
        return answer.text.split("<h2>Hash chain verification</h2>")[1].split("<h2>")[0]

    assert "audit of 2 record(s)" in verification(None)
    assert "audit of 2 record(s)" in verification("records")
    for store in ("store", "true"):
        text = verification(store)
        assert "record(s)" not in text and "anchor(s)" in text and "intact" in text
    for nothing in ("none", "false"):
        assert "not requested" in verification(nothing)
    before = api.events()
    refused = api.get(path, INSPECTOR, params={"verify": "everything"})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert "verify" in refused.text
    assert api.events() == before


def test_reads_outside_ones_region_are_refused_and_write_nothing(api: Api) -> None:
    household_id = register(api, deprived=8)
    before = api.events()
    for path in ("history", "rank-history", "dossier"):
        assert api.get(f"{HOUSEHOLDS}/{household_id}/{path}", OTHER_FRONT_OFFICE).status_code == 403
    assert api.events() == before
    assert api.get(f"{PROPOSALS}/{household_id}", INSPECTOR).status_code == 404
