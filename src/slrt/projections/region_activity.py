"""region_activity: how actively each region updates its data (DOMAIN.md: Kemensos
rewards the regions that update most; in January 2018, 286 of 514 kabupaten/kota had).

Counts each step of the proposals of a desa/kelurahan per day, in the desa's own time
zone: submitted, decided at the village, verified or returned by Dinsos, withdrawn, and
applied (the household's data changed), by kind of proposal. A region's activity over a
period is the sum of its desa's days; rebuilt from the events like every read model.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Date,
    Index,
    Integer,
    String,
    Table,
    func,
    insert,
    select,
    text,
)

from slrt.db import among_each, metadata, upsert
from slrt.domain.access import NATIONAL
from slrt.domain.common import InvalidInput
from slrt.domain.proposal import ProposalKind
from slrt.domain.reference import (
    desa_count,
    kabupaten_of,
    region_name,
    region_timezone,
    regions_below,
)
from slrt.projections.base import BatchProjection
from slrt.projections.proposal_list import STATUS_AFTER
from slrt.projections.regions import inside

#: The steps counted, by event: the status each leaves the proposal in.
STEPS = {"Proposal.Submitted": "submitted", **STATUS_AFTER}

region_activity = Table(
    "region_activity",
    metadata,
    Column("region", String(13), primary_key=True),  # desa/kelurahan
    Column("day", Date, primary_key=True),  # in the desa's time zone
    Column("step", String(20), primary_key=True),
    Column("kind", String(16), primary_key=True),  # of proposal
    Column("kecamatan", String(8), nullable=False),
    Column("scope", String(5), nullable=False),
    Column("count", Integer, nullable=False),
    Index("region_activity_scope_day", "scope", "day"),
    Index("region_activity_day", "day"),
)

#: Each proposal's desa and kind: its later events name neither.
activity_proposals = Table(
    "activity_proposals",
    metadata,
    Column("proposal_id", String(36), primary_key=True),
    Column("region", String(13), nullable=False),
    Column("kind", String(16), nullable=False),
)


class RegionActivityProjection(BatchProjection):
    name = "region_activity"
    tables = (region_activity, activity_proposals)
    handles = frozenset(STEPS)

    def apply_batch(self, conn: Connection, events: list[Any]) -> None:
        """Counts the batch's steps in memory, then adds them to the stored days."""
        proposals = {
            str(e.originator_id): (e.region, e.kind)
            for e in events
            if type(e).__qualname__ == "Proposal.Submitted"
        }
        if proposals:
            conn.execute(
                insert(activity_proposals),
                [
                    {"proposal_id": k, "region": r, "kind": kind}
                    for k, (r, kind) in proposals.items()
                ],
            )
        earlier = sorted({str(e.originator_id) for e in events} - set(proposals))
        for among_earlier in among_each(conn, activity_proposals.c.proposal_id, earlier):
            found = conn.execute(
                select(
                    activity_proposals.c.proposal_id,
                    activity_proposals.c.region,
                    activity_proposals.c.kind,
                ).where(among_earlier)
            )
            proposals.update((pid, (region, kind)) for pid, region, kind in found)
        counts: Counter[tuple[str, date, str, str]] = Counter()
        for event in events:
            region, kind = proposals[str(event.originator_id)]
            day = _local_day(event.timestamp, region)
            counts[(region, day, STEPS[type(event).__qualname__], kind)] += 1
        _add(conn, counts)


def _local_day(at: datetime, region: str) -> date:
    return at.astimezone(region_timezone(region)).date()


def _add(conn: Connection, counts: Counter[tuple[str, date, str, str]]) -> None:
    """Adds the counts to the stored ones."""
    rows = [
        {
            "region": region,
            "day": day,
            "step": step,
            "kind": kind,
            "kecamatan": region[:8],
            "scope": kabupaten_of(region),
            "count": n,
        }
        for (region, day, step, kind), n in sorted(counts.items())
    ]
    upsert(conn, region_activity, ("region", "day", "step", "kind"), rows, added=("count",))


#: Code length of each level a region's activity can be grouped by.
LEVELS = {"province": 2, "kabupaten": 5, "kecamatan": 8, "desa": 13}


