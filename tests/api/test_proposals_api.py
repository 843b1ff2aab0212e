"""The proposal walk-through and its refusals over HTTP: problem details, nothing written."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from fastapi import routing as fastapi_routing
from sqlalchemy import update

from slrt.domain.scoring import DEFAULT_HOUSEHOLD_SIZE_WEIGHT
from slrt.projections.base import REBUILDING, tracking
from tests.api.conftest import Api
from tests.builders import (
    ADMIN,
    DESA,
    DINSOS,
    DINSOS_MANAGER,
    FRONT_OFFICE,
    OTHER_VILLAGE_HEAD,
    VILLAGE_HEAD,
    berita_acara,
    default_model,
    household,
    indicators,
)

PROPOSALS = "/api/v1/proposals"


def submit(api: Api, body: dict[str, Any] | None = None) -> Any:
    return api.post(PROPOSALS, FRONT_OFFICE, body or {"kind": "register", "household": household()})


def approve(api: Api, proposal_id: str, **overrides: Any) -> Any:
    body = {"decision": "approve", "berita_acara": berita_acara(), **overrides}
    return api.post(f"{PROPOSALS}/{proposal_id}/village-decision", VILLAGE_HEAD, body)


def verify(api: Api, proposal_id: str) -> Any:
    return api.post(f"{PROPOSALS}/{proposal_id}/dinsos-decision", DINSOS, {"decision": "verify"})


def register(api: Api, **fields: Any) -> str:
    proposal_id = submit(api, {"kind": "register", "household": household(**fields)}).json()["id"]
    assert approve(api, proposal_id).status_code == 200
    answer = verify(api, proposal_id)
    assert answer.status_code == 200, answer.text
    household_id: str = answer.json()["household_id"]
    return household_id


def assert_problem(answer: Any, status: int, *, mentions: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == status
    assert mentions.lower() in problem["detail"].lower()
    assert "Traceback" not in answer.text


# -- the walk-through --------------------------------------------------------------


def test_walk_through_changes_the_household_its_score_and_the_ranks(api: Api) -> None:
    assert (
        api.post("/api/v1/scoring-models", ADMIN, {**default_model(), "note": "v1"}).status_code
        == 201
    )
    poorer = register(api, deprived=12)
    richer = register(api, deprived=3)
    api.runtime.catch_up()
    assert api.get(f"/api/v1/households/{poorer}", FRONT_OFFICE).json()["rank"] == 1

    changes = {"indicators": indicators(14)}
    answer = submit(api, {"kind": "update", "household_id": richer, "changes": changes})
    assert answer.status_code == 201
    assert approve(api, answer.json()["id"]).status_code == 200
    assert verify(api, answer.json()["id"]).json()["status"] == "applied"
    api.runtime.catch_up()

    now_poorest = api.get(f"/api/v1/households/{richer}", FRONT_OFFICE).json()
    assert (now_poorest["rank"], now_poorest["desil"], now_poorest["scope_population"]) == (1, 1, 2)
    assert "*" not in now_poorest["members"][0]["nik"]  # the front office sees full NIKs
    masked = api.get(f"/api/v1/households/{richer}", DINSOS_MANAGER).json()
    assert masked["members"][0]["nik"].count("*") == 8
    listing = api.get("/api/v1/households?region=64.74&desil=1", FRONT_OFFICE)
    assert listing.status_code == 403  # a front office reads only its own desa
    listing = api.get("/api/v1/households", FRONT_OFFICE).json()
    assert [h["household_id"] for h in listing["items"]] == [richer, poorer]


def test_proposal_get_returns_an_etag_and_a_stale_if_match_is_412(api: Api) -> None:
    proposal_id = submit(api).json()["id"]
    answer = api.get(f"{PROPOSALS}/{proposal_id}", FRONT_OFFICE)
    assert answer.headers["etag"] == '"1"'
    assert approve(api, proposal_id).headers["etag"] == '"2"'
    stale = api.post(
        f"{PROPOSALS}/{proposal_id}/dinsos-decision",
        DINSOS,
        {"decision": "verify"},
        headers={"If-Match": '"1"'},
    )
    assert_problem(stale, 412, mentions="version 2")


def test_household_search_finds_a_nik_without_storing_it(api: Api) -> None:
    data = household()
    proposal_id = submit(api, {"kind": "register", "household": data}).json()["id"]
    approve(api, proposal_id)
    household_id = verify(api, proposal_id).json()["household_id"]
    api.runtime.catch_up()
    nik = data["members"][1]["nik"]
    found = api.get(f"/api/v1/households?q={nik}", FRONT_OFFICE).json()
    assert [h["household_id"] for h in found["items"]] == [household_id]


# -- bad input: a 4xx problem, nothing written ---------------------------------------


def test_invalid_nik_is_a_422_and_writes_nothing(api: Api) -> None:
    data = household()
    data["members"][0]["nik"] = "6474011513800001"  # month 13
    before = api.events()
    assert_problem(submit(api, {"kind": "register", "household": data}), 422, mentions="NIK")
    assert api.events() == before


def test_nik_that_contradicts_the_members_sex_is_a_422(api: Api) -> None:
    data = household()
    data["members"][0]["sex"] = "P"
    assert_problem(submit(api, {"kind": "register", "household": data}), 422, mentions="sex")


def test_unknown_region_code_is_a_422(api: Api) -> None:
    before = api.events()
    data = household(region="64.74.01.9999")
    assert_problem(
        submit(api, {"kind": "register", "household": data}), 422, mentions="64.74.01.9999"
    )
    assert api.events() == before


def test_missing_berita_acara_is_a_422(api: Api) -> None:
    proposal_id = submit(api).json()["id"]
    before = api.events()
    answer = api.post(
        f"{PROPOSALS}/{proposal_id}/village-decision", VILLAGE_HEAD, {"decision": "approve"}
    )
    assert_problem(answer, 422, mentions="berita acara")
    assert api.events() == before


def test_double_approval_is_a_409(api: Api) -> None:
    proposal_id = submit(api).json()["id"]
    assert approve(api, proposal_id).status_code == 200
    before = api.events()
    assert_problem(approve(api, proposal_id), 409, mentions="village_approved")
    assert api.events() == before


def test_approving_a_withdrawn_proposal_is_a_409(api: Api) -> None:
    proposal_id = submit(api).json()["id"]
    withdrawn = api.post(f"{PROPOSALS}/{proposal_id}/withdraw", FRONT_OFFICE, {"reason": "ganda"})
    assert withdrawn.json()["status"] == "withdrawn"
    assert_problem(approve(api, proposal_id), 409, mentions="withdrawn")


def test_village_head_of_another_desa_is_a_403(api: Api) -> None:
    proposal_id = submit(api).json()["id"]
    body = {"decision": "approve", "berita_acara": berita_acara()}
    answer = api.post(f"{PROPOSALS}/{proposal_id}/village-decision", OTHER_VILLAGE_HEAD, body)
    assert_problem(answer, 403, mentions="may not")


def test_unknown_proposal_is_a_404(api: Api) -> None:
    answer = api.get(f"{PROPOSALS}/00000000-0000-4000-8000-000000000000", FRONT_OFFICE)
    assert_problem(answer, 404, mentions="does not exist")


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "register"},
        {"kind": "teleport", "household_id": "00000000-0000-4000-8000-000000000000"},
        {
            "kind": "remove",
            "household_id": "00000000-0000-4000-8000-000000000000",
            "reason": "bored",
        },
        {"kind": "register", "household": {**household(), "members": []}},
        {"kind": "register", "household": {**household(), "rt": "12345"}},
        {"kind": "register", "household": {**household(), "surprise": 1}},
        [],
        "text",
    ],
)
def test_malformed_proposals_are_422_problems(api: Api, body: Any) -> None:
    before = api.events()
    answer = submit(api, body) if body else api.post(PROPOSALS, FRONT_OFFICE, body)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["errors"]
    assert api.events() == before


def test_invalid_json_is_a_422_problem(api: Api) -> None:
    answer = api.client.post(
        PROPOSALS,
        content=b"{not json",
        headers={**api.headers(FRONT_OFFICE), "Content-Type": "application/json"},
    )
    assert_problem(answer, 422, mentions="not valid JSON")


def test_oversized_body_is_a_413(api: Api) -> None:
    answer = api.client.post(
        PROPOSALS,
        content=b"x" * 2_000_000,
        headers={"Content-Type": "application/json"},
    )
    assert_problem(answer, 413, mentions="limited")


def test_scoring_model_with_a_missing_weight_is_a_422(api: Api) -> None:
    model = default_model()
    del model["weights"]["meals"]
    answer = api.post("/api/v1/scoring-models", ADMIN, {**model, "note": "x"})
    assert answer.status_code == 422
    assert "meals" in answer.text
    assert api.runtime.app.get_scoring_model() is None


def test_only_an_admin_publishes_a_scoring_model(api: Api) -> None:
    body = {**default_model(), "household_size_weight": DEFAULT_HOUSEHOLD_SIZE_WEIGHT, "note": "x"}
    assert_problem(api.post("/api/v1/scoring-models", FRONT_OFFICE, body), 403, mentions="admin")


def test_health_reports_projection_lag(api: Api) -> None:
    submit(api)  # the proposal, and the default SLA policy on first use
    health = api.client.get("/api/v1/health").json()
    assert health["projections"]["household_status"]["lag"] == 3
    api.runtime.catch_up()
    health = api.client.get("/api/v1/health").json()
    assert health["projections"]["household_status"]["lag"] == 0


def test_health_reports_a_projection_being_rebuilt_in_other_processes(api: Api) -> None:
    submit(api)
    api.runtime.catch_up()
    with api.runtime.engine.begin() as conn:  # what slrt.projections.parallel sets
        conn.execute(
            update(tracking)
            .where(tracking.c.projection == "household_status")
            .values(notification_id=REBUILDING)
        )
    health = api.client.get("/api/v1/health").json()
    head = api.runtime.app.recorder.max_notification_id()
    assert health["projections"]["household_status"] == {
        "position": None,
        "lag": head,
        "rebuilding": True,
    }
    assert health["projections"]["proposal_list"] == {
        "position": head,
        "lag": 0,
        "rebuilding": False,
    }


def test_openapi_document_has_examples(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    body = document["paths"][PROPOSALS]["post"]["requestBody"]["content"]["application/json"]
    assert "register" in body["examples"]


def test_a_nik_from_a_kecamatan_no_longer_listed_is_accepted_with_a_warning(api: Api) -> None:
    body = {"kind": "register", "household": household(members=3)}
    # Issued under 64.74.99, a code today's Kemendagri list lacks (as after a pemekaran).
    body["household"]["members"][2]["nik"] = "647499" + body["household"]["members"][2]["nik"][6:]

    answer = submit(api, body)

    assert answer.status_code == 201, answer.text
    assert answer.json()["warnings"] == [
        "members[2].nik names kecamatan 64.74.99, which Kemendagri does not list today: "
        "check the number against the KTP (a NIK keeps the code it was issued under, also "
        "after a region split)"
    ]
    again = api.get(f"{PROPOSALS}/{answer.json()['id']}", FRONT_OFFICE)
    assert again.json()["warnings"] == answer.json()["warnings"]
    assert submit(api).json()["warnings"] == []


def test_a_nik_or_kk_another_active_household_lists_is_warned_of_not_refused(api: Api) -> None:
    listed = household(members=2)
    register(api)  # another household, sharing nothing
    holder = submit(api, {"kind": "register", "household": listed}).json()["id"]
    assert approve(api, holder).status_code == 200
    holder_household = verify(api, holder).json()["household_id"]
    again = household(members=2)
    again["members"][1]["nik"] = listed["members"][1]["nik"]  # a spouse in two households
    again["no_kk"] = listed["no_kk"]
    api.runtime.catch_up()

    answer = submit(api, {"kind": "register", "household": again})
    read = api.get(f"{PROPOSALS}/{answer.json()['id']}", FRONT_OFFICE).json()
    own = api.get(f"{PROPOSALS}/{holder}", FRONT_OFFICE).json()  # applied: its own household

    assert answer.status_code == 201, answer.text
    assert read["warnings"] == [
        f"{field} is already listed in another active household, {holder_household} in "
        f"{DESA} (Bontang Kuala): settle which household the {what} belongs to before the "
        "deliberation"
        for field, what in (("members[1].nik", "person"), ("no_kk", "family card"))
    ]
    assert listed["members"][1]["nik"] not in str(read["warnings"])
    assert own["warnings"] == []

    removal = submit(
        api, {"kind": "remove", "household_id": holder_household, "reason": "mampu"}
    ).json()["id"]
    assert approve(api, removal).status_code == 200
    assert verify(api, removal).status_code == 200
    api.runtime.catch_up()  # a removed household no longer holds anyone
    assert api.get(f"{PROPOSALS}/{answer.json()['id']}", FRONT_OFFICE).json()["warnings"] == []


@pytest.mark.parametrize("etag", [b'"\xb2"', b'"1\xb9"', b'"\xbd"'])
def test_an_if_match_of_non_ascii_digits_is_a_422_not_a_500(api: Api, etag: bytes) -> None:
    # Sent as raw bytes (latin-1 ², ¹, ½: str.isdigit() says yes, int() says no); an
    # HTTP client library would not send them as they are.
    proposal_id = submit(api).json()["id"]
    before = api.events()
    body = json.dumps({"decision": "approve", "berita_acara": berita_acara()}).encode()
    token = api.headers(VILLAGE_HEAD)["Authorization"].encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": f"{PROPOSALS}/{proposal_id}/village-decision",
        "raw_path": b"",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "headers": [
            (b"host", b"testserver"),
            (b"authorization", token),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"if-match", etag),
        ],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(api.client.app(scope, receive, send))

    assert sent[0]["status"] == 422, sent
    assert (b"content-type", b"application/problem+json") in sent[0]["headers"]
    assert b"If-Match" in sent[1]["body"]
    assert api.events() == before


def test_a_command_arriving_as_the_service_stops_is_a_503_and_not_saved(api: Api) -> None:
    app = api.runtime.app
    if app._committer is None:
        pytest.skip("group commit is off in these settings")
    for committer in (app._loop_committer, app._committer):  # the loop's: PostgreSQL
        if committer is not None:
            committer.close()
    before = api.events()

    answer = submit(api)

    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["retry-after"] == "5"
    assert "send it again" in answer.json()["detail"]
    assert api.events() == before


def test_a_command_that_fails_unexpectedly_is_a_500_problem_and_writes_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Answered on the fast way (CommandDispatch, outside FastAPI's own error layer) as
    FastAPI's server-error layer answers: the app's 500 problem, with the request id,
    and nothing stored."""
    solved: list[int] = []
    solve = fastapi_routing.solve_dependencies

    async def counting(*args: Any, **kwargs: Any) -> Any:
        solved.append(1)
        return await solve(*args, **kwargs)

    def broken(**_: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(fastapi_routing, "solve_dependencies", counting)
    monkeypatch.setattr(api.runtime.app, "submit_proposal_command", broken)
    before = api.events()
    answer = api.post(
        PROPOSALS,
        FRONT_OFFICE,
        {"kind": "register", "household": household()},
        headers={"X-Request-ID": "req-bug-1"},
    )
    assert answer.status_code == 500
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["X-Request-ID"] == "req-bug-1"
    assert answer.json()["detail"] == "the server failed; the error was logged"
    assert solved == []  # the fast way answered it
    assert api.events() == before
