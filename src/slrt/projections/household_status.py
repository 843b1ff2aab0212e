"""household_status: each household's current data, score, rank and desil.

Scores come from the current scoring model version; ranks and desils are computed
per ranking scope (the kabupaten/kota) once per batch, for the scopes the batch
touched. The table never holds a full NIK or No. KK: members are stored masked,
and look-ups by NIK / No. KK go through keyed hashes in `household_lookup`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from datetime import datetime
from operator import itemgetter
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.utils import get_topic
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
    delete,
    func,
    insert,
    literal_column,
    select,
    tuple_,
    update,
)

from slrt.db import HouseholdId, UtcDateTime, among, among_each, bulk_insert, metadata, upsert
from slrt.domain.household import deprivation_count
from slrt.domain.ranking import ScopeRanking, desil_first_rank, rank_scope
from slrt.domain.reference import POOR_HOUSEHOLD_THRESHOLD, kabupaten_of, mask_identifier
from slrt.domain.scoring import ModelVersion, ScoringModel
from slrt.persistence.postgres import partition_hash
from slrt.projections.base import Projection
from slrt.projections.regions import inside

household_status = Table(
    "household_status",
    metadata,
    Column("household_id", String(36), primary_key=True),
    Column("region", String(13), nullable=False, index=True),
    Column("kecamatan", String(8), nullable=False, index=True),
    Column("scope", String(5), nullable=False, index=True),
    Column("status", String(16), nullable=False, index=True),
    Column("removal_reason", String(16)),
    Column("head_name", String(100), nullable=False),
    Column("address", String(200), nullable=False),
    Column("rt", String(3), nullable=False),
    Column("rw", String(3), nullable=False),
    Column("no_kk_masked", String(16), nullable=False),
    Column("members", Text, nullable=False),
    Column("member_count", Integer, nullable=False),
    Column("indicators", Text, nullable=False),
    Column("deprivations", Integer, nullable=False),
    Column("is_poor", Boolean, nullable=False),
    Column("pmks", Text, nullable=False),
    Column("programmes", Text, nullable=False),
    Column("score", Float),
    Column("model_version", Integer),
    Column("registered_at", UtcDateTime(), nullable=False),
    Column("source", String(200)),
    Column("last_proposal_id", String(36)),
    Column("last_event", String(64), nullable=False),
    Column("last_event_at", UtcDateTime(), nullable=False),
    Column("last_notification_id", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    # Its rows in household_lookup (space-separated hashes): a batch that changes a
    # household's members or No. KK deletes the old rows by their key, which the look-up
    # table's primary key serves (by household id it would read that whole index).
    Column("nik_hashes", Text, nullable=False),
    Column("kk_hash", String(64), nullable=False),
)

#: The ranked households (active and scored), narrow: a full re-rank rewrites a scope's
#: rows here, not the wide `household_status` rows. Rank is not stored: one household's
#: move shifts the rank of every household it passes, so it is counted on read (the
#: (scope, score, household_id) index). The desil only changes for households at a desil
#: boundary, so it is stored and kept current.
household_ranking = Table(
    "household_ranking",
    metadata,
    Column("household_id", HouseholdId, primary_key=True),
    Column("scope", String(5), nullable=False),
    Column("score", Float, nullable=False),
    Column("desil", Integer, nullable=False),
    Index("household_ranking_order", "scope", "score", "household_id"),
    # A desil's households in rank order: a rank is counted within its desil only
    # (`_ranked_before`), and a list filtered by desil reads them in order.
    Index("household_ranking_band", "scope", "desil", "score", "household_id"),
)
_RANKING_COLUMNS = ("household_id", "scope", "score", "desil")
#: Up to this many ranking rows are written by upsert (one statement), more by COPY.
_FEW = 64

household_lookup = Table(
    "household_lookup",
    metadata,
    Column("key_hash", String(64), primary_key=True),
    Column("household_id", String(36), primary_key=True),
    Column("kind", String(3), primary_key=True),  # "nik" or "kk"
)

ranking_scopes = Table(
    "ranking_scopes",
    metadata,
    Column("scope", String(5), primary_key=True),
    Column("population", Integer, nullable=False),
    Column("model_version", Integer),
)

scoring_versions = Table(
    "scoring_versions",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("model", Text, nullable=False),
    Column("published_at", UtcDateTime(), nullable=False),
)


def lookup_hash(key: bytes, identifier: str) -> str:
    """A keyed hash of a NIK or No. KK (HMAC-SHA256): searchable without storing the
    number. The search and the projection hash the same way (_LookupHasher)."""
    return _LookupHasher(key)(identifier)


_SHA256_BLOCK = 64


class _LookupHasher:
    """`lookup_hash` with one key, keyed once (RFC 2104 on SHA-256: the inner and outer
    hashes of the padded key are kept, and each identifier's hash continues copies of
    them): 1.2 µs instead of 1.8 µs by `hmac.new` each time, and a catch-up hashes four
    identifiers per household. tests/unit/test_lookup_hash.py holds it to `hmac`."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))

    def __call__(self, identifier: str) -> str:
        inner = self._inner.copy()
        inner.update(identifier.encode())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


