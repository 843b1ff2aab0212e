"""The append's arrays, built in PostgreSQL's binary format, arrive as the values they
were built from, exactly as psycopg's own list adaptation sends them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import psycopg
import pytest

from slrt.persistence.arrays import (
    BinaryArray,
    ByteaArray,
    Int4Array,
    Int8Array,
    TextArray,
    UuidArray,
)
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.postgres

IDS = [uuid4() for _ in range(3)]
CASES: list[tuple[str, type[BinaryArray], list[Any], list[Any]]] = [
    ("uuid", UuidArray, IDS, IDS),
    ("uuid", UuidArray, [str(IDS[0]), IDS[1].hex], IDS[:2]),  # text ids read as UUIDs
    ("text", TextArray, ["slrt.domain:Proposal.Submitted", "", 'é 😀 \\ " {a,b}'], None),
    ("bytea", ByteaArray, [b"", b"\x00\xff" * 600, os.urandom(32)], None),
    ("int8", Int8Array, [1, -1, 2**63 - 1, -(2**63)], None),
    ("int4", Int4Array, [1, 0, 2**31 - 1, -(2**31)], None),
    ("int8", Int8Array, [], None),
]


@pytest.fixture(scope="module")
def connection() -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        yield conn


@pytest.mark.parametrize(("element", "array", "values", "expected"), CASES)
def test_an_array_arrives_as_its_values(
    connection: psycopg.Connection[Any],
    element: str,
    array: Any,
    values: list[Any],
    expected: list[Any] | None,
) -> None:
    expected = values if expected is None else expected
    for prepare in (False, True):
        row = connection.execute(
            f"SELECT %b::{element}[], cardinality(%b::{element}[]), %b::{element}[] = %b",
            (array.of(values), array.of(values), array.of(values), expected),
            prepare=prepare,
        ).fetchone()
        assert row == (expected, len(expected), True)


def test_a_text_that_is_not_a_uuid_is_refused() -> None:
    with pytest.raises(ValueError):
        UuidArray.of(["not a uuid"])
