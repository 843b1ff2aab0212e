"""The dispute dossier: one self-contained HTML file (no scripts, no external assets).

It holds the household's timeline, its state at the requested instants, its rank and
desil over time as an inline SVG chart, the rank explanation, and the hash chain's
verification result, so that it can be printed, signed and filed with a berita acara.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any
from uuid import UUID

from slrt.domain.common import Actor
from slrt.inspection import (
    TIMELINE_KINDS,
    Inspector,
    local_time,
    notable,
    verification_result,
)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;width:100%;font-size:.85em}
td,th{border:1px solid #ddd;padding:.25em .4em;vertical-align:top;text-align:left}
th{background:#f3f3f3}.ok{color:#075}.bad{color:#a00}pre{white-space:pre-wrap;font-size:.8em}
.muted{color:#666}
"""


def build_dossier(
    inspector: Inspector,
    household_id: UUID,
    *,
    viewer: Actor,
    as_of: list[datetime],
    start: datetime | None,
    end: datetime | None,
    verify: str = "records",
) -> str:
    """Renders the dossier. Reads only; the caller records the inspection. `verify`:
    one of `VERIFY_SCOPES` (the dossier's own records, the whole store, or none)."""
    now = inspector.runtime.app.clock()
    household = inspector.runtime.app.get_household(household_id)
    explain_from = start or household.created_on
    states = [(at, inspector.household_as_of(household_id, at)) for at in as_of]
    # Rank changes have their own section; in a large scope the household's rank moves
    # with most events of the scope (one household of 100,000 had 116,000 in 18 months).
    timeline = inspector.timeline(household_id, kinds=_TIMELINE_KINDS, start=start, end=end)
    points = inspector.rank_points(household_id, start, end)
    explanation = inspector.rank_explanation(household_id, explain_from, end, limit=50)
    verification = verification_result(inspector, household_id, verify)
    parts = [
        "<!DOCTYPE html><html lang='id'><head><meta charset='utf-8'>",
        f"<title>Dossier {escape(str(household_id))}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Berkas sengketa / Dispute dossier — rumah tangga {escape(str(household_id))}</h1>",
        "<p class='muted'>",
        f"Region {escape(household.region)}, ranking scope {escape(household.region[:5])}. ",
        f"Generated {escape(now.astimezone(UTC).isoformat())} for {escape(viewer.user_id)} "
        f"({escape(viewer.role.value)}). Period: {escape(_t(start))} – {escape(_t(end))}.</p>",
        _verification(verification),
        "<h2>State at the requested moments / Keadaan pada waktu yang diminta</h2>",
        _states(states) if states else "<p class='muted'>No instant requested (--as-of).</p>",
        "<h2>Rank and desil over time / Peringkat dan desil</h2>",
        _chart(points),
        _history_table(points, household.region),
        "<h2>Rank explanation / Penjelasan perubahan peringkat</h2>",
        f"<p>{escape(explanation['summary']['id'])}</p>",
        f"<p>{escape(explanation['summary']['en'])}</p>",
        f"<pre>{escape(json.dumps(explanation['causes'], indent=1, default=str))}</pre>",
        "<h2>Timeline / Riwayat</h2>",
        _timeline(timeline),
        "</body></html>",
    ]
    return "".join(parts)


_TIMELINE_KINDS = set(TIMELINE_KINDS) - {"rank"}
#: The chart's time axis is cut into this many buckets, and each keeps its first, last,
#: highest and lowest rank: the same step line to the eye, at most 4 points a bucket.
_CHART_BUCKETS = 300
#: Desil labels on the chart: at most this many of the desil changes, evenly spread.
_CHART_LABELS = 40


def _t(at: datetime | None) -> str:
    return at.isoformat() if at else "—"


def _verification(result: dict[str, Any]) -> str:
    if not result.get("available"):
        return f"<h2>Hash chain verification</h2><p class='muted'>{escape(result['text'])}</p>"
    css = "ok" if result.get("ok") else "bad"
    verdict = "intact" if result.get("ok") else "NOT intact"
    return (
        f"<h2>Hash chain verification</h2><p class='{css}'>{verdict}</p>"
        f"<pre>{escape(result['text'])}</pre>"
    )


def _states(states: list[tuple[datetime, dict[str, Any]]]) -> str:
    fields = [
        "status",
        "score",
        "model_version",
        "rank",
        "desil",
        "scope_population",
        "deprivations",
        "is_poor",
        "programmes",
        "version",
        "as_of_event",
        "indicators",
    ]
    head = "".join(f"<th>{escape(at.isoformat())}</th>" for at, _ in states)
    rows = "".join(
        f"<tr><th>{escape(f)}</th>"
        + "".join(f"<td>{escape(_show(state.get(f)))}</td>" for _, state in states)
        + "</tr>"
        for f in fields
    )
    return f"<table><tr><th></th>{head}</tr>{rows}</table>"


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(k for k, v in value.items() if v) or "—"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    return "—" if value is None else str(value)