def _masked_members(members: list[dict[str, str]]) -> str:
    return _json_text([{**m, "nik": mask_identifier(m["nik"])} for m in members])


def _json_text(value: Any) -> str:
    """A column's JSON text (orjson: a catch-up writes one per registration)."""
    return orjson.dumps(value).decode()


_HANDLED = {
    "Household.Registered": "_registered",
    "Household.DataUpdated": "_data_updated",
    "Household.Removed": "_removed",
    "Household.Enrolled": "_programmes_changed",
    "Household.Unenrolled": "_programmes_changed",
    "ScoringModel.VersionPublished": "_version_published",
}


#: Columns a batch keeps parsed in its rows (JSON text in the table), and the others,
#: written as they are (taken from a row in one call: a catch-up writes 100,000 rows).
_KEPT_PARSED = ("indicators", "programmes")
#: Kept as the event's UUID (or as the text loaded from the table) and written as text:
#: once per row at the end of the batch, not once per event (UUID.__str__ is Python
#: code, ~4 % of a catch-up when called for every event).
_KEPT_AS_ID = "last_proposal_id"
_STORED_AS_IS_COLUMNS = tuple(
    c.name for c in household_status.columns if c.name not in (*_KEPT_PARSED, _KEPT_AS_ID)
)
_STORED_AS_IS = itemgetter(*_STORED_AS_IS_COLUMNS)

_OF_HOUSEHOLDS = frozenset(k for k in _HANDLED if k.startswith("Household."))
#: An event waiting to be applied: its handler's name, the event, its notification id,
#: and the household's id as text (None for a model publication).
_Pending = tuple[str, Any, int, str | None]


