"""The SLRT application: imperative commands and queries by id.

Every command goes through one write path, `_execute`, which loads, decides and
saves in one transaction, and retries on a concurrent edit. That single path is
where batching commits (group commit) can later be added.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, Recording

from slrt.config import Settings
from slrt.domain import windows
from slrt.domain.access import Action, authorize
from slrt.domain.common import Actor, ConcurrentEdit, InvalidInput, NotFound, VersionMismatch
from slrt.domain.household import Household, validate_household_data
from slrt.domain.proposal import Proposal, ProposalKind, validate_payload
from slrt.domain.scoring import ScoringModel

log = structlog.get_logger("slrt.commands")

T = TypeVar("T")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Decision:
    """A command's outcome: the aggregates to save, and what to answer the caller."""

    save: Sequence[Aggregate]
    result: Any


class SlrtApplication(Application[UUID]):
    name = "slrt"

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = utc_now,
        submission_policy: windows.SubmissionPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        if submission_policy is None:
            enforced = settings.submission_windows_enforced
            submission_policy = windows.DEFAULT if enforced else windows.OPEN
        self.submission_policy = submission_policy
        self._listeners: list[Callable[[], None]] = []
        super().__init__(env=settings.eventsourcing_env())

    # -- the one write path -------------------------------------------------

    def _execute(self, command: str, actor: Actor, decide: Callable[[], Decision]) -> Any:
        """Runs `decide` on freshly loaded aggregates and saves what it returns in one
        transaction. A concurrent edit is retried from fresh state, so the rules are
        checked again against what the other writer saved; after the retries it is
        refused as a conflict, never silently overwritten."""
        attempts = self.settings.command_retries + 1
        for attempt in range(1, attempts + 1):
            decision = decide()
            try:
                self.save(*decision.save)
            except IntegrityError:
                log.info("command.conflict", command=command, attempt=attempt, user=actor.user_id)
                continue
            log.info(
                "command.ok",
                command=command,
                user=actor.user_id,
                role=actor.role.value,
                aggregates=[str(a.id) for a in decision.save],
            )
            return decision.result
        raise ConcurrentEdit(
            f"{command}: another user changed the same record {attempts} times in a row; "
            "reload and try again"
        )

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        super()._notify(recordings)
        for listener in list(self._listeners):
            listener()

    def on_recorded(self, listener: Callable[[], None]) -> None:
        """Calls `listener` after every save in this process (wakes projections)."""
        self._listeners.append(listener)

    def _get(self, cls: type[T], aggregate_id: UUID, what: str) -> T:
        try:
            aggregate: Any = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFound(f"{what} {aggregate_id} does not exist") from None
        if not isinstance(aggregate, cls):
            raise NotFound(f"{what} {aggregate_id} does not exist")
        return aggregate

    @staticmethod
    def _check_version(aggregate: Aggregate, expected_version: int | None) -> None:
        if expected_version is not None and aggregate.version != expected_version:
            raise VersionMismatch(
                f"{type(aggregate).__name__.lower()} {aggregate.id} is at version "
                f"{aggregate.version}, not {expected_version}",
                current_version=aggregate.version,
            )

    # -- proposals ------------------------------------------------------------

    def submit_proposal(
        self,
        *,
        actor: Actor,
        kind: str,
        payload: Any,
        household_id: UUID | None = None,
        note: str | None = None,
    ) -> UUID:
        """A front office logs a proposal. Its data is validated now, so a bad NIK or
        region is refused at the desk, not weeks later at Dinsos."""
        try:
            proposal_kind = ProposalKind(kind)
        except ValueError:
            allowed = ", ".join(k.value for k in ProposalKind)
            raise InvalidInput(f"kind must be one of {allowed}", field="kind") from None
        checked = validate_payload(proposal_kind, payload)
        if note is not None and len(note) > 1000:
            raise InvalidInput("note must be at most 1000 characters", field="note")

        def decide() -> Decision:
            at = self.clock()
            if proposal_kind is ProposalKind.REGISTER:
                if household_id is not None:
                    raise InvalidInput(
                        "a register proposal creates a new household; omit household_id",
                        field="household_id",
                    )
                region = checked["household"]["region"]
            else:
                if household_id is None:
                    raise InvalidInput(
                        f"a {proposal_kind.value} proposal must name household_id",
                        field="household_id",
                    )
                household = self._get(Household, household_id, "household")
                household.check_accepts_changes()
                if proposal_kind in (ProposalKind.ENROL, ProposalKind.UNENROL):
                    household.check_enrolment(
                        checked["programme"], enrol=proposal_kind is ProposalKind.ENROL
                    )
                region = household.region
            authorize(actor, Action.SUBMIT_PROPOSAL, region)
            self.submission_policy.check(
                kind=proposal_kind.value,
                programme=checked.get("programme"),
                region=region,
                at=at,
            )
            proposal = Proposal(
                kind=proposal_kind.value,
                region=region,
                household_id=household_id,
                payload=checked,
                note=note,
                actor=actor.as_record(),
                timestamp=at,
            )
            return Decision(save=[proposal], result=proposal.id)

        return self._execute("submit_proposal", actor, decide)

    def decide_at_village(
        self,
        *,
        actor: Actor,
        proposal_id: UUID,
        approve: bool,
        berita_acara: Any,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> int:
        """Records the musyawarah desa's decision, with its berita acara."""

        def decide() -> Decision:
            proposal = self._get(Proposal, proposal_id, "proposal")
            authorize(actor, Action.DECIDE_AT_VILLAGE, proposal.region)
            self._check_version(proposal, expected_version)
            at = self.clock()
            if approve:
                proposal.approve_at_village(
                    berita_acara=berita_acara, actor=actor.as_record(), timestamp=at
                )
            else:
                proposal.reject_at_village(
                    reason=reason, berita_acara=berita_acara, actor=actor.as_record(), timestamp=at
                )
            return Decision(save=[proposal], result=proposal.version)

        return int(self._execute("decide_at_village", actor, decide))

    def decide_at_dinsos(
        self,
        *,
        actor: Actor,
        proposal_id: UUID,
        verify: bool,
        reason: str | None = None,
        expected_version: int | None = None,
    ) -> int:
        """Dinsos verifies (and the household changes, in the same transaction) or
        returns the proposal to the village."""

        def decide() -> Decision:
            proposal = self._get(Proposal, proposal_id, "proposal")
            authorize(actor, Action.DECIDE_AT_DINSOS, proposal.region)
            self._check_version(proposal, expected_version)
            at = self.clock()
            who = actor.as_record()
            if not verify:
                proposal.return_by_dinsos(reason=reason, actor=who, timestamp=at)
                return Decision(save=[proposal], result=proposal.version)
            proposal.verify_by_dinsos(note=reason, actor=who, timestamp=at)
            household = self._apply(proposal, actor=who, at=at)
            proposal.mark_applied(household_id=household.id, actor=who, timestamp=at)
            return Decision(save=[proposal, household], result=proposal.version)

        return int(self._execute("decide_at_dinsos", actor, decide))

    def _apply(self, proposal: Proposal, *, actor: dict[str, str], at: datetime) -> Household:
        """The verified proposal changes the household; its events name the proposal."""
        payload = proposal.payload
        if proposal.kind is ProposalKind.REGISTER:
            return Household(
                data=payload["household"],
                proposal_id=proposal.id,
                source=None,
                actor=actor,
                timestamp=at,
            )
        assert proposal.household_id is not None
        household = self._get(Household, proposal.household_id, "household")
        pid = proposal.id
        if proposal.kind is ProposalKind.UPDATE:
            household.update(changes=payload["changes"], proposal_id=pid, actor=actor, timestamp=at)
        elif proposal.kind is ProposalKind.REMOVE:
            household.remove(reason=payload["reason"], proposal_id=pid, actor=actor, timestamp=at)
        elif proposal.kind is ProposalKind.ENROL:
            household.enrol(
                programme=payload["programme"], proposal_id=pid, actor=actor, timestamp=at
            )
        else:
            household.unenrol(
                programme=payload["programme"], proposal_id=pid, actor=actor, timestamp=at
            )
        return household

    def withdraw_proposal(
        self,
        *,
        actor: Actor,
        proposal_id: UUID,
        reason: str,
        expected_version: int | None = None,
    ) -> int:
        def decide() -> Decision:
            proposal = self._get(Proposal, proposal_id, "proposal")
            authorize(actor, Action.WITHDRAW_PROPOSAL, proposal.region)
            self._check_version(proposal, expected_version)
            proposal.withdraw(reason=reason, actor=actor.as_record(), timestamp=self.clock())
            return Decision(save=[proposal], result=proposal.version)

        return int(self._execute("withdraw_proposal", actor, decide))

    def get_proposal(self, proposal_id: UUID) -> Proposal:
        return self._get(Proposal, proposal_id, "proposal")

    # -- households -------------------------------------------------------------

    def import_household(self, *, actor: Actor, data: Any, source: str) -> UUID:
        """A bulk import (e.g. from an earlier DTKS extract); the event names its source."""
        checked = validate_household_data(data)
        if not source or len(source) > 200:
            raise InvalidInput("source must be 1 to 200 characters", field="source")

        def decide() -> Decision:
            authorize(actor, Action.IMPORT_HOUSEHOLDS, checked["region"])
            household = Household(
                data=checked,
                proposal_id=None,
                source=source,
                actor=actor.as_record(),
                timestamp=self.clock(),
            )
            return Decision(save=[household], result=household.id)

        return UUID(str(self._execute("import_household", actor, decide)))

    def get_household(self, household_id: UUID) -> Household:
        return self._get(Household, household_id, "household")

    # -- scoring ----------------------------------------------------------------

    def publish_scoring_model(
        self,
        *,
        actor: Actor,
        intercept: Any,
        weights: Any,
        household_size_weight: Any,
        note: str,
    ) -> int:
        """Publishes the next version of the scoring model; every household is re-scored."""
        if not isinstance(note, str) or not 1 <= len(note) <= 1000:
            raise InvalidInput("note must be 1 to 1000 characters", field="note")

        def decide() -> Decision:
            authorize(actor, Action.PUBLISH_SCORING_MODEL)
            at = self.clock()
            try:
                model = self._get(ScoringModel, ScoringModel.id_for(), "scoring model")
            except NotFound:
                model = ScoringModel(actor=actor.as_record(), timestamp=at)
            published = model.publish(
                intercept=intercept,
                weights=weights,
                household_size_weight=household_size_weight,
                note=note,
                actor=actor.as_record(),
                timestamp=at,
            )
            return Decision(save=[model], result=published.version)

        return int(self._execute("publish_scoring_model", actor, decide))

    def get_scoring_model(self) -> ScoringModel | None:
        try:
            return self._get(ScoringModel, ScoringModel.id_for(), "scoring model")
        except NotFound:
            return None
