"""Who may do what, where: every role is bound to a region code and acts inside it."""

from __future__ import annotations

from enum import StrEnum

from slrt.domain.common import Actor, DomainError, Role


class Forbidden(DomainError):
    title = "Forbidden"


class Action(StrEnum):
    SUBMIT_PROPOSAL = "submit a proposal"
    DECIDE_AT_VILLAGE = "record the village decision on a proposal"
    DECIDE_AT_DINSOS = "record the Dinsos decision on a proposal"
    WITHDRAW_PROPOSAL = "withdraw a proposal"
    PUBLISH_SCORING_MODEL = "publish a scoring model"
    IMPORT_HOUSEHOLDS = "import households"
    MANAGE_USERS = "manage users"
    PUBLISH_SLA_POLICY = "publish an SLA policy"
    RECEIVE_COMPLAINT = "receive a complaint"
    HANDLE_COMPLAINT = "handle a complaint"
    READ = "read"
    CREATE_REFERRAL = "create a referral"
    CANCEL_REFERRAL = "cancel a referral"
    ANSWER_REFERRAL = "answer a referral"


ALLOWED_ROLES: dict[Action, frozenset[Role]] = {
    Action.SUBMIT_PROPOSAL: frozenset({Role.FRONT_OFFICE, Role.SLRT_MANAGER}),
    Action.DECIDE_AT_VILLAGE: frozenset({Role.VILLAGE_HEAD}),
    Action.DECIDE_AT_DINSOS: frozenset({Role.DINSOS_VERIFIER}),
    Action.WITHDRAW_PROPOSAL: frozenset({Role.FRONT_OFFICE, Role.SLRT_MANAGER}),
    Action.PUBLISH_SCORING_MODEL: frozenset({Role.ADMIN}),
    Action.IMPORT_HOUSEHOLDS: frozenset({Role.ADMIN, Role.SYSTEM}),
    Action.MANAGE_USERS: frozenset({Role.ADMIN, Role.SYSTEM}),
    Action.PUBLISH_SLA_POLICY: frozenset({Role.ADMIN}),
    Action.RECEIVE_COMPLAINT: frozenset({Role.FRONT_OFFICE, Role.SLRT_MANAGER}),
    Action.HANDLE_COMPLAINT: frozenset(
        {Role.FRONT_OFFICE, Role.SLRT_MANAGER, Role.DINSOS_VERIFIER, Role.SYSTEM}
    ),
    Action.READ: frozenset(Role),
    Action.CREATE_REFERRAL: frozenset({Role.FRONT_OFFICE, Role.SLRT_MANAGER}),
    Action.CANCEL_REFERRAL: frozenset({Role.FRONT_OFFICE, Role.SLRT_MANAGER}),
    Action.ANSWER_REFERRAL: frozenset({Role.AGENCY, Role.SYSTEM}),
}

NATIONAL = "ID"


def covers(actor_region: str, target_region: str) -> bool:
    """A region code covers itself and every region below it (64.74 covers 64.74.01.1001)."""
    if actor_region == NATIONAL:
        return True
    return target_region == actor_region or target_region.startswith(actor_region + ".")


def authorize(actor: Actor, action: Action, region: str | None = None) -> None:
    """Refuses an action the actor's role may not take, or one outside its region."""
    if actor.role not in ALLOWED_ROLES[action]:
        allowed = ", ".join(sorted(r.value for r in ALLOWED_ROLES[action]))
        raise Forbidden(
            f"role {actor.role.value} may not {action.value} (allowed: {allowed})",
            action=action.value,
        )
    reads_anywhere = action is Action.READ and actor.role is Role.INSPECTOR
    if region is not None and not reads_anywhere and not covers(actor.region, region):
        raise Forbidden(
            f"{actor.user_id} ({actor.role.value}, {actor.region}) may not {action.value} "
            f"in region {region}",
            action=action.value,
        )


def authorize_agency(actor: Actor, action: Action, agency: str) -> None:
    """An agency user sees and answers its own agency's referrals only."""
    if actor.role is Role.AGENCY and actor.agency != agency:
        raise Forbidden(
            f"{actor.user_id} (agency {actor.agency}) may not {action.value} "
            f"addressed to agency {agency}",
            action=action.value,
        )