class HouseholdStatusProjection(Projection):
    name = "household_status"
    tables = (
        household_status,
        household_ranking,
        household_lookup,
        ranking_scopes,
        scoring_versions,
    )
    handles = frozenset(_HANDLED)
    #: 2: ranked households' score and desil moved to household_ranking.
    #: 3: each row holds its look-up hashes (nik_hashes, kk_hash).
    version = 3
    #: A rebuild in several processes gives each the households whose id hashes to it,
    #: and every scoring model version.
    every_partition = (f"{get_topic(ScoringModel)}.VersionPublished",)

    #: Events are applied in memory a page at a time (the rows they touch loaded in
    #: one query), and the rows written back once, at the end of the batch.
    PAGE = 5_000
    #: A batch that has this many households in memory asks to end (about 2 KB each);
    #: up to then a catch-up reads on, so each household's row is written once per batch.
    MAX_ROWS = 150_000
    catch_up_batch_size = 2_000_000

    def __init__(self, lookup_key: bytes) -> None:
        self.lookup_key = lookup_key
        self._lookup_hash = _LookupHasher(lookup_key)
        self._rescore_all = False
        self._rankings: dict[str, ScopeRanking] = {}
        #: The new score (None: no longer ranked) of each household placed in the batch.
        self._placed: dict[str, dict[str, float | None]] = {}
        #: Households registered, or whose indicators or members changed, in the batch:
        #: scored (and placed) once at its end, however many times they changed.
        self._unscored: set[str] = set()
        self._pending: list[_Pending] = []
        self._rows: dict[str, dict[str, Any]] = {}
        self._new: set[str] = set()
        self._changed: set[str] = set()
        self._lookups: dict[tuple[str, str], set[str]] = {}
        #: The stored look-up hashes (as in the row's column) of each (household, kind)
        #: whose identifiers changed in the batch: its rows to delete.
        self._replaced: dict[tuple[str, str], str] = {}
        #: Household ids as text, by the id's integer (see _id_text).
        self._id_texts: dict[int, str] = {}
        self._model: ModelVersion | None = None
        #: Whether _model is what the table holds (None: no version published yet).
        self._model_read = False
        #: The (population, model version) this process last wrote to ranking_scopes, by
        #: scope: a change that moves a household within its scope writes nothing there.
        self._recorded: dict[str, tuple[int, int | None]] = {}
        #: (partition, partitions) while it is one process of a rebuild (as_partition).
        self._partition: tuple[int, int] | None = None

    def as_partition(self, partition: int, partitions: int) -> None:
        """One process of a rebuild: its households' rows and look-ups only. Scores use
        the model versions it has applied, never the table (another process may have
        stored a later one); ranks are left to finish_rebuild; the first partition alone
        stores the model versions."""
        self._partition = (partition, partitions)

    def finish_rebuild(self, conn: Connection) -> None:
        """Ranks every scope from the rows all the partitions wrote. The partitions write
        no ranking rows, so every scope's are written here at once, in rank order, from
        one read of the scores (not scope by scope through `rerank`, which compares
        with the rows stored before: 0.3-0.4 s of 1.5 s for 100,000 households)."""
        self.reset_cache()
        conn.execute(delete(household_ranking))
        conn.execute(delete(ranking_scopes))
        by_scope: dict[str, dict[str, float]] = {}
        for scope, household_id, score in conn.execute(
            select(
                household_status.c.scope, household_status.c.household_id, household_status.c.score
            ).where(household_status.c.status == "active", household_status.c.score.is_not(None))
        ):
            by_scope.setdefault(scope, {})[household_id] = score
        rows = []
        for scope, scores in sorted(by_scope.items()):
            ranked = rank_scope(scores.items())  # in rank order
            rows += [(hid, scope, scores[hid], desil) for hid, (_, desil) in ranked.items()]
        bulk_insert(conn, household_ranking, _RANKING_COLUMNS, rows, binary=True)
        for scope in self._scopes(conn):
            self._record_population(conn, scope, len(by_scope.get(scope, ())))

    def reset_cache(self) -> None:
        """Forget what is kept in memory (after a rollback, or another worker's batch)."""
        self._rankings.clear()
        self._recorded.clear()
        self._clear_batch()
        self._model = None
        self._model_read = False

    def _clear_batch(self) -> None:
        self._placed.clear()
        self._unscored.clear()
        self._pending.clear()
        self._rows = {}
        self._new, self._changed, self._lookups, self._replaced = set(), set(), {}, {}
        self._id_texts = {}
        self._rescore_all = False

    def _ranking(self, conn: Connection, scope: str) -> ScopeRanking:
        ranking = self._rankings.get(scope)
        if ranking is None:
            rows = conn.execute(
                select(household_status.c.household_id, household_status.c.score).where(
                    household_status.c.scope == scope,
                    household_status.c.status == "active",
                    household_status.c.score.is_not(None),
                )
            )
            ranking = self._rankings[scope] = ScopeRanking((r[0], r[1]) for r in rows)
        return ranking

    def _place(self, scope: str, household_id: str, score: float | None) -> None:
        """Notes a household's new place; the scope's ranking moves at the end of the batch
        (at once for many changes, see ScopeRanking.set_scores)."""
        if not self._rescore_all:  # else the whole ranking is rebuilt at the end
            self._placed.setdefault(scope, {})[household_id] = score

    def apply(self, conn: Connection, event: Any, notification_id: int) -> None:
        kind = type(event).__qualname__
        handler = _HANDLED.get(kind)
        if handler is not None:
            household_id = self._id_text(event.originator_id) if kind in _OF_HOUSEHOLDS else None
            self._pending.append((handler, event, notification_id, household_id))
            if len(self._pending) >= self.PAGE:
                self._apply_pending(conn)

    def batch_full(self) -> bool:
        return len(self._rows) + len(self._pending) >= self.MAX_ROWS

    # -- the batch ------------------------------------------------------------------

    def _apply_pending(self, conn: Connection) -> None:
        pending, self._pending = self._pending, []
        self._load_rows(conn, pending)
        handlers = {name: getattr(self, name) for name in _HANDLED.values()}
        for handler, event, notification_id, household_id in pending:
            handlers[handler](conn, event, notification_id, household_id)

    def finish_batch(self, conn: Connection) -> None:
        try:
            self._apply_pending(conn)
            self._score_changed(conn)
            # Rankings first: a scope's ranking is loaded from the rows as they were
            # before this batch.
            rankings = {}
            if self._rescore_all:  # the rows in memory, then those stored before the batch
                for row in self._rows.values():
                    row.update(self._scored(conn, row["indicators"], row["member_count"]))
                self._rescore(conn, skip=self._rows.keys())
            elif self._partition is None:  # rankings as they were before, then moved
                for scope, placed in self._placed.items():
                    ranking = self._ranking(conn, scope)
                    rankings[scope] = (ranking, ranking.set_scores(placed))
            self._flush_rows(conn)
            if self._partition is not None:  # ranked once every partition is done
                return
            if self._rescore_all:
                self._rankings.clear()
                for scope in self._scopes(conn):
                    self.rerank(conn, scope)
            for scope, (ranking, touched) in rankings.items():
                self._write_ranking(conn, scope, ranking, touched)
                self._record_population(conn, scope, len(ranking))
        finally:
            self._clear_batch()

    def _score_changed(self, conn: Connection) -> None:
        """Scores the households whose data changed in the batch, with the model current
        at its end (a model published in the batch rescores everyone anyway)."""
        for household_id in sorted(self._unscored):
            row = self._rows[household_id]
            row["deprivations"] = deprivation_count(row["indicators"])
            row["is_poor"] = row["deprivations"] >= POOR_HOUSEHOLD_THRESHOLD
            if self._rescore_all:  # every row in memory is scored anyway, and not placed
                continue
            row.update(self._scored(conn, row["indicators"], row["member_count"]))
            if row["score"] is not None and row["status"] == "active":
                self._place(row["scope"], household_id, row["score"])

    def _load_rows(self, conn: Connection, pending: list[_Pending]) -> None:
        """Loads the rows these events touch that are not in memory yet."""
        ids = sorted(
            {hid for handler, _, _, hid in pending if hid and handler != "_registered"}
            - self._rows.keys()
        )
        for among_ids in among_each(conn, household_status.c.household_id, ids):
            for row in conn.execute(select(household_status).where(among_ids)):
                loaded = dict(row._mapping)
                for column in _KEPT_PARSED:
                    loaded[column] = orjson.loads(loaded[column])
                self._rows[row.household_id] = loaded

    def _flush_rows(self, conn: Connection) -> None:
        new = [self._rows[h] for h in sorted(self._new)]
        changed = sorted(self._changed - self._new)
        for among_changed in among_each(conn, household_status.c.household_id, changed):
            conn.execute(delete(household_status).where(among_changed))
        rows = [
            (
                *_STORED_AS_IS(row),
                _json_text(row["indicators"]),
                _json_text(row["programmes"]),
                None if (proposal_id := row[_KEPT_AS_ID]) is None else str(proposal_id),
            )
            for row in new + [self._rows[h] for h in changed]
        ]
        columns = (*_STORED_AS_IS_COLUMNS, *_KEPT_PARSED, _KEPT_AS_ID)
        bulk_insert(conn, household_status, columns, rows, binary=True)
        for kind in ("nik", "kk"):
            # By key, which the primary key serves: every stored row of these households
            # (their hashes were in the rows' columns), and no other household's.
            replaced = [(h, stored) for (h, k), stored in self._replaced.items() if k == kind]
            # 500 households at a time: up to 30 members each stays within SQLite's
            # limit on parameters (32,766).
            for start in range(0, len(replaced), 500):
                households = replaced[start : start + 500]
                hashes = [key_hash for _, stored in households for key_hash in stored.split()]
                if hashes:
                    conn.execute(
                        delete(household_lookup).where(
                            among(conn, household_lookup.c.key_hash, hashes),
                            among(
                                conn, household_lookup.c.household_id, [h for h, _ in households]
                            ),
                            household_lookup.c.kind == kind,
                        )
                    )
        # In key order: the hashes are random, and rows inserted in the primary key's
        # order fill its pages one after another instead of splitting pages all over it
        # (PostgreSQL took 0.65 s instead of 1.7 s for 300,000 rows).
        bulk_insert(
            conn,
            household_lookup,
            ("key_hash", "household_id", "kind"),
            sorted(
                (
                    (key_hash, hid, kind)
                    for (hid, kind), hashes in self._lookups.items()
                    for key_hash in hashes
                ),
                key=itemgetter(0),
            ),
            binary=True,
        )

    # -- events -------------------------------------------------------------------

    def _current_model(self, conn: Connection) -> ModelVersion | None:
        if not self._model_read and self._partition is None:
            row = conn.execute(
                select(scoring_versions.c.model)
                .order_by(scoring_versions.c.version.desc())
                .limit(1)
            ).first()
            self._model = ModelVersion.from_record(json.loads(row[0])) if row else None
            self._model_read = True
        return self._model

    def _scored(
        self, conn: Connection, indicators: dict[str, bool], members: int
    ) -> dict[str, Any]:
        model = self._current_model(conn)
        if model is None:
            return {"score": None, "model_version": None}
        return {"score": model.score(indicators, members), "model_version": model.version}

    def _id_text(self, household_id: UUID) -> str:
        """A household's id as text: UUID.__str__ is Python code (~10 % of a catch-up
        when called for every event), and a batch sees each household many times."""
        texts = self._id_texts
        text = texts.get(household_id.int)
        if text is None:
            text = texts[household_id.int] = str(household_id)
        return text

    @staticmethod
    def _touch(row: dict[str, Any], event: Any, notification_id: int) -> None:
        """Records on the row the event that changed it last."""
        row["last_event"] = type(event).__qualname__
        row["last_event_at"] = event.timestamp
        row["last_notification_id"] = notification_id
        row["version"] = event.originator_version
        row[_KEPT_AS_ID] = event.proposal_id  # a UUID or None; text when written

    def _index_identifiers(
        self,
        row: dict[str, Any],
        household_id: str,
        *,
        niks: list[str] | None,
        no_kk: str | None,
    ) -> None:
        """Replaces the look-up hashes of the identifiers that changed."""
        for kind, column, identifiers in (
            ("nik", "nik_hashes", niks),
            ("kk", "kk_hash", [no_kk] if no_kk else None),
        ):
            if identifiers is not None:
                hashes = {self._lookup_hash(i) for i in identifiers}
                if household_id not in self._new:  # its rows stored before the batch
                    self._replaced.setdefault((household_id, kind), row[column])
                self._lookups[(household_id, kind)] = hashes
                row[column] = " ".join(sorted(hashes))

    def _registered(
        self, conn: Connection, event: Any, notification_id: int, household_id: str
    ) -> None:
        data = event.data
        row = self._rows[household_id] = {
            "household_id": household_id,
            "region": data["region"],
            "kecamatan": data["region"][:8],
            "scope": kabupaten_of(data["region"]),
            "status": "active",
            "removal_reason": None,
            "head_name": next(m["name"] for m in data["members"] if m["relationship"] == "head"),
            "address": data["address"],
            "rt": data["rt"],
            "rw": data["rw"],
            "no_kk_masked": mask_identifier(data["no_kk"]),
            "members": _masked_members(data["members"]),
            "member_count": len(data["members"]),
            "indicators": data["indicators"],
            "pmks": _json_text(data.get("pmks", [])),
            "programmes": [],
            "registered_at": event.timestamp,
            "source": event.source,
        }
        self._touch(row, event, notification_id)
        self._new.add(household_id)
        self._unscored.add(household_id)  # deprivations, score and place: end of batch
        self._index_identifiers(
            row, household_id, niks=[m["nik"] for m in data["members"]], no_kk=data["no_kk"]
        )

    def _row(self, household_id: str) -> dict[str, Any]:
        row = self._rows.get(household_id)
        if row is None:
            msg = f"household_status has no row for {household_id}; was the projection reset?"
            raise LookupError(msg)
        self._changed.add(household_id)
        return row

    def _data_updated(
        self, conn: Connection, event: Any, notification_id: int, household_id: str
    ) -> None:
        row = self._row(household_id)
        changes = event.changes
        for key in ("address", "rt", "rw"):
            if key in changes:
                row[key] = changes[key]
        if "pmks" in changes:
            row["pmks"] = _json_text(changes["pmks"])
        if "no_kk" in changes:
            row["no_kk_masked"] = mask_identifier(changes["no_kk"])
        members = changes.get("members")
        if members is not None:
            row["members"] = _masked_members(members)
            row["member_count"] = len(members)
            row["head_name"] = next(m["name"] for m in members if m["relationship"] == "head")
        if "indicators" in changes:
            row["indicators"] = changes["indicators"]
        if "indicators" in changes or members is not None:
            self._unscored.add(household_id)
        if members is not None or "no_kk" in changes:
            self._index_identifiers(
                row,
                household_id,
                niks=[m["nik"] for m in members] if members is not None else None,
                no_kk=changes.get("no_kk"),
            )
        self._touch(row, event, notification_id)

    def _removed(
        self, conn: Connection, event: Any, notification_id: int, household_id: str
    ) -> None:
        row = self._row(household_id)
        row["status"] = "removed"
        row["removal_reason"] = event.reason
        self._touch(row, event, notification_id)
        self._place(row["scope"], household_id, None)

    def _programmes_changed(
        self, conn: Connection, event: Any, notification_id: int, household_id: str
    ) -> None:
        row = self._row(household_id)
        programmes = set(row["programmes"])
        if type(event).__qualname__ == "Household.Enrolled":
            programmes.add(event.programme)
        else:
            programmes.discard(event.programme)
        row["programmes"] = sorted(programmes)
        self._touch(row, event, notification_id)

    def _version_published(
        self, conn: Connection, event: Any, notification_id: int, household_id: None
    ) -> None:
        published_at: datetime = event.timestamp
        if self._partition is None or self._partition[0] == 0:
            conn.execute(
                insert(scoring_versions).values(
                    version=event.model["version"],
                    model=json.dumps(event.model, sort_keys=True),
                    published_at=published_at,
                )
            )
        self._model = ModelVersion.from_record(event.model)
        self._model_read = True
        self._rescore_all = True

    def _write_ranking(
        self,
        conn: Connection,
        scope: str,
        ranking: ScopeRanking,
        hids: set[str],
        wanted: dict[str, tuple[float, int]] | None = None,
    ) -> None:
        """Rewrites these households' ranking rows from the scope's ranking in memory
        (`wanted`: its rows, if the caller has them); when they are many, the scope's
        rows are replaced in bulk (one COPY)."""
        if len(hids) > len(ranking) // 4:
            conn.execute(delete(household_ranking).where(household_ranking.c.scope == scope))
            wanted = ranking.rows() if wanted is None else wanted
            rows = [(h, scope, s, d) for h, (s, d) in wanted.items()]
            bulk_insert(conn, household_ranking, _RANKING_COLUMNS, rows, binary=True)
            return
        ordered = sorted(hids)
        if len(ordered) <= _FEW:  # the usual batch: a few households moved
            ranked, unranked = [], []
            for hid in ordered:
                if (score := ranking.score_of(hid)) is None:
                    unranked.append(hid)
                else:
                    desil = ranking.desils[hid]
                    ranked.append(
                        {"household_id": hid, "scope": scope, "score": score, "desil": desil}
                    )
            upsert(conn, household_ranking, ("household_id",), ranked)
            if unranked:
                conn.execute(
                    delete(household_ranking).where(
                        among(conn, household_ranking.c.household_id, unranked)
                    )
                )
            return
        for among_ordered in among_each(conn, household_ranking.c.household_id, ordered):
            conn.execute(delete(household_ranking).where(among_ordered))
        bulk_insert(
            conn,
            household_ranking,
            _RANKING_COLUMNS,
            [
                (hid, scope, score, ranking.desils[hid])
                for hid in ordered
                if (score := ranking.score_of(hid)) is not None
            ],
            binary=True,
        )

    def _record_population(self, conn: Connection, scope: str, population: int) -> None:
        model = self._current_model(conn)
        recorded = (population, model.version if model else None)
        if self._recorded.get(scope) == recorded:
            return
        conn.execute(delete(ranking_scopes).where(ranking_scopes.c.scope == scope))
        conn.execute(
            insert(ranking_scopes).values(
                scope=scope, population=population, model_version=recorded[1]
            )
        )
        self._recorded[scope] = recorded

    def _rescore(self, conn: Connection, skip: Collection[str]) -> None:
        """Scores the stored rows (but those in `skip`) with the current model."""
        model = self._current_model(conn)
        assert model is not None
        query = select(
            household_status.c.household_id,
            household_status.c.indicators,
            household_status.c.member_count,
        )
        if self._partition is not None:  # its own households (as the log is partitioned)
            partition, partitions = self._partition
            hashed: Any = literal_column(partition_hash("household_status.household_id"))
            query = query.where(hashed % partitions == partition)
        rows = conn.execute(query).all()
        updates = [
            {"hid": r[0], "new_score": model.score(orjson.loads(r[1]), r[2])}
            for r in rows
            if r[0] not in skip
        ]
        if updates:
            conn.execute(
                update(household_status)
                .where(household_status.c.household_id == bindparam("hid"))
                .values(score=bindparam("new_score"), model_version=model.version),
                updates,
            )

    @staticmethod
    def _scopes(conn: Connection) -> list[str]:
        return [r[0] for r in conn.execute(select(household_status.c.scope).distinct())]

    def rerank(self, conn: Connection, scope: str) -> None:
        """Ranks a whole scope again (after a new model version) and writes the ranking
        rows that changed; when many did, the scope's rows are replaced in bulk."""
        ranking = self._ranking(conn, scope)
        stored = {
            r[0]: (r[1], r[2])
            for r in conn.execute(
                select(
                    household_ranking.c.household_id,
                    household_ranking.c.score,
                    household_ranking.c.desil,
                ).where(household_ranking.c.scope == scope)
            )
        }
        wanted = ranking.rows()
        changed = {h for h, row in wanted.items() if stored.get(h) != row} | (
            stored.keys() - wanted.keys()
        )
        self._write_ranking(conn, scope, ranking, changed, wanted)
        self._record_population(conn, scope, len(ranking))


