"""Encoding events for the store, faster than the library's JSON transcoder.

The library encodes an event's state with Python's `json` module and a Python hook
for each typed value (UUIDs, datetimes, decimals, written as {"_type_": …, "_data_": …}).
For a household registration that was ~7 % of the API process's CPU per command
(bench/README.md, twenty-second session). This transcoder writes the same JSON with
orjson, where orjson writes it the way the library does: orjson itself writes UUIDs
(as a plain string), enums without a str or int base (their value) and non-finite floats
(null) where the library writes a typed value, an error or NaN. So a value that holds
one of those anywhere but at the top level goes to the library's encoder, as does
anything orjson refuses (an integer beyond 64 bits, a key that is not a str); a
top-level UUID (a proposal's household id, say) is written as the library writes it.
Decoding is the library's (and slrt.projections.decoding's): the JSON is the same,
except that a float may be spelt differently (0.00001 for 1e-05), which decodes to
the same float.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder, Transcoding

#: Written by orjson exactly as by the library's encoder.
_PLAIN = frozenset({str, int, bool, type(None)})
#: orjson hands datetimes and dataclasses to the hook (`default`), as the library's
#: encoder does.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class OrjsonTranscoder(JSONTranscoder):
    """The library's JSON transcoder, encoding with orjson where the result is the
    same (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__()
        #: The registered types that orjson hands to the hook (it writes UUIDs and
        #: enums itself).
        self._by_hook: set[type] = set()

    def register(self, transcoding: Transcoding) -> None:
        super().register(transcoding)
        if transcoding.type is not UUID and not issubclass(transcoding.type, Enum):
            self._by_hook.add(transcoding.type)

    def encode(self, obj: Any) -> bytes:
        if type(obj) is dict:
            obj = {k: self._encode_obj(v) if type(v) is UUID else v for k, v in obj.items()}
        if self._same_in_orjson(obj):
            try:
                return orjson.dumps(obj, default=self._encode_obj, option=_OPTIONS)
            except orjson.JSONEncodeError:
                pass  # the library's encoder encodes it, or raises its own error
        return super().encode(obj)

    def _same_in_orjson(self, value: Any) -> bool:
        """Whether orjson writes `value` as the library's encoder would."""
        kind = type(value)
        if kind in _PLAIN:
            return True
        if kind is dict:
            values: Any = value.values()
        elif kind is list or kind is tuple:
            values = value
        elif kind is float:
            return math.isfinite(value)
        else:  # a value orjson hands to the hook, as the library's encoder does
            return kind in self._by_hook
        for item in values:
            if type(item) not in _PLAIN and not self._same_in_orjson(item):
                return False
        return True
