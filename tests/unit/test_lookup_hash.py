"""household_status hashes identifiers for look-ups with a key kept ready (_LookupHasher):
the same hashes as `lookup_hash` (HMAC-SHA256), which the search uses."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from slrt.projections.household_status import _LookupHasher, lookup_hash


@pytest.mark.parametrize("key_length", [0, 1, 32, 63, 64, 65, 200])
def test_the_kept_key_gives_the_hashes_of_hmac(key_length: int) -> None:
    key = bytes(range(256))[:key_length]
    hasher = _LookupHasher(key)
    for identifier in ("3174014506900001", "6474011203850002", "", "é"):
        expected = hmac.new(key, identifier.encode(), hashlib.sha256).hexdigest()
        assert hasher(identifier) == expected == lookup_hash(key, identifier)