# -- queries --------------------------------------------------------------------


def _with_ranking() -> Any:
    """household_status with its ranking row (desil, and what the rank is counted from)."""
    return household_status.outerjoin(
        household_ranking, household_ranking.c.household_id == household_status.c.household_id
    )


def get_household_status(conn: Connection, household_id: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(
            household_status,
            household_ranking.c.desil,
            household_ranking.c.score.label("ranked_score"),
            ranking_scopes.c.population,
        )
        .select_from(
            _with_ranking().outerjoin(
                ranking_scopes, ranking_scopes.c.scope == household_status.c.scope
            )
        )
        .where(household_status.c.household_id == household_id)
    ).first()
    if row is None:
        return None
    data = _as_dict(row)
    score = data.pop("ranked_score")
    data["rank"] = (
        None
        if score is None
        else _ranked_before(
            conn, data["scope"], data["desil"], data["population"], (score, household_id)
        )
        + 1
    )
    return data


def _ranked_before(
    conn: Connection, scope: str, desil: int, population: int | None, key: tuple[float, str]
) -> int:
    """How many ranked households of the scope come before `key` (score, household id).

    Desils are stored from ranks (ADR 0002: desil = ⌊10(rank − 1)/n⌋ + 1, written with
    the scope's population in one transaction), so every household of a lower desil is
    before it, and they are the first ⌈(desil − 1)·n/10⌉: only the households of its own
    desil are counted, at most a tenth of the scope (the last household of 1,000,000:
    20 ms instead of 170–300 ms, bench/README.md, fourteenth session). Should the count
    not fit in the desil (never, while the two are written together), the whole scope
    is counted."""
    order = tuple_(household_ranking.c.score, household_ranking.c.household_id)
    in_scope = household_ranking.c.scope == scope
    if population:
        first, after = desil_first_rank(desil, population), desil_first_rank(desil + 1, population)
        in_desil = conn.execute(
            select(func.count()).where(
                in_scope, household_ranking.c.desil == desil, order < tuple_(*key)
            )
        ).scalar_one()
        if in_desil < after - first:
            return first - 1 + int(in_desil)
    return int(
        conn.execute(select(func.count()).where(in_scope, order < tuple_(*key))).scalar_one()
    )


