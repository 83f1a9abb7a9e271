"""Evidence scoring for the offline investigator: tool outputs in, ranked suspects and a report out.

The method follows what an experienced on-call engineer does, written down so it is deterministic:

1. Which services are affected, how badly, and since when (new error templates, metric change
   points, alerts, Sentry issues). A WARN line that was always there, or a short flapping alert on
   an otherwise healthy service, weighs little.
2. Every change (deploy, config, flag, infra) is a candidate cause, scored by *linkage* (does it
   touch an affected service, by name, dependency edge, Sentry release or shared words?) times
   *timing* (did it land shortly before that service's trouble began? a change after the onset
   cannot be its cause). "The latest change" earns nothing by itself.
3. Non-change causes (a failing dependency, a resource, a traffic source, a certificate, damaged
   data) are candidates from log text, metric names and alert labels; resources are usually
   symptoms, so they are discounted when a linked change precedes them.

Inputs are the JSON dicts the registry tools return (docs/TOOLS_CONTRACT.md); every field is read
defensively, because a tool may be missing or answer with an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from agent.actions import ProposedFix
from agent.report import Evidence, Hypothesis, Suspect, SuspectKind, TriageReport

BAD_LEVELS = {"ERROR": 1.0, "FATAL": 1.2, "CRITICAL": 1.2, "PANIC": 1.2, "WARN": 0.35, "WARNING": 0.35}
ALERT_WEIGHT = {"critical": 1.0, "error": 0.8, "high": 0.8, "warning": 0.45, "info": 0.15}
_STOP = (
    "the a an of in on at to for from by with and or not no is are was were be been after before "
    "than then this that into over under per ms error errors warn warning info failed failure "
    "request requests call calls new old http https get post put delete true false none null"
)
STOPWORDS = frozenset(_STOP.split())
CRITICAL_SERVICE_WORDS = (
    "checkout",
    "payment",
    "payments",
    "login",
    "auth",
    "gateway",
    "frontend",
    "web",
    "cart",
    "order",
    "orders",
    "billing",
    "api",
    "signup",
    "storefront",
)
TRAFFIC_LABELS = (
    "client",
    "client_id",
    "campaign",
    "tenant",
    "customer",
    "partner",
    "account",
    "api_key",
    "source",
    "caller",
    "user_agent",
    "app",
    "consumer",
)
_TRAFFIC_RE = re.compile(
    r"\b(client(?:[_ -]?id)?|campaign|tenant|customer|partner|account|api[_-]?key|consumer|caller|"
    r"user[_-]?agent)\b\s*[=:]?\s*[\"']?([A-Za-z0-9][\w.\-/]*[A-Za-z0-9])",
    re.IGNORECASE,
)
_HOST_RE = re.compile(r"\b((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z])\b", re.IGNORECASE)
_TABLE_RES = (
    re.compile(r"\btable\s+[\"'`]?([A-Za-z_][\w.]*)", re.IGNORECASE),
    re.compile(r"\brelation\s+[\"'`]?([A-Za-z_][\w.]*)", re.IGNORECASE),
    re.compile(r"[\"'`]?([A-Za-z_][\w.]*)[\"'`]?\s+table\b", re.IGNORECASE),
    re.compile(r"\b(?:dataset|data set|collection)\s+[\"'`]?([A-Za-z_][\w.\-]*)", re.IGNORECASE),
    re.compile(r"\b(?:rows?|records?)\s+(?:in|of|from)\s+[\"'`]?([A-Za-z_][\w.]*)", re.IGNORECASE),
)
CERT_WORDS = ("certificate", "x509", "tls handshake", "ssl", "cert ", "certificate_verify_failed")
DATA_WORDS = (
    "corrupt",
    "checksum",
    "constraint",
    "duplicate key",
    "violat",
    "null value",
    "invalid row",
    "malformed",
    "inconsistent",
    "integrity",
    "deserializ",
    "missing rows",
    "foreign key",
    "unexpected null",
    "bad record",
    "truncated",
)
RESOURCE_LOG_WORDS: dict[str, tuple[str, ...]] = {
    "memory": ("out of memory", "oom", "memoryerror", "cannot allocate memory", "heap space", "oomkilled"),
    "disk": ("no space left", "disk full", "disk quota", "enospc"),
    "file-descriptors": ("too many open files", "file descriptor"),
    "connections": (
        "too many connections",
        "connection pool exhausted",
        "remaining connection slots",
        "pool exhausted",
        "could not obtain connection",
        "max_connections",
    ),
    "threads": ("thread pool exhausted", "thread pool", "no threads available", "threadpool"),
    "cpu": ("cpu throttl", "cpu saturat"),
}
RESOURCE_METRIC_WORDS: dict[str, tuple[str, ...]] = {
    "memory": ("memory", "rss", "heap", "resident"),
    "disk": ("disk", "filesystem", "volume", "fs_"),
    "file-descriptors": ("fds", "file_descriptor", "open_files"),
    "connections": ("connection",),
    "threads": ("thread",),
    "cpu": ("cpu",),
}
DEPENDENCY_FAIL_WORDS = (
    "timed out",
    "timeout",
    "refused",
    "unreachable",
    "unavailable",
    "503",
    "502",
    "504",
    "reset by peer",
    "circuit",
    "failed to connect",
    "connection error",
    "no route",
    "dns",
    "bad gateway",
    "upstream",
)


# ----------------------------------------------------------------------------------------------
# Parsing helpers


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


def mentions_service(text: str, service: str) -> float:
    """How clearly a text names a service: 1.0 by full name, 0.7 by a distinctive part, else 0."""
    low = text.lower()
    name = service.lower()
    if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", low):
        return 1.0
    toks = {_stem(t) for t in re.split(r"[^a-z0-9]+", low) if t}
    if _stem(name) in toks:
        return 0.9
    parts = [p for p in re.split(r"[-_.]", name) if len(p) >= 4 and p not in STOPWORDS]
    if (len(parts) > 1 or (parts and parts[0] != name)) and any(_stem(p) in toks for p in parts):
        return 0.7
    return 0.0


def _lvl(level: Any) -> str:
    return str(level or "").upper()


def _minutes(a: datetime, b: datetime) -> float:
    return (a - b).total_seconds() / 60.0


# ----------------------------------------------------------------------------------------------
# Collected evidence


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
    errors: list[str] = field(default_factory=list)

    @property
    def alerts(self) -> list[dict[str, Any]]:
        return [a for a in self.incident.get("alerts") or [] if isinstance(a, dict)]

    def incident_start(self) -> datetime:
        times = [parse_time(a.get("started_at")) for a in self.alerts]
        times.append(parse_time(self.incident.get("started_at")))
        known = [t for t in times if t is not None]
        return min(known) if known else self.now


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
    signals: list[Evidence] = field(default_factory=list)
    bad_patterns: list[BadPattern] = field(default_factory=list)
    anomalies: list[dict[str, Any]] = field(default_factory=list)

    def add(self, weight: float, at: datetime | None, ev: Evidence) -> None:
        self.score += weight
        if at is not None and (self.onset is None or at < self.onset):
            self.onset = at
        self.signals.append(ev)

    @property
    def affected(self) -> float:
        """0..1; saturates so ten weak signals do not outweigh two strong ones by much."""
        return 1.0 - math.exp(-self.score)


@dataclass
class Candidate:
    suspect: Suspect
    score: float
    title: str
    evidence: list[Evidence] = field(default_factory=list)
    confirm: str = ""
    rule_out: str = ""
    fix: ProposedFix | None = None
    change_at: datetime | None = None

    def key(self) -> tuple[str, str, str]:
        return (self.suspect.kind, (self.suspect.service or "").lower(), self.suspect.ref.lower())


# ----------------------------------------------------------------------------------------------
# Step 1: how affected is each service


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
            all_new = all(
                (int(q.get("count_before") or 0) == 0) for q in f.patterns if str(q.get("service") or "") == svc
            )
            if all_new:
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
            Evidence(
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
                finding=f"{a.get('name')} on {svc} went {a.get('direction', '?')} from {_num(a.get('before'))} "
                f"to {_num(a.get('after'))}" + (f" at {onset:%H:%M}" if onset else ""),
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
            Evidence(
                tool="list_sentry_issues",
                weight=w,
                ref=str(iss.get("short_id") or iss.get("id") or ""),
                link=iss.get("link"),
                finding=f"Sentry issue '{iss.get('title')}' on {svc}, release {iss.get('release') or '?'}, "
                f"culprit {iss.get('culprit') or '?'}",
            ),
        )
    return states


def _num(v: Any) -> str:
    if isinstance(v, int | float):
        if abs(v) >= 1e6:
            return f"{v:.3g}"
        return f"{v:.4g}"
    return str(v)


# ----------------------------------------------------------------------------------------------
# Step 2: candidate causes


class Graph:
    """Who calls whom, from service_dependencies plus what the logs say."""

    def __init__(self, edges: Iterable[dict[str, Any]]) -> None:
        self.deps: dict[str, set[str]] = {}
        self.callers: dict[str, set[str]] = {}
        for e in edges:
            a, b = str(e.get("service") or ""), str(e.get("depends_on") or "")
            if a and b:
                self.deps.setdefault(a, set()).add(b)
                self.callers.setdefault(b, set()).add(a)

    def services(self) -> set[str]:
        return set(self.deps) | set(self.callers)


def known_services(f: Findings, graph: Graph) -> set[str]:
    names = set(graph.services())
    names.update(str(s) for s in f.incident.get("services") or [])
    for coll in (f.alerts, f.changes, f.anomalies, f.patterns, f.sentry):
        for item in coll:
            if item.get("service"):
                names.add(str(item["service"]))
    return {n for n in names if n}


def time_factor(gap_minutes: float | None) -> float:
    """Plausibility that a change `gap` minutes before the onset caused it."""
    if gap_minutes is None:
        return 0.5
    if gap_minutes < -1.5:
        return 0.08  # landed after the trouble had begun
    if gap_minutes < 0:
        return 0.7
    if gap_minutes <= 30:
        return 1.0 - gap_minutes / 150.0
    if gap_minutes <= 240:
        return 0.8 - 0.5 * (gap_minutes - 30) / 210.0
    return 0.2


def _change_ref(c: dict[str, Any]) -> tuple[SuspectKind, str] | None:
    kind = str(c.get("kind") or "").lower()
    if kind == "deploy" and c.get("version"):
        return "deploy", str(c["version"])
    if kind == "config" and c.get("key"):
        return "config", str(c["key"])
    if kind == "flag" and c.get("flag"):
        return "flag", str(c["flag"])
    if kind == "infra":
        return "infra", str(c.get("note") or c.get("key") or "infra change")
    return None


def _previous_version(c: dict[str, Any], changes: list[dict[str, Any]]) -> str | None:
    if c.get("previous_version"):
        return str(c["previous_version"])
    at = parse_time(c.get("at"))
    prior = [
        d
        for d in changes
        if d.get("kind") == "deploy"
        and d.get("service") == c.get("service")
        and d.get("version")
        and at is not None
        and (t := parse_time(d.get("at"))) is not None
        and t < at
    ]
    prior.sort(key=lambda d: parse_time(d.get("at")) or at)  # type: ignore[arg-type,return-value]
    return str(prior[-1]["version"]) if prior else None


def _flag_fix(c: dict[str, Any], f: Findings) -> ProposedFix:
    flag = str(c.get("flag"))
    variant = str(c.get("variant") or "").lower()
    state = str(c.get("state") or "").upper()
    if state == "DISABLED":
        return ProposedFix(
            action="enable_flag",
            parameters={"flag": flag},
            rationale=f"Turning {flag} off preceded the failure; turn it back on.",
            risk="Restores the previous behaviour of the flag.",
            undo=f"disable {flag} again",
        )
    previous = None
    for e in f.flag_events:
        if e.get("flag") == flag and e.get("previous"):
            previous = str(e["previous"])
    on_words = {"on", "true", "enabled", "yes", "1", "new", "v2"}
    if variant and variant not in on_words and previous and previous.lower() not in (variant,):
        return ProposedFix(
            action="set_flag_variant",
            parameters={"flag": flag, "variant": previous},
            rationale=f"Flag {flag} was switched to '{variant}' just before the failure; switch back to '{previous}'.",
            risk="Users get the previous variant again.",
            undo=f"set {flag} to {variant} again",
        )
    return ProposedFix(
        action="disable_flag",
        parameters={"flag": flag},
        rationale=f"Flag {flag} was switched on just before the failure; turning it off restores the old code path.",
        risk="Low: the feature behind the flag is hidden for everyone until fixed.",
        undo=f"re-enable {flag} (set it back to '{c.get('variant') or 'on'}')",
    )


def _bad_text(state: ServiceState | None) -> str:
    if state is None:
        return ""
    return " ".join(b.text for b in state.bad_patterns)


def change_candidates(
    f: Findings, states: dict[str, ServiceState], graph: Graph, services: set[str]
) -> list[Candidate]:
    out: list[Candidate] = []
    max_aff = max((s.affected for s in states.values()), default=0.0) or 1.0
    fallback_onset = f.incident_start()
    sentry_by_service: dict[str, list[dict[str, Any]]] = {}
    for iss in f.sentry:
        sentry_by_service.setdefault(str(iss.get("service") or ""), []).append(iss)

    for c in f.changes:
        ref = _change_ref(c)
        if ref is None:
            continue
        kind, refval = ref
        at = parse_time(c.get("at"))
        svc = str(c.get("service") or "") or None
        # Which affected services does this change touch, and how strongly?
        links: dict[str, float] = {}
        reasons: list[str] = []
        if svc:
            links[svc] = 1.0
            for caller in graph.callers.get(svc, set()):
                links[caller] = max(links.get(caller, 0.0), 0.6)
        if kind == "flag" or not svc:
            key_text = f"{refval} {c.get('note') or ''}"
            for s in services:
                m = mentions_service(key_text, s)
                if m:
                    links[s] = max(links.get(s, 0.0), 0.85 * m)
            for s, state in states.items():
                if refval.lower() in _bad_text(state).lower():
                    links[s] = 1.0
                    reasons.append(f"{s} logs name {refval}")
        if kind == "infra" and c.get("note"):
            for s in services:
                if mentions_service(str(c["note"]), s):
                    links[s] = max(links.get(s, 0.0), 0.9)
        best = 0.0
        best_svc: str | None = None
        for s, strength in links.items():
            stt = states.get(s)
            aff = (stt.affected / max_aff) if stt else 0.0
            val = strength * aff
            if val > best:
                best, best_svc = val, s
        if not links and kind in ("flag", "infra"):
            # Nothing names it: weakly tied to the worst-hit service.
            top = max(states.values(), key=lambda s: s.affected, default=None)
            if top is not None:
                best, best_svc = 0.3 * top.affected / max_aff, top.name
        onset = None
        if best_svc and states.get(best_svc) and states[best_svc].onset:
            onset = states[best_svc].onset
        elif best_svc:
            onset = fallback_onset
        gap = _minutes(onset, at) if (onset and at) else None
        tf = time_factor(gap)
        score = best * tf
        ev: list[Evidence] = []
        desc = _describe_change(c)
        timing = (
            f"{gap:.0f} min before"
            if gap is not None and gap >= 0
            else f"{-gap:.0f} min after"
            if gap is not None
            else "at an unknown time relative to"
        )
        ev.append(
            Evidence(
                tool="recent_changes",
                ref=str(c.get("id") or refval),
                weight=round(score, 2),
                finding=f"{desc} landed {timing} the first sign of trouble"
                + (f" in {best_svc}" if best_svc else "")
                + (
                    f" (linked: {best_svc} affected {states[best_svc].affected:.2f})"
                    if best_svc in states
                    else " (no affected service is linked to it)"
                ),
            )
        )
        # Corroboration: Sentry release, shared words between change note and new errors, log naming.
        bonus = 0.0
        if kind == "deploy" and svc:
            for iss in sentry_by_service.get(svc, []):
                if str(iss.get("release") or "") == refval:
                    bonus += 0.35
                    ev.append(
                        Evidence(
                            tool="list_sentry_issues",
                            ref=str(iss.get("short_id") or iss.get("id")),
                            link=iss.get("link"),
                            weight=0.35,
                            finding=f"Sentry issue '{iss.get('title')}' is tagged with release {refval}",
                        )
                    )
                    break
        note_words = words(f"{c.get('note') or ''} {c.get('key') or ''} {refval if kind == 'flag' else ''}")
        if best_svc and note_words and tf > 0.2:
            overlap = note_words & words(
                _bad_text(states.get(best_svc))
                + " "
                + " ".join(f"{i.get('title', '')} {i.get('culprit', '')}" for i in sentry_by_service.get(best_svc, []))
            )
            if overlap:
                b = min(0.25, 0.12 * len(overlap))
                bonus += b
                ev.append(
                    Evidence(
                        tool="log_patterns",
                        weight=round(b, 2),
                        finding="the change's description shares words with the new errors: "
                        + ", ".join(sorted(overlap)),
                    )
                )
        bonus += 0.05 * len(reasons)
        for r in reasons:
            ev.append(Evidence(tool="log_patterns", finding=r, weight=0.05))
        score = score * (1.0 + bonus) + (bonus * 0.1 if score > 0.2 else 0.0)
        if gap is not None and gap < -1.5:
            ev.append(
                Evidence(
                    tool="recent_changes",
                    weight=0.0,
                    finding="ruled down: this change came after the trouble had already started",
                )
            )
        if best < 0.15:
            ev.append(
                Evidence(
                    tool="metric_anomalies",
                    weight=0.0,
                    finding=f"ruled down: {svc or refval} shows no anomaly of its own",
                )
            )
        fix = _fix_for_change(c, kind, refval, svc, f)
        title = _change_title(kind, refval, svc, c)
        confirm, rule_out = _confirm_change(kind, refval, svc)
        out.append(
            Candidate(
                Suspect(kind=kind, service=svc if kind != "flag" else (svc or None), ref=refval),
                score,
                title,
                ev,
                confirm,
                rule_out,
                fix,
                at,
            )
        )
    return out


def _describe_change(c: dict[str, Any]) -> str:
    kind = c.get("kind")
    if kind == "deploy":
        return f"Deploy of {c.get('service')} {c.get('previous_version') or '?'} -> {c.get('version')}" + (
            f" ('{c.get('note')}')" if c.get("note") else ""
        )
    if kind == "config":
        return f"Config change on {c.get('service')}: {c.get('key')} {c.get('from_value')} -> {c.get('to_value')}"
    if kind == "flag":
        what = c.get("variant") or c.get("state") or "changed"
        return f"Flag {c.get('flag')} set to {what}"
    return f"Infra change{' on ' + str(c.get('service')) if c.get('service') else ''}: {c.get('note')}"


def _change_title(kind: str, ref: str, svc: str | None, c: dict[str, Any]) -> str:
    if kind == "deploy":
        return f"{svc} {ref} deploy introduced a fault" + (f" ({c.get('note')})" if c.get("note") else "")
    if kind == "config":
        return f"Config change {ref} on {svc} ({c.get('from_value')} -> {c.get('to_value')})"
    if kind == "flag":
        return f"Feature flag {ref} switched to {c.get('variant') or c.get('state')}"
    return f"Infra change: {ref}"


def _confirm_change(kind: str, ref: str, svc: str | None) -> tuple[str, str]:
    if kind == "deploy":
        return (
            f"Compare error rate of {svc} pods on {ref} with any still on the previous version; read the {ref} diff.",
            f"Errors began before {ref} reached production, or they persist after a rollback.",
        )
    if kind == "config":
        return (
            f"Check {svc}'s effective value of {ref} and whether errors started when it was applied.",
            f"Errors persist with {ref} at its previous value.",
        )
    if kind == "flag":
        return (
            f"Evaluate {ref} for affected requests; errors should only hit users served the new variant.",
            f"Users with {ref} off fail the same way.",
        )
    return ("Check whether the infra change window matches the onset.", "Trouble began before the change.")


def _fix_for_change(c: dict[str, Any], kind: str, ref: str, svc: str | None, f: Findings) -> ProposedFix | None:
    if kind == "deploy" and svc:
        prev = _previous_version(c, f.changes)
        if prev:
            return ProposedFix(
                action="rollback",
                parameters={"service": svc, "to": prev},
                rationale=f"The fault arrived with {svc} {ref}; {prev} ran without it.",
                risk="Changes shipped in the new version are withdrawn until re-released.",
                undo=f"redeploy {svc} {ref}",
            )
        return ProposedFix(
            action="restart",
            parameters={"service": svc},
            rationale="The previous version is unknown; a restart buys time while it is found.",
            risk="Brief capacity loss during the restart.",
            undo="none needed",
        )
    if kind == "config" and svc:
        return ProposedFix(
            action="revert_config",
            parameters={"service": svc, "key": ref},
            rationale=f"Restore {ref} to {c.get('from_value')}, the value it had before the failure.",
            risk="Whatever the change was meant to achieve is undone.",
            undo=f"set {ref} to {c.get('to_value')} again",
        )
    if kind == "flag":
        return _flag_fix(c, f)
    if kind == "infra" and svc:
        note = ref.lower()
        if any(w in note for w in ("failover", "replica", "primary", "region", "zone", "cluster")):
            return ProposedFix(
                action="failover",
                parameters={"service": svc},
                rationale=f"The infra change ({ref}) preceded the failure; fail {svc} over to a healthy instance.",
                risk="A second switch-over can drop in-flight connections.",
                undo="fail back",
            )
        return ProposedFix(
            action="restart",
            parameters={"service": svc},
            rationale=f"The infra change ({ref}) preceded the failure on {svc}.",
            risk="Brief capacity loss during the restart.",
            undo="none needed",
        )
    return None


def dependency_candidates(
    f: Findings, states: dict[str, ServiceState], graph: Graph, services: set[str]
) -> list[Candidate]:
    """A dependency is blamed when callers' new errors name it, or it fails on its own first."""
    out: dict[str, Candidate] = {}
    for caller, cst in states.items():
        if cst.affected < 0.3:
            continue
        texts: list[tuple[BadPattern | None, str]] = [(b, b.example or b.template) for b in cst.bad_patterns]
        texts += [
            (None, f"{i.get('title', '')} {i.get('culprit', '')}") for i in f.sentry if i.get("service") == caller
        ]
        for dep in services:
            if dep == caller:
                continue
            mention = 0.0
            example = ""
            for b, text in texts:
                m = mentions_service(text, dep)
                if m and any(w in text.lower() for w in DEPENDENCY_FAIL_WORDS):
                    m = min(1.0, m + 0.1)
                weight = (b.weight if b else 0.5) * m
                if weight > mention:
                    mention, example = weight, text
            edge = dep in graph.deps.get(caller, set())
            dst = states.get(dep)
            own = dst.affected if dst else 0.0
            earlier = bool(dst and dst.onset and cst.onset and dst.onset <= cst.onset)
            if mention == 0.0 and not (edge and own > 0.3):
                continue
            score = 0.45 * min(mention, 1.0) + (0.15 if edge else 0.0) + 0.35 * own * (1.0 if earlier else 0.6)
            score *= 0.85
            ev = []
            if mention:
                ev.append(
                    Evidence(
                        tool="log_patterns",
                        ref=example[:200],
                        weight=round(mention, 2),
                        finding=f'{caller}\'s new errors name {dep}: "{example[:160]}"',
                    )
                )
            if edge:
                ev.append(
                    Evidence(tool="service_dependencies", ref=f"{caller}->{dep}", finding=f"{caller} depends on {dep}")
                )
            if dst and own > 0.1:
                ev.append(
                    Evidence(
                        tool="metric_anomalies",
                        weight=round(own, 2),
                        finding=f"{dep} is itself affected ({own:.2f})"
                        + (", and its trouble started first" if earlier else ""),
                    )
                )
            else:
                ev.append(
                    Evidence(
                        tool="metric_anomalies",
                        weight=0.0,
                        finding=f"{dep} shows no anomaly of its own in our telemetry (external, or a symptom)",
                    )
                )
            cand = out.get(dep)
            if cand is None or score > cand.score:
                out[dep] = Candidate(
                    Suspect(kind="dependency", service=dep, ref=dep),
                    score,
                    f"{dep} is failing and {caller} suffers from it",
                    ev,
                    confirm=f"Check {dep}'s own health page/metrics and whether other callers of {dep} fail too.",
                    rule_out=f"{dep} answers normally to other callers, "
                    f"or {caller} fails on calls that do not reach {dep}.",
                    fix=ProposedFix(
                        action="failover",
                        parameters={"service": dep},
                        rationale=f"Route {caller}'s calls away from the failing {dep}.",
                        risk="The standby may be colder or behind.",
                        undo=f"fail {dep} back",
                    ),
                )
            elif cand is not None:
                cand.score = min(1.0, cand.score + 0.05)  # several callers blame the same dependency
    return list(out.values())


