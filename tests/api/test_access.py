"""Who may do what, where: tokens, roles bound to regions, idempotent retries."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from slrt.api.app import create_app
from slrt.domain import windows
from slrt.domain.common import Actor, Role
from slrt.runtime import build_runtime
from slrt.security import TokenVerifier, Unauthenticated, issue_token
from tests.api.conftest import Api
from tests.api.test_proposals_api import PROPOSALS, approve, submit, verify
from tests.builders import (
    ADMIN,
    DESA,
    DINSOS,
    FRONT_OFFICE,
    INSPECTOR,
    KOTA,
    OTHER_DESA,
    VILLAGE_HEAD,
    berita_acara,
    default_model,
    household,
)
from tests.conftest import Clock, eventually

OTHER_FRONT_OFFICE = Actor("fo-other", Role.FRONT_OFFICE, OTHER_DESA)
OTHER_KOTA_DINSOS = Actor("dinsos-samarinda", Role.DINSOS_VERIFIER, "64.72")
MANAGER = Actor("manager-bontang", Role.SLRT_MANAGER, KOTA)
AGENCY = Actor("dinkes-bontang", Role.AGENCY, KOTA, agency="dinkes")


# -- authentication ----------------------------------------------------------------


def test_no_token_is_a_401_problem(api: Api) -> None:
    answer = api.client.get("/api/v1/households")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_health_and_openapi_need_no_token(api: Api) -> None:
    assert api.client.get("/api/v1/health").status_code == 200
    assert api.client.get("/openapi.json").status_code == 200


def test_a_deactivated_users_token_is_refused_within_seconds_even_if_accepted_before(
    api: Api,
) -> None:
    api.runtime.app.register_user(
        actor=ADMIN, user_id=FRONT_OFFICE.user_id, role="front_office", region=DESA
    )
    api.runtime.app.register_user(
        actor=ADMIN, user_id=OTHER_FRONT_OFFICE.user_id, role="front_office", region=OTHER_DESA
    )
    token = api.headers(FRONT_OFFICE)
    assert api.client.get("/api/v1/households", headers=token).status_code == 200

    # Recorded by another process's runtime (the CLI), not through this API.
    other = build_runtime(api.runtime.settings)
    try:
        other.app.deactivate_user(actor=ADMIN, user_id=FRONT_OFFICE.user_id)
    finally:
        other.close()

    # The serving process's own follower sees it, not a refresh the test asks for.
    assert eventually(
        lambda: api.client.get("/api/v1/households", headers=token).status_code == 401
    )
    before = api.events()
    body = {"kind": "register", "household": household()}
    answer = api.client.post(PROPOSALS, json=body, headers=token)
    assert answer.status_code == 401
    assert api.events() == before
    assert answer.headers["content-type"] == "application/problem+json"
    assert "deactivated" in answer.json()["detail"]
    # A fresh token for the same user too; other users are untouched.
    assert api.get("/api/v1/households", FRONT_OFFICE).status_code == 401
    assert api.get("/api/v1/households", OTHER_FRONT_OFFICE).status_code == 200


def test_a_process_started_after_a_deactivation_refuses_from_its_first_request(
    api: Api,
) -> None:
    api.runtime.app.register_user(
        actor=ADMIN, user_id=FRONT_OFFICE.user_id, role="front_office", region=DESA
    )
    api.runtime.app.deactivate_user(actor=ADMIN, user_id=FRONT_OFFICE.user_id)
    settings = api.runtime.settings

    fresh = build_runtime(settings)
    try:
        app = create_app(settings, runtime=fresh, run_workers=False)
        with TestClient(app, raise_server_exceptions=False) as client:
            assert (
                client.get("/api/v1/households", headers=api.headers(FRONT_OFFICE)).status_code
                == 401
            )
            other = api.headers(OTHER_FRONT_OFFICE)
            assert client.get("/api/v1/households", headers=other).status_code == 200
    finally:
        fresh.close()


def test_the_openapi_document_declares_the_bearer_scheme_on_every_command(api: Api) -> None:
    document = api.client.get("/openapi.json").json()

    assert document["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A JWT from your identity provider, or from `slrt users token <user>`",
    }
    operations = [
        (path, method, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
        if path != "/api/v1/health"
    ]
    assert operations
    assert all(op.get("security") == [{"HTTPBearer": []}] for _, _, op in operations), [
        (path, method) for path, method, op in operations if "security" not in op
    ]


@pytest.mark.parametrize(
    "authorization", ["Bearer", "Bearer ", "Basic Zm86YmFy", "bearer", "Token abc"]
)
def test_a_missing_or_other_scheme_is_a_401_problem(api: Api, authorization: str) -> None:
    answer = api.client.get("/api/v1/households", headers={"Authorization": authorization})

    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims = {
        "iss": "slrt",
        "aud": "slrt-api",
        "sub": "fo",
        "iat": now,
        "exp": now + timedelta(minutes=5),
        "slrt_role": "front_office",
        "slrt_region": DESA,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _token(api: Api, *, key: str | None = None, kid: str = "slrt-1", **claims: Any) -> str:
    secret = key or str(api.runtime.settings.jwt_signing_key)
    return jwt.encode(_claims(**claims), secret, algorithm="HS256", headers={"kid": kid})


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"exp": datetime.now(UTC) - timedelta(hours=1)}, "expired"),
        ({"aud": "someone-else"}, "audience"),
        ({"iss": "evil"}, "issuer"),
        ({"slrt_role": "emperor"}, "role"),
        ({"slrt_region": "64.74.99.9999"}, "region"),
        ({"sub": None}, "sub"),
        ({"exp": "tomorrow"}, "exp"),
    ],
)
def test_invalid_tokens_are_refused(api: Api, claims: dict[str, Any], why: str) -> None:
    token = _token(api, **claims)
    answer = api.client.get("/api/v1/households", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401, answer.text
    assert why in answer.json()["detail"].lower()


def test_an_accepted_token_is_remembered_only_until_it_expires(api: Api) -> None:
    settings = api.runtime.settings
    now = [time.time()]
    tokens = TokenVerifier(settings, clock=lambda: now[0])
    token = _token(api, exp=datetime.fromtimestamp(now[0], UTC) + timedelta(minutes=5))
    assert tokens.actor(token).user_id == "fo"
    assert tokens.actor(token).user_id == "fo"  # remembered
    head, _, signature = token.split(".")
    forged = _token(api, key="not-the-secret-0123456789abcdef0123456789", sub="admin")
    with pytest.raises(Unauthenticated):  # only the exact string verified is remembered
        tokens.actor(f"{head}.{forged.split('.')[1]}.{signature}")
    now[0] += 5 * 60 + settings.token_leeway_seconds - 1
    assert tokens.actor(token).user_id == "fo"
    now[0] += 1
    with pytest.raises(Unauthenticated, match="expired"):
        tokens.actor(token)


def test_a_token_signed_with_another_secret_is_refused(api: Api) -> None:
    token = _token(api, key="not-the-secret-0123456789abcdef0123456789")
    answer = api.client.get("/api/v1/households", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401


def test_an_old_key_kept_for_rotation_still_verifies(api: Api) -> None:
    old = "the-previous-secret-0123456789abcdef012345"
    api.runtime.settings.jwt_verification_keys["slrt-0"] = old
    token = _token(api, key=old, kid="slrt-0")
    answer = api.client.get("/api/v1/households", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text


# -- roles and regions, both ways ----------------------------------------------------


def test_front_office_submits_in_its_desa_but_not_in_another(api: Api) -> None:
    assert submit(api).status_code == 201
    elsewhere = {"kind": "register", "household": household(region=OTHER_DESA)}
    refused = api.post(PROPOSALS, FRONT_OFFICE, elsewhere)
    assert refused.status_code == 403
    assert OTHER_DESA in refused.json()["detail"]


def test_front_office_of_desa_a_cannot_approve_a_proposal_of_desa_b(api: Api) -> None:
    theirs = api.post(
        PROPOSALS,
        OTHER_FRONT_OFFICE,
        {"kind": "register", "household": household(region=OTHER_DESA)},
    )
    assert theirs.status_code == 201
    before = api.events()
    body = {"decision": "approve", "berita_acara": berita_acara()}
    path = f"{PROPOSALS}/{theirs.json()['id']}/village-decision"
    assert api.post(path, FRONT_OFFICE, body).status_code == 403  # wrong role and desa
    assert api.post(path, VILLAGE_HEAD, body).status_code == 403  # right role, wrong desa
    assert api.events() == before


def test_village_head_approves_in_its_desa(api: Api) -> None:
    proposal_id = submit(api).json()["id"]
    assert approve(api, proposal_id).status_code == 200


def test_dinsos_verifies_in_its_kota_but_not_in_another(api: Api) -> None:
    proposal_id = submit(api).json()["id"]
    approve(api, proposal_id)
    path = f"{PROPOSALS}/{proposal_id}/dinsos-decision"
    assert api.post(path, OTHER_KOTA_DINSOS, {"decision": "verify"}).status_code == 403
    assert api.post(path, DINSOS, {"decision": "verify"}).status_code == 200


def test_front_office_reads_its_desa_but_not_another(api: Api) -> None:
    proposal_id = submit(api).json()["id"]
    assert api.get(f"{PROPOSALS}/{proposal_id}", FRONT_OFFICE).status_code == 200
    assert api.get(f"{PROPOSALS}/{proposal_id}", OTHER_FRONT_OFFICE).status_code == 403
    assert api.get(f"/api/v1/households?region={DESA}", FRONT_OFFICE).status_code == 200
    assert api.get(f"/api/v1/households?region={OTHER_DESA}", FRONT_OFFICE).status_code == 403


def test_manager_reads_the_whole_kota_but_not_another(api: Api) -> None:
    assert api.get(f"/api/v1/proposals?region={KOTA}", MANAGER).status_code == 200
    assert api.get("/api/v1/proposals?region=64.72", MANAGER).status_code == 403


def test_only_admin_publishes_a_scoring_model(api: Api) -> None:
    body = {**default_model(), "note": "v1"}
    for actor in (FRONT_OFFICE, DINSOS, MANAGER, INSPECTOR, AGENCY):
        assert api.post("/api/v1/scoring-models", actor, body).status_code == 403
    assert api.post("/api/v1/scoring-models", ADMIN, body).status_code == 201


def test_inspector_reads_anywhere_writes_nothing_and_each_read_is_recorded(api: Api) -> None:
    proposal_id = submit(api).json()["id"]
    assert (
        api.post(PROPOSALS, INSPECTOR, {"kind": "register", "household": household()}).status_code
        == 403
    )
    before = api.events()
    assert api.get(f"{PROPOSALS}/{proposal_id}", INSPECTOR).status_code == 200
    assert api.get("/api/v1/households?region=64.72", INSPECTOR).status_code == 200
    recorded = [
        api.runtime.app.mapper.to_domain_event(n)
        for n in api.runtime.app.recorder.select_notifications(start=before + 1, limit=10)
    ]
    assert [(type(e).__qualname__, e.resource, e.actor["user_id"]) for e in recorded] == [
        ("Inspection.Recorded", "proposal", INSPECTOR.user_id),
        ("Inspection.Recorded", "households", INSPECTOR.user_id),
    ]


def test_agency_cannot_act_on_proposals(api: Api) -> None:
    assert (
        api.post(PROPOSALS, AGENCY, {"kind": "register", "household": household()}).status_code
        == 403
    )


def test_every_event_records_actor_role_and_region(api: Api) -> None:
    proposal_id = submit(api).json()["id"]
    approve(api, proposal_id)
    verify(api, proposal_id)
    proposal = api.runtime.app.get_proposal(uuid.UUID(proposal_id))
    household_id = proposal.household_id
    assert household_id is not None
    events = [*api.runtime.app.events.get(proposal.id), *api.runtime.app.events.get(household_id)]
    actors = [(e.actor["user_id"], e.actor["role"], e.actor["region"]) for e in events]  # type: ignore[attr-defined]
    assert actors == [
        (FRONT_OFFICE.user_id, "front_office", DESA),
        (VILLAGE_HEAD.user_id, "village_head", DESA),
        (DINSOS.user_id, "dinsos_verifier", KOTA),
        (DINSOS.user_id, "dinsos_verifier", KOTA),
        (DINSOS.user_id, "dinsos_verifier", KOTA),
    ]


# -- idempotency ---------------------------------------------------------------------


def test_a_retry_with_the_same_key_returns_the_first_answer_and_writes_nothing(api: Api) -> None:
    body = {"kind": "register", "household": household()}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.post(PROPOSALS, FRONT_OFFICE, body, headers=key)
    before = api.events()
    again = api.post(PROPOSALS, FRONT_OFFICE, body, headers=key)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert api.events() == before


def test_a_retry_returns_the_first_answer_even_after_later_changes(api: Api) -> None:
    proposal_id = submit(api).json()["id"]
    key = {"Idempotency-Key": "approve-1"}
    body = {"decision": "approve", "berita_acara": berita_acara()}
    path = f"{PROPOSALS}/{proposal_id}/village-decision"
    first = api.post(path, VILLAGE_HEAD, body, headers=key)
    verify(api, proposal_id)
    again = api.post(path, VILLAGE_HEAD, body, headers=key)
    assert again.status_code == 200
    assert again.json()["status"] == first.json()["status"] == "village_approved"


def test_a_retry_after_the_submission_window_closed_still_gets_the_first_answer(
    api: Api, clock: Clock
) -> None:
    # A registration is decided without reading its key's receipt first; a refusal
    # must still be checked against the receipt, or a village operator whose first
    # send went through just before the window closed gets a 422 on the retry.
    api.runtime.app.submission_policy = windows.DEFAULT
    clock.now = datetime(2026, 11, 25, 15, 50, tzinfo=UTC)  # 23:50 WITA, last DTKS day
    body = {"kind": "register", "household": household()}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = api.post(PROPOSALS, FRONT_OFFICE, body, headers=key)
    assert first.status_code == 201, first.text
    before = api.events()

    clock.advance(minutes=20)  # 00:10 WITA on the 26th: the window is closed
    again = api.post(PROPOSALS, FRONT_OFFICE, body, headers=key)
    fresh = api.post(PROPOSALS, FRONT_OFFICE, body, headers={"Idempotency-Key": "new"})

    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert again.headers["idempotent-replayed"] == "true"
    assert fresh.status_code == 409  # a new request is refused: the window is closed
    assert "DTKS" in fresh.json()["detail"]
    assert api.events() == before


def test_the_same_key_with_another_body_is_a_422(api: Api) -> None:
    key = {"Idempotency-Key": "k-1"}
    api.post(PROPOSALS, FRONT_OFFICE, {"kind": "register", "household": household()}, headers=key)
    before = api.events()
    other = api.post(
        PROPOSALS, FRONT_OFFICE, {"kind": "register", "household": household()}, headers=key
    )
    assert other.status_code == 422
    assert "Idempotency-Key" in other.json()["detail"]
    assert api.events() == before


def test_keys_are_per_user(api: Api) -> None:
    key = {"Idempotency-Key": "shared"}
    mine = api.post(
        PROPOSALS, FRONT_OFFICE, {"kind": "register", "household": household()}, headers=key
    )
    theirs = api.post(
        PROPOSALS,
        OTHER_FRONT_OFFICE,
        {"kind": "register", "household": household(region=OTHER_DESA)},
        headers=key,
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


def test_concurrent_sends_with_one_key_make_one_proposal(api: Api) -> None:
    submit(api)  # the first proposal also publishes the default SLA policy
    body = {"kind": "register", "household": household()}
    key = {"Idempotency-Key": str(uuid.uuid4())}
    before = api.events()
    barrier = threading.Barrier(6)
    answers: list[Any] = []

    def send() -> None:
        barrier.wait()
        answers.append(api.post(PROPOSALS, FRONT_OFFICE, body, headers=key))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1
    written = api.runtime.app.recorder.select_notifications(start=before + 1, limit=100)
    # One proposal and its receipt. (Ids may have gaps on PostgreSQL: a rolled-back
    # insert still uses up sequence numbers.)
    assert sorted(n.topic.rsplit(".", 1)[-1] for n in written) == ["Recorded", "Submitted"]


def test_token_issued_for_an_agency_carries_its_code(api: Api) -> None:
    token = issue_token(api.runtime.settings, AGENCY, now=datetime.now(UTC))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["slrt_agency"] == "dinkes"