def identifier_holders(
    conn: Connection,
    *,
    lookup_key: bytes,
    identifiers: dict[str, tuple[str, str]],
    besides: str | None,
) -> dict[str, list[tuple[str, str]]]:
    """For each named identifier (its kind, "nik" or "kk", and its digits): the active
    households other than `besides` that list it now, as (household id, desa), found by
    the look-up hashes (the numbers themselves are not stored here)."""
    named = {
        (kind, lookup_hash(lookup_key, digits)): name
        for name, (kind, digits) in identifiers.items()
    }
    if not named:
        return {}
    rows = conn.execute(
        select(
            household_lookup.c.kind,
            household_lookup.c.key_hash,
            household_status.c.household_id,
            household_status.c.region,
        )
        .join(household_status, household_status.c.household_id == household_lookup.c.household_id)
        .where(
            household_lookup.c.key_hash.in_(sorted({h for _, h in named})),
            household_status.c.status == "active",
            household_status.c.household_id != (besides or ""),
        )
        .order_by(household_status.c.household_id)
    )
    holders: dict[str, list[tuple[str, str]]] = {}
    for kind, key_hash, household_id, region in rows:
        if (name := named.get((kind, key_hash))) is not None:
            holders.setdefault(name, []).append((household_id, region))
    return holders