def resource_candidates(f: Findings, states: dict[str, ServiceState]) -> list[Candidate]:
    out: dict[tuple[str, str], Candidate] = {}

    def add(svc: str, res: str, strength: float, ev: Evidence) -> None:
        key = (svc, res)
        cand = out.get(key)
        if cand is None:
            action: Literal["restart", "scale"] = "restart" if res in ("memory", "file-descriptors") else "scale"
            fix = ProposedFix(
                action=action,
                parameters={"service": svc},
                rationale=f"Relieve {res} pressure on {svc} while the cause is fixed.",
                risk="Treats the symptom; it will come back if the cause stays.",
                undo="scale back down" if action == "scale" else "none needed",
            )
            cand = out[key] = Candidate(
                Suspect(kind="resource", service=svc, ref=res),
                0.0,
                f"{svc} is running out of {res}",
                [],
                confirm=f"Check {svc}'s {res} usage against its limit and what consumes it.",
                rule_out=f"{res} usage on {svc} is normal.",
                fix=fix,
            )
        cand.score = max(cand.score, strength)
        cand.evidence.append(ev)

    for svc, st in states.items():
        for a in st.anomalies:
            name = str(a.get("name") or "").lower()
            up = str(a.get("direction") or "up") == "up"
            for res, keys in RESOURCE_METRIC_WORDS.items():
                if any(k in name for k in keys):
                    if res == "disk" and "free" in name:
                        up = not up
                    if up:
                        ratio = float(a.get("change_ratio") or 1.0)
                        strength = min(0.6, 0.3 + abs(math.log(max(ratio, 1e-6))) / 6)
                        add(
                            svc,
                            res,
                            strength,
                            Evidence(
                                tool="metric_anomalies",
                                ref=f"{svc}/{a.get('name')}",
                                finding=f"{a.get('name')} on {svc} rose {ratio:.1f}x",
                            ),
                        )
                    break
        for b in st.bad_patterns:
            low = b.text.lower()
            for res, keys in RESOURCE_LOG_WORDS.items():
                if any(k in low for k in keys):
                    add(
                        svc,
                        res,
                        min(0.62, 0.35 + b.weight / 4),
                        Evidence(
                            tool="log_patterns",
                            ref=b.template[:200],
                            finding=f'{svc} logs "{b.template[:140]}" ({b.count_after}x)',
                        ),
                    )
                    break
    return list(out.values())


