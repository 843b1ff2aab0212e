"""Read-only inspection of a household's history: timeline, as-of replay, rank audit.

Inspectors settle disputes ("why did my household fall out of desil 1 in March?")
from the history itself. Everything here reads: the event store for what happened,
`event_index` for which version held at an instant, and `score_log` for scores,
ranks and desils at any instant (ADR 0002's ranking, recomputed on demand).

"As of T" means: every event recorded up to the last notification whose timestamp is
at or before T. Ranks and desils as of T count only households ranked at that
notification (active and scored), ordered by (score, household id).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from sqlalchemy import Connection

from slrt import audit
from slrt.domain.common import InvalidInput, NotFound
from slrt.domain.household import Household
from slrt.domain.reference import kabupaten_of, mask_identifier, region_name, region_timezone
from slrt.projections import event_index as ix
from slrt.projections import score_log as sl
from slrt.runtime import Runtime

TIMELINE_KINDS = ("household", "proposal", "complaint", "referral", "inspection", "score", "rank")

_COMMANDS = {
    "Proposal.Submitted": "submit_proposal",
    "Proposal.VillageApproved": "decide_at_village",
    "Proposal.VillageRejected": "decide_at_village",
    "Proposal.DinsosVerified": "decide_at_dinsos",
    "Proposal.DinsosReturned": "decide_at_dinsos",
    "Proposal.Applied": "decide_at_dinsos",
    "Proposal.Withdrawn": "withdraw_proposal",
    "Household.DataUpdated": "decide_at_dinsos",
    "Household.Removed": "decide_at_dinsos",
    "Household.Enrolled": "decide_at_dinsos",
    "Household.Unenrolled": "decide_at_dinsos",
    "Complaint.Received": "receive_complaint",
    "Inspection.Recorded": "GET (inspector read)",
}
_AFTER_VILLAGE_DECISION = frozenset(
    {"Proposal.DinsosVerified", "Proposal.DinsosReturned", "Proposal.Applied"}
)
_IDENTIFIER_KEYS = frozenset({"nik", "no_kk", "member_nik"})


def local_time(at: datetime, region: str) -> str:
    """ISO 8601 in the region's own offset (WIB +07:00, WITA +08:00, WIT +09:00)."""
    return at.astimezone(region_timezone(region)).isoformat()


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise InvalidInput("times must carry an offset, e.g. 2026-03-01T00:00:00+08:00")
    return at.astimezone(UTC)


