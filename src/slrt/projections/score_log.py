"""score_log: one row per change of a household's welfare score, per ranking scope.

The rank-change audit trail is derived on demand from this log rather than stored per
rank: a household's own change writes one row, a new model version one row per ranked
household (every score changes then), never one row per household in the scope.

A row records the transition of one household from `old_score` to `new_score` (None =
not ranked: not yet scored, or removed) at one notification. Because a household's
rows chain (`old_score` of a row is `new_score` of the one before), the number of
households ranked ahead of a key at notification N telescopes:

    ahead(N, key) = Σ_{rows with notification_id ≤ N} [new ahead of key] − [old ahead of key]

and equally from the other end, using the current scores in `score_current`. Queries
sum over whichever side of N holds fewer rows. Ties are ordered by household id, as in
ADR 0002.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import Notification
from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)

from slrt.db import HouseholdId, UtcDateTime, among_each, bulk_insert, metadata
from slrt.domain.reference import kabupaten_of
from slrt.domain.scoring import ModelVersion
from slrt.projections.base import Projection

score_log = Table(
    "score_log",
    metadata,
    Column("household_id", HouseholdId, primary_key=True),
    Column("notification_id", Integer, primary_key=True),
    Column("scope", String(5), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    # own_data | model | entered | removed
    Column("cause", String(10), nullable=False),
    Column("old_score", Float),
    Column("new_score", Float),
    Column("old_model_version", Integer),
    Column("new_model_version", Integer),
    Column("proposal_id", String(36)),
    # JSON list of the indicators (and "members") whose change moved the score
    Column("changed", Text),
    # The household's previous row: the first row of a household after N is the one
    # whose prev_nid is at most N, found by a filter instead of a grouping.
    Column("prev_nid", Integer),
    # The household's next row (NULL for its latest): its last row up to N is the one
    # whose next_nid is NULL or after N, again a filter.
    Column("next_nid", Integer),
    Index(
        "ix_score_log_scope_notification",
        "scope",
        "notification_id",
        postgresql_include=["household_id", "old_score", "new_score", "prev_nid"],
    ),
    # In household order, so each household's first and last rows in a period (or its
    # current score) are matched by merging index-only scans, and the first few of a
    # group by id are found without sorting the group (PostgreSQL only: on SQLite the
    # primary key already is this index).
    Index(
        "ix_score_log_household_chain",
        "household_id",
        "notification_id",
        postgresql_include=["scope", "prev_nid", "next_nid", "old_score", "new_score"],
    ).ddl_if(dialect="postgresql"),
)

score_current = Table(
    "score_current",
    metadata,
    Column("household_id", HouseholdId, primary_key=True),
    Column("scope", String(5), nullable=False),
    Column("status", String(16), nullable=False),
    Column("indicators", Text, nullable=False),
    Column("member_count", Integer, nullable=False),
    # None when not ranked (no model yet, or removed)
    Column("score", Float),
    Column("model_version", Integer),
    # notification id of the household's last score_log row
    Column("last_nid", Integer),
    Index("ix_score_current_scope_score", "scope", "score", "household_id"),
    # Lets explanations join on the current scores without reading the wide rows.
    Index("ix_score_current_household_score", "household_id", postgresql_include=["score"]),
)

#: Checkpoints: every ranked (score, household) of a scope as of one notification, taken
#: each time the scope's log has grown by a quarter of its ranked households (at least
#: CHECKPOINT_MIN_ROWS), so a rank at any instant sums at most that many log rows. That is
#: at most 4 (amortized) stored rows per score change, whatever the scope's size.
score_checkpoints = Table(
    "score_checkpoints",
    metadata,
    Column("scope", String(5), primary_key=True),
    Column("notification_id", Integer, primary_key=True),
    Column("score", Float, primary_key=True),
    Column("household_id", HouseholdId, primary_key=True),
)
score_checkpoint_heads = Table(
    "score_checkpoint_heads",
    metadata,
    Column("scope", String(5), primary_key=True),
    Column("notification_id", Integer, primary_key=True),
    Column("ranked", Integer, nullable=False),
    # JSON [[score, household_id], …]: the entries at ranks 1, 1 + step, 1 + 2·step, …,
    # so counting ahead of a key reads at most `step` index entries.
    Column("marks", Text, nullable=False),
    Column("step", Integer, nullable=False),
)
CHECKPOINT_MIN_ROWS = 2_000
CHECKPOINT_MARKS = 128

#: How many households each scope ranks now (active and scored).
score_scopes = Table(
    "score_scopes",
    metadata,
    Column("scope", String(5), primary_key=True),
    Column("ranked", Integer, nullable=False),
)

score_log_models = Table(
    "score_log_models",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("model", Text, nullable=False),
    Column("published_at", UtcDateTime(), nullable=False),
)


class ScoreLogProjection(Projection):
    """Keeps each household's scoring inputs in `score_current` and appends a row to
    `score_log` whenever its score changes. A batch's reads and writes go through an
    in-memory buffer flushed in bulk in `finish_batch` (same transaction as the
    position)."""

    name = "score_log"
    tables = (
        score_log,
        score_current,
        score_log_models,
        score_scopes,
        score_checkpoints,
        score_checkpoint_heads,
    )
    handles = frozenset(
        {
            "Household.Registered",
            "Household.DataUpdated",
            "Household.Removed",
            "ScoringModel.VersionPublished",
        }
    )
    #: 2: rows chain to the household's previous row across batches (prev_nid).
    #: 3: and to its next row (next_nid).
    version = 3

    def __init__(self) -> None:
        self._reset(None)
        #: per scope: [log rows since its last checkpoint, rows that trigger the next].
        #: Kept across batches (counting the stored rows again for every batch read up
        #: to a quarter of the scope's ranked households), forgotten with the cache.
        self._since: dict[str, list[int]] = {}

    def reset_cache(self) -> None:
        self._reset(None)
        self._since.clear()

    def _reset(self, conn: Connection | None) -> None:
        # Buffers belong to one batch (one connection); a rolled-back batch's are dropped.
        self._conn = conn
        self._model: ModelVersion | None = None
        self._model_loaded = False
        self._states: dict[str, dict[str, Any]] = {}
        self._new: set[str] = set()
        self._dirty: set[str] = set()
        self._log_rows: list[dict[str, Any]] = []
        #: This batch's rows by (household, notification), to chain the next one to.
        self._buffered: dict[tuple[str, int], dict[str, Any]] = {}
        #: Stored rows whose next_nid this batch sets.
        self._next_links: list[dict[str, Any]] = []

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        if self._conn is not conn:
            self._reset(conn)
        handler = {
            "Household.Registered": self._registered,
            "Household.DataUpdated": self._data_updated,
            "Household.Removed": self._removed,
            "ScoringModel.VersionPublished": self._version_published,
        }.get(type(event).__qualname__)
        if handler is not None:
            handler(conn, event, notification_id)

    def before_page(self, conn: Connection, page: Sequence[Notification]) -> None:
        """Loads, in one query per 5,000, the stored states of the households the page
        changes that are not in memory (one query each cost 60 % of a catch-up). Any
        state still missing later (after a model version cleared them) is read alone."""
        if self._conn is not conn:
            self._reset(conn)
        wanted = sorted(
            {
                str(n.originator_id)
                for n in page
                if n.topic.endswith((":Household.DataUpdated", ":Household.Removed"))
            }
            - self._states.keys()
        )
        for among_wanted in among_each(conn, score_current.c.household_id, wanted):
            for row in conn.execute(select(score_current).where(among_wanted)):
                self._states.setdefault(row.household_id, dict(row._mapping))

    def finish_batch(self, conn: Connection) -> None:
        if self._conn is conn:
            self._flush(conn)
        self._reset(None)

    def _flush(self, conn: Connection) -> None:
        # Changed households' rows are replaced whole (their state is the full row):
        # deleted, then written with the new ones in one COPY on PostgreSQL, as
        # household_status does; an executemany UPDATE was a sixth of a catch-up.
        changed = sorted(self._dirty - self._new)
        for among_changed in among_each(conn, score_current.c.household_id, changed):
            conn.execute(delete(score_current).where(among_changed))
        written = sorted(self._new) + changed
        if written:
            _insert_rows(conn, score_current, [self._states[h] for h in written])
        if self._log_rows:
            _insert_rows(conn, score_log, self._log_rows)
            _count_ranked(conn, self._log_rows)
        if self._next_links:
            _link_next(conn, self._next_links)
        self._new.clear()
        self._dirty.clear()
        self._log_rows = []
        self._buffered = {}
        self._next_links = []

    def _log(self, conn: Connection, state: dict[str, Any], row: dict[str, Any]) -> None:
        """Buffers a household's log row, chained both ways to its previous row (in this
        batch's buffer, or stored), moves the household's `last_nid` to it, and counts it
        towards the scope's next checkpoint."""
        hid, nid, prev = row["household_id"], row["notification_id"], state["last_nid"]
        row["prev_nid"] = prev
        if prev is not None:
            buffered = self._buffered.get((hid, prev))
            if buffered is not None:
                buffered["next_nid"] = nid
            else:
                self._next_links.append({"hid": hid, "prev": prev, "next": nid})
        self._buffered[(hid, nid)] = row
        self._log_rows.append(row)
        state["last_nid"] = nid
        self._tick(conn, row["scope"], nid, 1)

    def _current_model(self, conn: Connection) -> ModelVersion | None:
        if not self._model_loaded:
            row = conn.execute(
                select(score_log_models.c.model)
                .order_by(score_log_models.c.version.desc())
                .limit(1)
            ).first()
            self._model = ModelVersion.from_record(json.loads(row[0])) if row else None
            self._model_loaded = True
        return self._model

    def _state(self, conn: Connection, household_id: str) -> dict[str, Any]:
        state = self._states.get(household_id)
        if state is None:
            row = conn.execute(
                select(score_current).where(score_current.c.household_id == household_id)
            ).first()
            if row is None:
                msg = f"score_current has no row for {household_id}; was the projection reset?"
                raise LookupError(msg)
            state = dict(row._mapping)
            self._states[household_id] = state
        return state

    def _registered(self, conn: Connection, event: Any, notification_id: int) -> None:
        data = event.data
        household_id = str(event.originator_id)
        scope = kabupaten_of(data["region"])
        model = self._current_model(conn)
        members = len(data["members"])
        score = model.score(data["indicators"], members) if model else None
        self._states[household_id] = {
            "household_id": household_id,
            "scope": scope,
            "status": "active",
            "indicators": json.dumps(data["indicators"]),
            "member_count": members,
            "score": score,
            "model_version": model.version if model else None,
            "last_nid": None,
        }
        self._new.add(household_id)
        self._dirty.add(household_id)
        if score is not None and model is not None:
            self._log(
                conn,
                self._states[household_id],
                _row(
                    household_id,
                    notification_id,
                    scope,
                    event.timestamp,
                    "entered",
                    None,
                    score,
                    None,
                    model.version,
                    event.proposal_id,
                    None,
                ),
            )

    def _data_updated(self, conn: Connection, event: Any, notification_id: int) -> None:
        changes = event.changes
        if "indicators" not in changes and "members" not in changes:
            return
        household_id = str(event.originator_id)
        state = self._state(conn, household_id)
        old_indicators: dict[str, bool] = json.loads(state["indicators"])
        indicators = changes.get("indicators", old_indicators)
        members = len(changes["members"]) if "members" in changes else state["member_count"]
        changed = sorted(k for k, v in indicators.items() if old_indicators.get(k) != v)
        if members != state["member_count"]:
            changed.append("members")
        model = self._current_model(conn)
        active = state["status"] == "active"
        score = model.score(indicators, members) if model and active else None
        old_score, old_version = state["score"], state["model_version"]
        state.update(
            indicators=json.dumps(indicators),
            member_count=members,
            score=score,
            model_version=model.version if score is not None and model else None,
        )
        self._dirty.add(household_id)
        if score != old_score and model is not None:
            self._log(
                conn,
                state,
                _row(
                    household_id,
                    notification_id,
                    state["scope"],
                    event.timestamp,
                    "own_data",
                    old_score,
                    score,
                    old_version,
                    model.version,
                    event.proposal_id,
                    changed,
                ),
            )

    def _removed(self, conn: Connection, event: Any, notification_id: int) -> None:
        household_id = str(event.originator_id)
        state = self._state(conn, household_id)
        old_score, old_version = state["score"], state["model_version"]
        state.update(status="removed", score=None, model_version=None)
        self._dirty.add(household_id)
        if old_score is not None:
            self._log(
                conn,
                state,
                _row(
                    household_id,
                    notification_id,
                    state["scope"],
                    event.timestamp,
                    "removed",
                    old_score,
                    None,
                    old_version,
                    None,
                    event.proposal_id,
                    None,
                ),
            )

    def _version_published(self, conn: Connection, event: Any, notification_id: int) -> None:
        """Every active household is re-scored: one log row each (O(households) once per
        model version; unavoidable, since every score changes)."""
        self._flush(conn)
        self._states.clear()
        model = ModelVersion.from_record(event.model)
        conn.execute(
            insert(score_log_models).values(
                version=model.version,
                model=json.dumps(event.model, sort_keys=True),
                published_at=event.timestamp,
            )
        )
        self._model, self._model_loaded = model, True
        states = conn.execute(
            select(
                score_current.c.household_id,
                score_current.c.scope,
                score_current.c.indicators,
                score_current.c.member_count,
                score_current.c.score,
                score_current.c.model_version,
                score_current.c.last_nid,
            ).where(score_current.c.status == "active")
        ).all()
        rows, updates = [], []
        for hid, scope, indicators, members, old, old_version, last_nid in states:
            new = model.score(json.loads(indicators), members)
            updates.append({"hid": hid, "new_score": new})
            rows.append(
                _row(
                    hid,
                    notification_id,
                    scope,
                    event.timestamp,
                    "model",
                    old,
                    new,
                    old_version,
                    model.version,
                    None,
                    None,
                    prev_nid=last_nid,
                )
            )
        # Each active household's latest row is followed by its model row.
        conn.execute(
            text(
                "UPDATE score_log SET next_nid = :m WHERE (household_id, notification_id) IN "
                "(SELECT household_id, last_nid FROM score_current "
                "WHERE status = 'active' AND last_nid IS NOT NULL)"
            ),
            {"m": notification_id},
        )
        if updates:
            conn.execute(
                update(score_current)
                .where(score_current.c.household_id == bindparam("hid"))
                .values(
                    score=bindparam("new_score"),
                    model_version=model.version,
                    last_nid=notification_id,
                ),
                updates,
            )
        if rows:
            _insert_rows(conn, score_log, rows)
            _count_ranked(conn, rows)
        per_scope: dict[str, int] = {}
        for row in rows:
            per_scope[row["scope"]] = per_scope.get(row["scope"], 0) + 1
        for scope, count in sorted(per_scope.items()):
            self._tick(conn, scope, notification_id, count)

    def _tick(self, conn: Connection, scope: str, notification_id: int, rows: int) -> None:
        """Counts log rows per scope and takes a checkpoint when enough have accrued.
        Deterministic: it depends only on the sequence of events, not on batching."""
        since = self._since.get(scope)
        if since is None:
            head = conn.execute(
                select(score_checkpoint_heads.c.notification_id, score_checkpoint_heads.c.ranked)
                .where(score_checkpoint_heads.c.scope == scope)
                .order_by(score_checkpoint_heads.c.notification_id.desc())
                .limit(1)
            ).first()
            last, ranked = (head[0], head[1]) if head else (0, 0)
            # Stored rows since the checkpoint, plus this batch's still-buffered ones
            # (the `rows` just added are counted below).
            stored = conn.execute(
                select(func.count())
                .select_from(score_log)
                .where(score_log.c.scope == scope, score_log.c.notification_id > last)
            ).scalar_one()
            buffered = sum(1 for r in self._log_rows if r["scope"] == scope)
            already = int(stored) + buffered - rows
            since = [already, max(CHECKPOINT_MIN_ROWS, ranked // 4)]
            self._since[scope] = since
        since[0] += rows
        if since[0] < since[1]:
            return
        self._flush(conn)
        conn.execute(
            score_checkpoints.insert().from_select(
                ["scope", "notification_id", "score", "household_id"],
                select(
                    score_current.c.scope,
                    literal(notification_id),
                    score_current.c.score,
                    score_current.c.household_id,
                ).where(score_current.c.scope == scope, score_current.c.score.is_not(None)),
            )
        )
        ranked = conn.execute(
            select(func.count())
            .select_from(score_checkpoints)
            .where(
                score_checkpoints.c.scope == scope,
                score_checkpoints.c.notification_id == notification_id,
            )
        ).scalar_one()
        step = max(1, int(ranked) // CHECKPOINT_MARKS)
        numbered = (
            select(
                score_checkpoints.c.score,
                score_checkpoints.c.household_id,
                func.row_number()
                .over(order_by=(score_checkpoints.c.score, score_checkpoints.c.household_id))
                .label("rn"),
            )
            .where(
                score_checkpoints.c.scope == scope,
                score_checkpoints.c.notification_id == notification_id,
            )
            .subquery()
        )
        marks = conn.execute(
            select(numbered.c.score, numbered.c.household_id)
            .where((numbered.c.rn - 1) % step == 0)
            .order_by(numbered.c.rn)
        ).all()
        conn.execute(
            insert(score_checkpoint_heads).values(
                scope=scope,
                notification_id=notification_id,
                ranked=ranked,
                marks=json.dumps([[m[0], m[1]] for m in marks]),
                step=step,
            )
        )
        self._since[scope] = [0, max(CHECKPOINT_MIN_ROWS, int(ranked) // 4)]


def _row(
    household_id: str,
    notification_id: int,
    scope: str,
    at: datetime,
    cause: str,
    old: float | None,
    new: float | None,
    old_version: int | None,
    new_version: int | None,
    proposal_id: Any,
    changed: list[str] | None,
    *,
    prev_nid: int | None = None,
) -> dict[str, Any]:
    return {
        "prev_nid": prev_nid,
        "next_nid": None,
        "household_id": household_id,
        "notification_id": notification_id,
        "scope": scope,
        "at": at,
        "cause": cause,
        "old_score": old,
        "new_score": new,
        "old_model_version": old_version,
        "new_model_version": new_version,
        "proposal_id": str(proposal_id) if proposal_id else None,
        "changed": json.dumps(changed) if changed is not None else None,
    }


def _insert_rows(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Inserts the rows with COPY on PostgreSQL (slrt.db.bulk_insert): an executemany
    INSERT of the log rows was a quarter of a catch-up. Times are stored in UTC, as
    UtcDateTime would bind them."""
    columns = [c.name for c in table.columns]
    utc = [i for i, c in enumerate(table.columns) if isinstance(c.type, UtcDateTime)]
    values = []
    for row in rows:
        value = [row[c] for c in columns]
        for i in utc:
            value[i] = value[i].astimezone(UTC)
        values.append(tuple(value))
    bulk_insert(conn, table, columns, values)


_LINK_NEXT = text(
    "UPDATE score_log SET next_nid = link.next FROM unnest("
    "CAST(:hids AS text[]), CAST(:prevs AS integer[]), CAST(:nexts AS integer[])"
    ') AS link(hid, prev, next) WHERE score_log.household_id = link.hid COLLATE "C" '
    "AND score_log.notification_id = link.prev"
)


def _link_next(conn: Connection, links: list[dict[str, Any]]) -> None:
    """Chains stored log rows to the rows that follow them: one statement on PostgreSQL
    (an executemany UPDATE was a seventh of a catch-up), executemany on SQLite."""
    if conn.dialect.name == "postgresql":
        conn.execute(
            _LINK_NEXT,
            {
                "hids": [link["hid"] for link in links],
                "prevs": [link["prev"] for link in links],
                "nexts": [link["next"] for link in links],
            },
        )
        return
    conn.execute(
        update(score_log)
        .where(
            score_log.c.household_id == bindparam("hid"),
            score_log.c.notification_id == bindparam("prev"),
        )
        .values(next_nid=bindparam("next")),
        links,
    )


def _count_ranked(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Moves each scope's count of ranked households by the rows' entries and exits."""
    deltas: dict[str, int] = {}
    for row in rows:
        change = (row["new_score"] is not None) - (row["old_score"] is not None)
        if change:
            deltas[row["scope"]] = deltas.get(row["scope"], 0) + change
    for scope, change in sorted(deltas.items()):
        moved = conn.execute(
            update(score_scopes)
            .where(score_scopes.c.scope == scope)
            .values(ranked=score_scopes.c.ranked + change)
        )
        if moved.rowcount == 0:
            conn.execute(insert(score_scopes).values(scope=scope, ranked=change))


# -- queries ------------------------------------------------------------------------


def desil_of(rank: int, population: int) -> int:
    """ADR 0002: desil = floor(10 × (rank − 1) / n) + 1."""
    return (10 * (rank - 1)) // population + 1


@dataclass(frozen=True)
class Standing:
    """A household's place in its scope as of one notification."""

    notification_id: int
    score: float | None
    model_version: int | None
    rank: int | None
    desil: int | None
    population: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "model_version": self.model_version,
            "rank": self.rank,
            "desil": self.desil,
            "population": self.population,
        }


def _ahead(column: str) -> str:
    """SQL: 1 when `column` ranks ahead of (is poorer than) the key (:s, :h)."""
    return (
        f"CASE WHEN {column} IS NOT NULL AND ({column} < :s OR "
        f"({column} = :s AND household_id < :h)) THEN 1 ELSE 0 END"
    )


_CURRENT = text(
    f"SELECT (SELECT COALESCE(SUM({_ahead('score')}), 0) FROM score_current "
    "WHERE scope = :scope AND household_id <> :h AND score IS NOT NULL), "
    + "(SELECT ranked FROM score_scopes WHERE scope = :scope), "
    "(SELECT COUNT(score) FROM score_current WHERE household_id = :h)"
)
_CURRENT_PG_BEHIND = text(
    "SELECT (SELECT COUNT(*) FROM score_current WHERE scope = :scope AND score IS NOT NULL "
    "AND (score, household_id) > (:s, :h) AND household_id <> :h), "
    "(SELECT ranked FROM score_scopes WHERE scope = :scope), "
    "(SELECT COUNT(score) FROM score_current WHERE household_id = :h)"
)
_CURRENT_PG = text(
    # A row comparison walks the (scope, score, household_id) index.
    "SELECT (SELECT COUNT(*) FROM score_current WHERE scope = :scope AND score IS NOT NULL "
    "AND (score, household_id) < (:s, :h) AND household_id <> :h), "
    "(SELECT ranked FROM score_scopes WHERE scope = :scope), "
    "(SELECT COUNT(score) FROM score_current WHERE household_id = :h)"
)


def own_row_at(conn: Connection, household_id: str, notification_id: int) -> Any:
    """The household's last score change at or before the notification, if any."""
    return conn.execute(
        select(score_log)
        .where(
            score_log.c.household_id == household_id,
            score_log.c.notification_id <= notification_id,
        )
        .order_by(score_log.c.notification_id.desc())
        .limit(1)
    ).first()


def scope_of(conn: Connection, household_id: str) -> str | None:
    return conn.execute(
        select(score_current.c.scope).where(score_current.c.household_id == household_id)
    ).scalar()


def others_at(
    conn: Connection, *, scope: str, household_id: str, score: float, notification_id: int
) -> tuple[int, int]:
    """(households ranked ahead of the key (score, household_id), ranked households other
    than this one) as of the notification: from the nearest checkpoint (or the current
    scores), corrected by the log rows between it and the notification."""
    n = notification_id
    params = {"scope": scope, "h": household_id, "s": score, "n": n}
    high = conn.execute(
        select(func.max(score_log.c.notification_id)).where(score_log.c.scope == scope)
    ).scalar()
    if high is None:
        return 0, 0
    heads = score_checkpoint_heads.c
    if n >= high:
        latest = conn.execute(
            select(heads.marks)
            .where(heads.scope == scope)
            .order_by(heads.notification_id.desc())
            .limit(1)
        ).scalar()
        return _current(conn, params, json.loads(latest) if latest else None)
    before = conn.execute(
        select(heads.notification_id, heads.ranked, heads.marks, heads.step)
        .where(heads.scope == scope, heads.notification_id <= n)
        .order_by(heads.notification_id.desc())
        .limit(1)
    ).first()
    after = conn.execute(
        select(heads.notification_id, heads.ranked, heads.marks, heads.step)
        .where(heads.scope == scope, heads.notification_id > n)
        .order_by(heads.notification_id)
        .limit(1)
    ).first()
    low_nid = before[0] if before else 0
    high_nid = after[0] if after else high
    if n - low_nid <= high_nid - n:
        base = _at_checkpoint(conn, params, before) if before else (0, 0)
        ahead, count = conn.execute(_SUM_BETWEEN, {**params, "lo": low_nid, "hi": n}).one()
        return base[0] + int(ahead), base[1] + int(count)
    base = (
        _at_checkpoint(conn, params, after)
        if after is not None
        else _current(conn, params, json.loads(before[2]) if before else None)
    )
    ahead, count = conn.execute(_SUM_BETWEEN, {**params, "lo": n, "hi": high_nid}).one()
    return base[0] - int(ahead), base[1] - int(count)


_SUM_BETWEEN = text(
    f"SELECT COALESCE(SUM({_ahead('new_score')} - {_ahead('old_score')}), 0), "
    "COALESCE(SUM(CASE WHEN new_score IS NOT NULL THEN 1 ELSE 0 END "
    "- CASE WHEN old_score IS NOT NULL THEN 1 ELSE 0 END), 0) "
    "FROM score_log WHERE scope = :scope AND notification_id > :lo "
    "AND notification_id <= :hi AND household_id <> :h"
)
_BETWEEN_MARK_AND_KEY = text(
    # Row values walk the checkpoint's (scope, notification_id, score, household_id) key.
    "SELECT COUNT(*) FROM score_checkpoints WHERE scope = :scope AND notification_id = :c "
    "AND (score, household_id) >= (:ms, :mh) AND (score, household_id) < (:s, :h) "
    "AND household_id <> :h"
)


def _at_checkpoint(conn: Connection, params: dict[str, Any], head: Any) -> tuple[int, int]:
    """(ranked ahead of the key, ranked other than the household) at a checkpoint: the
    entries before the last mark at or below the key, plus those from it to the key."""
    checkpoint, ranked, marks, step = head[0], head[1], json.loads(head[2]), head[3]
    own = own_row_at(conn, params["h"], checkpoint)
    own_key = (own.new_score, own.household_id) if own is not None else None
    if own_key is not None and own_key[0] is None:
        own_key = None
    key = (params["s"], params["h"])
    index = bisect_right([(m[0], m[1]) for m in marks], key) - 1
    if index < 0:
        ahead = conn.execute(
            _BETWEEN_MARK_AND_KEY, {**params, "c": checkpoint, "ms": float("-inf"), "mh": ""}
        ).scalar_one()
        return int(ahead), ranked - (own_key is not None)
    mark = (marks[index][0], marks[index][1])
    between = conn.execute(
        _BETWEEN_MARK_AND_KEY, {**params, "c": checkpoint, "ms": mark[0], "mh": mark[1]}
    ).scalar_one()
    before_mark = index * step - (own_key is not None and own_key < mark)
    return before_mark + int(between), ranked - (own_key is not None)


def _current(
    conn: Connection, params: dict[str, Any], marks: list[list[Any]] | None = None
) -> tuple[int, int]:
    """(ranked ahead of the key, ranked other than the household) now. On PostgreSQL the
    count walks the score index from the nearer end, judged by the last checkpoint's
    marks (the scores have moved since, but only the direction is chosen from them)."""
    if conn.dialect.name != "postgresql":
        ahead, ranked, own = conn.execute(_CURRENT, params).one()
        return int(ahead), int(ranked or 0) - int(own)
    nearer_end = (
        marks
        and bisect_right([(m[0], m[1]) for m in marks], (params["s"], params["h"]))
        > len(marks) // 2
    )
    if nearer_end:
        behind, ranked, own = conn.execute(_CURRENT_PG_BEHIND, params).one()
        others = int(ranked or 0) - int(own)
        return others - int(behind), others
    ahead, ranked, own = conn.execute(_CURRENT_PG, params).one()
    return int(ahead), int(ranked or 0) - int(own)


def standing_at(conn: Connection, household_id: str, notification_id: int) -> Standing | None:
    """Score, rank, desil and scope population of the household as of the notification;
    None if the household was never scored."""
    scope = scope_of(conn, household_id)
    if scope is None:
        return None
    own = own_row_at(conn, household_id, notification_id)
    score = own.new_score if own is not None else None
    key = score if score is not None else 0.0
    ahead, others = others_at(
        conn, scope=scope, household_id=household_id, score=key, notification_id=notification_id
    )
    if score is None:
        return Standing(notification_id, None, None, None, None, others)
    rank = ahead + 1
    population = others + 1
    return Standing(
        notification_id,
        score,
        own.new_model_version,
        rank,
        desil_of(rank, population),
        population,
    )


def own_rows(conn: Connection, household_id: str, after: int, upto: int) -> list[Any]:
    return list(
        conn.execute(
            select(score_log)
            .where(
                score_log.c.household_id == household_id,
                score_log.c.notification_id > after,
                score_log.c.notification_id <= upto,
            )
            .order_by(score_log.c.notification_id)
        ).all()
    )


#: The households whose score changed in (n1, n2], each with its score at n1 (the old
#: score of its first row in the period: the row whose previous row is at or before n1)
#: and at n2 (its current score when the period runs to now, else the new score of its
#: last row in the period: the row whose next row is after n2, or that has none).
#: Filters on the chain of rows instead of grouping, so PostgreSQL merges two index-only
#: scans in household order.
_MOVED_TO_NOW = """
    SELECT f.household_id AS hid, f.old_score AS s1, c.score AS s2
    FROM score_log f JOIN score_current c ON c.household_id = f.household_id
    WHERE f.scope = :scope AND f.notification_id > :n1 AND f.notification_id <= :n2
      AND f.household_id <> :h AND (f.prev_nid IS NULL OR f.prev_nid <= :n1)
"""
_MOVED = """
    SELECT f.household_id AS hid, f.old_score AS s1, l.new_score AS s2
    FROM score_log f JOIN score_log l ON l.household_id = f.household_id
    WHERE f.scope = :scope AND f.notification_id > :n1 AND f.notification_id <= :n2
      AND f.household_id <> :h AND (f.prev_nid IS NULL OR f.prev_nid <= :n1)
      AND l.notification_id > :n1 AND l.notification_id <= :n2
      AND (l.next_nid IS NULL OR l.next_nid > :n2)
"""
#: The ways another household can move around one household in a period (code = index).
GROUPS = (
    "entered_ahead",
    "entered_behind",
    "left_ahead",
    "left_behind",
    "moved_ahead",
    "fell_behind",
)
_CLASSIFIED = """
    SELECT hid, s1, s2, CASE
      WHEN s1 IS NULL THEN
        CASE WHEN s2 IS NULL THEN NULL WHEN (s2, hid) < (:k2, :h) THEN 0 ELSE 1 END
      WHEN s2 IS NULL THEN
        CASE WHEN (s1, hid) < (:k1, :h) THEN 2 ELSE 3 END
      WHEN (s1, hid) >= (:k1, :h) AND (s2, hid) < (:kmin, :h) THEN 4
      WHEN (s1, hid) < (:k1, :h) AND (s2, hid) >= (:kmax, :h) THEN 5
      END AS grp
    FROM ({moved}) moved
"""
_COUNTED = "SELECT grp, COUNT(*) FROM ({classified}) c WHERE grp IS NOT NULL GROUP BY grp"
_NAMED = "SELECT hid, s1, s2 FROM ({classified}) c WHERE grp = :grp ORDER BY hid LIMIT :limit"


def moved_around(
    conn: Connection,
    *,
    scope: str,
    household_id: str,
    after: int,
    upto: int,
    key_before: float,
    key_after: float,
    limit: int,
) -> dict[str, tuple[int, list[tuple[str, float | None, float | None]]]]:
    """Other households whose change in (after, upto] moved them relative to the
    household: entered or left the ranking ahead of or behind it, or crossed it by
    their own score change (moved ahead / fell behind). Per group: (count, the first
    `limit` by id as (household id, score before, score after)).

    Only the households whose score changed in the period are visited (`_MOVED`).

    Counted in one pass, then each group's first `limit` by id in a query that stops
    as soon as it has them (no sort of a group that can hold every household of the
    scope, as after a new model version)."""
    high = conn.execute(
        select(func.max(score_log.c.notification_id)).where(score_log.c.scope == scope)
    ).scalar()
    # Nothing after the period: no need to look for rows after it (a scan that costs
    # ~8 ms per query when it finds nothing).
    moved = _MOVED_TO_NOW if upto >= (high or 0) else _MOVED
    classified = _CLASSIFIED.format(moved=moved)
    params = {
        "scope": scope,
        "h": household_id,
        "n1": after,
        "n2": upto,
        "k1": key_before,
        "k2": key_after,
        "kmin": min(key_before, key_after),
        "kmax": max(key_before, key_after),
        "limit": limit,
    }
    # Row values compare the same way on PostgreSQL and SQLite (3.15+).
    groups: dict[str, tuple[int, list[tuple[str, float | None, float | None]]]] = {}
    with _merge_joins(conn):
        counts = conn.execute(text(_COUNTED.format(classified=classified)), params).all()
        for code, total in sorted(counts):
            first = conn.execute(
                text(_NAMED.format(classified=classified)), {**params, "grp": int(code)}
            )
            groups[GROUPS[int(code)]] = (int(total), [(h, s1, s2) for h, s1, s2 in first])
    return groups


@contextmanager
def _merge_joins(conn: Connection) -> Iterator[None]:
    """On PostgreSQL, merge the index-only scans of `_MOVED` in household order: measured
    on 100,000 households after a model change, counting a one-year period takes ~85 ms
    (to now) and ~90 ms (ended earlier) instead of ~200 ms with the hash joins, or the
    sequential scans and on-disk sorts, the planner picks by itself (and parallel
    workers, which cost more than they save on two cores); a group's first names are
    then found in a few ms without reading the whole group."""
    if conn.dialect.name != "postgresql":
        yield
        return
    settings = ("enable_hashjoin", "enable_seqscan", "max_parallel_workers_per_gather")
    for setting in settings:
        conn.execute(text(f"SET LOCAL {setting} = 0"))  # off, for the booleans
    try:
        yield
    finally:
        for setting in settings:
            conn.execute(text(f"RESET {setting}"))


def rows_of(
    conn: Connection, household_ids: list[str], after: int, upto: int
) -> dict[str, list[Any]]:
    """Every score change of these households in (after, upto], by household."""
    found: dict[str, list[Any]] = {}
    for start in range(0, len(household_ids), 500):
        chunk = household_ids[start : start + 500]
        for row in conn.execute(
            select(score_log)
            .where(
                score_log.c.household_id.in_(chunk),
                score_log.c.notification_id > after,
                score_log.c.notification_id <= upto,
            )
            .order_by(score_log.c.notification_id)
        ):
            found.setdefault(row.household_id, []).append(row)
    return found


_DELTAS = text(
    f"SELECT notification_id, MAX(at), SUM({_ahead('new_score')} - {_ahead('old_score')}), "
    "SUM(CASE WHEN new_score IS NOT NULL THEN 1 ELSE 0 END "
    "- CASE WHEN old_score IS NOT NULL THEN 1 ELSE 0 END) "
    "FROM score_log WHERE scope = :scope AND notification_id > :n1 AND notification_id < :n2 "
    "AND household_id <> :h GROUP BY notification_id "
    f"HAVING SUM({_ahead('new_score')} - {_ahead('old_score')}) <> 0 "
    "OR SUM(CASE WHEN new_score IS NOT NULL THEN 1 ELSE 0 END "
    "- CASE WHEN old_score IS NOT NULL THEN 1 ELSE 0 END) <> 0 "
    "ORDER BY notification_id"
)


def deltas(
    conn: Connection, *, scope: str, household_id: str, score: float, after: int, before: int
) -> list[tuple[int, datetime, int, int]]:
    """Per notification in (after, before): how the count of households ahead of the key
    and the count of other ranked households changed (only notifications that changed
    either)."""
    params = {"scope": scope, "h": household_id, "s": score, "n1": after, "n2": before}
    out = []
    for nid, at, ahead, count in conn.execute(_DELTAS, params):
        if isinstance(at, str):  # SQLite returns MAX() of a datetime column as text (UTC)
            at = datetime.fromisoformat(at).replace(tzinfo=UTC)
        out.append((int(nid), at, int(ahead), int(count)))
    return out


#: `deltas` summed up in the database, for a household's changes of desil only: per
#: notification in (n1, n2) that moves the count ahead of the key or the count of the
#: others, the counts from then on (:a0, :o0 at n1), its desil and the one before it
#: (from the counts less its own deltas). Returned: the notifications that change the
#: desil, then one row of totals: how many notifications changed rank or desil, and the
#: counts at the end. Casts: PostgreSQL sums bigints into numerics (slow, and divided
#: into fractions).
_DESIL_CHANGES = text(
    f"""
    WITH d AS (
      SELECT notification_id AS nid,
             CAST(SUM({_ahead("new_score")} - {_ahead("old_score")}) AS INTEGER) AS da,
             CAST(SUM(CASE WHEN new_score IS NOT NULL THEN 1 ELSE 0 END
                 - CASE WHEN old_score IS NOT NULL THEN 1 ELSE 0 END) AS INTEGER) AS dc
      FROM score_log
      WHERE scope = :scope AND notification_id > :n1 AND notification_id < :n2
        AND household_id <> :h
      GROUP BY notification_id
    ), c AS (
      SELECT nid, da, dc,
             CAST(:a0 AS BIGINT) + SUM(da) OVER w AS ahead,
             CAST(:o0 AS BIGINT) + SUM(dc) OVER w AS others
      FROM d WHERE da <> 0 OR dc <> 0
      WINDOW w AS (ORDER BY nid ROWS UNBOUNDED PRECEDING)
    ), e AS (
      SELECT nid, da, dc, ahead, others,
             (10 * ahead) / (others + 1) + 1 AS desil,
             (10 * (ahead - da)) / (others - dc + 1) + 1 AS before
      FROM c
    )
    SELECT 0 AS totals, nid, da, ahead, others, desil, before FROM e WHERE desil <> before
    UNION ALL
    SELECT 1, NULL, SUM(CASE WHEN da <> 0 OR desil <> before THEN 1 ELSE 0 END),
           CAST(:a0 AS BIGINT) + COALESCE(SUM(da), 0), CAST(:o0 AS BIGINT) + COALESCE(SUM(dc), 0),
           NULL, NULL
    FROM e
    ORDER BY totals, nid
    """
)


@dataclass(frozen=True)
class DesilChange:
    notification_id: int
    at: datetime
    #: Households ranked ahead of the key, and other ranked households, from then on.
    ahead: int
    others: int
    desil: int
    #: The rank and desil just before.
    previous: tuple[int, int]


@dataclass(frozen=True)
class DesilChanges:
    """A ranked household's changes of desil as others enter, leave or cross it."""

    changes: list[DesilChange]
    #: Notifications that changed its rank or desil (the points `deltas` gives).
    moves: int
    #: The counts ahead and of the others at the end (as they were if nothing moved).
    ahead: int
    others: int


def desil_changes(
    conn: Connection,
    *,
    scope: str,
    household_id: str,
    score: float,
    after: int,
    before: int,
    ahead: int,
    others: int,
) -> DesilChanges:
    """For a household ranked with `score` throughout (after, before), `ahead` and
    `others` counted at `after`: the changes of its desil the others cause, summed up
    in the database (a household in a scope of 100,000 is moved by most of the scope's
    notifications, and only a few of them change its desil)."""
    params = {
        "scope": scope,
        "h": household_id,
        "s": score,
        "n1": after,
        "n2": before,
        "a0": ahead,
        "o0": others,
    }
    *changed, totals = conn.execute(_DESIL_CHANGES, params).all()
    times = _times(conn, scope, [r.nid for r in changed])
    return DesilChanges(
        [
            DesilChange(
                int(r.nid),
                times[int(r.nid)],
                int(r.ahead),
                int(r.others),
                int(r.desil),
                (int(r.ahead) - int(r.da) + 1, int(r.before)),
            )
            for r in changed
        ],
        int(totals.da or 0),
        int(totals.ahead),
        int(totals.others),
    )


def _times(conn: Connection, scope: str, notification_ids: list[int]) -> dict[int, datetime]:
    """When each notification was recorded, as `deltas` gives it."""
    if not notification_ids:
        return {}
    found = conn.execute(
        select(score_log.c.notification_id, func.max(score_log.c.at))
        .where(score_log.c.scope == scope, score_log.c.notification_id.in_(notification_ids))
        .group_by(score_log.c.notification_id)
    )
    times = {}
    for nid, at in found:
        if isinstance(at, str):  # SQLite returns MAX() of a datetime column as text (UTC)
            at = datetime.fromisoformat(at).replace(tzinfo=UTC)
        times[int(nid)] = at
    return times


def model_versions(conn: Connection) -> dict[int, dict[str, Any]]:
    return {
        int(r[0]): {**json.loads(r[1]), "published_at": r[2]}
        for r in conn.execute(
            select(
                score_log_models.c.version,
                score_log_models.c.model,
                score_log_models.c.published_at,
            )
        )
    }