def _chart(points: list[dict[str, Any]]) -> str:
    """A step chart of rank (line) with the desil at its changes, as inline SVG."""
    ranked = [(p["at"].timestamp(), p) for p in points if p["rank"] is not None and p["at"]]
    if not ranked:
        return "<p class='muted'>The household was not ranked in this period.</p>"
    width, height, pad = 760, 260, 48
    t0, t1 = ranked[0][0], ranked[-1][0]
    t1 = t1 if t1 > t0 else t0 + 1
    top = max(p["rank"] for _, p in ranked)
    top = top if top > 1 else 2

    def x(t: float) -> float:
        return pad + (width - 2 * pad) * (t - t0) / (t1 - t0)

    def y(rank: float) -> float:  # rank 1 (poorest) at the top
        return pad + (height - 2 * pad) * (rank - 1) / (top - 1)

    drawn = _thinned(ranked, t0, t1)
    path: list[str] = []
    for index, (t, p) in enumerate(drawn):
        if index:
            path.append(f"L{x(t):.1f},{y(drawn[index - 1][1]['rank']):.1f}")
        path.append(f"{'M' if not index else 'L'}{x(t):.1f},{y(p['rank']):.1f}")
    path.append(f"L{width - pad:.1f},{y(ranked[-1][1]['rank']):.1f}")
    changes = [
        (t, p)
        for i, (t, p) in enumerate(ranked)
        if not i or p["desil"] != ranked[i - 1][1]["desil"]
    ]
    step = -(-len(changes) // _CHART_LABELS)
    labels = "".join(
        f"<circle cx='{x(t):.1f}' cy='{y(p['rank']):.1f}' r='3' fill='#036'/>"
        f"<text x='{x(t) + 4:.1f}' y='{y(p['rank']) - 6:.1f}' font-size='10'>"
        f"d{p['desil']}</text>"
        for t, p in changes[::step]
    )
    first_at, last_at = (p["at"].astimezone(UTC).isoformat() for _, p in (ranked[0], ranked[-1]))
    axis = (
        f"<text x='4' y='{pad}' font-size='10'>rank 1</text>"
        f"<text x='4' y='{height - pad}' font-size='10'>rank {top}</text>"
        f"<text x='{pad}' y='{height - 12}' font-size='10'>{escape(first_at[:10])}</text>"
        f"<text x='{width - pad - 60}' y='{height - 12}' font-size='10'>"
        f"{escape(last_at[:10])}</text>"
    )
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='rank over time'>"
        f"<rect x='{pad}' y='{pad}' width='{width - 2 * pad}' height='{height - 2 * pad}' "
        "fill='#fafafa' stroke='#ccc'/>"
        f"<path d='{' '.join(path)}' fill='none' stroke='#036' stroke-width='2'/>"
        f"{labels}{axis}</svg>"
    )


def _thinned(
    ranked: list[tuple[float, dict[str, Any]]], t0: float, t1: float
) -> list[tuple[float, dict[str, Any]]]:
    """The points to draw: in each of `_CHART_BUCKETS` slices of time, the first, the
    last, the highest and the lowest rank, in time order."""
    if len(ranked) <= 4 * _CHART_BUCKETS:
        return ranked
    buckets: dict[int, list[int]] = {}
    for index, (t, _) in enumerate(ranked):
        bucket = min(_CHART_BUCKETS - 1, int((t - t0) / (t1 - t0) * _CHART_BUCKETS))
        buckets.setdefault(bucket, []).append(index)
    kept: set[int] = set()

    def rank(index: int) -> int:
        return int(ranked[index][1]["rank"])

    for indexes in buckets.values():
        kept.update((indexes[0], indexes[-1], min(indexes, key=rank), max(indexes, key=rank)))
    return [ranked[i] for i in sorted(kept)]


def _history_table(points: list[dict[str, Any]], region: str) -> str:
    """The changes of desil, and every change of the household's own score or of the
    model; the moves of rank alone, from other households, are counted, not listed."""
    listed = notable(points)
    rows = "".join(
        f"<tr><td>{escape(local_time(p['at'], region) if p['at'] else '—')}</td>"
        f"<td>{p['rank']}</td><td>{p['desil']}</td>"
        f"<td>{p['population']}</td><td>{escape(str(p['score']))}</td>"
        f"<td>{escape(p['cause'])}</td></tr>"
        for p in listed
    )
    omitted = len(points) - len(listed)
    note = (
        f"<p class='muted'>{omitted} more change(s) of rank alone, as other households "
        "entered, left or crossed this one, are not listed (the rank-history endpoint has "
        "every one).</p>"
        if omitted
        else ""
    )
    return (
        "<table><tr><th>at</th><th>rank</th><th>desil</th><th>population</th><th>score</th>"
        f"<th>cause</th></tr>{rows}</table>{note}"
    )


def _timeline(entries: list[dict[str, Any]]) -> str:
    rows = []
    for e in entries:
        who = e.get("who") or {}
        document = e.get("document") or {}
        rows.append(
            "<tr>"
            f"<td>{escape(str(e['at']))}</td><td>{escape(e['kind'])}</td>"
            f"<td>{escape(e['what'])}</td>"
            f"<td>{escape(' / '.join(str(v) for v in who.values() if v))}</td>"
            f"<td>{escape(str(document.get('number', '')))}<br>"
            f"<span class='muted'>{escape(str(document.get('sha256', '')))}</span></td>"
            f"<td>{escape(str(e.get('command') or ''))}</td>"
            f"<td><pre>{escape(json.dumps(e.get('details'), default=str)[:600])}</pre></td>"
            "</tr>"
        )
    return (
        "<table><tr><th>when</th><th>kind</th><th>what</th><th>who</th>"
        "<th>berita acara</th><th>command</th><th>details</th></tr>" + "".join(rows) + "</table>"
    )
