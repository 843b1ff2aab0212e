"""Test data in domain words: households, members, berita acara, actors."""

from __future__ import annotations

import hashlib
from typing import Any

from slrt.domain.common import Actor, Role
from slrt.domain.reference import Indicator
from slrt.domain.scoring import DEFAULT_HOUSEHOLD_SIZE_WEIGHT, DEFAULT_INTERCEPT, DEFAULT_WEIGHTS
from slrt.domain.sla import DEFAULT_RULES

DESA = "64.74.01.1001"  # Bontang Kuala, Bontang Utara, Kota Bontang (WITA)
OTHER_DESA = "64.74.02.1001"
KOTA = "64.74"

FRONT_OFFICE = Actor("fo-bontang-kuala", Role.FRONT_OFFICE, DESA)
VILLAGE_HEAD = Actor("kades-bontang-kuala", Role.VILLAGE_HEAD, DESA)
OTHER_VILLAGE_HEAD = Actor("kades-other", Role.VILLAGE_HEAD, OTHER_DESA)
DINSOS = Actor("dinsos-bontang", Role.DINSOS_VERIFIER, KOTA)
ADMIN = Actor("admin", Role.ADMIN, "ID")
DINSOS_MANAGER = Actor("manager-bontang", Role.SLRT_MANAGER, KOTA)
INSPECTOR = Actor("inspector", Role.INSPECTOR, "ID")

_serial = iter(range(1, 10_000))


def nik(*, day: int = 15, month: int = 8, year: int = 80, female: bool = False) -> str:
    """A valid NIK issued in kecamatan Bontang Utara (64.74.01)."""
    dd = day + 40 if female else day
    return f"647401{dd:02d}{month:02d}{year:02d}{next(_serial):04d}"


def indicators(deprived: int) -> dict[str, bool]:
    """The first `deprived` of the 14 indicators are true."""
    return {ind.value: index < deprived for index, ind in enumerate(Indicator)}


def household(*, deprived: int = 10, members: int = 2, region: str = DESA) -> dict[str, Any]:
    people = [{"nik": nik(), "name": "Budi Santoso", "relationship": "head", "sex": "L"}]
    for index in range(1, members):
        people.append(
            {
                "nik": nik(day=index, female=True),
                "name": f"Anggota {index}",
                "relationship": "spouse" if index == 1 else "child",
                "sex": "P",
            }
        )
    return {
        "region": region,
        "address": "Jl. Mulawarman No. 12",
        "rt": "3",
        "rw": "5",
        "no_kk": f"647401010120{next(_serial):04d}",
        "members": people,
        "indicators": indicators(deprived),
    }


def berita_acara(number: str = "BA/001/XI/2026", date: str = "2026-11-19") -> dict[str, str]:
    return {"number": number, "date": date, "sha256": hashlib.sha256(number.encode()).hexdigest()}


def default_model() -> dict[str, Any]:
    return {
        "intercept": DEFAULT_INTERCEPT,
        "weights": {k.value: v for k, v in DEFAULT_WEIGHTS.items()},
        "household_size_weight": DEFAULT_HOUSEHOLD_SIZE_WEIGHT,
    }


def stricter_sla_rules() -> list[dict[str, Any]]:
    """The default SLA rules with the first rule's first response in 2 working hours
    (default 4) and its resolution in 5 working days."""
    rules = [dict(rule) for rule in DEFAULT_RULES]
    rules[0] = {
        **rules[0],
        "targets": [
            {"name": "first_response", "amount": 2, "unit": "hours", "working": True},
            {"name": "resolution", "amount": 5, "unit": "days", "working": True},
        ],
    }
    return rules