def _extract_hosts(text: str) -> list[str]:
    hosts = []
    for m in _HOST_RE.finditer(text):
        h = m.group(1).lower().strip(".")
        if re.fullmatch(r"[\d.]+", h) or h.count(".") < 1:
            continue
        tld = h.rsplit(".", 1)[-1]
        if tld in ("py", "go", "js", "java", "rb", "ts", "log", "json", "yaml", "txt", "html", "php"):
            continue
        hosts.append(h)
    return hosts


def signal_candidates(f: Findings, states: dict[str, ServiceState]) -> list[Candidate]:
    """Certificates, damaged data and traffic sources, named in log text, alerts or labels."""
    out: dict[tuple[str, str, str], Candidate] = {}

    def put(c: Candidate) -> None:
        k = c.key()
        if k not in out or out[k].score < c.score:
            out[k] = c

    alert_text = " ".join(f"{a.get('title', '')} {a.get('summary', '')}" for a in f.alerts)
    for svc, st in states.items():
        for b in st.bad_patterns:
            low = b.text.lower()
            if any(w in low for w in CERT_WORDS):
                hosts = _extract_hosts(b.example) or _extract_hosts(b.template)
                for h in hosts[:1]:
                    put(
                        Candidate(
                            Suspect(kind="certificate", service=None, ref=h),
                            0.55 + 0.35 * min(1.0, b.weight),
                            f"TLS certificate for {h} failed",
                            [
                                Evidence(
                                    tool="log_patterns",
                                    ref=b.template[:200],
                                    finding=f"{svc} logs TLS/certificate errors for {h}: "
                                    f'"{b.example[:160] or b.template[:160]}"',
                                )
                            ],
                            confirm=f"openssl s_client -connect {h}:443 and read notAfter / the chain.",
                            rule_out=f"The certificate for {h} is valid and trusted.",
                            fix=ProposedFix(
                                action="renew_certificate",
                                parameters={"ref": h},
                                rationale=f"Renew (or re-issue) the certificate served for {h}.",
                                risk="Low, if the new chain is complete.",
                                undo="restore the previous certificate",
                            ),
                        )
                    )
            if any(w in low for w in DATA_WORDS):
                table = None
                for rx in _TABLE_RES:
                    for src in (b.example, b.template):
                        m = rx.search(src)
                        if m and "<" not in m.group(1) and m.group(1).lower() not in STOPWORDS:
                            table = m.group(1).strip(".")
                            break
                    if table:
                        break
                if table:
                    put(
                        Candidate(
                            Suspect(kind="data", service=svc, ref=table),
                            0.5 + 0.35 * min(1.0, b.weight),
                            f"Data in {table} is damaged",
                            [
                                Evidence(
                                    tool="log_patterns",
                                    ref=b.template[:200],
                                    finding=f"{svc} reports bad data in {table}: "
                                    f'"{b.example[:160] or b.template[:160]}"',
                                )
                            ],
                            confirm=f"Query {table} for the rows named in the errors; compare with the last backup.",
                            rule_out=f"Rows in {table} are consistent.",
                            fix=ProposedFix(
                                action="restore_data",
                                parameters={"ref": table},
                                rationale=f"Restore {table} from the last good backup or snapshot.",
                                risk="Writes since the snapshot need replaying.",
                                undo="keep the damaged copy aside before restoring",
                            ),
                        )
                    )
    # Traffic: a named source plus a request-rate jump or rate-limit errors.
    rate_up = {}
    for a in f.anomalies:
        name = str(a.get("name") or "").lower()
        if (
            str(a.get("direction") or "up") == "up"
            and any(
                k in name
                for k in (
                    "requests",
                    "rps",
                    "qps",
                    "traffic",
                    "throughput",
                    "requests_per",
                    "_rate",
                    "sessions",
                    "inbound",
                    "queue_depth",
                    "queue_length",
                )
            )
            and "error" not in name
            and "latency" not in name
            and "seconds" not in name
        ):
            rate_up[str(a.get("service"))] = float(a.get("change_ratio") or 1.0)
    sources: dict[tuple[str, str], tuple[float, str]] = {}
    for al in f.alerts:
        labels = al.get("labels") or {}
        if isinstance(labels, dict):
            for k, v in labels.items():
                if str(k).lower() in TRAFFIC_LABELS and v:
                    svc = str(al.get("service") or "")
                    sources[(svc, str(v))] = (0.8, f"alert '{al.get('title')}' labels {k}={v}")
    for svc, st in states.items():
        for b in st.bad_patterns:
            for src in (b.example, b.template):
                for m in _TRAFFIC_RE.finditer(src):
                    val = m.group(2)
                    if "<" in val or val.lower() in STOPWORDS or val.isdigit():
                        continue
                    prev = sources.get((svc, val))
                    w = 0.5 + 0.4 * min(1.0, b.weight)
                    if prev is None or prev[0] < w:
                        sources[(svc, val)] = (w, f'{svc} logs "{src[:160]}"')
                    break
    for (svc, val), (w, why) in sources.items():
        ratio = rate_up.get(svc, 0.0) or max(rate_up.values(), default=0.0)
        strength = w * (0.6 + 0.4 * min(1.0, math.log(max(ratio, 1.0)) / 1.5)) if ratio else w * 0.6
        ev = [Evidence(tool="log_patterns" if "logs" in why else "incident_details", finding=why)]
        if ratio:
            ev.append(
                Evidence(tool="metric_anomalies", finding=f"request rate on {svc or 'the service'} rose {ratio:.1f}x")
            )
        put(
            Candidate(
                Suspect(kind="traffic", service=svc or None, ref=val),
                strength,
                f"Traffic surge from {val}",
                ev,
                confirm=f"Break down request rate by client; {val} should dominate the increase.",
                rule_out=f"Traffic from {val} is at its usual level.",
                fix=ProposedFix(
                    action="block_traffic",
                    parameters={"service": svc, "source": val} if svc else {"service": val, "source": val},
                    rationale=f"Rate-limit or block {val} to protect other users.",
                    risk=f"{val} is refused until unblocked; tell them.",
                    undo=f"unblock {val}",
                ),
            )
        )
    _ = alert_text
    return list(out.values())


