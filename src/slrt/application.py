"""The SLRT application: imperative commands and queries by id.

Every command goes through one write path, `run` (or `run_async` under an event loop),
which loads, decides and saves in one transaction, with other commands' (group
commit), and retries on a concurrent edit.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import structlog
from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    Repository,
)
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    EventStore,
    IntegrityError,
    JSONTranscoder,
    Mapper,
    OperationalError,
    Recording,
    Transcoder,
)

from slrt.config import Settings
from slrt.domain import windows
from slrt.domain.access import Action, authorize
from slrt.domain.common import (
    Actor,
    ConcurrentEdit,
    DomainError,
    IllegalTransition,
    InvalidInput,
    NotFound,
    Role,
    VersionMismatch,
    created,
)
from slrt.domain.complaint import Complaint, next_escalation
from slrt.domain.household import Household, validate_household_data
from slrt.domain.inbox import InboxItem, InboxPosition, InboxResult
from slrt.domain.inspection import Inspection
from slrt.domain.proposal import Proposal, ProposalKind, validate_payload
from slrt.domain.receipt import CommandReceipt, IdempotencyKeyReused
from slrt.domain.referral import Referral
from slrt.domain.scoring import ScoringModel
from slrt.domain.sla import DEFAULT_RULES, SlaBreach, SlaPolicy, SlaPolicyVersion
from slrt.domain.user import User
from slrt.group_commit import Expected, GroupCommitter, is_conflict
from slrt.group_read import GroupReader
from slrt.loop_commit import LoopCommitter
from slrt.persistence.encoding import OrjsonTranscoder
from slrt.persistence.postgres import AuditedPostgresApplicationRecorder
from slrt.projections.decoding import DecodingMapper

log = structlog.get_logger("slrt.commands")

T = TypeVar("T")
Clock = Callable[[], datetime]


SYSTEM_ACTOR = Actor(user_id="slrt", role=Role.SYSTEM, region="ID")


class _NothingToRecord(Exception):
    """Every message of an inbox batch was consumed before: nothing to save."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Decision:
    """What a command decided: the aggregates to save, and the one it answers about."""

    save: Sequence[Aggregate]
    subject: Aggregate


@dataclass(frozen=True)
class Outcome:
    """A command's answer: the aggregate it concerns, at the version it produced."""

    id: UUID
    version: int
    #: True when this is the answer to an earlier send with the same Idempotency-Key.
    replayed: bool = False
    #: The aggregate as the command left it (None for a replay), so the answer needs
    #: no second read of what the command just wrote.
    aggregate: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Command:
    """A command ready to run: `decide` is called on fresh state for each attempt and
    returns what to save."""

    name: str
    actor: Actor
    decide: Callable[[], Decision]
    idempotency: Idempotency | None = None
    #: Whether `decide` reads stored state (if not, it may run on an event loop).
    reads: bool = True
    #: The aggregates `decide` reads (by `_get`) when it is run on an event loop: they
    #: are read first, with the key's receipt and other commands' (slrt.group_read). If
    #: `decide` needs any other, it is decided again in a worker thread.
    prefetch: tuple[UUID, ...] = ()


#: The stored events read ahead for a decision on the event loop (`Command.prefetch`).
_PREFETCHED: ContextVar[dict[UUID, list[Any]] | None] = ContextVar("prefetched", default=None)


