"""What the tools returned, folded into one `Findings` record, plus the text helpers that read it.

`findings_from` is the only place that knows which tool answers which field; a tool that is missing
or answered with an error leaves its field empty and a note in `errors` (never fatal). The record is
plain tool JSON: every later stage reads it defensively.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from firebreak.agent.triage.vocab import STOPWORDS


def parse_time(value: Any) -> datetime | None:
    """ISO strings (tool JSON) or datetimes to aware datetimes; anything else to None."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def words(text: str) -> set[str]:
    """Meaningful lowercase words (4+ letters, no placeholders or stop words) for overlap tests."""
    out = set()
    for w in re.split(r"[^a-z0-9]+", text.lower()):
        if len(w) >= 4 and w not in STOPWORDS and not w.isdigit():
            out.add(w)
            if w.endswith("s") and len(w) > 4:
                out.add(w[:-1])
    return out


def _stem(w: str) -> str:
    return w[:-1] if w.endswith("s") and len(w) > 3 else w


_WORD_SPLIT = re.compile(r"[^a-z0-9_.\-]+")


def _norm_word(w: str) -> str:
    """`kv-carts-0` -> `kv-carts`, `invoices.` -> `invoice` (instance suffixes, plurals)."""
    w = w.strip(".-_")
    w = re.sub(r"-\d+$", "", w)
    return _stem(w)


def mentions_service(text: str, service: str, services: Iterable[str] = ()) -> float:
    """How clearly a text names a service: 1.0 by full name, 0.9 by a word variant (plural, instance
    suffix), 0.7 by a distinctive part of a compound name (`mail` for mail-gate) unless that part is
    itself another service's name. A service inside a longer name (`carts` in `kv-carts`)
    does not count."""
    low = text.lower()
    name = service.lower()
    if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-]|-\d)", low):
        return 1.0
    toks = {_norm_word(t) for t in _WORD_SPLIT.split(low) if t}
    toks |= {_norm_word(t) for t in re.split(r"[^a-z0-9\-]+", low) if t}
    if _stem(name) in toks:
        return 0.9
    others = {o.lower() for o in services if o.lower() != name}
    parts = [p for p in re.split(r"[-_.]", name) if len(p) >= 4 and p not in STOPWORDS and p not in others]
    if len(parts) >= 1 and "-" in name and any(_stem(p) in toks for p in parts):
        return 0.7
    return 0.0


def key_links(key: str, services: Iterable[str]) -> dict[str, float]:
    """Services named inside a compound key (flag keys, config keys): `lookup-ui-dark-mode` names
    lookup-ui fully, and lookup only as part of the longer name (weaker)."""
    segs = [x for x in re.split(r"[^a-z0-9]+", key.lower()) if x]
    found: dict[str, tuple[int, int]] = {}
    for svc in services:
        ss = [x for x in re.split(r"[^a-z0-9]+", svc.lower()) if x]
        if not ss:
            continue
        for i in range(len(segs) - len(ss) + 1):
            if [_stem(x) for x in segs[i : i + len(ss)]] == [_stem(x) for x in ss]:
                found[svc] = (i, i + len(ss))
                break
    out: dict[str, float] = {}
    for svc, (i, j) in found.items():
        inside = any(o != svc and oi <= i and j <= oj and (oj - oi) > (j - i) for o, (oi, oj) in found.items())
        out[svc] = 0.5 if inside else 1.0
    return out