def memory_boost(cands: list[Candidate], f: Findings) -> None:
    """Past incidents with the same service and kind of cause make a candidate a little likelier."""
    for hit in f.similar:
        score = float(hit.get("score") or 0.0)
        if score <= 0.2:
            continue
        text = f"{hit.get('root_cause', '')} {hit.get('countermeasures', '')} {hit.get('title', '')}".lower()
        svc = str(hit.get("service") or "")
        for c in cands:
            same_service = bool(svc) and (c.suspect.service or "") == svc
            kind_word = {
                "deploy": ("deploy", "version", "release", "rolled back", "rollback"),
                "config": ("config", "setting"),
                "flag": ("flag",),
                "dependency": ("outage", "provider"),
                "resource": ("memory", "disk", "cpu", "pool"),
                "traffic": ("traffic", "campaign", "client"),
                "certificate": ("certificate", "tls"),
                "data": ("table", "data", "migration"),
                "infra": ("infra", "failover", "node"),
            }[c.suspect.kind]
            if same_service and any(w in text for w in kind_word) and c.score > 0.2:
                c.score += 0.04 * min(score, 1.0)
                c.evidence.append(
                    Evidence(
                        tool="similar_incidents",
                        ref=str(hit.get("id") or ""),
                        finding=f"similar past incident {hit.get('id')}: {hit.get('root_cause') or hit.get('title')}",
                    )
                )


