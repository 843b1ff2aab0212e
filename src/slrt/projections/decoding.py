"""Decoding stored events for projections, faster than the library's mapper.

The library's JSON transcoder calls a Python hook for every JSON object in an event
(to revive UUIDs, datetimes and decimals written as {"_type_": …, "_data_": …}); a
household registration holds a dozen nested objects, so decoding cost ~20 % of a
projection's catch-up. Our events keep such values at the top level of the event
(timestamps, proposal ids); nested data (members, indicators, changes) is plain JSON.
So this decoder parses with orjson and no hook, revives the top-level
values, and builds the same event object the mapper would. Anything it does not
recognise — a nested typed value, an event class that upcasts — goes through the
library's mapper, so the result is always the mapper's result.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import orjson
from eventsourcing.persistence import (
    DatetimeAsISO,
    JSONTranscoder,
    Mapper,
    StoredEvent,
    UUIDAsHex,
    find_id_convertor,
)
from eventsourcing.utils import resolve_topic

from slrt.domain.common import uuid_of_int

_TYPED = b'"_type_"'
#: A topic not looked up yet (None is a topic only the mapper decodes).
_UNSEEN: Any = object()


def _uuid_from_hex(data: str) -> UUID:
    """UUID(data) for 32 hex digits, without the checks `UUID.__init__` spends ~5 µs on
    (a catch-up revives a proposal id per event); anything else goes to UUID()."""
    if len(data) != 32 or not (data.isascii() and data.isalnum()):
        return UUID(data)  # braces, "urn:uuid:", and what int() alone would read
    return uuid_of_int(int(data, 16))


#: What revives the values of these transcodings, the same as their decode() without
#: its checks (datetime.fromisoformat refuses what is not a string by itself).
_FASTER: dict[type, Callable[[str], Any]] = {
    UUIDAsHex: _uuid_from_hex,
    DatetimeAsISO: datetime.fromisoformat,
}


class EventDecoder:
    """Turns notifications into domain events, equal to `mapper.to_domain_event`."""

    def __init__(
        self, mapper: Mapper[Any], fallback: Callable[[StoredEvent], Any] | None = None
    ) -> None:
        self.mapper = mapper
        #: What decodes the events this decoder does not: the mapper, unless given.
        self._fallback = fallback or mapper.to_domain_event
        transcoder = mapper.transcoder
        #: Only the library's JSON transcoder is understood; any other goes by the mapper.
        self._fast = isinstance(transcoder, JSONTranscoder)
        self._revivers = {
            name: _FASTER.get(type(t), t.decode)
            for name, t in getattr(transcoder, "names", {}).items()
        }
        self._classes: dict[str, type | None] = {}
        #: Read once: decode runs once per event of a catch-up.
        self._cipher = mapper.cipher
        self._compressor = mapper.compressor
        #: How many events went through the library's mapper (the slow way).
        self.fallbacks = 0

    def _class(self, topic: str) -> type | None:
        """The event class of a topic not seen yet, or None where only the mapper may
        decode it (upcasting); remembered for the next events."""
        cls = resolve_topic(topic)
        fast = getattr(cls, "class_version", 1) == 1
        self._classes[topic] = cls if fast else None
        return self._classes[topic]

    def _by_mapper(self, notification: StoredEvent) -> Any:
        self.fallbacks += 1
        return self._fallback(notification)

    def decode(self, notification: StoredEvent) -> Any:
        cls = self._classes.get(notification.topic, _UNSEEN) if self._fast else None
        if cls is _UNSEEN:
            cls = self._class(notification.topic)
        if cls is None:
            return self._by_mapper(notification)
        state = notification.state
        if self._cipher:
            state = self._cipher.decrypt(state)
        if self._compressor:
            state = self._compressor.decompress(state)
        try:
            values: dict[str, Any] = orjson.loads(state)
        except orjson.JSONDecodeError:  # e.g. an integer beyond 64 bits
            return self._by_mapper(notification)
        typed = state.count(_TYPED)
        if typed:
            revived = 0
            revivers = self._revivers
            for key, value in values.items():
                if type(value) is dict and len(value) == 2 and "_type_" in value:
                    reviver = revivers.get(value["_type_"])
                    if reviver is None or "_data_" not in value:
                        return self._by_mapper(notification)
                    values[key] = reviver(value["_data_"])
                    revived += 1
            if revived != typed:  # a typed value deeper down: the mapper knows how
                return self._by_mapper(notification)
        values.pop("class_version", None)
        originator_id: Any = notification.originator_id
        values["originator_id"] = find_id_convertor(cls, cast(Hashable, type(originator_id)))(
            originator_id
        )
        values["originator_version"] = notification.originator_version
        event: Any = object.__new__(cls)
        object.__setattr__(event, "__dict__", values)
        return event


class DecodingMapper(Mapper[Any]):
    """The library's mapper, decoding stored events with an EventDecoder: the
    application's own reads (an aggregate rebuilt to decide a command, or to answer a
    GET) get the same events as by the library's decoding, faster (an approval spent
    ~5 % of its CPU in the library's JSON decoding, bench/README.md, twenty-second
    session)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.decoder = EventDecoder(self, fallback=super().to_domain_event)

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return self.decoder.decode(stored_event)
