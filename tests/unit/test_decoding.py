"""The projections' event decoder gives the library mapper's events, taking the slow
way only where it must."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import (
    DatetimeAsISO,
    DecimalAsStr,
    JSONTranscoder,
    Mapper,
    Notification,
    UUIDAsHex,
)

from slrt.projections.decoding import EventDecoder


class Sample(Aggregate):
    @event("Created")
    def __init__(self, *, at: datetime, ref: UUID | None, amount: Decimal, data: Any) -> None:
        self.data = data

    class Renamed(Aggregate.Event):
        class_version = 2
        name: str
        reason: str

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            state["reason"] = "unknown"

    def rename(self, name: str) -> None:
        self.trigger_event(self.Renamed, name=name, reason="typo")


def _mapper() -> Mapper[UUID]:
    transcoder = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DatetimeAsISO(), DecimalAsStr()):
        transcoder.register(transcoding)
    return Mapper(transcoder=transcoder)


def _notifications(mapper: Mapper[UUID], *aggregates: Aggregate) -> list[Notification]:
    stored = [mapper.to_stored_event(e) for a in aggregates for e in a.collect_events()]
    return [
        Notification(
            id=i,
            **{k: getattr(s, k) for k in ("originator_id", "originator_version", "topic", "state")},
        )
        for i, s in enumerate(stored, 1)
    ]


def _same(decoder: EventDecoder, mapper: Mapper[UUID], notification: Notification) -> None:
    fast, slow = decoder.decode(notification), mapper.to_domain_event(notification)
    assert type(fast) is type(slow)
    assert fast.__dict__ == slow.__dict__
    assert [type(v) for v in fast.__dict__.values()] == [type(v) for v in slow.__dict__.values()]


def test_top_level_typed_values_are_revived_without_the_mapper() -> None:
    mapper = _mapper()
    at = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    plain = Sample(at=at, ref=uuid4(), amount=Decimal("1.50"), data={"q": 'say "_type_"'})
    decoder = EventDecoder(mapper)
    for notification in _notifications(mapper, plain):
        _same(decoder, mapper, notification)
    assert decoder.fallbacks == 0


def test_nested_typed_values_and_upcast_events_go_through_the_mapper() -> None:
    mapper = _mapper()
    at = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    nested = Sample(at=at, ref=None, amount=Decimal(2), data={"when": at, "ids": [uuid4()]})
    renamed = Sample(at=at, ref=None, amount=Decimal(3), data={})
    renamed.rename("x")
    decoder = EventDecoder(mapper)
    notifications = _notifications(mapper, nested, renamed)
    for notification in notifications:
        _same(decoder, mapper, notification)
    # The nested Created, and the Renamed (its class may upcast); not the plain Created.
    assert decoder.fallbacks == 2
    assert decoder.decode(notifications[-1]).reason == "typo"


def test_uuids_are_revived_as_uuid_does_it() -> None:
    from uuid import SafeUUID, uuid4

    import pytest

    from slrt.projections.decoding import _uuid_from_hex

    for _ in range(200):
        expected = uuid4()
        revived = _uuid_from_hex(expected.hex)
        assert revived == expected and hash(revived) == hash(expected)
        assert str(revived) == str(expected) and revived.is_safe is SafeUUID.unknown
    for odd in ("1_" * 16, "+" + "1" * 31, " " + "a" * 31, "{" + "b" * 32 + "}", "g" * 32, "ab"):
        try:
            expected = UUID(odd)
        except ValueError:
            with pytest.raises(ValueError):
                _uuid_from_hex(odd)
        else:
            assert _uuid_from_hex(odd) == expected


def test_the_decoding_mapper_gives_the_librarys_events_and_stores_as_it_does() -> None:
    from slrt.projections.decoding import DecodingMapper

    library = _mapper()
    mapper = DecodingMapper(transcoder=library.transcoder)
    at = datetime(2026, 11, 23, 8, 30, tzinfo=UTC)
    plain = Sample(at=at, ref=uuid4(), amount=Decimal("1.50"), data={"q": 1})
    nested = Sample(at=at, ref=None, amount=Decimal(2), data={"when": at})
    nested.rename("y")
    notifications = _notifications(library, plain, nested)
    for notification in notifications:
        fast, slow = mapper.to_domain_event(notification), library.to_domain_event(notification)
        assert type(fast) is type(slow) and fast.__dict__ == slow.__dict__
    # The nested Created and the Renamed went the library's way, without recursion.
    assert mapper.decoder.fallbacks == 2


def test_the_application_decodes_with_the_decoding_mapper(tmp_path: Any) -> None:
    from slrt.application import SlrtApplication
    from slrt.config import Settings
    from slrt.projections.decoding import DecodingMapper

    app = SlrtApplication(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/s.db"))
    try:
        assert type(app.mapper) is DecodingMapper
    finally:
        app.close()