def list_households(
    conn: Connection,
    *,
    lookup_key: bytes,
    region: str | None,
    desil: int | None,
    status: str | None,
    q: str | None,
    limit: int,
    offset: int,
) -> tuple[int, list[dict[str, Any]]]:
    """Households in a region, poorest first; `q` is a NIK / No. KK or part of a name/address."""
    query = select(household_status.c.household_id).select_from(_with_ranking())
    if region:
        query = query.where(inside(household_status, region))
    if desil is not None:
        query = query.where(household_ranking.c.desil == desil)
    if status:
        query = query.where(household_status.c.status == status)
    if q:
        digits = q.strip()
        if digits.isdigit() and len(digits) == 16:
            ids = select(household_lookup.c.household_id).where(
                household_lookup.c.key_hash == lookup_hash(lookup_key, digits)
            )
            query = query.where(household_status.c.household_id.in_(ids))
        else:
            pattern = f"%{q.strip().lower()}%"
            query = query.where(
                household_status.c.head_name.ilike(pattern)
                | household_status.c.address.ilike(pattern)
            )
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    # The page first, then its rows, then their ranks (_page_ranks): counted in the query
    # with the offset, a rank was counted for every skipped row too (the page at offset
    # 5,000 of 100,000 households: 2.3 s).
    order = (
        household_ranking.c.household_id.is_(None).label("unranked"),
        household_status.c.scope.label("scope"),
        household_ranking.c.score.label("score"),
        household_status.c.household_id.label("id"),
    )
    page = query.with_only_columns(*order).order_by(*order).limit(limit).offset(offset).subquery()
    rows = conn.execute(
        select(household_status, household_ranking.c.desil, page.c.score.label("ranked_score"))
        .select_from(page.join(_with_ranking(), household_status.c.household_id == page.c.id))
        .order_by(page.c.unranked, page.c.scope, page.c.score, page.c.id)
    ).all()
    households = [_as_dict(r) for r in rows]
    _page_ranks(conn, households)
    return int(total), households


