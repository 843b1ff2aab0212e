"""sla_timers: every SLA clock of every complaint, proposal and referral.

A milestone event (e.g. Complaint.Received, Proposal.VillageApproved) starts the clocks
`TARGET_CLOCKS` ties to it, with deadlines from the policy version the item runs under:
a complaint records its version when received; a proposal or referral runs under the
version in force when the clock starts. A stop milestone ends the clock as met (before
the deadline) or missed. Breaches are not decided here: the breach watcher records
`SlaBreach.Recorded`, and this projection marks the timer breached when it sees it.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    insert,
    select,
    text,
    update,
)

from slrt.db import UtcDateTime, metadata
from slrt.domain.reference import kabupaten_of
from slrt.domain.sla import TARGET_CLOCKS, ItemKind, SlaPolicyVersion
from slrt.projections.base import Projection
from slrt.projections.regions import inside

sla_timers = Table(
    "sla_timers",
    metadata,
    Column("timer_id", String(120), primary_key=True),
    Column("item_kind", String(16), nullable=False),
    Column("item_id", String(36), nullable=False, index=True),
    Column("region", String(13), nullable=False, index=True),
    Column("kecamatan", String(8), nullable=False, index=True),
    Column("scope", String(5), nullable=False, index=True),
    Column("category", String(64)),
    Column("target", String(64), nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("working", Boolean, nullable=False),
    Column("duration", String(40), nullable=False),
    Column("started_by", String(40), nullable=False),
    Column("started_at", UtcDateTime(), nullable=False, index=True),
    Column("deadline", UtcDateTime(), nullable=False, index=True),
    Column("state", String(8), nullable=False, index=True),  # open | met | missed
    Column("stopped_by", String(40)),
    Column("stopped_at", UtcDateTime()),
    Column("elapsed_seconds", Float),
    Column("breached", Boolean, nullable=False),
    Column("breach_recorded_at", UtcDateTime()),
)

#: The timers a breach may still be recorded for (overdue_timers): few at any time,
#: while met and missed timers accumulate forever. The same SQL text in the query and in
#: its partial index's predicate, so both databases see that the index serves the query.
_BREACH_UNRECORDED = "state IN ('open', 'missed') AND NOT breached"
Index(
    "sla_timers_breach_unrecorded",
    sla_timers.c.deadline,
    postgresql_where=text(_BREACH_UNRECORDED),
    sqlite_where=text(_BREACH_UNRECORDED),
)

sla_policy_versions = Table(
    "sla_policy_versions",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("policy", Text, nullable=False),
    Column("published_at", UtcDateTime(), nullable=False),
)

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def milestone_of(event: Any) -> tuple[ItemKind, str] | None:
    """Complaint.Received -> (complaint, "received"); None for events without clocks."""
    owner, _, name = type(event).__qualname__.partition(".")
    try:
        kind = ItemKind(owner.lower())
    except ValueError:
        return None
    return kind, _CAMEL.sub("_", name).lower()


def _event_name(kind: ItemKind, milestone: str) -> str:
    """(complaint, "village_approved") -> "Complaint.VillageApproved"."""
    return f"{kind.value.capitalize()}.{''.join(p.capitalize() for p in milestone.split('_'))}"


def _handled() -> frozenset[str]:
    names = {"SlaPolicy.VersionPublished", "SlaBreach.Recorded"}
    for kind, clocks in TARGET_CLOCKS.items():
        for clock in clocks.values():
            names.update(_event_name(kind, m) for m in (*clock.starts, *clock.stops))
    return frozenset(names)


# Built once: building SQLAlchemy statements per event cost more than running them.
_INSERT_TIMER = insert(sla_timers)
_OPEN_TIMERS = select(sla_timers.c.timer_id, sla_timers.c.started_at, sla_timers.c.deadline).where(
    sla_timers.c.item_id == bindparam("item_id"),
    sla_timers.c.state == "open",
    sla_timers.c.target.in_(bindparam("targets", expanding=True)),
)
_STOP_TIMER = (
    update(sla_timers)
    .where(sla_timers.c.timer_id == bindparam("stopped_timer"))
    .values(
        state=bindparam("new_state"),
        stopped_by=bindparam("milestone"),
        stopped_at=bindparam("at"),
        elapsed_seconds=bindparam("elapsed"),
    )
)


class SlaTimersProjection(Projection):
    name = "sla_timers"
    tables = (sla_timers, sla_policy_versions)
    handles = _handled()

    def __init__(self) -> None:
        # Every published version, oldest first; loaded once, appended as published.
        self._versions: list[tuple[int, datetime, SlaPolicyVersion]] | None = None
        # Region, category and policy version of recently seen items (from their first
        # event), so later milestones need no query; bounded, a miss just queries.
        self._facts: OrderedDict[str, tuple[str, str | None, int | None]] = OrderedDict()

    def reset_cache(self) -> None:
        self._versions = None
        self._facts.clear()

    def _remember(
        self, item_id: str, facts: tuple[str, str | None, int | None]
    ) -> tuple[str, str | None, int | None]:
        self._facts[item_id] = facts
        self._facts.move_to_end(item_id)
        if len(self._facts) > 100_000:
            self._facts.popitem(last=False)
        return facts

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        topic = type(event).__qualname__
        if topic == "SlaPolicy.VersionPublished":
            record = {"version": event.version, "rules": event.rules}
            conn.execute(
                insert(sla_policy_versions).values(
                    version=event.version, policy=json.dumps(record), published_at=event.timestamp
                )
            )
            self._loaded_versions(conn).append(
                (event.version, event.timestamp, SlaPolicyVersion.from_record(record))
            )
            return
        if topic == "SlaBreach.Recorded":
            conn.execute(
                update(sla_timers)
                .where(sla_timers.c.timer_id == event.timer_id)
                .values(breached=True, breach_recorded_at=event.timestamp)
            )
            return
        found = milestone_of(event)
        if found is None:
            return
        kind, milestone = found
        item_id = str(event.originator_id)
        self._stop(conn, kind, item_id, milestone, event.timestamp)
        self._start(conn, kind, item_id, milestone, event, notification_id)

    # -- clocks ---------------------------------------------------------------------

    def _start(
        self,
        conn: Connection,
        kind: ItemKind,
        item_id: str,
        milestone: str,
        event: Any,
        notification_id: int,
    ) -> None:
        targets = [name for name, c in TARGET_CLOCKS[kind].items() if milestone in c.starts]
        if not targets:
            return
        facts = self._item_facts(conn, kind, item_id, event)
        if facts is None:
            return
        region, category, version = facts
        policy = self._policy(conn, version, event.timestamp)
        if policy is None:
            return
        by_name = {t.name: t for t in policy.targets_for(kind.value, category)}
        for name in targets:
            target = by_name.get(name)
            if target is None:
                continue
            conn.execute(
                _INSERT_TIMER,
                {
                    "timer_id": f"{item_id}:{name}:{notification_id}",
                    "item_kind": kind.value,
                    "item_id": item_id,
                    "region": region,
                    "kecamatan": region[:8],
                    "scope": kabupaten_of(region),
                    "category": category,
                    "target": name,
                    "policy_version": policy.version,
                    "working": target.working,
                    "duration": target.describe(),
                    "started_by": milestone,
                    "started_at": event.timestamp,
                    "deadline": target.deadline(event.timestamp, region),
                    "state": "open",
                    "stopped_by": None,
                    "stopped_at": None,
                    "elapsed_seconds": None,
                    "breached": False,
                    "breach_recorded_at": None,
                },
            )

    def _stop(
        self, conn: Connection, kind: ItemKind, item_id: str, milestone: str, at: datetime
    ) -> None:
        targets = [name for name, c in TARGET_CLOCKS[kind].items() if milestone in c.stops]
        if not targets:
            return
        open_timers = conn.execute(_OPEN_TIMERS, {"item_id": item_id, "targets": targets}).all()
        for timer_id, started_at, deadline in open_timers:
            conn.execute(
                _STOP_TIMER,
                {
                    "stopped_timer": timer_id,
                    "new_state": "met" if at <= deadline else "missed",
                    "milestone": milestone,
                    "at": at,
                    "elapsed": (at - started_at).total_seconds(),
                },
            )

    def _item_facts(
        self, conn: Connection, kind: ItemKind, item_id: str, event: Any
    ) -> tuple[str, str | None, int | None] | None:
        """Region, category and (for complaints) the recorded policy version."""
        if kind is ItemKind.COMPLAINT and hasattr(event, "sla_policy_version"):
            return self._remember(
                item_id, (event.region, event.category, int(event.sla_policy_version))
            )
        if kind is ItemKind.PROPOSAL and hasattr(event, "kind"):
            return self._remember(item_id, (event.region, event.kind, None))
        if hasattr(event, "region") and hasattr(event, "service"):  # referral created
            return self._remember(item_id, (event.region, event.service, None))
        if item_id in self._facts:
            return self._facts[item_id]
        earlier = conn.execute(
            select(sla_timers.c.region, sla_timers.c.category, sla_timers.c.policy_version)
            .where(sla_timers.c.item_id == item_id)
            .order_by(sla_timers.c.started_at)
            .limit(1)
        ).first()
        if earlier is None:
            return None  # an item from before any SLA policy: it runs without clocks
        # A complaint keeps the version it was received under, for every clock.
        version = int(earlier[2]) if kind is ItemKind.COMPLAINT else None
        return self._remember(item_id, (earlier[0], earlier[1], version))

    def _loaded_versions(self, conn: Connection) -> list[tuple[int, datetime, SlaPolicyVersion]]:
        if self._versions is None:
            rows = conn.execute(
                select(
                    sla_policy_versions.c.version,
                    sla_policy_versions.c.published_at,
                    sla_policy_versions.c.policy,
                ).order_by(sla_policy_versions.c.version)
            )
            self._versions = [
                (r[0], r[1], SlaPolicyVersion.from_record(json.loads(r[2]))) for r in rows
            ]
        return self._versions

    def _policy(
        self, conn: Connection, version: int | None, at: datetime
    ) -> SlaPolicyVersion | None:
        """The given version, or the one in force at `at` (the first one if `at` is
        earlier than every version)."""
        versions = self._loaded_versions(conn)
        if not versions:
            return None
        if version is not None:
            return next((p for v, _, p in versions if v == version), None)
        in_force = [p for _, published_at, p in versions if published_at <= at]
        return in_force[-1] if in_force else versions[0][2]


# -- queries ------------------------------------------------------------------------


def timer_state(row: dict[str, Any], now: datetime) -> str:
    """on_track / at_risk (under a quarter of the time left) / breached, or met / missed."""
    if row["state"] != "open":
        return str(row["state"])
    if now > row["deadline"] or row["breached"]:
        return "breached"
    total = (row["deadline"] - row["started_at"]).total_seconds()
    left = (row["deadline"] - now).total_seconds()
    return "at_risk" if total > 0 and left < total / 4 else "on_track"


def list_timers(
    conn: Connection,
    *,
    region: str | None,
    now: datetime,
    state: str | None,
    open_only: bool,
    limit: int,
    offset: int,
) -> list[dict[str, Any]]:
    """Timers in a region, earliest deadline first, each with its state and time left."""
    query = select(sla_timers).where(inside(sla_timers, region))
    if open_only or state in ("on_track", "at_risk", "breached"):
        query = query.where(sla_timers.c.state == "open")
    elif state in ("met", "missed"):
        query = query.where(sla_timers.c.state == state)
    # An open timer's on_track / at_risk / breached depends on `now`, so those are chosen
    # here from the region's open timers; any other page is chosen by the database (met
    # and missed timers accumulate forever: they are not all read to show fifty).
    by_now = state in ("on_track", "at_risk", "breached")
    query = query.order_by(sla_timers.c.deadline, sla_timers.c.timer_id)
    if not by_now:
        query = query.limit(limit).offset(offset)
    rows = [dict(r._mapping) for r in conn.execute(query)]
    result = []
    for row in rows:
        row["sla_state"] = timer_state(row, now)
        if state in ("on_track", "at_risk", "breached") and row["sla_state"] != state:
            continue
        row["seconds_left"] = (
            (row["deadline"] - now).total_seconds() if row["state"] == "open" else None
        )
        result.append(row)
    return result[offset : offset + limit] if by_now else result


def overdue_timers(conn: Connection, *, now: datetime, grace: timedelta) -> list[dict[str, Any]]:
    """Timers whose deadline passed (more than `grace` ago) unmet, with no breach recorded."""
    rows = conn.execute(
        select(sla_timers)
        .where(
            # A clock stopped late was breached too, even if nobody was watching.
            text(_BREACH_UNRECORDED),
            sla_timers.c.deadline < now - grace,
        )
        .order_by(sla_timers.c.deadline)
    )
    return [dict(r._mapping) for r in rows]


def _percentile(values: list[float], share: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(share * (len(ordered) - 1))))
    return ordered[index]


def compliance(timers: list[dict[str, Any]], *, now: datetime) -> list[dict[str, Any]]:
    """Per (region, item kind, category, target): how many clocks were decided, the share
    met within the SLA, and median / p90 hours to the milestone that stopped the clock.

    A clock is decided when it stopped, or when its deadline passed while still open
    (it can no longer be met). Pure: the same figures come from the projection's rows
    or from timers rebuilt any other way."""
    groups: dict[tuple[str, str, str | None, str], list[dict[str, Any]]] = {}
    for timer in timers:
        key = (timer["region"], timer["item_kind"], timer["category"], timer["target"])
        groups.setdefault(key, []).append(timer)
    figures = []
    for (region, kind, category, target), rows in sorted(
        groups.items(), key=lambda item: tuple(str(k) for k in item[0])
    ):
        met = sum(1 for r in rows if r["state"] == "met")
        missed = sum(
            1
            for r in rows
            if r["state"] == "missed" or (r["state"] == "open" and now > r["deadline"])
        )
        hours = [r["elapsed_seconds"] / 3600 for r in rows if r["elapsed_seconds"] is not None]
        decided = met + missed
        figures.append(
            {
                "region": region,
                "item_kind": kind,
                "category": category,
                "target": target,
                "clocks": len(rows),
                "decided": decided,
                "met": met,
                "missed": missed,
                "share_met": round(met / decided, 4) if decided else None,
                "median_hours": round(statistics.median(hours), 3) if hours else None,
                "p90_hours": round(p90, 3)
                if (p90 := _percentile(hours, 0.9)) is not None
                else None,
            }
        )
    return figures


#: What `compliance` reads of a timer.
_COMPLIANCE_COLUMNS = (
    sla_timers.c.region,
    sla_timers.c.item_kind,
    sla_timers.c.category,
    sla_timers.c.target,
    sla_timers.c.state,
    sla_timers.c.deadline,
    sla_timers.c.elapsed_seconds,
)


def timers_started_between(
    conn: Connection, *, region: str | None, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The timers started in [start, end) inside `region`, with what `compliance` reads
    of them. Only those columns, as plain dicts: a busy kabupaten's year (200,000
    timers) took ~2 s to read whole, three quarters of it turning rows into dicts and
    reviving four timestamps each (bench/README.md, twenty-fourth session)."""
    rows = conn.execute(
        select(*_COMPLIANCE_COLUMNS).where(
            inside(sla_timers, region),
            sla_timers.c.started_at >= start,
            sla_timers.c.started_at < end,
        )
    )
    keys = tuple(rows.keys())
    return [dict(zip(keys, row, strict=True)) for row in rows.all()]
