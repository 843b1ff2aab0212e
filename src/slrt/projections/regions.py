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
        return table.c.scope.like(f"{region}.%")
    if len(region) == 5:
        return table.c.scope == region
    if len(region) == 8:
        return table.c.kecamatan == region
    return table.c.region == region
