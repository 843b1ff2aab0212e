"""Tamper evidence: re-reads the whole event store and reports what was altered,
removed, inserted or reordered since it was written, with its position.

Every stored event has a hash record, written in the same transaction (see
`slrt.persistence`): its notification id, the previous hash of the same aggregate,
and SHA-256(previous hash ‖ digest of the event as stored). Anchors are digests over
all hash records in notification order up to a point; they catch what the chains
alone cannot (a whole aggregate removed, the end of the log cut off). An anchor kept
outside the database (printed by `slrt audit anchor`) also catches someone who
rewrote events, hash records and anchors together. See ADR 0006.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, cast
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import Notification

from slrt.config import Settings
from slrt.persistence.chain import (
    GENESIS,
    Anchor,
    AuditedRecorder,
    HashRecord,
    chain_hash,
    event_digest,
    extend_anchor,
)

Kind = Literal["altered", "removed", "reordered", "inserted"]

#: The version of an aggregate's first event (the library's default).
FIRST_VERSION = 1
BATCH_SIZE = 2_000


class AuditUnavailable(Exception):
    """The application's recorder does not keep hash records."""


@dataclass(frozen=True)
class Finding:
    """One thing that is not as it was written, and where."""

    kind: Kind
    #: Position in the log; None when only a range is known (see `detail`).
    notification_id: int | None
    originator_id: str | None
    version: int | None
    detail: str


@dataclass(frozen=True)
class ExternalAnchor:
    """An anchor kept outside the database: the digest up to a notification id."""

    max_notification_id: int
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> ExternalAnchor:
        """Reads `<max notification id>:<digest hex>`, as `slrt audit anchor` prints it."""
        position, _, digest = text.partition(":")
        try:
            return cls(int(position), bytes.fromhex(digest))
        except ValueError:
            msg = f"an anchor looks like 1234:<64 hex digits>, not {text!r}"
            raise ValueError(msg) from None

    def __str__(self) -> str:
        return f"{self.max_notification_id}:{self.digest.hex()}"


@dataclass
class VerificationReport:
    scope: str
    events: int = 0
    hash_records: int = 0
    anchors: int = 0
    last_notification_id: int | None = None
    #: The highest notification id covered by an anchor that matched.
    anchored_up_to: int | None = None
    #: Events after the last anchor: evidenced by their chains only.
    unanchored_events: int = 0
    findings: list[Finding] = field(default_factory=list)
    #: Set when only these aggregates' chains were checked (`verify_chains`), not the
    #: whole log against its anchors.
    aggregates: int | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **asdict(self)}

    def render(self) -> str:
        lines = self._scope_lines()
        if self.ok:
            lines.append("OK: no event was altered, removed, inserted or reordered")
            return "\n".join(lines)
        lines.append(f"TAMPERED: {len(self.findings)} finding(s)")
        for f in self.findings:
            parts = [] if f.notification_id is None else [f"notification {f.notification_id}"]
            if f.originator_id is not None:
                parts.append(f"aggregate {f.originator_id} version {f.version}")
            where = ", ".join(parts)
            lines.append(f"  {f.kind.upper():<9} {where}: {f.detail}")
        return "\n".join(lines)

    def _scope_lines(self) -> list[str]:
        if self.aggregates is not None:
            return [
                f"audit of {self.aggregates} record(s) in {self.scope}: {self.events} events, "
                f"{self.hash_records} hash records, each event checked against its hash "
                "record and its record's chain",
                "  only a verification of the whole log against its anchors (`slrt audit "
                "verify`) shows hash records rewritten together with their events, or a "
                "record's latest events removed together with their hash records",
            ]
        lines = [
            f"audit of {self.scope}: {self.events} events, {self.hash_records} hash records, "
            f"{self.anchors} anchor(s)",
        ]
        if self.anchored_up_to is not None:
            lines.append(
                f"  anchored up to notification {self.anchored_up_to}; "
                f"{self.unanchored_events} later events are evidenced by their chains only"
            )
        elif self.events and not self.anchors:
            lines.append("  no anchor yet: run `slrt audit anchor` to anchor the log")
        return lines


def audited_recorder(app: Application[Any]) -> AuditedRecorder:
    recorder = app.recorder
    if not hasattr(recorder, "select_hash_records"):
        msg = (
            f"{type(recorder).__name__} keeps no hash records; "
            "PERSISTENCE_MODULE must be slrt.persistence.sqlite or slrt.persistence.postgres"
        )
        raise AuditUnavailable(msg)
    return cast(AuditedRecorder, recorder)


def _application(settings: Settings) -> Application[Any]:
    from slrt.application import SlrtApplication

    return SlrtApplication(settings)