def _plain(value: Any, *, reveal: bool) -> Any:
    """Event attributes as JSON values, with NIK / No. KK masked unless revealed."""
    if isinstance(value, dict):
        return {
            str(k): (
                mask_identifier(v)
                if not reveal and k in _IDENTIFIER_KEYS and isinstance(v, str)
                else _plain(v, reveal=reveal)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v, reveal=reveal) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    return value


@dataclass
class Inspector:
    """Read-only queries over one runtime."""

    runtime: Runtime

    # -- helpers ----------------------------------------------------------------------

    def _household_now(self, household_id: UUID) -> Household:
        return self.runtime.app.get_household(household_id)

    def _proposal_evidence(self, proposal_id: str | None, cache: dict[str, Any]) -> Any:
        """The berita acara of the proposal that caused a change (number, date, sha256)."""
        if not proposal_id:
            return None
        if proposal_id not in cache:
            try:
                proposal: Any = self.runtime.app.repository.get(UUID(proposal_id))
                cache[proposal_id] = proposal.berita_acara
            except (AggregateNotFoundError, ValueError):
                cache[proposal_id] = None
        return cache[proposal_id]

    def records(self, household_id: UUID) -> list[UUID]:
        """The household and every record whose events touched it (proposals, complaints,
        referrals, inspections), as `event_index` has them."""
        with self.runtime.engine.connect() as conn:
            others = ix.aggregates_of(conn, str(household_id))
        return [household_id, *(UUID(a) for a in others if a != str(household_id))]

    def _notification(self, conn: Connection, at: datetime | None) -> int:
        if at is None:
            return self.runtime.app.recorder.max_notification_id() or 0
        return ix.notification_at(conn, _utc(at))

    # -- as-of replay -------------------------------------------------------------------

    def household_as_of(
        self, household_id: UUID, at: datetime, *, reveal: bool = False
    ) -> dict[str, Any]:
        """The household exactly as the system knew it at `at`: its data at the version
        it then had (replayed from the event store, from a snapshot where one exists),
        with the score, model version, rank and desil in its scope at that instant."""
        with self.runtime.engine.connect() as conn:
            cutoff = ix.notification_at(conn, _utc(at))
            version = ix.version_at(conn, str(household_id), cutoff)
            if version is None:
                raise NotFound(f"household {household_id} did not exist yet at {at.isoformat()}")
            standing = sl.standing_at(conn, str(household_id), cutoff)
        household: Any = self.runtime.app.repository.get(household_id, version=version)
        shown = (lambda value: value) if reveal else mask_identifier
        derived = standing.as_dict() if standing else {}
        return {
            "id": household.id,
            "region": household.region,
            "region_name": region_name(household.region),
            "status": household.status,
            "removal_reason": household.removal_reason,
            "address": household.address,
            "rt": household.rt,
            "rw": household.rw,
            "no_kk": shown(household.no_kk),
            "members": [{**m, "nik": shown(m["nik"])} for m in household.members],
            "indicators": household.indicators,
            "deprivations": sum(household.indicators.values()),
            "is_poor": household.is_poor,
            "pmks": household.pmks,
            "programmes": household.programmes,
            "score": derived.get("score"),
            "model_version": derived.get("model_version"),
            "rank": derived.get("rank"),
            "desil": derived.get("desil"),
            "ranking_scope": kabupaten_of(household.region),
            "scope_population": derived.get("population"),
            "last_proposal_id": household.last_proposal_id,
            "version": household.version,
            "ranked_as_of_event": cutoff,
            "registered_at": household.created_on,
            "updated_at": household.modified_on,
            "as_of": at,
            "as_of_event": cutoff,
        }

    # -- rank at an instant, history and explanation -----------------------------------

    def standing(self, household_id: UUID, at: datetime | None) -> sl.Standing | None:
        with self.runtime.engine.connect() as conn:
            return sl.standing_at(conn, str(household_id), self._notification(conn, at))

    def rank_history(
        self,
        household_id: UUID,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        changes: str = "rank",
    ) -> dict[str, Any]:
        """(time, rank, desil) at every change in [start, end]: the rank moves when the
        household's own score changes or another household crosses it; the desil also
        when the scope's population changes. `changes="desil"`: only the changes of
        desil and of the household's own score or model (`notable`), with a count of
        the others."""
        if changes not in ("rank", "desil"):
            raise InvalidInput("changes must be rank or desil", field="changes")
        region = self._household_now(household_id).region
        points, moves = self._rank_points(household_id, start, end, every=changes == "rank")
        return {
            "household_id": str(household_id),
            "scope": kabupaten_of(region),
            "from": local_time(start, region) if start else None,
            "to": local_time(end, region) if end else None,
            "changes": changes,
            "not_listed": moves - len(points),
            "points": [
                {**p, "at": local_time(p["at"], region) if p["at"] else None} for p in points
            ],
        }

    def rank_points(
        self, household_id: UUID, start: datetime | None = None, end: datetime | None = None
    ) -> list[dict[str, Any]]:
        """`rank_history`'s points, with their times as UTC datetimes."""
        return self._rank_points(household_id, start, end)[0]

    def _rank_points(
        self,
        household_id: UUID,
        start: datetime | None,
        end: datetime | None,
        *,
        every: bool = True,
    ) -> tuple[list[dict[str, Any]], int]:
        with self.runtime.engine.connect() as conn:
            n1 = ix.notification_at(conn, _utc(start)) if start else 0
            n2 = self._notification(conn, end)
            return _history(conn, str(household_id), n1, n2, every=every)

    def rank_explanation(
        self,
        household_id: UUID,
        start: datetime,
        end: datetime | None = None,
        *,
        limit: int = 25,
    ) -> dict[str, Any]:
        """Why the rank and desil at `end` differ from those at `start`, decomposed into
        the household's own data, the scoring model, and the population around it
        (households that entered, left, or crossed it). The parts add up to the change."""
        household = self._household_now(household_id)
        region = household.region
        hid = str(household_id)
        evidence: dict[str, Any] = {}
        with self.runtime.engine.connect() as conn:
            n1 = ix.notification_at(conn, _utc(start))
            n2 = self._notification(conn, end)
            if n2 < n1:
                raise InvalidInput("from must not be after to", field="from")
            before = sl.standing_at(conn, hid, n1)
            after = sl.standing_at(conn, hid, n2)
            own = sl.own_rows(conn, hid, n1, n2)
            population = _population(conn, hid, before, after, n1, n2, limit)
        own_data, model, status = [], [], []
        for row in own:
            delta = (
                round(row.new_score - row.old_score, 6)
                if row.new_score is not None and row.old_score is not None
                else None
            )
            base = {
                "at": local_time(row.at, region),
                "notification_id": row.notification_id,
                "old_score": row.old_score,
                "new_score": row.new_score,
                "score_delta": delta,
            }
            if row.cause == "own_data":
                own_data.append(
                    {
                        **base,
                        "proposal_id": row.proposal_id,
                        "berita_acara": self._proposal_evidence(row.proposal_id, evidence),
                        "changed": _json_list(row.changed),
                        "model_version": row.new_model_version,
                    }
                )
            elif row.cause == "model":
                model.append(
                    {
                        **base,
                        "from_version": row.old_model_version,
                        "to_version": row.new_model_version,
                    }
                )
            else:
                status.append(
                    {
                        **base,
                        "change": row.cause,
                        "proposal_id": row.proposal_id,
                        "berita_acara": self._proposal_evidence(row.proposal_id, evidence),
                    }
                )
        result = {
            "household_id": hid,
            "scope": kabupaten_of(region),
            "from": local_time(start, region),
            "to": local_time(end, region) if end else None,
            "from_event": n1,
            "to_event": n2,
            "before": before.as_dict() if before else None,
            "after": after.as_dict() if after else None,
            "rank_change": (
                after.rank - before.rank
                if before and after and before.rank is not None and after.rank is not None
                else None
            ),
            "note": "rank 1 is the poorest; households 'ahead' are ranked poorer than this one",
            "causes": {
                "own_data": own_data,
                "model": model,
                "own_status": status,
                "population": population,
            },
        }
        result["summary"] = _summaries(result, region)
        return result

    # -- timeline -----------------------------------------------------------------------

    def timeline(
        self,
        household_id: UUID,
        *,
        kinds: set[str] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        reveal: bool = False,
    ) -> list[dict[str, Any]]:
        """Every event that touched the household, in order, with who, which document and
        which command; plus its score changes and (when asked) its `notable` rank changes."""
        household = self._household_now(household_id)
        region = household.region
        hid = str(household_id)
        wanted = set(kinds) if kinds else set(TIMELINE_KINDS)
        unknown = wanted - set(TIMELINE_KINDS)
        if unknown:
            raise InvalidInput(
                f"kind must be among {', '.join(TIMELINE_KINDS)}; not {', '.join(sorted(unknown))}",
                field="kind",
            )
        start_utc = _utc(start) if start else None
        end_utc = _utc(end) if end else None
        evidence: dict[str, Any] = {}
        entries: list[dict[str, Any]] = []
        with self.runtime.engine.connect() as conn:
            rows = ix.household_events(conn, hid, start=start_utc, end=end_utc)
            scores = [
                r
                for r in sl.own_rows(conn, hid, 0, self._notification(conn, None))
                if (start_utc is None or r.at >= start_utc) and (end_utc is None or r.at <= end_utc)
            ]
            ranks: list[dict[str, Any]] = []
            if "rank" in wanted:
                n1 = ix.notification_at(conn, start_utc) if start_utc else 0
                n2 = self._notification(conn, end)
                # The desil changes and those of its own data or the model: in a large
                # scope the rank alone moves with most events of the scope, and would
                # bury the household's own events (rank-history has every one).
                ranks, _ = _history(conn, hid, n1, n2, every=False)
        for row in rows:
            kind = _kind(row.topic)
            if kind not in wanted:
                continue
            event = next(
                iter(
                    self.runtime.app.events.get(
                        UUID(row.aggregate_id), gt=row.version - 1, lte=row.version
                    )
                ),
                None,
            )
            entries.append(self._entry(row, kind, event, region, reveal, evidence))
        if "score" in wanted:
            for r in scores:
                entries.append(
                    {
                        "at": local_time(r.at, region),
                        "notification_id": r.notification_id,
                        "kind": "score",
                        "what": f"score {r.cause}",
                        "details": {
                            "cause": r.cause,
                            "old_score": r.old_score,
                            "new_score": r.new_score,
                            "old_model_version": r.old_model_version,
                            "new_model_version": r.new_model_version,
                            "proposal_id": r.proposal_id,
                            "changed": _json_list(r.changed),
                        },
                    }
                )
        for point in ranks:
            if point.get("previous") is None:
                continue
            entries.append(
                {
                    "at": local_time(point["at"], region),
                    "notification_id": point["notification_id"],
                    "kind": "rank",
                    "what": "rank/desil changed",
                    "details": point,
                }
            )
        entries.sort(key=lambda e: (e["notification_id"], _KIND_ORDER[e["kind"]]))
        for entry in entries:
            if entry["kind"] == "rank":
                entry["details"] = {
                    k: v for k, v in entry["details"].items() if k not in ("at", "notification_id")
                }
        return entries

    def _entry(
        self,
        row: Any,
        kind: str,
        event: Any,
        region: str,
        reveal: bool,
        evidence: dict[str, Any],
    ) -> dict[str, Any]:
        attributes = dict(vars(event)) if event is not None else {}
        actor = attributes.pop("actor", None) or {}
        for key in ("originator_id", "originator_version", "timestamp"):
            attributes.pop(key, None)
        document = attributes.get("berita_acara")
        proposal_id = attributes.get("proposal_id")
        if document is None and proposal_id is not None:
            document = self._proposal_evidence(str(proposal_id), evidence)
        if document is None and row.topic in _AFTER_VILLAGE_DECISION:
            # Dinsos' verification and the application rest on the musyawarah's minutes.
            document = self._proposal_evidence(row.aggregate_id, evidence)
        command = _COMMANDS.get(row.topic)
        if command is None and row.topic == "Household.Registered":
            command = "decide_at_dinsos" if proposal_id else "import_household"
        elif command is None and row.topic.startswith("Complaint."):
            command = "handle_complaint:" + row.topic.split(".", 1)[1].lower()
        elif command is None:
            command = row.topic
        return {
            "at": local_time(row.at, region),
            "notification_id": row.notification_id,
            "kind": kind,
            "what": row.topic,
            "aggregate_id": row.aggregate_id,
            "version": row.version,
            "who": {
                "user_id": actor.get("user_id"),
                "role": actor.get("role"),
                "office": actor.get("region"),
                "office_name": region_name(actor["region"]) if actor.get("region") else None,
                "agency": actor.get("agency"),
            },
            "document": _plain(document, reveal=True) if document else None,
            "command": command,
            "request_id": actor.get("request_id"),
            "caused_by_proposal": str(proposal_id) if proposal_id else None,
            "details": _plain(attributes, reveal=reveal),
        }


_KIND_ORDER = {k: i for i, k in enumerate(TIMELINE_KINDS)}


def _kind(topic: str) -> str:
    prefix = topic.split(".", 1)[0].lower()
    return prefix if prefix in _KIND_ORDER else "household"


def _json_list(value: str | None) -> list[str] | None:
    return json.loads(value) if value else None


def notable(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The points that change the desil (what decides aid) or follow the household's own
    score or the model; not the moves of rank alone as others enter, leave or cross it
    (in a scope of 100,000 households, most of the points)."""
    return [
        p
        for i, p in enumerate(points)
        if p["cause"] != "population" or not i or p["desil"] != points[i - 1]["desil"]
    ]


def _history(
    conn: Connection, hid: str, n1: int, n2: int, *, every: bool = True
) -> tuple[list[dict[str, Any]], int]:
    """Rank and desil at n1, then at every notification in (n1, n2] that changed them,
    and how many points that is. Sums per-notification deltas of the count ahead,
    segment by segment between the household's own score changes (where the count is
    recomputed for its new score). `every=False`: only the `notable` points, the sums
    done by the database (`score_log.desil_changes`); the count is still of all."""
    scope = sl.scope_of(conn, hid)
    if scope is None:
        return [], 0
    own = sl.own_row_at(conn, hid, n1)
    score = own.new_score if own is not None else None
    ahead, others = sl.others_at(
        conn, scope=scope, household_id=hid, score=score or 0.0, notification_id=n1
    )
    points: list[dict[str, Any]] = []
    #: (rank, desil) of the last point, listed or not; and how many points there are.
    last: tuple[int | None, int | None] | None = None
    moves = 0

    def emit(nid: int, at: datetime | None, cause: str) -> None:
        nonlocal last, moves
        rank = ahead + 1 if score is not None else None
        population = others + (1 if score is not None else 0)
        desil = sl.desil_of(rank, population) if rank is not None else None
        if last == (rank, desil):
            return
        points.append(_point(at, nid, rank, desil, population, score, cause, last))
        last = (rank, desil)
        moves += 1

    emit(n1, own.at if own is not None else None, "start")
    cursor = n1
    for row in [*sl.own_rows(conn, hid, n1, n2), None]:
        stop = row.notification_id if row is not None else n2 + 1
        if score is None:
            pass  # not ranked meanwhile: others move the population, never its rank
        elif every:
            for nid, at, d_ahead, d_count in sl.deltas(
                conn, scope=scope, household_id=hid, score=score, after=cursor, before=stop
            ):
                ahead += d_ahead
                others += d_count
                emit(nid, at, "population")
        else:
            found = sl.desil_changes(
                conn,
                scope=scope,
                household_id=hid,
                score=score,
                after=cursor,
                before=stop,
                ahead=ahead,
                others=others,
            )
            points.extend(
                _point(
                    c.at,
                    c.notification_id,
                    c.ahead + 1,
                    c.desil,
                    c.others + 1,
                    score,
                    "population",
                    c.previous,
                )
                for c in found.changes
            )
            ahead, others, moves = found.ahead, found.others, moves + found.moves
            if found.moves:
                last = (ahead + 1, sl.desil_of(ahead + 1, others + 1))
        if row is None:
            break
        score = row.new_score
        ahead, others = sl.others_at(
            conn,
            scope=scope,
            household_id=hid,
            score=score if score is not None else 0.0,
            notification_id=row.notification_id,
        )
        emit(row.notification_id, row.at, row.cause)
        cursor = row.notification_id
    return points, moves


def _point(
    at: datetime | None,
    nid: int,
    rank: int | None,
    desil: int | None,
    population: int,
    score: float | None,
    cause: str,
    previous: tuple[int | None, int | None] | None,
) -> dict[str, Any]:
    """A point of a household's rank history, as `rank_history` answers it."""
    return {
        "at": at,
        "notification_id": nid,
        "rank": rank,
        "desil": desil,
        "population": population,
        "score": score,
        "cause": cause,
        "previous": {"rank": previous[0], "desil": previous[1]} if previous else None,
    }


def _population(
    conn: Connection,
    hid: str,
    before: sl.Standing | None,
    after: sl.Standing | None,
    n1: int,
    n2: int,
    limit: int,
) -> dict[str, Any]:
    """Who moved around the household between n1 and n2, and how each moved its rank."""
    if before is None or after is None or before.score is None or after.score is None:
        return {
            "note": "the household was not ranked at both instants; no crossings to report",
            "population_before": before.population if before else None,
            "population_after": after.population if after else None,
        }
    scope = sl.scope_of(conn, hid)
    assert scope is not None
    groups = sl.moved_around(
        conn,
        scope=scope,
        household_id=hid,
        after=n1,
        upto=n2,
        key_before=before.score,
        key_after=after.score,
        limit=limit,
    )
    named = sorted({x for _, members in groups.values() for x, _, _ in members})
    details = sl.rows_of(conn, named, n1, n2)

    def described(group: str) -> dict[str, Any]:
        count, members = groups.get(group, (0, []))
        return {
            "count": count,
            "households": [
                {
                    "household_id": x,
                    "score_before": s1,
                    "score_after": s2,
                    "changes": [
                        {
                            "notification_id": r.notification_id,
                            "cause": r.cause,
                            "proposal_id": r.proposal_id,
                            "model_version": r.new_model_version,
                            "changed": _json_list(r.changed),
                        }
                        for r in details.get(x, [])
                    ],
                }
                for x, s1, s2 in members
            ],
            "truncated": count > len(members),
        }

    def counted(group: str) -> int:
        return groups.get(group, (0, []))[0]

    effect = (
        counted("entered_ahead")
        - counted("left_ahead")
        + counted("moved_ahead")
        - counted("fell_behind")
    )
    assert before.rank is not None and after.rank is not None
    # Every other household that changed side without moving across the household's
    # old score was passed by the household's own score change.
    own_move = after.rank - before.rank - effect
    return {
        **{group: described(group) for group in sl.GROUPS},
        "passed_by_own_score_change": own_move,
        "population_before": before.population,
        "population_after": after.population,
        "rank_effect_of_others": effect,
        "rank_effect_of_own_score": own_move,
    }


def _summaries(result: dict[str, Any], region: str) -> dict[str, str]:
    before, after = result["before"] or {}, result["after"] or {}
    causes = result["causes"]
    pop = causes["population"]
    hid = result["household_id"]
    scope = result["scope"]
    own = causes["own_data"]
    model = causes["model"]

    def place_en(state: dict[str, Any]) -> str:
        if state.get("rank") is None:
            return "not ranked"
        return f"rank {state['rank']} (desil {state['desil']}) of {state['population']}"

    def place_id(state: dict[str, Any]) -> str:
        if state.get("rank") is None:
            return "belum/tidak masuk peringkat"
        return f"peringkat {state['rank']} (desil {state['desil']}) dari {state['population']}"

    en = [
        f"Between {result['from']} and {result['to'] or 'now'}, household {hid} went from "
        f"{place_en(before)} to {place_en(after)} in {scope}."
    ]
    idn = [
        f"Antara {result['from']} dan {result['to'] or 'sekarang'}, rumah tangga {hid} berpindah "
        f"dari {place_id(before)} ke {place_id(after)} di {scope}."
    ]
    if own:
        changed = sorted({c for o in own for c in (o["changed"] or [])})
        delta = round(sum(o["score_delta"] or 0 for o in own), 6)
        proposals = ", ".join(sorted({str(o["proposal_id"]) for o in own}))
        en.append(
            f"Its own data changed {len(own)} time(s) through proposal(s) {proposals} "
            f"({', '.join(changed)}), changing its score by {delta:+g}."
        )
        idn.append(
            f"Datanya sendiri berubah {len(own)} kali melalui usulan {proposals} "
            f"({', '.join(changed)}), sehingga skornya berubah {delta:+g}."
        )
    else:
        en.append("Its own data did not change its score.")
        idn.append("Perubahan datanya sendiri tidak mengubah skornya.")
    if model:
        delta = round(sum(m["score_delta"] or 0 for m in model), 6)
        versions = f"{model[0]['from_version']} to {model[-1]['to_version']}"
        en.append(f"The scoring model changed from version {versions} (score {delta:+g}).")
        idn.append(
            f"Model penilaian berubah dari versi {model[0]['from_version']} ke "
            f"{model[-1]['to_version']} (skor {delta:+g})."
        )
    if "entered_ahead" in pop:
        counts = {k: pop[k]["count"] for k in pop if isinstance(pop[k], dict)}
        en.append(
            f"{counts['entered_ahead']} household(s) entered ahead of it (poorer) and "
            f"{counts['left_ahead']} ahead of it left; {counts['moved_ahead']} moved ahead of "
            f"it and {counts['fell_behind']} fell behind it; its own score change moved it past "
            f"{abs(pop['passed_by_own_score_change'])} household(s). "
            f"{counts['entered_behind']} entered and {counts['left_behind']} left behind it, "
            "changing only the scope's size."
        )
        idn.append(
            f"{counts['entered_ahead']} rumah tangga masuk di depannya (lebih miskin) dan "
            f"{counts['left_ahead']} rumah tangga di depannya keluar; {counts['moved_ahead']} "
            f"menyalip ke depannya dan {counts['fell_behind']} turun ke belakangnya; perubahan "
            f"skornya sendiri melewati {abs(pop['passed_by_own_score_change'])} rumah tangga. "
            f"{counts['entered_behind']} masuk dan {counts['left_behind']} keluar di belakangnya, "
            "yang hanya mengubah jumlah rumah tangga di wilayah itu."
        )
    return {"en": " ".join(en), "id": " ".join(idn)}


#: What a dossier's hash chain check covers: its own records (the default: reads only
#: their events), the whole log against its anchors (reads every event), or nothing.
VERIFY_SCOPES = ("records", "store", "none")


def verification_result(inspector: Inspector, household_id: UUID, scope: str) -> dict[str, Any]:
    """The hash chain's verification for a dossier; a failure to run is reported in it."""
    if scope == "none":
        return {"available": False, "text": "not requested"}
    if scope not in VERIFY_SCOPES:
        raise InvalidInput(f"verify must be one of {', '.join(VERIFY_SCOPES)}", field="verify")
    try:
        if scope == "store":
            report = audit.verify_store(inspector.runtime.settings)
        else:
            recorder = audit.audited_recorder(inspector.runtime.app)
            report = audit.verify_chains(recorder, inspector.records(household_id))
    except audit.AuditUnavailable as error:
        return {"available": False, "text": str(error)}
    except Exception as error:  # the dossier still renders; the failure is reported
        return {"available": True, "ok": False, "text": f"verification failed to run: {error}"}
    return {"available": True, "ok": report.ok, "text": report.render()}
