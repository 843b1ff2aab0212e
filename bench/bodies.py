"""Request bodies for the benchmarks: valid, and different on every call."""

from __future__ import annotations

import hashlib
from typing import Any

from slrt.domain.reference import Indicator

DESA = "64.74.01.1001"


def _nik(n: int, *, female: bool = False) -> str:
    day = 1 + n % 28
    month = 1 + (n // 28) % 12
    year = 50 + (n // 336) % 50
    serial = 1 + (n // 16_800) % 9999
    return f"647401{day + (40 if female else 0):02d}{month:02d}{year:02d}{serial:04d}"


def register_body(n: int) -> dict[str, Any]:
    return {
        "kind": "register",
        "household": {
            "region": DESA,
            "address": f"Jl. Mulawarman No. {n % 300 + 1}",
            "rt": str(n % 20 + 1),
            "rw": str(n % 9 + 1),
            "no_kk": f"6474010101{n % 1_000_000:06d}",
            "members": [
                {"nik": _nik(n), "name": "Budi Santoso", "relationship": "head", "sex": "L"},
                {
                    "nik": _nik(n, female=True),
                    "name": "Siti Aminah",
                    "relationship": "spouse",
                    "sex": "P",
                },
            ],
            "indicators": {
                indicator.value: bool((n >> bit) & 1) for bit, indicator in enumerate(Indicator)
            },
        },
    }


def complaint_body(n: int) -> dict[str, Any]:
    return {
        "region": DESA,
        "channel": "walk_in",
        "complaint_type": "complaint",
        "category": "aid_not_received",
        "description": f"Bantuan bulan ini belum diterima ({n})",
        "reporter": {"name": "Siti Aminah", "phone": "0812-3456-7890"},
    }


def approval_body(n: int) -> dict[str, Any]:
    number = f"BA/{n}/XI/2026"
    return {
        "decision": "approve",
        "berita_acara": {
            "number": number,
            "date": "2026-11-20",
            "sha256": hashlib.sha256(number.encode()).hexdigest(),
        },
    }