def minutes(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds() / 60.0


@dataclass
class Findings:
    """Everything the investigator learnt from the tools, as plain tool JSON."""

    now: datetime
    incident: dict[str, Any] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    patterns: list[dict[str, Any]] = field(default_factory=list)
    pattern_window: tuple[datetime, float, float] | None = None  # pivot, before_min, after_min
    sentry: list[dict[str, Any]] = field(default_factory=list)
    edges: list[dict[str, Any]] = field(default_factory=list)
    flags: list[dict[str, Any]] = field(default_factory=list)
    flag_events: list[dict[str, Any]] = field(default_factory=list)
    similar: list[dict[str, Any]] = field(default_factory=list)
    dashboards: list[dict[str, Any]] = field(default_factory=list)
    log_samples: list[dict[str, Any]] = field(default_factory=list)  # {service, text, lines}
    trace_edges: list[dict[str, Any]] = field(default_factory=list)  # service_map
    trace_errors: list[dict[str, Any]] = field(default_factory=list)  # trace_errors groups
    latency: list[dict[str, Any]] = field(default_factory=list)  # latency_breakdown rows
    series: dict[tuple[str, str], list[tuple[datetime, float]]] = field(default_factory=dict)  # query_metric
    tools_answered: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return [a for a in self.incident.get("alerts") or [] if isinstance(a, dict)]

    def incident_start(self) -> datetime:
        times = [parse_time(a.get("started_at")) for a in self.alerts]
        times.append(parse_time(self.incident.get("started_at")))
        known = [t for t in times if t is not None]
        return min(known) if known else self.now


def content(value: Any) -> dict[str, Any]:
    """A tool return as a dict (tool JSON may arrive as text)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            loaded = json.loads(value)
        except ValueError:
            return {"error": value}
        return loaded if isinstance(loaded, dict) else {"value": loaded}
    return {"value": value}


def _rows(res: dict[str, Any], *keys: str) -> list[dict[str, Any]]:
    for k in keys:
        v = res.get(k)
        if isinstance(v, list):
            return [x for x in v if isinstance(x, dict)]
    return []


def findings_from(results: Iterable[tuple[str, dict[str, Any], Any]], now: datetime) -> Findings:
    """Fold (tool, args, result) triples into Findings; errors are kept as notes, never fatal."""
    f = Findings(now=now)
    for name, args, raw in results:
        res = content(raw)
        if "error" in res and len(res) == 1:
            f.errors.append(f"{name}: {str(res['error'])[:200]}")
            continue
        f.tools_answered.add(name)
        if name == "incident_details":
            f.incident = res
        elif name == "recent_changes":
            f.changes.extend(_rows(res, "changes"))
        elif name == "metric_anomalies":
            f.anomalies.extend(_rows(res, "anomalies"))
        elif name == "log_patterns":
            f.patterns.extend(_rows(res, "patterns"))
            pivot = parse_time(args.get("pivot"))
            if pivot is not None:
                f.pattern_window = (
                    pivot,
                    float(args.get("before_minutes") or 30),
                    float(args.get("after_minutes") or 30),
                )
        elif name == "list_sentry_issues":
            f.sentry.extend(_rows(res, "issues"))
        elif name == "service_dependencies":
            f.edges.extend(_rows(res, "edges"))
        elif name == "list_flags":
            f.flags.extend(_rows(res, "flags"))
        elif name == "flag_history":
            f.flag_events.extend(_rows(res, "events"))
        elif name == "similar_incidents":
            f.similar.extend(_rows(res, "hits"))
        elif name == "list_dashboards":
            f.dashboards.extend(_rows(res, "dashboards"))
        elif name == "search_logs":
            f.log_samples.append(
                {"service": args.get("service"), "text": args.get("text"), "lines": _rows(res, "lines")}
            )
        elif name == "service_map":
            f.trace_edges.extend(_rows(res, "edges"))
        elif name == "trace_errors":
            f.trace_errors.extend(_rows(res, "groups", "errors", "operations"))
        elif name == "query_metric":
            pts = [
                (t, float(p[1]))
                for p in res.get("points") or []
                if len(p) == 2 and (t := parse_time(p[0])) is not None and isinstance(p[1], int | float)
            ]
            f.series[(str(res.get("service") or args.get("service")), str(res.get("name") or args.get("name")))] = pts
        elif name == "latency_breakdown":
            f.latency.extend(_rows(res, "services", "rows", "breakdown"))
    seen: set[str] = set()
    uniq = []
    for c in f.changes:
        k = json.dumps(c, sort_keys=True, default=str)
        if k not in seen:
            seen.add(k)
            uniq.append(c)
    f.changes = uniq
    return f