def discount_symptoms(cands: list[Candidate]) -> None:
    """Cause over symptom: a resource or dependency explained by a strong linked change ranks below it."""
    changes = [c for c in cands if c.suspect.kind in ("deploy", "config", "flag", "infra") and c.score >= 0.45]
    for c in cands:
        if c.suspect.kind not in ("resource", "dependency"):
            continue
        for ch in changes:
            if ch.score > c.score * 0.8 and (
                not ch.suspect.service
                or not c.suspect.service
                or ch.suspect.service == c.suspect.service
                or c.suspect.kind == "dependency"
            ):
                c.score *= 0.75
                c.evidence.append(
                    Evidence(
                        tool="reasoning",
                        weight=0.0,
                        finding=f"likely a symptom of {ch.suspect.kind} {ch.suspect.ref}, which precedes it",
                    )
                )
                break


def rank(f: Findings) -> tuple[list[Candidate], dict[str, ServiceState]]:
    """All candidates, best first (deterministic: ties broken by kind and ref)."""
    bads = bad_patterns(f)
    states = service_states(f, bads)
    graph = Graph(f.edges)
    services = known_services(f, graph)
    cands = change_candidates(f, states, graph, services)
    cands += dependency_candidates(f, states, graph, services)
    cands += resource_candidates(f, states)
    cands += signal_candidates(f, states)
    memory_boost(cands, f)
    discount_symptoms(cands)
    merged: dict[tuple[str, str, str], Candidate] = {}
    for c in cands:
        k = c.key()
        if k not in merged or merged[k].score < c.score:
            merged[k] = c
    ordered = sorted(merged.values(), key=lambda c: (-round(c.score, 6), c.suspect.kind, c.suspect.ref))
    return ordered, states