def _project(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's project_aggregate without its assert that each event is a
    CanMutateProtocol: a runtime Protocol check per event, ~8 % of an approval's CPU."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class _NotPrefetched(Exception):
    """A decision on the event loop asked for something not read ahead."""


#: Runs a call in a worker thread: `await offload(function, *args)`.
Offload = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Idempotency:
    """The caller's Idempotency-Key and a fingerprint of the request it came with."""

    key: str
    fingerprint: str


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
        self._sla_policy_stored = False
        #: The SLA policy version in force, when a follower keeps it (slrt.followed):
        #: complaints then start their clocks under it without reading the store.
        self.sla_policy_in_force: SlaPolicyVersion | None = None
        self._policy_lock = threading.Lock()
        self._positions: Repository[UUID] | None = None
        self._position_snapshots: EventStore[UUID] | None = None
        self._positions_lock = threading.Lock()
        super().__init__(env=settings.eventsourcing_env())
        self._committer: GroupCommitter | None = None
        self._reader: GroupReader | None = None
        #: Commands decided on an event loop are saved on that loop (PostgreSQL).
        self._loop_committer: LoopCommitter | None = None
        if settings.group_commit:
            self._committer = GroupCommitter(
                self.save_events,
                window=settings.group_commit_window_ms / 1000,
                max_batch=settings.group_commit_max_batch,
            )
            if isinstance(self.recorder, AuditedPostgresApplicationRecorder):
                self._loop_committer = LoopCommitter(
                    self.recorder,
                    encode=self.mapper.to_stored_event,
                    recorded=self._recorded,
                    max_batch=settings.group_commit_max_batch,
                    in_flight=settings.group_commit_in_flight,
                )
                self._reader = GroupReader(
                    self.recorder.select_events_of,
                    max_batch=settings.group_commit_max_batch,
                    window=settings.group_read_window_ms / 1000,
                )

    def construct_mapper(self) -> Mapper[UUID]:
        """The library's mapper decoding with slrt.projections.decoding's EventDecoder,
        unless the environment names another mapper."""
        if self.factory.env.get(self.factory.MAPPER_TOPIC):
            return super().construct_mapper()
        return self.factory.mapper(
            transcoder=self.construct_transcoder(), mapper_class=DecodingMapper
        )

    def construct_transcoder(self) -> Transcoder:
        """The library's JSON transcoder encoding with orjson (slrt.persistence.encoding),
        unless the environment names another transcoder."""
        transcoder = self.factory.transcoder()
        if type(transcoder) is JSONTranscoder:
            transcoder = OrjsonTranscoder()
        if isinstance(transcoder, JSONTranscoder):
            self.register_transcodings(transcoder)
        return transcoder

    def close(self) -> None:
        if self._loop_committer is not None:
            self._loop_committer.close()
        if self._committer is not None:
            self._committer.close()
        if self._reader is not None:
            self._reader.close()
        super().close()

    # -- the one write path -------------------------------------------------

    def _execute(
        self,
        command: str,
        actor: Actor,
        decide: Callable[[], Decision],
        idempotency: Idempotency | None = None,
    ) -> Outcome:
        return self.run(Command(command, actor, decide, idempotency))

    def run(self, command: Command) -> Outcome:
        """Runs `decide` on freshly loaded aggregates and saves what it returns in one
        transaction. A concurrent edit is retried from fresh state, so the rules are
        checked again against what the other writer saved; after the retries it is
        refused as a conflict, never silently overwritten. With an Idempotency-Key, a
        receipt is saved in the same transaction and a repeat returns the first answer."""
        for attempt in range(1, self.settings.command_retries + 2):
            with self._announced() as expected:
                decided = self._decide(command)
                if isinstance(decided, Outcome):
                    return decided
                outcome, save = decided
                try:
                    if self._committer is not None:
                        self._committer.commit(save, expected)
                    else:
                        self.save(*save)
                except (IntegrityError, OperationalError) as error:
                    self._conflicted(command, attempt, error)
                    continue
            return self._done(command, outcome)
        raise self._gave_up(command)

    def _announced(self, announce: bool = True) -> AbstractContextManager[Expected | None]:
        """While a command is decided, the group committer is told it is coming (if
        `announce`): a batch waits for its commit (the window at most) instead of
        leaving without it. Leaving the block closes the announcement."""
        if announce and self._committer is not None:
            return self._committer.expect()
        return nullcontext()

    async def run_async(self, command: Command, *, offload: Offload | None = None) -> Outcome:
        """`run` for an event loop. The thread that decides is not held while the commit
        waits for its batch: a command whose decision reads nothing stored is decided on
        the loop itself, any other in `offload` (a function that runs a call in a worker
        thread; asyncio.to_thread by default); the loop then awaits the group commit.
        Saving without group commit happens in `offload` too."""
        offload = offload or asyncio.to_thread
        # A repeated key is found by a conflict on its first attempt: one more attempt.
        extra = 1 if command.idempotency is not None and not command.reads else 0
        for attempt in range(1, self.settings.command_retries + 2 + extra):
            inline = not command.reads and (command.idempotency is None or attempt == 1)
            # A command decided inline reaches the committer before anything else runs
            # on this loop: only one that waits for a read is announced to it. (The loop
            # committer has no window to hold open: it needs no announcements.)
            announce = not inline and self._loop_committer is None
            with self._announced(announce) as expected:
                if inline:
                    decided = await self._decide_inline(command, offload)
                elif command.reads and self._can_prefetch(command):
                    decided = await self._decide_prefetched(command, offload)
                else:
                    decided = await offload(self._decide, command)
                if isinstance(decided, Outcome):
                    return decided
                outcome, save = decided
                try:
                    if self._loop_committer is not None:
                        await self._loop_committer.commit_async(save)
                    elif self._committer is not None:
                        await self._committer.commit_async(save, expected)
                    else:
                        await offload(self.save, *save)
                except (IntegrityError, OperationalError) as error:
                    self._conflicted(command, attempt, error)
                    continue
            return self._done(command, outcome)
        raise self._gave_up(command)

    def _can_prefetch(self, command: Command) -> bool:
        return self._reader is not None and bool(command.prefetch)

    async def _decide_prefetched(
        self, command: Command, offload: Offload
    ) -> Outcome | tuple[Outcome, list[Aggregate]]:
        """The decision of a command on existing records, on the event loop: the records
        (and the receipt of its Idempotency-Key) are read first, many commands' in one
        statement. A decision that needs anything else is made again in a worker
        thread, from scratch."""
        assert self._reader is not None
        ids = command.prefetch
        if command.idempotency is not None:
            ids = (*ids, CommandReceipt.create_id(command.actor.user_id, command.idempotency.key))
        fetched = await self._reader.read_async(ids)
        token = _PREFETCHED.set(fetched)
        try:
            return self._decide(command)
        except _NotPrefetched:
            pass
        finally:
            _PREFETCHED.reset(token)
        return await offload(self._decide, command)

    async def _decide_inline(
        self, command: Command, offload: Offload
    ) -> Outcome | tuple[Outcome, list[Aggregate]]:
        """The decision of a command that reads nothing stored, on the event loop. Its
        Idempotency-Key's receipt is not read first: the receipt is saved with the
        command, so a key used before collides with the stored one (a conflict, and the
        next attempt reads it and answers as before). A refusal is checked against the
        receipt too, so a repeat of an accepted command (say, after a submission window
        closed) still gets the first answer."""
        try:
            return self._decide(command, read_receipt=False)
        except DomainError:
            if command.idempotency is not None:
                earlier = await offload(self._replay, command)
                if earlier is not None:
                    return earlier
            raise

    def _decide(
        self, command: Command, *, read_receipt: bool = True
    ) -> Outcome | tuple[Outcome, list[Aggregate]]:
        """One attempt's decision: the earlier answer for a repeated Idempotency-Key (if
        `read_receipt`), or the outcome and the aggregates to save (with the key's
        receipt)."""
        actor, idempotency = command.actor, command.idempotency
        if idempotency is not None and read_receipt:
            earlier = self._replay(command)
            if earlier is not None:
                return earlier
        decision = command.decide()
        outcome = Outcome(
            id=decision.subject.id, version=decision.subject.version, aggregate=decision.subject
        )
        save = list(decision.save)
        if idempotency is not None:
            save.append(
                CommandReceipt(
                    user_id=actor.user_id,
                    key=idempotency.key,
                    fingerprint=idempotency.fingerprint,
                    command=command.name,
                    result_id=outcome.id,
                    result_version=outcome.version,
                    timestamp=self.clock(),
                )
            )
        return outcome, save

    def _replay(self, command: Command) -> Outcome | None:
        """The earlier answer to this Idempotency-Key, if there is one."""
        assert command.idempotency is not None
        earlier = self._receipt(command.actor, command.idempotency)
        if earlier is not None:
            log.info(
                "command", command=command.name, outcome="replayed", user=command.actor.user_id
            )
        return earlier

    @staticmethod
    def _conflicted(command: Command, attempt: int, error: Exception) -> None:
        """A concurrent edit is logged and the command tried again; anything else raised."""
        if not is_conflict(error):
            raise error
        log.info(
            "command.conflict", command=command.name, attempt=attempt, user=command.actor.user_id
        )

    @staticmethod
    def _done(command: Command, outcome: Outcome) -> Outcome:
        actor = command.actor
        log.info(
            "command",
            command=command.name,
            outcome="ok",
            user=actor.user_id,
            role=actor.role.value,
            region=actor.region,
            aggregate_id=str(outcome.id),
            version=outcome.version,
        )
        return outcome

    def _gave_up(self, command: Command) -> ConcurrentEdit:
        return ConcurrentEdit(
            f"{command.name}: another user changed the same record "
            f"{self.settings.command_retries + 1} times in a row; reload and try again"
        )

    def _receipt(self, actor: Actor, idempotency: Idempotency) -> Outcome | None:
        receipt_id = CommandReceipt.create_id(actor.user_id, idempotency.key)
        fetched = _PREFETCHED.get()
        try:
            if fetched is None:
                receipt: Any = self.repository.get(receipt_id, projector_func=_project)
            else:
                receipt = self._from_prefetched(fetched, receipt_id, None)
        except AggregateNotFoundError:
            return None
        if receipt.fingerprint != idempotency.fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used for a different request; "
                "use a new key for a new request",
                field="Idempotency-Key",
            )
        return Outcome(id=receipt.result_id, version=receipt.result_version, replayed=True)

    def save_events(self, *events: Any) -> list[Recording[UUID]]:
        """`save` for events already collected from their aggregates (the group
        commit's batches): the library's steps, without its check of each event against
        its runtime protocols (`isinstance` on a Protocol, ~3 % of the API process's
        CPU per registration; bench/README.md, sixteenth session). Snapshots are taken
        of aggregates passed to `save`, and here there are none."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        processing_event.events.extend(events)
        recordings = self._record(processing_event)
        self._recorded(recordings)
        return recordings

    def _recorded(self, recordings: list[Recording[UUID]]) -> None:
        """What `save` does once events are stored (the loop committer's too)."""
        self._notify(recordings)
        self.notify([r.domain_event for r in recordings])  # the library's deprecated hook

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        super()._notify(recordings)
        for listener in list(self._listeners):
            listener()

    def on_recorded(self, listener: Callable[[], None]) -> None:
        """Calls `listener` after every save in this process (wakes projections)."""
        self._listeners.append(listener)

    def _get(self, cls: type[T], aggregate_id: UUID, what: str, version: int | None = None) -> T:
        fetched = _PREFETCHED.get()
        try:
            if fetched is None:
                aggregate: Any = self.repository.get(
                    aggregate_id, version=version, projector_func=_project
                )
            else:
                aggregate = self._from_prefetched(fetched, aggregate_id, version)
        except AggregateNotFoundError:
            raise NotFound(f"{what} {aggregate_id} does not exist") from None
        if not isinstance(aggregate, cls):
            raise NotFound(f"{what} {aggregate_id} does not exist")
        return aggregate

    def _from_prefetched(
        self, fetched: dict[UUID, list[Any]], aggregate_id: UUID, version: int | None
    ) -> Any:
        """The aggregate rebuilt from the events read ahead for it, as the repository
        rebuilds it; anything not read ahead ends the decision on the event loop."""
        if version is not None or aggregate_id not in fetched:
            raise _NotPrefetched(aggregate_id)
        aggregate = _project(None, (self.mapper.to_domain_event(e) for e in fetched[aggregate_id]))
        if aggregate is None:
            raise AggregateNotFoundError(aggregate_id)
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
        idempotency: Idempotency | None = None,
    ) -> Outcome:
        """A front office logs a proposal (see `submit_proposal_command`)."""
        return self.run(
            self.submit_proposal_command(
                actor=actor,
                kind=kind,
                payload=payload,
                household_id=household_id,
                note=note,
                idempotency=idempotency,
            )
        )

    def submit_proposal_command(
        self,
        *,
        actor: Actor,
        kind: str,
        payload: Any,
        household_id: UUID | None = None,
        note: str | None = None,
        idempotency: Idempotency | None = None,
    ) -> Command:
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
            proposal = created(
                Proposal,
                "Submitted",
                kind=proposal_kind.value,
                region=region,
                household_id=household_id,
                payload=checked,
                note=note,
                actor=actor.as_record(),
                timestamp=at,
            )
            return Decision(save=[*self._sla_policy_if_new(), proposal], subject=proposal)

        # A registration reads nothing stored once the SLA policy is (the runtime
        # stores it at start), so it can be decided on an event loop.
        reads = proposal_kind is not ProposalKind.REGISTER or not self._sla_policy_stored
        return Command("submit_proposal", actor, decide, idempotency, reads=reads)

    def decide_at_village(
        self,
        *,
        actor: Actor,
        proposal_id: UUID,
        approve: bool,
        berita_acara: Any,
        reason: str | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Outcome:
        """The musyawarah desa's decision (see `decide_at_village_command`)."""
        return self.run(
            self.decide_at_village_command(
                actor=actor,
                proposal_id=proposal_id,
                approve=approve,
                berita_acara=berita_acara,
                reason=reason,
                expected_version=expected_version,
                idempotency=idempotency,
            )
        )

    def decide_at_village_command(
        self,
        *,
        actor: Actor,
        proposal_id: UUID,
        approve: bool,
        berita_acara: Any,
        reason: str | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Command:
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
            return Decision(save=[proposal], subject=proposal)

        return Command("decide_at_village", actor, decide, idempotency, prefetch=(proposal_id,))

    def decide_at_dinsos(
        self,
        *,
        actor: Actor,
        proposal_id: UUID,
        verify: bool,
        reason: str | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Outcome:
        """See `decide_at_dinsos_command`."""
        return self.run(
            self.decide_at_dinsos_command(
                actor=actor,
                proposal_id=proposal_id,
                verify=verify,
                reason=reason,
                expected_version=expected_version,
                idempotency=idempotency,
            )
        )

    def decide_at_dinsos_command(
        self,
        *,
        actor: Actor,
        proposal_id: UUID,
        verify: bool,
        reason: str | None = None,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Command:
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
                return Decision(save=[proposal], subject=proposal)
            proposal.verify_by_dinsos(note=reason, actor=who, timestamp=at)
            household = self._apply(proposal, actor=who, at=at)
            proposal.mark_applied(household_id=household.id, actor=who, timestamp=at)
            return Decision(save=[proposal, household], subject=proposal)

        return Command("decide_at_dinsos", actor, decide, idempotency, prefetch=(proposal_id,))

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
        idempotency: Idempotency | None = None,
    ) -> Outcome:
        """See `withdraw_proposal_command`."""
        return self.run(
            self.withdraw_proposal_command(
                actor=actor,
                proposal_id=proposal_id,
                reason=reason,
                expected_version=expected_version,
                idempotency=idempotency,
            )
        )

    def withdraw_proposal_command(
        self,
        *,
        actor: Actor,
        proposal_id: UUID,
        reason: str,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Command:
        def decide() -> Decision:
            proposal = self._get(Proposal, proposal_id, "proposal")
            authorize(actor, Action.WITHDRAW_PROPOSAL, proposal.region)
            self._check_version(proposal, expected_version)
            proposal.withdraw(reason=reason, actor=actor.as_record(), timestamp=self.clock())
            return Decision(save=[proposal], subject=proposal)

        return Command("withdraw_proposal", actor, decide, idempotency, prefetch=(proposal_id,))

    def get_proposal(self, proposal_id: UUID, version: int | None = None) -> Proposal:
        """The proposal now, or as it was at `version` (to answer a replayed command)."""
        return self._get(Proposal, proposal_id, "proposal", version)

    # -- households -------------------------------------------------------------

    def import_household(self, *, actor: Actor, data: Any, source: str) -> Outcome:
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
            return Decision(save=[household], subject=household)

        return self._execute("import_household", actor, decide)

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
        idempotency: Idempotency | None = None,
    ) -> Outcome:
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
            model.publish(
                intercept=intercept,
                weights=weights,
                household_size_weight=household_size_weight,
                note=note,
                actor=actor.as_record(),
                timestamp=at,
            )
            return Decision(save=[model], subject=model)

        return self._execute("publish_scoring_model", actor, decide, idempotency)

    def get_scoring_model(self, version: int | None = None) -> ScoringModel | None:
        """The model with every version published so far (or up to aggregate `version`)."""
        try:
            return self._get(ScoringModel, ScoringModel.id_for(), "scoring model", version)
        except NotFound:
            return None

    # -- inspection ---------------------------------------------------------------

    def record_inspection(
        self, *, actor: Actor, resource: str, resource_id: str | None, region: str | None
    ) -> None:
        """Inspectors read anywhere, and every read is itself a recorded event."""
        self.save(
            Inspection(
                resource=resource,
                resource_id=resource_id,
                region=region,
                actor=actor.as_record(),
                timestamp=self.clock(),
            )
        )

    # -- users ----------------------------------------------------------------------

    def register_user(
        self, *, actor: Actor, user_id: str, role: str, region: str, agency: str | None = None
    ) -> Outcome:
        """An admin registers a user with one role in one region."""

        def decide() -> Decision:
            authorize(actor, Action.MANAGE_USERS, None if region == "ID" else region)
            user = User.register(
                user_id=user_id,
                role=role,
                region=region,
                agency=agency,
                actor=actor.as_record(),
                timestamp=self.clock(),
            )
            if self._exists(user.id):
                raise IllegalTransition(f"user {user_id} already exists")
            return Decision(save=[user], subject=user)

        return self._execute("register_user", actor, decide)

    def deactivate_user(self, *, actor: Actor, user_id: str) -> Outcome:
        def decide() -> Decision:
            user = self.get_user(user_id)
            authorize(actor, Action.MANAGE_USERS, None if user.region == "ID" else user.region)
            user.deactivate(actor=actor.as_record(), timestamp=self.clock())
            return Decision(save=[user], subject=user)

        return self._execute("deactivate_user", actor, decide)

    def get_user(self, user_id: str) -> User:
        try:
            return self._get(User, User.create_id(user_id), "user")
        except NotFound:
            raise NotFound(f"user {user_id} does not exist") from None

    def has_user(self, user_id: str) -> bool:
        return self._exists(User.create_id(user_id))

    def _exists(self, aggregate_id: UUID) -> bool:
        try:
            self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return False
        return True

    # -- SLA policy -------------------------------------------------------------------

    def publish_sla_policy(
        self, *, actor: Actor, rules: Any, note: str, idempotency: Idempotency | None = None
    ) -> Outcome:
        """A new policy version applies to timers started from now on; running timers
        keep the version they started under."""
        if not isinstance(note, str) or not 1 <= len(note) <= 1000:
            raise InvalidInput("note must be 1 to 1000 characters", field="note")

        def decide() -> Decision:
            authorize(actor, Action.PUBLISH_SLA_POLICY)
            policy = self._sla_policy()
            policy.publish(rules=rules, note=note, actor=actor.as_record(), timestamp=self.clock())
            return Decision(save=[policy], subject=policy)

        outcome = self._execute("publish_sla_policy", actor, decide, idempotency)
        if self.sla_policy_in_force is not None:  # followed: in force here at once
            self.reload_sla_policy_in_force()
        return outcome

    def reload_sla_policy_in_force(self) -> None:
        """Reads the policy's newest version (the follower calls this when one is
        published, in this process or another)."""
        with self._policy_lock:  # the follower's thread and a publishing request
            policy = self.get_sla_policy()
            if policy is not None and policy.current is not None:
                known = self.sla_policy_in_force
                if known is None or policy.current.version > known.version:
                    self.sla_policy_in_force = policy.current

    def _sla_policy(self) -> SlaPolicy:
        """The policy; on first use, the default rules are published as version 1 (the
        caller saves it with its own aggregates, so it exists before any timer starts)."""
        try:
            return self._get(SlaPolicy, SlaPolicy.id_for(), "SLA policy")
        except NotFound:
            policy = SlaPolicy(actor=SYSTEM_ACTOR.as_record(), timestamp=self.clock())
            policy.publish(
                rules=DEFAULT_RULES,
                note="default policy",
                actor=SYSTEM_ACTOR.as_record(),
                timestamp=self.clock(),
            )
            return policy

    def ensure_sla_policy(self) -> None:
        """Stores the default SLA policy if none is stored yet. The runtime calls it at
        start, so the first commands on a fresh store do not each carry a copy of it
        (concurrent copies conflict, and every one of those commands is then retried)."""
        for aggregate in self._sla_policy_if_new():
            with contextlib.suppress(IntegrityError):  # another process stored it first
                self.save(aggregate)
        self._sla_policy_stored = True

    def _sla_policy_if_new(self) -> list[Aggregate]:
        """The default policy to save with a command that starts SLA clocks, if none is
        stored yet. Once a policy is seen stored it always is, so it is not read again."""
        if self._sla_policy_stored:
            return []
        policy = self._sla_policy()
        if policy.pending_events:
            return [policy]
        self._sla_policy_stored = True
        return []

    def get_sla_policy(self, version: int | None = None) -> SlaPolicy | None:
        try:
            return self._get(SlaPolicy, SlaPolicy.id_for(), "SLA policy", version)
        except NotFound:
            return None

    def record_breach(self, *, timer: dict[str, Any], escalate: bool) -> Outcome | None:
        """Records that a timer's deadline passed unmet, exactly once (the breach's id is
        the timer's). With `escalate`, an open complaint goes up a level in the same
        transaction. Returns None if the breach was already recorded."""
        actor = SYSTEM_ACTOR
        breach_id = SlaBreach.create_id(timer["timer_id"])
        if self._exists(breach_id):
            return None

        def decide() -> Decision:
            breach = SlaBreach(
                timer_id=timer["timer_id"],
                item_kind=timer["item_kind"],
                item_id=UUID(timer["item_id"]),
                region=timer["region"],
                category=timer["category"],
                target=timer["target"],
                policy_version=timer["policy_version"],
                started_at=timer["started_at"],
                deadline=timer["deadline"],
                actor=actor.as_record(),
                timestamp=self.clock(),
            )
            save: list[Aggregate] = [breach]
            if escalate and timer["item_kind"] == "complaint":
                complaint = self._get(Complaint, UUID(timer["item_id"]), "complaint")
                level = next_escalation(complaint)
                if complaint.is_open and level is not None:
                    complaint.escalate(
                        level=level,
                        reason=f"SLA {timer['target']} deadline {timer['deadline']:%Y-%m-%d %H:%M} "
                        "UTC passed",
                        actor=actor.as_record(),
                        timestamp=self.clock(),
                    )
                    save.append(complaint)
            save.extend(self._referral_expiry(timer))
            return Decision(save=save, subject=breach)

        try:
            return self._execute("record_breach", actor, decide)
        except ConcurrentEdit:
            if self._exists(breach_id):
                return None
            raise

    # -- complaints ---------------------------------------------------------------------

    def receive_complaint(
        self,
        *,
        actor: Actor,
        region: str,
        channel: str,
        complaint_type: str,
        category: str,
        description: str,
        household_id: UUID | None = None,
        member_nik: str | None = None,
        reporter: dict[str, Any] | None = None,
        idempotency: Idempotency | None = None,
    ) -> Outcome:
        """A complaint is logged (see `receive_complaint_command`)."""
        return self.run(
            self.receive_complaint_command(
                actor=actor,
                region=region,
                channel=channel,
                complaint_type=complaint_type,
                category=category,
                description=description,
                household_id=household_id,
                member_nik=member_nik,
                reporter=reporter,
                idempotency=idempotency,
            )
        )

    def receive_complaint_command(
        self,
        *,
        actor: Actor,
        region: str,
        channel: str,
        complaint_type: str,
        category: str,
        description: str,
        household_id: UUID | None = None,
        member_nik: str | None = None,
        reporter: dict[str, Any] | None = None,
        idempotency: Idempotency | None = None,
    ) -> Command:
        """A complaint is logged; its SLA clocks start under the policy in force now."""

        def decide() -> Decision:
            authorize(actor, Action.RECEIVE_COMPLAINT, region)
            if household_id is not None:
                household = self.get_household(household_id)
                if household.region != region:
                    raise InvalidInput(
                        f"household {household_id} is in {household.region}, not {region}",
                        field="household_id",
                    )
                if member_nik is not None and member_nik not in {
                    m["nik"] for m in household.members
                }:
                    raise InvalidInput(
                        "member_nik is not a member of that household", field="member_nik"
                    )
            in_force = self.sla_policy_in_force
            save: list[Aggregate] = []
            if in_force is None:
                policy = self._sla_policy()
                assert policy.current is not None
                in_force = policy.current
                # The default policy, published on first use, is stored before the
                # complaint, so that every reader meets the policy before the clocks.
                save = [policy] if policy.pending_events else []
            complaint = Complaint.receive(
                region=region,
                channel=channel,
                complaint_type=complaint_type,
                category=category,
                description=description,
                household_id=household_id,
                member_nik=member_nik,
                reporter=reporter,
                sla_policy_version=in_force.version,
                actor=actor.as_record(),
                timestamp=self.clock(),
            )
            return Decision(save=[*save, complaint], subject=complaint)

        # Without a household to check, a complaint reads nothing stored when the policy
        # in force is followed: it is decided on the event loop (ADR 0009).
        reads = household_id is not None or self.sla_policy_in_force is None
        return Command("receive_complaint", actor, decide, idempotency, reads=reads)

    def handle_complaint(
        self,
        *,
        actor: Actor,
        complaint_id: UUID,
        action: str,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
        **details: Any,
    ) -> Outcome:
        """See `handle_complaint_command`."""
        return self.run(
            self.handle_complaint_command(
                actor=actor,
                complaint_id=complaint_id,
                action=action,
                expected_version=expected_version,
                idempotency=idempotency,
                **details,
            )
        )

    def handle_complaint_command(
        self,
        *,
        actor: Actor,
        complaint_id: UUID,
        action: str,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
        **details: Any,
    ) -> Command:
        """acknowledge, assign, escalate, resolve, close or reopen a complaint."""
        handlers = {
            "acknowledge": lambda c, **kw: c.acknowledge(**kw),
            "assign": lambda c, **kw: c.assign(**kw),
            "escalate": lambda c, **kw: c.escalate(**kw),
            "resolve": lambda c, **kw: c.resolve(**kw),
            "close": lambda c, **kw: c.close(**kw),
            "reopen": lambda c, **kw: c.reopen(**kw),
        }
        if action not in handlers:
            raise InvalidInput(f"unknown complaint action {action}", field="action")

        def decide() -> Decision:
            complaint = self.get_complaint(complaint_id)
            authorize(actor, Action.HANDLE_COMPLAINT, complaint.region)
            self._check_version(complaint, expected_version)
            handlers[action](complaint, actor=actor.as_record(), timestamp=self.clock(), **details)
            return Decision(save=[complaint], subject=complaint)

        return Command(f"{action}_complaint", actor, decide, idempotency, prefetch=(complaint_id,))

    def get_complaint(self, complaint_id: UUID, version: int | None = None) -> Complaint:
        return self._get(Complaint, complaint_id, "complaint", version)

    # -- referrals ------------------------------------------------------------------------

    def create_referral(
        self,
        *,
        actor: Actor,
        household_id: UUID,
        agency: str,
        service: str,
        reason: str,
        urgency: str = "routine",
        member_nik: str | None = None,
        complaint_id: UUID | None = None,
        proposal_id: UUID | None = None,
        idempotency: Idempotency | None = None,
    ) -> Outcome:
        """See `create_referral_command`."""
        return self.run(
            self.create_referral_command(
                actor=actor,
                household_id=household_id,
                agency=agency,
                service=service,
                reason=reason,
                urgency=urgency,
                member_nik=member_nik,
                complaint_id=complaint_id,
                proposal_id=proposal_id,
                idempotency=idempotency,
            )
        )

    def create_referral_command(
        self,
        *,
        actor: Actor,
        household_id: UUID,
        agency: str,
        service: str,
        reason: str,
        urgency: str = "routine",
        member_nik: str | None = None,
        complaint_id: UUID | None = None,
        proposal_id: UUID | None = None,
        idempotency: Idempotency | None = None,
    ) -> Command:
        """A front office or manager refers a household (or one member) to an agency. It
        is only stored here; the outbox publishes it to the agency's topic afterwards."""

        def decide() -> Decision:
            household = self.get_household(household_id)
            authorize(actor, Action.CREATE_REFERRAL, household.region)
            if member_nik is not None and member_nik not in {m["nik"] for m in household.members}:
                raise InvalidInput(
                    "member_nik is not a member of that household", field="member_nik"
                )
            if complaint_id is not None:
                self.get_complaint(complaint_id)
            if proposal_id is not None:
                self.get_proposal(proposal_id)
            referral = Referral.create(
                region=household.region,
                household_id=household_id,
                member_nik=member_nik,
                agency=agency,
                service=service,
                reason=reason,
                urgency=urgency,
                complaint_id=complaint_id,
                proposal_id=proposal_id,
                actor=actor.as_record(),
                timestamp=self.clock(),
            )
            # As for complaints: the default policy is stored before the first clock.
            return Decision(save=[*self._sla_policy_if_new(), referral], subject=referral)

        return Command("create_referral", actor, decide, idempotency)

    def cancel_referral(
        self,
        *,
        actor: Actor,
        referral_id: UUID,
        reason: str,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Outcome:
        """See `cancel_referral_command`."""
        return self.run(
            self.cancel_referral_command(
                actor=actor,
                referral_id=referral_id,
                reason=reason,
                expected_version=expected_version,
                idempotency=idempotency,
            )
        )

    def cancel_referral_command(
        self,
        *,
        actor: Actor,
        referral_id: UUID,
        reason: str,
        expected_version: int | None = None,
        idempotency: Idempotency | None = None,
    ) -> Command:
        def decide() -> Decision:
            referral = self.get_referral(referral_id)
            authorize(actor, Action.CANCEL_REFERRAL, referral.region)
            self._check_version(referral, expected_version)
            referral.cancel(reason=reason, actor=actor.as_record(), timestamp=self.clock())
            return Decision(save=[referral], subject=referral)

        return Command("cancel_referral", actor, decide, idempotency, prefetch=(referral_id,))

    def get_referral(self, referral_id: UUID, version: int | None = None) -> Referral:
        return self._get(Referral, referral_id, "referral", version)

    def mark_dispatched(
        self, dispatched: dict[UUID, str], *, created: dict[UUID, Any] | None = None
    ) -> int:
        """Records that the broker accepted these referrals (id -> topic), once each.
        One transaction for the lot; on a conflict, one command per referral. With
        `created` (id -> its Created event), the first try assumes nothing happened to
        the referral since, and so reads nothing; a conflict says otherwise."""
        actor = SYSTEM_ACTOR.as_record()
        referrals = []
        for referral_id in dispatched:
            if created is not None and referral_id in created:
                referral = created[referral_id].mutate(None)
            else:
                referral = self._get(Referral, referral_id, "referral")
            topic = dispatched[referral_id]
            if referral.dispatch(topic=topic, actor=actor, timestamp=self.clock()):
                referrals.append(referral)
        if not referrals:
            return 0
        try:
            if self._committer is not None:
                self._committer.commit(referrals)
            else:
                self.save(*referrals)
            return len(referrals)
        except (IntegrityError, OperationalError) as error:
            if not is_conflict(error):
                raise
            if created is not None:  # some were answered already: read them and retry
                return self.mark_dispatched(dispatched)
        recorded = 0
        for referral in referrals:

            def decide(referral_id: UUID = referral.id) -> Decision:
                fresh = self._get(Referral, referral_id, "referral")
                fresh.dispatch(topic=dispatched[referral_id], actor=actor, timestamp=self.clock())
                return Decision(save=[fresh], subject=fresh)

            self._execute("mark_dispatched", SYSTEM_ACTOR, decide)
            recorded += 1
        return recorded

    def record_agency_answers(
        self,
        *,
        position: Callable[[], InboxPosition],
        items: Sequence[InboxItem],
        dead_letter: Callable[[list[tuple[InboxItem, str]]], None],
    ) -> InboxResult:
        """Applies a batch of agencies' answers (acknowledged, delivered, declined) from
        one partition, and records every consumed offset, in one transaction: each answer
        is applied exactly once. `position` returns the partition's InboxPosition as
        stored (it is called again on a retry). An answer whose message id was applied
        before only moves the position. An answer that cannot be applied (unreadable,
        unknown referral, wrong agency, illegal transition) is handed to `dead_letter`
        with the reason before the commit, and recorded as DeadLettered."""
        system = SYSTEM_ACTOR.as_record()
        result = InboxResult()

        def decide() -> Decision:
            nonlocal result
            result = InboxResult()
            at = self.clock()
            inbox = position()
            referrals: dict[UUID, Referral] = {}
            changed: dict[UUID, Referral] = {}
            dead: list[tuple[InboxItem, str]] = []
            for item in items:
                if item.offset < inbox.next_offset:
                    continue  # consumed before (a restart, or another consumer)
                reason = item.refused
                if reason is None:
                    assert item.referral_id is not None and item.message_id is not None
                    try:
                        referral = referrals.get(item.referral_id) or self.get_referral(
                            item.referral_id
                        )
                        referrals[item.referral_id] = referral
                        if self._apply_answer(referral, item, at):
                            changed[referral.id] = referral
                            result.applied += 1
                        else:
                            result.duplicates += 1
                    except DomainError as error:
                        reason = f"{type(error).__name__}: {error.detail}"
                if reason is not None:
                    inbox.dead_letter(
                        offset=item.offset,
                        message_id=item.message_id,
                        reason=reason,
                        actor=system,
                        timestamp=at,
                    )
                    dead.append((item, reason))
                    result.dead_lettered.append((item.offset, reason))
                else:
                    assert item.referral_id is not None and item.message_id is not None
                    inbox.consume(
                        offset=item.offset,
                        message_id=item.message_id,
                        referral_id=item.referral_id,
                        outcome="applied" if item.referral_id in changed else "duplicate",
                        actor=system,
                        timestamp=at,
                    )
            if not inbox.pending_events:
                raise _NothingToRecord
            if dead:
                dead_letter(dead)  # on the broker before the positions move past them
            return Decision(save=[*changed.values(), inbox], subject=inbox)

        try:
            self._execute("record_agency_answers", SYSTEM_ACTOR, decide)
        except _NothingToRecord:
            return InboxResult()
        return result

    def _apply_answer(self, referral: Referral, item: InboxItem, at: datetime) -> bool:
        """Applies one answer; False when its message id was applied before."""
        assert item.message_id is not None and item.agency is not None
        if referral.agency != item.agency:
            raise InvalidInput(
                f"referral {referral.id} is addressed to {referral.agency}, not {item.agency}",
                field="agency",
            )
        if referral.is_duplicate(item.message_id):
            return False
        agency = Actor(
            user_id=f"agency:{item.agency}",
            role=Role.AGENCY,
            region="ID",
            agency=item.agency,
            request_id=item.message_id,
        )
        common: dict[str, Any] = {
            "message_id": item.message_id,
            "actor": agency.as_record(),
            "timestamp": at,
        }
        data = item.data
        if item.answer == "acknowledged":
            referral.acknowledge(agency_reference=data.get("agency_reference"), **common)
        elif item.answer == "delivered":
            referral.deliver(
                delivered_on=data.get("delivered_on"),
                details=data.get("details"),
                agency_reference=data.get("agency_reference"),
                **common,
            )
        elif item.answer == "declined":
            referral.decline(
                reason=data.get("reason"), agency_reference=data.get("agency_reference"), **common
            )
        else:
            raise InvalidInput(f"unknown answer {item.answer}", field="type")
        return True

    #: An inbox position records an event for every message consumed (a million answers
    #: over a year: a million events to replay at each start). It is snapshotted every
    #: this many versions (`snapshot_inbox_position`) and loaded from its latest
    #: snapshot and the events after it.
    INBOX_SNAPSHOT_INTERVAL = 1000

    def _inbox_positions(self) -> tuple[Repository[UUID], EventStore[UUID]]:
        """A repository of inbox positions that starts from their snapshots (its own
        store, created on first use: the other aggregates are not snapshotted, and a
        snapshot look-up would cost every command's read a round trip)."""
        with self._positions_lock:
            if self._positions is None or self._position_snapshots is None:
                recorder = self.factory.aggregate_recorder(purpose="snapshots")
                snapshots = self.factory.event_store(mapper=self.mapper, recorder=recorder)
                self._position_snapshots = snapshots
                self._positions = Repository(event_store=self.events, snapshot_store=snapshots)
            return self._positions, self._position_snapshots

    def inbox_position(self, position_id: UUID) -> InboxPosition:
        """The stored position, from its latest snapshot and the events after it."""
        repository, _ = self._inbox_positions()
        try:
            position: Any = repository.get(position_id, projector_func=_project)
        except AggregateNotFoundError:
            raise NotFound(f"inbox position {position_id} does not exist") from None
        if not isinstance(position, InboxPosition):
            raise NotFound(f"inbox position {position_id} does not exist")
        return position

    def snapshot_inbox_position(self, position: InboxPosition) -> None:
        """Stores a snapshot of a position as saved (no pending events)."""
        assert not position.pending_events, "snapshot a position as stored"
        _, snapshots = self._inbox_positions()
        snapshots.put([InboxPosition.Snapshot.take(position)])

    def start_inbox_position(self, topic: str, partition: int) -> InboxPosition:
        """The partition's position, created (and stored) on first use."""
        position_id = InboxPosition.create_id(topic, partition)
        try:
            return self.inbox_position(position_id)
        except NotFound:
            pass
        position = InboxPosition(
            topic=topic,
            partition=partition,
            actor=SYSTEM_ACTOR.as_record(),
            timestamp=self.clock(),
        )
        try:
            self.save(position)
        except (IntegrityError, OperationalError) as error:
            if not is_conflict(error):
                raise
            return self.inbox_position(position_id)
        return position

    def _referral_expiry(self, timer: dict[str, Any]) -> list[Aggregate]:
        """A referral whose acknowledgement or outcome deadline passed unanswered expires,
        in the same transaction as the breach."""
        if timer["item_kind"] != "referral":
            return []
        referral = self.get_referral(UUID(timer["item_id"]))
        if not referral.is_open:
            return []
        referral.expire(
            target=timer["target"],
            deadline=timer["deadline"],
            actor=SYSTEM_ACTOR.as_record(),
            timestamp=self.clock(),
        )
        return [referral]
