"""What every aggregate shares: who acted, the errors the domain raises, new ids, and
the creation of the aggregates the commands create on their hot path (`created`)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar
from uuid import UUID, SafeUUID

from eventsourcing.domain import Aggregate
from eventsourcing.utils import get_topic

#: Ids drawn per read of the system's random source (`new_id`).
_IDS_PER_READ = 256
#: The variant (RFC 4122) and version (4) bits of a random UUID, as `UUID()` sets them.
_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_VERSION_4 = (0x8000 << 48) | (4 << 76)
_new = object.__new__
_set = object.__setattr__
_UNKNOWN = SafeUUID.unknown


class _RandomIds(threading.local):
    """Each thread's unread random bytes for new ids."""

    def __init__(self) -> None:
        self.buffer = b""
        self.offset = 0


_random_ids = _RandomIds()


def new_id() -> UUID:
    """A random (version 4) UUID, as `uuid.uuid4`, from the same source (`os.urandom`),
    read 256 ids at a time. `uuid4` reads 16 bytes per id, and `os.urandom` releases the
    GIL around its system call: on the event loop, each id let the committer thread take
    the GIL, and the loop then waited to get it back (bench/README.md, sixteenth
    session). Each thread draws from its own bytes; a forked child starts afresh."""
    ids = _random_ids
    offset = ids.offset
    if offset >= len(ids.buffer):
        ids.buffer = os.urandom(16 * _IDS_PER_READ)
        offset = 0
    ids.offset = offset + 16
    # UUID(bytes=…, version=4) without its checks (~1 % of a registration's CPU):
    # the variant and version bits set as UUID() sets them.
    return uuid_of_int(int.from_bytes(ids.buffer[offset : offset + 16]) & _CLEAR | _VERSION_4)


def uuid_of_int(value: int) -> UUID:
    """UUID(int=value) for a value known to fit in 128 bits, without the checks
    `UUID.__init__` spends microseconds on (new ids, and ids revived by a catch-up)."""
    uuid = _new(UUID)
    _set(uuid, "int", value)
    _set(uuid, "is_safe", _UNKNOWN)
    return uuid


def _forget_random_ids() -> None:
    _random_ids.buffer = b""
    _random_ids.offset = 0


os.register_at_fork(after_in_child=_forget_random_ids)

TAggregate = TypeVar("TAggregate", bound=Aggregate)


def created(cls: type[TAggregate], event: str, *, timestamp: datetime, **fields: Any) -> TAggregate:
    """`cls(**fields, timestamp=timestamp)`: the aggregate created by its `__init__`'s
    event (`event` names it, as its `@event` does), as eventsourcing creates it
    (`BaseAggregate._create`, then the event's `mutate`; 9.5.6, pinned), without the
    library's general work per creation: binding the arguments to the signature, and
    filtering the event's fields by each method's parameters (ADR 0015): 8.5 → 2.9 µs
    for a proposal in a loop. The same event and the same aggregate, for an aggregate
    whose `create_id` takes no arguments and whose `__init__` takes exactly `fields`
    and `timestamp`: tests/unit/test_created.py holds each aggregate created so to the
    library's creation."""
    originator_id = cls.create_id()
    version = cls.INITIAL_VERSION
    created_event = getattr(cls, event)(
        originator_topic=get_topic(cls),
        originator_id=originator_id,
        originator_version=version,
        timestamp=timestamp,
        **fields,
    )
    aggregate = _new(cls)
    aggregate.__base_init__(originator_id, version, timestamp)
    aggregate.__init__(timestamp=timestamp, **fields)  # type: ignore[misc]
    created_event.apply(aggregate)
    aggregate.pending_events.append(created_event)
    return aggregate


class Role(StrEnum):
    FRONT_OFFICE = "front_office"
    VILLAGE_HEAD = "village_head"
    DINSOS_VERIFIER = "dinsos_verifier"
    SLRT_MANAGER = "slrt_manager"
    AGENCY = "agency"
    INSPECTOR = "inspector"
    ADMIN = "admin"
    SYSTEM = "system"


@dataclass(frozen=True)
class Actor:
    """Who issued a command: recorded on every event it causes."""

    user_id: str
    role: Role
    region: str
    #: An agency user's agency code (e.g. dinkes); None for every other role.
    agency: str | None = None
    #: The request that carried the command (HTTP X-Request-ID, or the id of an agency's
    #: CloudEvent), so an inspector can tie an event to the request and its log lines.
    request_id: str | None = None

    def for_request(self, request_id: str | None) -> Actor:
        """The same caller, for one request. Spelled out: `dataclasses.replace` walks
        the fields generically (~1 % of a command's CPU)."""
        return Actor(self.user_id, self.role, self.region, self.agency, request_id)

    def as_record(self) -> dict[str, str]:
        """The actor as recorded on events (fields that are set, as text). Spelled out:
        `dataclasses.asdict` deep-copies every field and was ~2 % of a command's CPU."""
        record = {"user_id": self.user_id, "role": str(self.role), "region": self.region}
        if self.agency is not None:
            record["agency"] = self.agency
        if self.request_id is not None:
            record["request_id"] = self.request_id
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Actor:
        return cls(
            user_id=record["user_id"],
            role=Role(record["role"]),
            region=record["region"],
            agency=record.get("agency"),
            request_id=record.get("request_id"),
        )


class DomainError(Exception):
    """A command broke a rule of the domain. Nothing is written."""

    title = "Domain rule violated"

    def __init__(self, detail: str, **context: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context


class InvalidInput(DomainError):
    """The command's data is not acceptable (bad NIK, unknown region, ...)."""

    title = "Invalid input"


class IllegalTransition(DomainError):
    """The aggregate is not in a state where this command is allowed."""

    title = "Illegal transition"


class NotFound(DomainError):
    title = "Not found"


class ConcurrentEdit(DomainError):
    """Someone else changed the aggregate first; retry with the current version."""

    title = "Concurrent edit"


class VersionMismatch(ConcurrentEdit):
    """The caller's expected version (If-Match) is not the current one."""

    title = "Version mismatch"


def require_text(value: Any, *, field: str, max_length: int) -> str:
    """A non-empty text of at most `max_length` characters, stripped."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{field} must be a non-empty text", field=field)
    if len(value.strip()) > max_length:
        raise InvalidInput(f"{field} must be at most {max_length} characters", field=field)
    return value.strip()


def require_choice(enum: type[StrEnum], value: Any, *, field: str) -> str:
    """One of an enumeration's values; the refusal lists them."""
    try:
        return enum(str(value)).value
    except ValueError:
        allowed = ", ".join(e.value for e in enum)
        raise InvalidInput(f"{field} must be one of {allowed}", field=field) from None


def optional_uuid(value: Any, *, field: str) -> UUID | None:
    if value is None or isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidInput(f"{field} must be a UUID", field=field) from None