# ----------------------------------------------------------------------------------------------
# Step 3: the report


def _severity(f: Findings, states: dict[str, ServiceState]) -> tuple[str, str]:
    sevs = [
        str(a.get("severity") or "warning").lower()
        for a in f.alerts
        if str(a.get("status") or "firing").lower() != "resolved"
    ]
    affected = [s for s in states.values() if s.affected >= 0.5]
    critical_alert = "critical" in sevs
    core = [s.name for s in affected if any(w in s.name.lower() for w in CRITICAL_SERVICE_WORDS)]
    err_jump = any(
        "error" in str(a.get("name") or "").lower() and float(a.get("after") or 0) >= 0.05
        for s in affected
        for a in s.anomalies
    )
    if critical_alert and core and (err_jump or len(affected) >= 2):
        return "critical", f"critical alerts on customer-facing {', '.join(core)} with a high share of failing requests"
    if critical_alert or len(affected) >= 2:
        return "major", "critical alerts on " + ", ".join(
            sorted({str(a.get("service")) for a in f.alerts})
        ) + " but the failure is limited to part of the product"
    return "minor", "only warning-level alerts; degradation without a broken user flow"


def _impact(states: dict[str, ServiceState]) -> tuple[str, list[str]]:
    """Plain-words impact and the list of symptoms (what is observed, not why)."""
    symptoms: list[str] = []
    impacts: list[str] = []
    for s in sorted(states.values(), key=lambda s: -s.affected)[:4]:
        if s.affected < 0.3:
            continue
        for a in s.anomalies[:4]:
            name = str(a.get("name") or "")
            before, after = a.get("before"), a.get("after")
            symptoms.append(f"{name} on {s.name}: {_num(before)} -> {_num(after)}")
            low = name.lower()
            if "error" in low and isinstance(after, int | float):
                impacts.append(
                    f"about {after:.0%} of {s.name} requests fail" if after <= 1 else f"{s.name} returns errors"
                )
            elif ("latency" in low or "seconds" in low or "p95" in low or "p99" in low) and str(
                a.get("direction")
            ) == "up":
                impacts.append(
                    f"{s.name} is slow ({_num(before)}s -> {_num(after)}s)" if "seconds" in low else f"{s.name} is slow"
                )
            elif (
                str(a.get("direction")) == "down"
                and isinstance(after, int | float)
                and isinstance(before, int | float)
                and before
                and after < 0.3 * before
                and not any(w in low for w in ("memory", "disk", "cpu"))
            ):
                impacts.append(
                    f"{s.name} has {'stopped' if after <= 0.05 * before else 'slowed'} its work "
                    f"({name.replace('_', ' ')}); pending work is delayed, nothing shows data was lost"
                )
        for b in s.bad_patterns[:3]:
            symptoms.append(f'{s.name} logs "{b.template[:120]}" ({b.count_after}x)')
    seen: set[str] = set()
    impacts = [i for i in impacts if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]
    if not impacts:
        names = [s.name for s in states.values() if s.affected >= 0.3]
        impacts = [f"{', '.join(names) or 'the service'} is degraded; users may see errors or delays"]
    return "; ".join(impacts[:3]).capitalize() + ".", symptoms[:12]