def list_activity(
    conn: Connection, *, region: str | None, by: str, start: date, end: date
) -> dict[str, dict[str, Any]]:
    """Per region at level `by` inside `region` (None: the whole country): the count of
    each step (applied by kind of proposal) on the days in [start, end], how many of its
    desa had any, and its last day with any. Regions without any are not listed."""
    length = LEVELS[by]
    child = func.substr(region_activity.c.region, 1, length)
    within = [inside(region_activity, region), region_activity.c.day.between(start, end)]
    activity: dict[str, dict[str, Any]] = {}
    if conn.dialect.name == "postgresql":
        # Planned for this period and region each time. The statements are prepared
        # after a few runs (psycopg), and PostgreSQL then settles on a generic plan made
        # without the values: a month's plan used for a year, the country's reports
        # took 2.0–2.4 s instead of 0.94–0.99 from the eleventh run on one connection
        # (bench/README.md, twenty-fourth session). Until the transaction ends.
        conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    steps = conn.execute(
        select(
            child,
            region_activity.c.step,
            region_activity.c.kind,
            func.sum(region_activity.c.count),
            func.max(region_activity.c.day),
        )
        .where(*within)
        .group_by(child, region_activity.c.step, region_activity.c.kind)
    )
    for code, step, kind, count, last in steps:
        row = activity.setdefault(code, {"steps": Counter(), "applied": Counter(), "last": None})
        row["steps"][step] += int(count)
        if step == "applied":
            row["applied"][kind] += int(count)
        last = date.fromisoformat(last) if isinstance(last, str) else last
        row["last"] = max(row["last"] or last, last)
    # Distinct desa first, then counted per region: a count(DISTINCT) per group sorted
    # every row of the period (the country for a year, 4,000,000 rows: 2.4 s against
    # 0.45 s, bench/README.md).
    active = select(region_activity.c.region).where(*within).distinct().subquery()
    active_child = func.substr(active.c.region, 1, length)
    desa = conn.execute(select(active_child, func.count()).group_by(active_child))
    for code, count in desa:
        activity[code]["desa_active"] = int(count)
    return activity


#: The level listed when none is asked for: kabupaten/kota (what Kemensos compares)
#: for the country or a province, else one level down.
_DEFAULT_BY = {2: "kabupaten", 5: "kecamatan", 8: "desa", 13: "desa"}
#: The longest period one report covers.
MAX_DAYS = 3 * 366
#: The period when none is given: the 30 days to today.
DEFAULT_DAYS = 30


def activity_period(
    *, region: str, by: str | None, start: date | None, end: date | None, today: date
) -> dict[str, Any]:
    """The level and days a report on `region` (ID: the country) covers: `by` at or below
    the region's own level, [start, end] of at most MAX_DAYS days."""
    own = 2 if region == NATIONAL else len(region)
    level = by or _DEFAULT_BY[own]
    if LEVELS[level] < own:
        own_level = next(name for name, length in LEVELS.items() if length == own)
        raise InvalidInput(
            f"by must be at or below the region's own level: {region} is a {own_level}, "
            f"not a {level}",
            field="by",
        )
    end = end or today
    # By ordinal: a `to` in the first days of year 1 has no 29 days before it.
    start = start or date.fromordinal(max(end.toordinal() - (DEFAULT_DAYS - 1), 1))
    if start > end:
        raise InvalidInput("from must be on or before to", field="from")
    if (end - start).days >= MAX_DAYS:
        raise InvalidInput(f"the period may cover {MAX_DAYS} days at most", field="from")
    return {"by": level, "start": start, "end": end}


def activity_report(
    conn: Connection, *, region: str | None, by: str, start: date, end: date
) -> dict[str, Any]:
    """Every region at level `by` inside `region` (None: the whole country) that
    Kemendagri lists, with its activity in [start, end], those without any too: the
    most active first (households changed, then proposals submitted). A region
    "updated" its data when a proposal of it was applied in the period."""
    counted = list_activity(conn, region=region, by=by, start=start, end=end)
    listed = regions_below(region, LEVELS[by])
    codes = [*listed, *sorted(set(counted) - set(listed))]  # codes since dropped, if any
    rows = []
    for code in codes:
        found = counted.get(code, {})
        steps: Counter[str] = found.get("steps", Counter())
        applied: Counter[str] = found.get("applied", Counter())
        rows.append(
            {
                "code": code,
                "name": region_name(code),
                **{step: steps[step] for step in STEPS.values() if step != "applied"},
                "applied": {kind.value: applied[kind.value] for kind in ProposalKind},
                "applied_total": sum(applied.values()),
                "desa_active": found.get("desa_active", 0),
                "desa_total": desa_count(code),
                "last_active_on": found.get("last"),
            }
        )
    rows.sort(key=lambda r: (-r["applied_total"], -r["submitted"], r["code"]))
    return {
        "summary": {
            "regions": len(rows),
            "regions_updated": sum(1 for r in rows if r["applied_total"]),
            "regions_active": sum(1 for r in rows if r["desa_active"]),
            "proposals_submitted": sum(r["submitted"] for r in rows),
            "households_changed": sum(r["applied_total"] for r in rows),
            "desa_active": sum(r["desa_active"] for r in rows),
            "desa_total": desa_count(region),
        },
        "items": rows,
    }