def verify_store(
    settings: Settings, *, external_anchors: Sequence[ExternalAnchor] = ()
) -> VerificationReport:
    """Re-reads every stored event and hash record of the SLRT store."""
    app = _application(settings)
    try:
        return verify_recorder(audited_recorder(app), external_anchors=external_anchors)
    finally:
        app.close()


def anchor_store(settings: Settings, *, note: str | None = None) -> Anchor | None:
    """Writes an anchor over the SLRT store's log (None when nothing is stored yet)."""
    app = _application(settings)
    try:
        return write_anchor(audited_recorder(app), note=note)
    finally:
        app.close()


def write_anchor(
    recorder: AuditedRecorder, *, note: str | None = None, now: datetime | None = None
) -> Anchor | None:
    """Extends the last anchor's digest over the hash records recorded since, and
    records it. Returns the last anchor unchanged when nothing was recorded since.

    Hash records commit in notification-id order (the library locks the table per
    append), so none can still appear at or below the highest one read here."""
    anchors = recorder.select_anchors()
    last = anchors[-1] if anchors else None
    top = recorder.max_hashed_notification_id()
    if top is None:
        return None
    if last is not None and last.max_notification_id >= top:
        return last
    digest, count = (last.digest, last.event_count) if last else (GENESIS, 0)
    start = last.max_notification_id if last else 0
    for record in _hash_records(recorder, start=start):
        if record.notification_id > top:
            break
        digest = extend_anchor(digest, record.notification_id, record.hash)
        count += 1
    recorded_at = now or datetime.now(UTC)
    anchor_id = recorder.insert_anchor(
        recorded_at=recorded_at,
        max_notification_id=top,
        event_count=count,
        digest=digest,
        note=note,
    )
    return Anchor(anchor_id, recorded_at, top, count, digest, note)


def verify_recorder(
    recorder: AuditedRecorder,
    *,
    external_anchors: Sequence[ExternalAnchor] = (),
    batch_size: int = BATCH_SIZE,
) -> VerificationReport:
    """Checks every event against its hash record, every chain link, and every anchor.

    Events and hash records are both read in notification order and merged, so
    memory grows with the number of aggregates, not of events."""
    anchors = recorder.select_anchors()
    verifier = _Verifier(anchors, external_anchors)
    report = VerificationReport(scope=recorder.events_table_name, anchors=len(anchors))
    events = _notifications(recorder, batch_size)
    records = _hash_records(recorder, start=None, batch_size=batch_size)
    return _verified(verifier, events, records, report)


def verify_chains(recorder: AuditedRecorder, originator_ids: Sequence[UUID]) -> VerificationReport:
    """Checks every event of these aggregates against its hash record, and every link
    of their chains, as `verify_recorder` does for the whole log, without the anchors:
    it reads only these aggregates' rows (a dossier's records), where the whole log
    is every event ever stored. See the report's text for what only anchors show."""
    ids = list(dict.fromkeys(originator_ids))
    events, records = recorder.select_chains(ids)
    report = VerificationReport(scope=recorder.events_table_name, aggregates=len(ids))
    return _verified(_Verifier((), ()), iter(events), iter(records), report)


def _verified(
    verifier: _Verifier,
    events: Iterator[Notification],
    records: Iterator[HashRecord],
    report: VerificationReport,
) -> VerificationReport:
    """Merges events and hash records (each in notification order) through the
    verifier and fills the report."""
    event, record = next(events, None), next(records, None)
    while event is not None or record is not None:
        if record is None or (event is not None and event.id < record.notification_id):
            assert event is not None
            verifier.on_event(event)
            verifier.match_event(event)
            event = next(events, None)
        elif event is None or record.notification_id < event.id:
            verifier.on_record(record)
            verifier.match_record(record)
            record = next(records, None)
        else:
            verifier.on_event(event)
            verifier.on_record(record)
            if _key(event) == _key(record):
                verifier.pair(event, record)
            else:
                verifier.match_event(event)
                verifier.match_record(record)
            event, record = next(events, None), next(records, None)
    verifier.finish()
    report.events = verifier.events
    report.hash_records = verifier.records
    report.last_notification_id = verifier.last_notification_id
    report.anchored_up_to = verifier.anchored_up_to
    report.unanchored_events = verifier.unanchored
    report.findings = verifier.results()
    return report


def _key(item: Notification | HashRecord) -> tuple[UUID | str, int]:
    return item.originator_id, item.originator_version


def _notifications(recorder: AuditedRecorder, batch_size: int) -> Iterator[Notification]:
    page = recorder.select_notifications(start=None, limit=batch_size)
    while page:
        yield from page
        page = recorder.select_notifications(
            start=page[-1].id, limit=batch_size, inclusive_of_start=False
        )