def build_report(
    f: Findings, *, update_minutes: int, investigator: str = "offline", max_hypotheses: int = 5
) -> TriageReport:
    """The full triage report from the evidence (no I/O, deterministic)."""
    cands, states = rank(f)
    top_cands = [c for c in cands if c.score > 0.05][:max_hypotheses]
    hyps: list[Hypothesis] = []
    total = sum(c.score for c in top_cands) or 1.0
    for i, c in enumerate(top_cands):
        conf = max(
            0.01, min(0.95, c.score / total * (0.9 if i == 0 else 1.0) + (0.1 if i == 0 and c.score > 0.8 else 0))
        )
        status: Literal["likely", "suspected"] = "likely" if i == 0 and c.score >= 0.6 else "suspected"
        c.evidence.insert(
            0,
            Evidence(
                tool="reasoning",
                weight=round(c.score, 3),
                finding=f"ranked {i + 1} with score {c.score:.2f} (linkage x timing + corroboration)",
            ),
        )
        hyps.append(
            Hypothesis(
                title=c.title,
                suspect=c.suspect,
                confidence=round(conf, 2),
                evidence=c.evidence[:8],
                confirm=c.confirm,
                rule_out=c.rule_out,
                status=status,
                fix=c.fix,
            )
        )
    fix = hyps[0].fix if hyps else None
    if fix is not None:
        fix.validate_catalog()
    severity, why = _severity(f, states)
    impact, symptoms = _impact(states)
    title = str(f.incident.get("title") or "incident")
    inc_id = str(f.incident.get("id") or "")
    if hyps:
        summary = (
            f"{title}: most likely cause is {hyps[0].title.lower()} "
            f"({hyps[0].suspect.kind} {hyps[0].suspect.ref}, confidence {hyps[0].confidence:.0%})."
        )
    else:
        summary = f"{title}: no cause identified yet from changes, logs, metrics or Sentry."
    template = "application_bug"
    if hyps and hyps[0].suspect.kind in ("deploy", "config", "flag", "infra"):
        template = "deployment_error"
    elif hyps and hyps[0].suspect.kind == "traffic":
        template = "traffic_surge"
    next_due = f.now + timedelta(minutes=update_minutes)
    report = TriageReport(
        summary=summary,
        severity=severity,  # type: ignore[arg-type]
        severity_reason=why,
        user_impact=impact,
        symptoms=symptoms,
        hypotheses=hyps,
        proposed_fix=fix,
        next_update_due=next_due,
        customer_template=template,  # type: ignore[arg-type]
        investigator=investigator,
        notes=[f"tool problem: {e}" for e in f.errors[:10]],
    )
    report.internal_update, report.customer_message = render_messages(report, f, inc_id, title)
    return report