def _page_ranks(conn: Connection, households: list[dict[str, Any]]) -> None:
    """Sets each listed household's rank (None: not ranked). Per scope, the households
    ranked before the page's first are counted once, and those from its first to its
    last are numbered: one count per page instead of one per row (a row's count grows
    with its rank: a page of desil 5 counted some 40,000 index entries for each row)."""
    keys: dict[str, list[tuple[float, str]]] = {}
    for household in households:
        score = household.pop("ranked_score")
        if score is not None:
            keys.setdefault(household["scope"], []).append((score, household["household_id"]))
    ranks: dict[str, int] = {}
    order = tuple_(household_ranking.c.score, household_ranking.c.household_id)
    desils = {h["household_id"]: h["desil"] for h in households}
    populations = dict(
        conn.execute(
            select(ranking_scopes.c.scope, ranking_scopes.c.population).where(
                ranking_scopes.c.scope.in_(list(keys))
            )
        ).all()
    )
    for scope, scope_keys in keys.items():
        first, last = min(scope_keys), max(scope_keys)
        in_scope = household_ranking.c.scope == scope
        before = _ranked_before(conn, scope, desils[first[1]], populations.get(scope), first)
        between = conn.execute(
            select(household_ranking.c.household_id)
            .where(in_scope, order >= tuple_(*first), order <= tuple_(*last))
            .order_by(household_ranking.c.score, household_ranking.c.household_id)
        )
        ranks.update((hid, before + n) for n, (hid,) in enumerate(between, 1))
    for household in households:
        household["rank"] = ranks.get(household["household_id"])


def _as_dict(row: Any) -> dict[str, Any]:
    data = dict(row._mapping)
    del data["nik_hashes"], data["kk_hash"]  # the look-ups' keys, for the projection only
    for key in ("members", "indicators", "pmks", "programmes"):
        data[key] = json.loads(data[key])
    return data
