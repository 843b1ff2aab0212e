"""Selecting read-model rows by region code: every view stores scope (kabupaten/kota),
kecamatan and desa columns for this."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, true


def inside(table: Table, region: str | None) -> Any:
    """A province (NN), kabupaten/kota (NN.NN), kecamatan (NN.NN.NN) or desa code selects
    the rows that lie inside it; no region, or ID (national), selects every row."""
    if not region or region == "ID":
        return true()
    if len(region) == 2:
        # Every scope is a kabupaten/kota code, NN.NN, so a province's are those from
        # NN.00 to NN.99: a range that the indexes leading with scope serve, whatever
        # the plan. `LIKE 'NN.%'` could use them only under the "C" collation, and was a
        # sequential scan under C.UTF-8 or en_US (PostgreSQL 15).
        return table.c.scope.between(f"{region}.00", f"{region}.99")
    if len(region) == 5:
        return table.c.scope == region
    if len(region) == 8:
        return table.c.kecamatan == region
    return table.c.region == region