def render_messages(report: TriageReport, f: Findings, incident_id: str, title: str) -> tuple[str, str]:
    """Internal update and customer message, from agent/messages.py templates when present."""
    services = [str(s) for s in f.incident.get("services") or []]
    started = parse_time(f.incident.get("started_at")) or f.incident_start()
    try:
        from agent import messages as msg

        fields = msg.report_fields(
            incident_id=incident_id,
            title=title,
            severity=report.severity,
            status=str(f.incident.get("status") or "open"),
            services=services,
            started_at=started,
            user_impact=report.user_impact,
            report=report,
            next_update=report.next_update_due,
            approval="pending approval" if report.proposed_fix else "none requested",
        )
        return (
            msg.render_fields("internal", report.customer_template, fields),
            msg.render_fields("customer", report.customer_template, fields),
        )
    except Exception:  # noqa: BLE001 - templates are optional; fall back to plain text
        top = report.hypotheses[0] if report.hypotheses else None
        fix = report.proposed_fix.describe() if report.proposed_fix else "none yet"
        internal = (
            f"[{incident_id}] {report.severity.upper()} {title}\nImpact: {report.user_impact}\n"
            f"Likely cause: {top.title if top else 'under investigation'}\nProposed fix (needs approval): {fix}\n"
            f"Next update: {report.next_update_due:%H:%M} UTC"
            if report.next_update_due
            else ""
        )
        customer = (
            f"We are investigating an issue affecting {', '.join(services) or 'our service'}. "
            f"{report.user_impact} We will post an update by "
            f"{report.next_update_due:%H:%M} UTC."
            if report.next_update_due
            else ""
        )
        return internal, customer
