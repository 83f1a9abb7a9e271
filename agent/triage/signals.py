"""How each service is doing, from the findings: new or surged error templates, metric change points,
alerts, Sentry issues and (when traces exist) new error operations and self-time growth; and who calls
whom, from the dependency settings, the trace service map and nothing else.

These are observations, not judgements: the features read them, the ranking weighs them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from firebreak.agent.report import Evidence
from firebreak.agent.triage.observe import Findings, mentions_service, parse_time
from firebreak.agent.triage.vocab import ALERT_WEIGHT, BAD_LEVELS, DEPENDENCY_FAIL_WORDS, damage_strength, tables_in


def _lvl(level: Any) -> str:
    return str(level or "").upper()


def num(v: Any) -> str:
    if isinstance(v, int | float):
        if abs(v) >= 1e6:
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


@dataclass
class BadPattern:
    """A log template that is new or surged since the pivot, with its weight as evidence."""

    service: str
    template: str
    example: str
    level: str
    count_after: int
    count_before: int
    first_seen: datetime | None
    new: bool
    weight: float

    @property
    def text(self) -> str:
        return f"{self.template} {self.example}"


@dataclass
class ServiceState:
    """How one service is doing: how badly it is affected and since when."""

    name: str
    score: float = 0.0
    onset: datetime | None = None
    exact_onset: datetime | None = None  # from log first_seen / Sentry: to the second
    signals: list[Evidence] = field(default_factory=list)
    bad_patterns: list[BadPattern] = field(default_factory=list)
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    self_growth: float = 1.0

    def add(self, weight: float, at: datetime | None, ev: Evidence, *, exact: bool = False) -> None:
        self.score += weight
        if at is not None and (self.onset is None or at < self.onset):
            self.onset = at
        if exact and at is not None and (self.exact_onset is None or at < self.exact_onset):
            self.exact_onset = at
        self.signals.append(ev)

    @property
    def affected(self) -> float:
        """0..1; saturates so ten weak signals do not outweigh two strong ones by much."""
        return 1.0 - math.exp(-self.score)


def bad_patterns(f: Findings) -> list[BadPattern]:
    """New or surged WARN/ERROR templates; a template that was always there at the same rate is noise."""
    if not f.patterns:
        return []
    pivot, before_min, after_min = f.pattern_window or (f.now, 30.0, 30.0)
    first_by_service: dict[str, datetime] = {}
    for p in f.patterns:
        t = parse_time(p.get("first_seen"))
        svc = str(p.get("service") or "")
        if t is not None and (svc not in first_by_service or t < first_by_service[svc]):
            first_by_service[svc] = t
    out = []
    for p in f.patterns:
        level = _lvl(p.get("level"))
        svc = str(p.get("service") or "")
        before = int(p.get("count_before") or 0)
        after = int(p.get("count_after") or 0)
        first = parse_time(p.get("first_seen"))
        text = f"{p.get('template', '')} {p.get('example', '')}".lower()
        lw = BAD_LEVELS.get(level, 0.0)
        if lw == 0.0 and any(w in text for w in ("exception", "traceback", "killed", "out of memory", "fatal")):
            lw = 0.6
        if lw == 0.0 or after == 0:
            continue
        rate_before = before / max(before_min, 1.0)
        rate_after = after / max(after_min, 1.0)
        is_new = bool(p.get("new")) or before == 0
        # No data at all before the pivot for this service: judge newness by first appearance.
        service_start = first_by_service.get(svc)
        if is_new and first is not None and service_start is not None and first - service_start < timedelta(minutes=2):
            same = [q for q in f.patterns if str(q.get("service") or "") == svc]
            baseline_new = any(
                _lvl(q.get("level")) not in BAD_LEVELS and int(q.get("count_before") or 0) == 0 for q in same
            )
            if baseline_new and all(int(q.get("count_before") or 0) == 0 for q in same):
                is_new = False
        surge = rate_after / (rate_before + 0.05)
        if not is_new and surge < 3.0:
            continue
        volume = math.log10(1 + after) / 3.0
        weight = lw * (0.6 + min(volume, 1.0)) * (1.0 if is_new else 0.5)
        out.append(
            BadPattern(
                svc,
                str(p.get("template") or ""),
                str(p.get("example") or ""),
                level,
                after,
                before,
                first if is_new else None,
                is_new,
                weight,
            )
        )
    out.sort(key=lambda b: -b.weight)
    return out


def service_states(f: Findings, bads: list[BadPattern]) -> dict[str, ServiceState]:
    states: dict[str, ServiceState] = {}

    def st(name: str) -> ServiceState:
        if name not in states:
            states[name] = ServiceState(name)
        return states[name]

    for b in bads:
        s = st(b.service)
        s.bad_patterns.append(b)
        what = "new" if b.new else f"surged ({b.count_before} before, {b.count_after} after)"
        s.add(
            b.weight,
            b.first_seen,
            exact=True,
            ev=Evidence(
                tool="log_patterns",
                weight=round(b.weight, 2),
                ref=b.template[:200],
                finding=f'{b.level} log template {what} in {b.service}: "{b.template[:160]}" x{b.count_after}'
                + (f", first seen {b.first_seen:%H:%M}" if b.first_seen else ""),
            ),
        )
    for a in f.anomalies:
        svc = str(a.get("service") or "")
        if not svc:
            continue
        ratio = float(a.get("change_ratio") or 1.0)
        mag = abs(math.log(max(ratio, 1e-6))) if ratio > 0 else 3.0
        w = min(1.2, 0.25 + mag / 3.0)
        s = st(svc)
        s.anomalies.append(a)
        onset = parse_time(a.get("onset"))
        s.add(
            w,
            onset,
            Evidence(
                tool="metric_anomalies",
                weight=round(w, 2),
                ref=f"{svc}/{a.get('name')}",
                finding=f"{a.get('name')} on {svc} went {a.get('direction', '?')} from {num(a.get('before'))} "
                f"to {num(a.get('after'))}" + (f" at {onset:%H:%M}" if onset else ""),
            ),
        )
    for al in f.alerts:
        svc = str(al.get("service") or "")
        if not svc:
            continue
        sev = str(al.get("severity") or "warning").lower()
        w = ALERT_WEIGHT.get(sev, 0.4)
        if str(al.get("status") or "firing").lower() == "resolved":
            w *= 0.4
        st(svc).add(
            w,
            None,
            Evidence(
                tool="incident_details",
                weight=round(w, 2),
                ref=str(al.get("title") or "")[:200],
                finding=f"{al.get('source', 'alert')} alert '{al.get('title')}' "
                f"({sev}, {al.get('status', 'firing')}) on {svc}",
            ),
        )
    for iss in f.sentry:
        svc = str(iss.get("service") or "")
        if not svc:
            continue
        w = 0.6 if str(iss.get("level") or "error").lower() in ("error", "fatal") else 0.25
        first = parse_time(iss.get("first_seen"))
        st(svc).add(
            w,
            first,
            exact=True,
            ev=Evidence(
                tool="list_sentry_issues",
                weight=w,
                ref=str(iss.get("short_id") or iss.get("id") or ""),
                link=iss.get("link"),
                finding=f"Sentry issue '{iss.get('title')}' on {svc}, release {iss.get('release') or '?'}, "
                f"culprit {iss.get('culprit') or '?'}",
            ),
        )
    _trace_signals(f, st)
    return states


def _trace_signals(f: Findings, st: Any) -> None:
    """Traces, when they exist: error operations that are new since the pivot, and a service whose own
    (self) time grew, as opposed to callers that only wait on it."""
    for g in f.trace_errors:
        svc = str(g.get("service") or "")
        if not svc or not (g.get("new") or int(g.get("errors_before") or 0) == 0):
            continue
        count = int(g.get("errors") or g.get("count") or 0)
        if count <= 0:
            continue
        w = min(1.0, 0.3 + math.log10(1 + count) / 4)
        first = parse_time(g.get("first_seen"))
        st(svc).add(
            w,
            first,
            exact=first is not None,
            ev=Evidence(
                tool="trace_errors",
                weight=round(w, 2),
                ref=f"{svc} {g.get('operation') or ''}".strip(),
                finding=f"new error spans in {svc} {g.get('operation') or ''} ({count}x)",
            ),
        )
    for row in f.latency:
        svc = str(row.get("service") or "")
        growth = self_time_growth(row)
        if not svc or growth < 1.5:
            continue
        w = min(1.0, 0.2 + math.log(growth) / 3)
        state = st(svc)
        state.self_growth = max(state.self_growth, growth)
        state.add(
            w,
            None,
            Evidence(
                tool="latency_breakdown",
                weight=round(w, 2),
                ref=svc,
                finding=f"{svc}'s own (self) time grew {growth:.1f}x; callers only wait on it",
            ),
        )


def self_time_growth(row: dict[str, Any]) -> float:
    """after / before of a service's self time per request in a latency_breakdown row (1.0 when unknown);
    a service that only waits on its callees does not grow."""
    before, after = row.get("before") or {}, row.get("after") or {}
    if str(row.get("shift") or "") == "waiting_on_callees":
        return 1.0
    if isinstance(before, dict) and isinstance(after, dict):
        b, a = before.get("self_ms"), after.get("self_ms")
        if isinstance(a, int | float) and isinstance(b, int | float) and a > 0:
            return float(a) / max(float(b), 1e-3)
    return 1.0


def table_mentions(states: dict[str, ServiceState]) -> dict[str, set[tuple[str, str]]]:
    """Per table name: the (service, template) pairs of new bad lines reporting damage that name it."""
    out: dict[str, set[tuple[str, str]]] = {}
    for svc, state in states.items():
        for b in state.bad_patterns:
            if b.new and damage_strength(b.text):
                for name, _ in tables_in(b.example) + tables_in(b.template):
                    out.setdefault(name, set()).add((svc, b.template))
    return out


class Graph:
    """Who calls whom: service_dependencies edges plus the trace service map (caller -> callee)."""

    def __init__(self, edges: Iterable[dict[str, Any]]) -> None:
        self.deps: dict[str, set[str]] = {}
        self.callers: dict[str, set[str]] = {}
        for e in edges:
            a = str(e.get("service") or e.get("caller") or e.get("source") or "")
            b = str(e.get("depends_on") or e.get("callee") or e.get("target") or "")
            if a and b and a != b:
                self.deps.setdefault(a, set()).add(b)
                self.callers.setdefault(b, set()).add(a)

    def services(self) -> set[str]:
        return set(self.deps) | set(self.callers)

    def downstream_of(self, service: str) -> set[str]:
        """Every service that (transitively) calls `service`: those its failure can reach."""
        seen: set[str] = set()
        todo = [service]
        while todo:
            for c in self.callers.get(todo.pop(), set()):
                if c not in seen and c != service:
                    seen.add(c)
                    todo.append(c)
        return seen


def known_services(f: Findings, graph: Graph) -> set[str]:
    names = set(graph.services())
    names.update(str(s) for s in f.incident.get("services") or [])
    for coll in (f.alerts, f.changes, f.anomalies, f.patterns, f.sentry):
        for item in coll:
            if item.get("service"):
                names.add(str(item["service"]))
    return {n for n in names if n}


def norm_affected(state: ServiceState | None, max_aff: float) -> float:
    """How affected a service is, relative to the worst hit (a clearly affected service counts at least half)."""
    if state is None or state.affected <= 0:
        return 0.0
    rel = state.affected / (max_aff or 1.0)
    return 0.5 + 0.5 * rel if state.affected >= 0.3 else rel


def named_failing(state: ServiceState, dep: str, services: Iterable[str]) -> bool:
    return any(
        mentions_service(b.text, dep, services) >= 0.9 and any(w in b.text.lower() for w in DEPENDENCY_FAIL_WORDS)
        for b in state.bad_patterns
    )


def victims(states: dict[str, ServiceState], graph: Graph, services: set[str]) -> dict[str, list[str]]:
    """Services whose trouble follows a dependency's: named failing in their new errors (and not later
    than them), or a dependency edge whose trouble started clearly (30 s+) earlier."""
    out: dict[str, list[str]] = {}
    for s, st in states.items():
        if st.onset is None or st.affected < 0.3:
            continue
        causes = []
        for d in sorted(set(graph.deps.get(s, set())) | {x for x in services if x in states and x != s}):
            dst = states.get(d)
            if dst is None or dst.affected < 0.4 or dst.onset is None:
                continue
            named = named_failing(st, d, services) and dst.onset < st.onset + timedelta(seconds=15)
            earlier_edge = d in graph.deps.get(s, set()) and dst.onset <= st.onset - timedelta(seconds=30)
            if named or earlier_edge:
                causes.append(d)
        if causes:
            out[s] = causes
    # Mutual "victims" (A before B and B before A within the tolerance) explain nothing.
    for s, causes in list(out.items()):
        out[s] = [d for d in causes if s not in out.get(d, [])]
        if not out[s]:
            del out[s]
    return out
