"""The append's columns sent as PostgreSQL binary arrays, built here in one pass each.

psycopg dumps a Python list as an array in Python: per list it looks for the type of
an element and works out the dimensions, then dumps and packs element by element. The
append sends six such lists per batch: ~5 % of a registration's CPU in the API process
(bench/README.md, twenty-second session). The events' columns have fixed element types
and no NULLs, so each is built here directly in PostgreSQL's binary array format
(`array_recv`: dimensions, flags, element type; per dimension its length and lower
bound; then each element's length and bytes) and sent with its array type's OID.
Importing this module registers the dumpers with psycopg's global adapters.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, ClassVar, Self
from uuid import UUID

import psycopg
from psycopg.adapt import Dumper
from psycopg.postgres import types as pg_types
from psycopg.pq import Format

#: One dimension, no NULLs, the element type, the length, lower bound 1.
_HEADER = struct.Struct(">iiIii")
_LENGTH = struct.Struct(">i")
_INT8 = struct.Struct(">iq")
_INT4 = struct.Struct(">ii")
_UUID_LENGTH = _LENGTH.pack(16)


def _oids(element: str) -> tuple[int, int]:
    info = pg_types.get(element)
    assert info is not None, element
    return info.oid, info.array_oid


class BinaryArray:
    """An array of `element`s without NULLs, in PostgreSQL's binary format."""

    __slots__ = ("data",)
    element: ClassVar[str]
    element_oid: ClassVar[int]

    def __init__(self, data: bytes) -> None:
        self.data = data

    @classmethod
    def _header(cls, count: int) -> bytes:
        return _HEADER.pack(1, 0, cls.element_oid, count, 1)

    @classmethod
    def _of_bytes(cls, values: Sequence[bytes]) -> Self:
        parts = [cls._header(len(values))]
        for value in values:
            parts.append(_LENGTH.pack(len(value)))
            parts.append(value)
        return cls(b"".join(parts))


class UuidArray(BinaryArray):
    element = "uuid"

    @classmethod
    def of(cls, values: Sequence[UUID | str]) -> UuidArray:
        """A str is read as a UUID (ValueError if it is not one)."""
        return cls(
            cls._header(len(values))
            + b"".join(
                _UUID_LENGTH + (v.bytes if type(v) is UUID else UUID(str(v)).bytes) for v in values
            )
        )


class TextArray(BinaryArray):
    element = "text"

    @classmethod
    def of(cls, values: Sequence[str]) -> TextArray:
        return cls._of_bytes([v.encode() for v in values])


class ByteaArray(BinaryArray):
    element = "bytea"

    @classmethod
    def of(cls, values: Sequence[bytes]) -> ByteaArray:
        return cls._of_bytes(values)


class Int8Array(BinaryArray):
    element = "int8"

    @classmethod
    def of(cls, values: Sequence[int]) -> Int8Array:
        return cls(cls._header(len(values)) + b"".join(_INT8.pack(8, v) for v in values))


class Int4Array(BinaryArray):
    element = "int4"

    @classmethod
    def of(cls, values: Sequence[int]) -> Int4Array:
        return cls(cls._header(len(values)) + b"".join(_INT4.pack(4, v) for v in values))


def _register(array: type[BinaryArray]) -> None:
    element_oid, array_oid = _oids(array.element)
    array.element_oid = element_oid

    class ArrayDumper(Dumper):
        format = Format.BINARY
        oid = array_oid

        def dump(self, obj: Any) -> bytes:
            data: bytes = obj.data
            return data

    psycopg.adapters.register_dumper(array, ArrayDumper)


for _array in (UuidArray, TextArray, ByteaArray, Int8Array, Int4Array):
    _register(_array)