def _hash_records(
    recorder: AuditedRecorder, *, start: int | None, batch_size: int = BATCH_SIZE
) -> Iterator[HashRecord]:
    page = recorder.select_hash_records(start, batch_size)
    while page:
        yield from page
        last = page[-1]
        page = recorder.select_hash_records(
            (last.notification_id, last.originator_id, last.originator_version), batch_size
        )


@dataclass
class _Checkpoint:
    max_notification_id: int
    digest: bytes
    event_count: int | None
    label: str


class _Verifier:
    def __init__(self, anchors: Sequence[Anchor], external: Sequence[ExternalAnchor]) -> None:
        self.findings: dict[tuple[Kind, int | None, str | None, int | None], list[str]] = {}
        self.events = 0
        self.records = 0
        self.last_notification_id: int | None = None
        self.pending_events: dict[tuple[UUID | str, int], Notification] = {}
        self.pending_records: dict[tuple[UUID | str, int], HashRecord] = {}
        #: Per aggregate, in the events' notification order: (version, notification id).
        self.event_heads: dict[UUID | str, tuple[int, int]] = {}
        #: Per aggregate, in the hash records' order: (version, hash, notification id).
        self.chain_heads: dict[UUID | str, tuple[int, bytes, int]] = {}
        #: Events whose bytes do not hash to their record: altered, or swapped.
        self.mismatches: dict[UUID | str, list[tuple[Notification, HashRecord]]] = {}
        self.digest = GENESIS
        self.count = 0
        self.checkpoints = sorted(
            [
                _Checkpoint(
                    a.max_notification_id,
                    a.digest,
                    a.event_count,
                    f"anchor #{a.anchor_id} of {a.recorded_at:%Y-%m-%d %H:%M}",
                )
                for a in anchors
            ]
            + [
                _Checkpoint(a.max_notification_id, a.digest, None, f"external anchor {a}")
                for a in external
            ],
            key=lambda c: c.max_notification_id,
        )
        self.anchored_up_to: int | None = None
        self.last_good = 0
        self.count_at_last_checkpoint = 0

    @property
    def unanchored(self) -> int:
        return max(0, self.count - self.count_at_last_checkpoint)

    def add(
        self,
        kind: Kind,
        at: int | None,
        originator_id: UUID | str | None,
        version: int | None,
        detail: str,
    ) -> None:
        oid = None if originator_id is None else str(originator_id)
        self.findings.setdefault((kind, at, oid, version), []).append(detail)

    def results(self) -> list[Finding]:
        return sorted(
            (
                Finding(kind, at, oid, version, "; ".join(details))
                for (kind, at, oid, version), details in self.findings.items()
            ),
            key=lambda f: (f.notification_id or 0, f.originator_id or "", f.version or 0, f.kind),
        )

    # -- the events, in notification order ------------------------------------------

    def on_event(self, event: Notification) -> None:
        self.events += 1
        self.last_notification_id = max(self.last_notification_id or 0, event.id)
        head = self.event_heads.get(event.originator_id)
        if head is not None and event.originator_version <= head[0]:
            self.add(
                "reordered",
                event.id,
                event.originator_id,
                event.originator_version,
                f"stored after version {head[0]} (notification {head[1]})",
            )
            return
        self.event_heads[event.originator_id] = (event.originator_version, event.id)

    # -- the hash records, in the order they were recorded ----------------------------

    def on_record(self, record: HashRecord) -> None:
        self.check_checkpoints(before=record.notification_id)
        self.records += 1
        self.digest = extend_anchor(self.digest, record.notification_id, record.hash)
        self.count += 1
        oid, version = record.originator_id, record.originator_version
        head = self.chain_heads.get(oid)
        if head is None:
            if version != FIRST_VERSION:
                self.add(
                    "removed",
                    record.notification_id,
                    oid,
                    version,
                    f"versions {FIRST_VERSION}–{version - 1} of this aggregate are missing "
                    "(no event and no hash record)",
                )
            elif record.previous_hash != GENESIS:
                self.add(
                    "altered",
                    record.notification_id,
                    oid,
                    version,
                    "the first event's hash record does not start from the genesis value",
                )
        else:
            last_version, last_hash, last_at = head
            if version <= last_version:
                self.add(
                    "reordered",
                    record.notification_id,
                    oid,
                    version,
                    f"recorded after version {last_version} (notification {last_at})",
                )
                return
            if version > last_version + 1:
                self.add(
                    "removed",
                    None,
                    oid,
                    last_version + 1,
                    f"versions {last_version + 1}–{version - 1} are missing (no event and no "
                    f"hash record) between notifications {last_at} and {record.notification_id}",
                )
            elif record.previous_hash != last_hash:
                self.add(
                    "altered",
                    record.notification_id,
                    oid,
                    version,
                    f"the chain is broken: its previous hash is not version {last_version}'s hash",
                )
        self.chain_heads[oid] = (version, record.hash, record.notification_id)

    def check_checkpoints(self, *, before: int | None) -> None:
        while self.checkpoints and (
            before is None or self.checkpoints[0].max_notification_id < before
        ):
            self.check(self.checkpoints.pop(0), at_end=before is None)

    def check(self, checkpoint: _Checkpoint, *, at_end: bool) -> None:
        expected = checkpoint.event_count
        span = f"notifications {self.last_good + 1}–{checkpoint.max_notification_id}"
        if checkpoint.digest == self.digest and expected in (None, self.count):
            self.last_good = checkpoint.max_notification_id
            self.anchored_up_to = checkpoint.max_notification_id
            self.count_at_last_checkpoint = self.count
            return
        end = (
            f"; the log now ends at notification {self.last_notification_id or 0}" if at_end else ""
        )
        if expected is not None and self.count < expected:
            kind: Kind = "removed"
            detail = (
                f"{checkpoint.label} recorded {expected} events up to notification "
                f"{checkpoint.max_notification_id}, the store has {self.count}: "
                f"{expected - self.count} removed in {span}{end}"
            )
        elif expected is not None and self.count > expected:
            kind = "inserted"
            detail = (
                f"{checkpoint.label} recorded {expected} events up to notification "
                f"{checkpoint.max_notification_id}, the store has {self.count}: "
                f"{self.count - expected} inserted in {span}"
            )
        else:
            kind = "altered"
            detail = (
                f"{checkpoint.label} does not match the hash records in {span}: "
                f"records were changed, replaced, removed or reordered{end}"
            )
        self.add(kind, checkpoint.max_notification_id, None, None, detail)
        # Later anchors are checked on what was added after this one, so one
        # change is reported once, not by every anchor after it.
        self.digest = checkpoint.digest
        if expected is not None:
            self.count = expected
        self.last_good = checkpoint.max_notification_id
        self.count_at_last_checkpoint = self.count

    # -- pairing events with their hash records ------------------------------------------

    def match_event(self, event: Notification) -> None:
        record = self.pending_records.pop(_key(event), None)
        if record is None:
            self.pending_events[_key(event)] = event
        else:
            self.pair(event, record)

    def match_record(self, record: HashRecord) -> None:
        event = self.pending_events.pop(_key(record), None)
        if event is None:
            self.pending_records[_key(record)] = record
        else:
            self.pair(event, record)

    def pair(self, event: Notification, record: HashRecord) -> None:
        if event.id != record.notification_id:
            self.add(
                "reordered",
                event.id,
                event.originator_id,
                event.originator_version,
                f"recorded at notification {record.notification_id}, now at {event.id}",
            )
        digest = event_digest(
            event.originator_id, event.originator_version, event.topic, event.state
        )
        if chain_hash(record.previous_hash, digest) != record.hash:
            self.mismatches.setdefault(event.originator_id, []).append((event, record))

    def finish(self) -> None:
        self.check_checkpoints(before=None)
        for record in self.pending_records.values():
            self.add(
                "removed",
                record.notification_id,
                record.originator_id,
                record.originator_version,
                "recorded, but the event is missing from the store",
            )
        for event in self.pending_events.values():
            self.add(
                "inserted",
                event.id,
                event.originator_id,
                event.originator_version,
                "the event has no hash record: it was not written by SLRT's recorder",
            )
        for pairs in self.mismatches.values():
            for event, record in pairs:
                self.classify_mismatch(event, record, pairs)

    def classify_mismatch(
        self,
        event: Notification,
        record: HashRecord,
        pairs: list[tuple[Notification, HashRecord]],
    ) -> None:
        """An event whose bytes are another version's of the same aggregate was
        reordered; anything else was altered."""
        for _, other in pairs:
            if other is record:
                continue
            digest = event_digest(
                event.originator_id, other.originator_version, event.topic, event.state
            )
            if chain_hash(other.previous_hash, digest) == other.hash:
                self.add(
                    "reordered",
                    event.id,
                    event.originator_id,
                    event.originator_version,
                    f"holds the event recorded as version {other.originator_version} "
                    f"(notification {other.notification_id})",
                )
                return
        self.add(
            "altered",
            event.id,
            event.originator_id,
            event.originator_version,
            "the stored event differs from what was recorded (hash mismatch)",
        )
