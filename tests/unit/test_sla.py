"""The SLA policy: targets per kind and category, deadlines in local working time, versions."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from slrt.domain.common import InvalidInput, NotFound
from slrt.domain.sla import DEFAULT_RULES, SlaPolicy, SlaPolicyVersion
from tests.builders import ADMIN, DESA

WITA = ZoneInfo("Asia/Makassar")
JAYAPURA_DESA = "91.71.01.1001"  # Kota Jayapura, Papua: WIT
RECEIVED = datetime(2026, 11, 20, 15, tzinfo=WITA)  # a Friday afternoon in Bontang
PUBLISHED = datetime(2026, 11, 1, tzinfo=UTC)


def rules() -> list[dict[str, Any]]:
    return copy.deepcopy(DEFAULT_RULES)


def published(policy_rules: list[dict[str, Any]] | None = None) -> SlaPolicyVersion:
    policy = SlaPolicy(actor=ADMIN.as_record(), timestamp=PUBLISHED)
    return policy.publish(
        rules=rules() if policy_rules is None else policy_rules,
        note="first policy",
        actor=ADMIN.as_record(),
        timestamp=PUBLISHED,
    )


def test_a_complaint_gets_a_first_response_in_4_working_hours_and_resolution_in_5_days() -> None:
    deadlines = published().deadlines("complaint", "wrong_data", RECEIVED, DESA)
    assert deadlines == {
        "first_response": datetime(2026, 11, 23, 11, tzinfo=WITA),
        "resolution": datetime(2026, 11, 27, 15, tzinfo=WITA),
    }


def test_a_category_rule_overrides_only_the_targets_it_names() -> None:
    deadlines = published().deadlines("complaint", "aid_not_received", RECEIVED, DESA)
    assert deadlines["first_response"] == datetime(2026, 11, 23, 11, tzinfo=WITA)
    assert deadlines["resolution"] == datetime(2026, 12, 4, 15, tzinfo=WITA)


def test_proposal_deadlines_are_calendar_days() -> None:
    deadlines = published().deadlines("proposal", "register", RECEIVED, DESA)
    assert deadlines["village_decision"] == RECEIVED + timedelta(days=30)
    assert deadlines["dinsos_verification"] == RECEIVED + timedelta(days=14)


def test_a_milestone_starts_only_its_own_clocks() -> None:
    approved = datetime(2026, 11, 25, 10, tzinfo=WITA)
    deadlines = published().deadlines(
        "proposal", "register", approved, DESA, milestone="village_approved"
    )
    assert deadlines == {"dinsos_verification": approved + timedelta(days=14)}


def test_reopening_a_complaint_restarts_only_its_resolution_clock() -> None:
    deadlines = published().deadlines("complaint", "other", RECEIVED, DESA, milestone="reopened")
    assert list(deadlines) == ["resolution"]


def test_referral_acknowledgement_is_due_in_2_working_days() -> None:
    deadlines = published().deadlines("referral", "kis", RECEIVED, DESA)
    assert deadlines["acknowledgement"] == datetime(2026, 11, 24, 15, tzinfo=WITA)


def test_deadlines_count_in_the_regions_own_time_zone() -> None:
    at = datetime(2026, 11, 20, 7, 30, tzinfo=UTC)  # 15:30 in Bontang, 16:30 in Jayapura
    in_bontang = published().deadlines("complaint", "other", at, DESA)["first_response"]
    in_jayapura = published().deadlines("complaint", "other", at, JAYAPURA_DESA)["first_response"]
    assert in_bontang == datetime(2026, 11, 23, 11, 30, tzinfo=WITA)
    assert in_jayapura == datetime(2026, 11, 23, 12, tzinfo=ZoneInfo("Asia/Jayapura"))


def test_versions_are_numbered_and_kept() -> None:
    policy = SlaPolicy(actor=ADMIN.as_record(), timestamp=PUBLISHED)
    policy.publish(rules=rules(), note="v1", actor=ADMIN.as_record(), timestamp=PUBLISHED)
    stricter = rules()
    stricter[0]["targets"][0]["amount"] = 2
    later = PUBLISHED + timedelta(days=10)
    policy.publish(rules=stricter, note="v2", actor=ADMIN.as_record(), timestamp=later)
    assert [v["version"] for v in policy.versions] == [1, 2]
    current = policy.current
    assert current is not None and current.version == 2
    first = policy.get_version(1).targets_for("complaint", None)[0]
    assert (first.name, first.amount) == ("first_response", 4)


def test_a_policy_change_is_recorded_as_an_event() -> None:
    policy = SlaPolicy(actor=ADMIN.as_record(), timestamp=PUBLISHED)
    policy.publish(rules=rules(), note="v1", actor=ADMIN.as_record(), timestamp=PUBLISHED)
    published_event = policy.collect_events()[-1]
    assert type(published_event).__name__ == "VersionPublished"
    assert published_event.rules == rules()  # type: ignore[attr-defined]
    assert published_event.actor == ADMIN.as_record()  # type: ignore[attr-defined]


def test_the_version_in_force_is_the_last_published_by_then() -> None:
    policy = SlaPolicy(actor=ADMIN.as_record(), timestamp=PUBLISHED)
    policy.publish(rules=rules(), note="v1", actor=ADMIN.as_record(), timestamp=PUBLISHED)
    later = PUBLISHED + timedelta(days=10)
    policy.publish(rules=rules(), note="v2", actor=ADMIN.as_record(), timestamp=later)
    assert policy.version_at(PUBLISHED - timedelta(seconds=1)) is None
    in_force = policy.version_at(later - timedelta(seconds=1))
    assert in_force is not None and in_force.version == 1


def test_an_unpublished_version_is_not_found() -> None:
    with pytest.raises(NotFound):
        SlaPolicy(actor=ADMIN.as_record(), timestamp=PUBLISHED).get_version(1)


def test_the_policy_has_one_well_known_id() -> None:
    assert SlaPolicy(actor=ADMIN.as_record(), timestamp=PUBLISHED).id == SlaPolicy.id_for()


def test_a_version_survives_its_record() -> None:
    version = published()
    assert SlaPolicyVersion.from_record(version.as_record()) == version


def _without_star_rule_for_proposals() -> list[dict[str, Any]]:
    return [r for r in rules() if r["kind"] != "proposal"]


def _with(path: tuple[int, ...], key: str, value: Any) -> list[dict[str, Any]]:
    changed = rules()
    target: Any = changed[path[0]]
    if len(path) > 1:
        target = target["targets"][path[1]]
    target[key] = value
    return changed


@pytest.mark.parametrize(
    ("bad_rules", "message"),
    [
        ([], "non-empty list"),
        (_with((0,), "kind", "household"), "kind must be one of"),
        (_with((1,), "category", "lost_card"), "category must be"),
        (_with((0, 0), "name", "response"), "name must be one of first_response, resolution"),
        (_with((0, 0), "unit", "weeks"), "unit must be hours or days"),
        (_with((0, 0), "amount", 0), "amount must be a whole number"),
        (_with((0, 0), "amount", 2.5), "amount must be a whole number"),
        (_with((0, 1), "amount", 400), "from 1 to 366"),
        (_with((0, 0), "working", "yes"), "working must be true"),
        ([*rules(), rules()[1]], "repeats the rule for complaint/aid_not_received"),
        (_without_star_rule_for_proposals(), "missing proposal"),
    ],
)
def test_invalid_rules_are_refused_with_a_clear_message(
    bad_rules: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        published(bad_rules)


def test_a_rule_cannot_name_a_target_twice() -> None:
    doubled = rules()
    doubled[0]["targets"].append(dict(doubled[0]["targets"][0]))
    with pytest.raises(InvalidInput, match="twice"):
        published(doubled)
