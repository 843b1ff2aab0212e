"""Who sees full NIK / No. KK in answers; everyone else sees them masked."""

from __future__ import annotations

from slrt.domain.access import covers
from slrt.domain.common import Actor, Role

# The front office registers and corrects members; Dinsos verifies them against
# Dukcapil. Other roles work from masked identifiers.
_NEEDS_IDENTIFIERS = frozenset({Role.FRONT_OFFICE, Role.DINSOS_VERIFIER})


def reveals_identifiers(actor: Actor, region: str) -> bool:
    return actor.role in _NEEDS_IDENTIFIERS and covers(actor.region, region)
