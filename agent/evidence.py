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
# Revenue and sign-in paths: a noticeable failure there is critical.
CRITICAL_SERVICE_WORDS = ("checkout", "payment", "login", "auth", "cart", "order", "billing", "signup")
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
    "sender",
    "origin",
    "integration",
    "org",
    "organization",
    "merchant",
    "requester",
    "producer",
    "publisher",
    "subscriber",
)
_TRAFFIC_RE = re.compile(
    r"(?<![a-z])(?:utm_)?(client(?:[_ -]?id)?|campaign(?:[_ -]?id)?|tenant(?:[_ -]?id)?|customer(?:[_ -]?id)?|"
    r"partner(?:[_ -]?id)?|account(?:[_ -]?id)?|api[_-]?key(?:[_-]?id)?|consumer|caller|app[_-]?id|"
    r"user[_-]?agent|sender(?:[_-]?id)?|origin|integration(?:[_-]?id)?|org(?:ani[sz]ation)?(?:[_-]?id)?|"
    r"merchant(?:[_-]?id)?|requester|producer|publisher|subscriber(?:[_-]?id)?)\s*[=:]\s*[\"']?([A-Za-z0-9][\w.\-/]*[A-Za-z0-9])",
    re.IGNORECASE,
)
THROTTLE_WORDS = ("rate limit", "ratelimit", "throttl", "quota", "too many requests", "429", "limit exceeded")
_HOST_RE = re.compile(r"\b((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z])\b", re.IGNORECASE)
# (pattern, how sure the match is a table name)
_TABLE_RES = (
    (re.compile(r"\btable\s+[\"'`]?([A-Za-z_][\w.]*)", re.IGNORECASE), 1.0),
    (re.compile(r"\brelation\s+[\"'`]?([A-Za-z_][\w.]*)", re.IGNORECASE), 1.0),
    (re.compile(r"\b(?:dataset|data set|collection)\s+[\"'`]?([A-Za-z_][\w.\-]*)", re.IGNORECASE), 1.0),
    (re.compile(r"[\"'`]?([A-Za-z_][\w.]*)[\"'`]?\s+table\b", re.IGNORECASE), 0.6),
    (re.compile(r"\b(?:rows?|records?)\s+(?:in|of|from)\s+[\"'`]?([A-Za-z_][\w.]*)", re.IGNORECASE), 0.8),
)
CERT_WORDS = ("certificate", "x509", "tls handshake", "ssl", "cert ", "certificate_verify_failed")
DATA_DAMAGE_WORDS = (
    " null",
    "zero",
    " 0.00",
    "duplicate key",
    "corrupt",
    "checksum",
    "integrity",
    "inconsistent",
    "constraint",
)
WEAK_DAMAGE_WORDS = ("missing", "mismatch", "negative", "wrong", "invalid", "stale", "orphan", "truncated")
# Impossible values a reader trips over (whole words: `nan` must not match `tenant`).
_BAD_VALUE_RE = re.compile(
    r"\b(?:nan|not a number|infinity|inf|invalid value|out of range|non-numeric|unparseable|bad value|"
    r"empty value|divide by zero|division by zero|"
    r"negative (?:total|amount|price|balance|quantity|stock|count|sum|rate|weight))\b",
    re.IGNORECASE,
)


def damage_strength(text: str) -> int:
    """2: the text reports damaged or impossible values (constraint, corrupt, NaN, zero); 1: a weaker
    hint (missing, mismatch, invalid); 0: nothing about data."""
    low = f" {text.lower()}"
    if any(w in low for w in DATA_DAMAGE_WORDS + DATA_WORDS) or _BAD_VALUE_RE.search(text):
        return 2
    return 1 if any(w in low for w in WEAK_DAMAGE_WORDS) else 0


CHANGE_WRITES_DATA = (
    "migration",
    "backfill",
    "import",
    "cleanup",
    "purge",
    "delete",
    "truncate",
    "script",
    "restore",
    "reindex",
    "rewrite",
    "bulk",
    "batch update",
    "data fix",
)
_SNAKE_RE = re.compile(r"\b(?:in|into|from|on|table|relation)\s+[\"'`]?([a-z][a-z0-9]*_[a-z0-9_]+)\b")
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
    "429",
    "too many requests",
    "throttl",
    "rate limit",
    "quota",
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
    log_samples: list[dict[str, Any]] = field(default_factory=list)  # {service, text, lines}
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
    exact_onset: datetime | None = None  # from log first_seen / Sentry: to the second
    signals: list[Evidence] = field(default_factory=list)
    bad_patterns: list[BadPattern] = field(default_factory=list)
    anomalies: list[dict[str, Any]] = field(default_factory=list)

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
    target: str | None = None  # changes: the affected service the change was judged against
    origin: str | None = None  # log-named causes: the service whose errors name it
    change: dict[str, Any] | None = None  # changes: the recent_changes record

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
    """Plausibility that a change `gap` minutes before the onset caused it.

    Deploys, config and flag changes show their effect within minutes; a change that landed after the
    trouble began cannot be its cause (a small tolerance covers metric scrape resolution).
    """
    if gap_minutes is None:
        return 0.5
    if gap_minutes < -0.75:
        return 0.08
    if gap_minutes < 0:
        return 0.6
    if gap_minutes <= 5:
        return 1.0
    if gap_minutes <= 20:
        return 1.0 - 0.3 * (gap_minutes - 5) / 15
    if gap_minutes <= 90:
        return 0.7 - 0.35 * (gap_minutes - 20) / 70
    return 0.25


def norm_affected(state: ServiceState | None, max_aff: float) -> float:
    """How affected a service is, relative to the worst hit (a clearly affected service counts at least half)."""
    if state is None or state.affected <= 0:
        return 0.0
    rel = state.affected / (max_aff or 1.0)
    return 0.5 + 0.5 * rel if state.affected >= 0.3 else rel


def _named_failing(state: ServiceState, dep: str, services: Iterable[str]) -> bool:
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
            named = _named_failing(st, d, services) and dst.onset < st.onset + timedelta(seconds=15)
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


def _restore_fix(table: str, rationale: str, risk: str) -> ProposedFix:
    """Restoring a damaged or emptied table: the only fix for data suspects."""
    return ProposedFix(action="restore_data", parameters={"ref": table}, rationale=rationale, risk=risk,
                       undo=f"keep the current copy of {table} aside before restoring")


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
    for e in f.flag_events:  # newest first: the latest switch of this flag is the one to undo
        if e.get("flag") == flag and e.get("previous"):
            previous = str(e["previous"])
            break
    on_words = {"on", "true", "enabled", "yes", "1"}
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
    hurt = victims(states, graph, services)
    # Words a change shares with templates that only appeared after it (surged old noise does not count).
    new_bad_text = " ".join(b.text for st in states.values() if st.affected >= 0.3 for b in st.bad_patterns if b.new)
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
            own_state = states.get(svc)
            for caller in graph.callers.get(svc, set()):
                # Callers count when the changed service is itself hurt, or the callers' errors name it.
                if caller in states and _named_failing(states[caller], svc, services):
                    links[caller] = max(links.get(caller, 0.0), 0.9)  # the callers blame this very service
                elif (own_state is not None and own_state.affected >= 0.3) or (
                    caller in states and mentions_service(_bad_text(states[caller]), svc, services) >= 0.7
                ):
                    links[caller] = max(links.get(caller, 0.0), 0.6)
            # A change can overload or damage what it calls (N+1 queries, a migration).
            dep_link = {"deploy": 0.55, "config": 0.4, "infra": 0.6}.get(kind, 0.4)
            for dep in graph.deps.get(svc, set()):
                links[dep] = max(links.get(dep, 0.0), dep_link)
        if kind == "flag" or not svc:
            for s, m in key_links(refval, services).items():
                links[s] = max(links.get(s, 0.0), 0.9 * m)
            for s in services:
                m = mentions_service(str(c.get("note") or ""), s, services)
                if m:
                    links[s] = max(links.get(s, 0.0), 0.6 * m)
            for s, state in states.items():
                if refval.lower() in _bad_text(state).lower():
                    links[s] = 1.0
                    reasons.append(f"{s} logs name {refval}")
        if kind == "infra" and c.get("note"):
            for s in services:
                if mentions_service(str(c["note"]), s, services):
                    links[s] = max(links.get(s, 0.0), 0.9)
        best = 0.0
        best_svc: str | None = None
        for s, strength in sorted(links.items()):
            val = strength * norm_affected(states.get(s), max_aff)
            if val > best:
                best, best_svc = val, s
        if not links and kind in ("flag", "infra") and at is not None:
            # Nothing names it: tie it to the first service in trouble, by timing alone (weakly).
            starters = [st for st in states.values() if st.affected >= 0.3 and st.onset and st.name not in hurt]
            first = min(starters, key=lambda st: st.onset or at, default=None)
            if first is not None and first.onset is not None:
                g = _minutes(first.onset, at)
                strength = 0.6 if 0 <= g <= 5 else 0.4 if 0 <= g <= 15 else 0.25
                best, best_svc = strength * norm_affected(first, max_aff), first.name
                reasons.append(f"no service is named by it; {first.name}'s trouble began {g:.0f} min after it")
        upstream: list[str] = []
        if best_svc in hurt:
            # best_svc only suffers from an earlier failure: judge the change where the trouble began.
            roots = [(links[u] * norm_affected(states.get(u), max_aff), u) for u in hurt[best_svc] if u in links]
            if roots:
                best, best_svc = max(roots)
            else:
                upstream = list(hurt[best_svc])
        onset = None
        bstate = states.get(best_svc) if best_svc else None
        if bstate is not None and bstate.onset:
            onset = bstate.onset
        elif best_svc:
            onset = fallback_onset
        gap = _minutes(onset, at) if (onset and at) else None
        tf = time_factor(gap)
        if (
            gap is not None
            and gap < 0
            and at is not None
            and bstate is not None
            and bstate.exact_onset
            and bstate.onset
            and bstate.exact_onset > at
            and _minutes(at, bstate.onset) <= 2.0
        ):
            # Only a metric change point (minute resolution, it can lead the real start) is earlier;
            # the first error line came after the change.
            tf = 0.9
            gap = 0.0
        score = best * tf
        ev: list[Evidence] = []
        if upstream:
            score *= 0.45
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
        if upstream:
            ev.append(
                Evidence(
                    tool="reasoning",
                    weight=0.0,
                    finding=f"ruled down: {best_svc}'s trouble follows {', '.join(upstream)}, which failed first "
                    "and is not touched by this change",
                )
            )
        # Corroboration: Sentry release, shared words between change note and new errors, log naming.
        bonus = 0.0
        if kind == "deploy" and svc and tf >= 0.5:
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
        note_words -= {w for svc_name in services for w in words(svc_name.replace("-", " "))}
        if best_svc and note_words and tf > 0.2 and best > 0.15:
            overlap = note_words & words(
                new_bad_text + " " + " ".join(f"{i.get('title', '')} {i.get('culprit', '')}" for i in f.sentry)
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
        if gap is not None and gap < -0.75:
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
                target=best_svc,
                change=c,
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
    """A dependency is blamed when callers' new errors name it failing, or it fails on its own first.

    The deepest failing link wins: a dependency that is itself a victim of another one ranks lower, and
    a caller whose trouble follows its dependency's is not blamed at all.
    """
    hurt = victims(states, graph, services)
    changed = {str(c.get("service")) for c in f.changes if c.get("service")}
    out: dict[str, Candidate] = {}
    for caller, cst in sorted(states.items()):
        if cst.affected < 0.3:
            continue
        caller_root = caller not in hurt
        texts: list[tuple[BadPattern | None, str]] = [(b, b.example or b.template) for b in cst.bad_patterns]
        texts += [
            (None, f"{i.get('title', '')} {i.get('culprit', '')}") for i in f.sentry if i.get("service") == caller
        ]
        for dep in sorted(services):
            if dep == caller:
                continue
            mention = 0.0
            example = ""
            named_failing = False
            for b, text in texts:
                m = mentions_service(text, dep, services)
                if not m:
                    continue
                failing = any(w in text.lower() for w in DEPENDENCY_FAIL_WORDS)
                weight = min(1.0, (b.weight if b else 0.5) * m) * (1.0 if failing else 0.5)
                if weight > mention:
                    mention, example, named_failing = weight, text, failing
            edge = dep in graph.deps.get(caller, set())
            dst = states.get(dep)
            own = dst.affected if dst else 0.0
            if mention == 0.0 and not (edge and own > 0.3):
                continue
            if dst is not None and own > 0.1:
                earlier = bool(dst.onset and cst.onset and dst.onset <= cst.onset)
                dep_root = dep not in hurt
                score = 0.85 * (0.35 * mention + 0.15 * edge + 0.45 * own * (1.0 if earlier else 0.6))
                score *= 1.0 if dep_root else 0.6
            else:
                earlier = False
                dep_root = True
                # No telemetry of its own (a third party): the callers' errors are all we have.
                base = 0.5 if named_failing else 0.25
                score = (base + 0.45 * mention + 0.05 * edge) * (1.0 if caller_root else 0.6)
                if dep in changed:
                    score *= 0.7  # ours, and it just changed: the change is the better suspect
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
            if dst is not None and own > 0.1:
                ev.append(
                    Evidence(
                        tool="metric_anomalies",
                        weight=round(own, 2),
                        finding=f"{dep} is itself affected ({own:.2f})"
                        + (", and its trouble started first" if earlier else "")
                        + ("" if dep_root else f"; but it follows {', '.join(hurt.get(dep, []))}"),
                    )
                )
            else:
                ev.append(
                    Evidence(
                        tool="metric_anomalies",
                        weight=0.0,
                        finding=f"{dep} has no telemetry here (a third party or unmonitored); "
                        f"{caller} {'is the first service in trouble' if caller_root else 'is itself downstream'}",
                    )
                )
            cand = out.get(dep)
            if cand is None or score > cand.score:
                out[dep] = Candidate(
                    Suspect(kind="dependency", service=dep, ref=dep),
                    score + (0.05 if cand is not None else 0.0),
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
                    )
                    if dst is not None and own > 0.1
                    else _third_party_fix(dep, caller, f),
                )
            else:
                cand.score = min(cand.score + 0.05, max(cand.score, score) + 0.1)  # several callers agree
    return list(out.values())


_OFF_VARIANTS = frozenset({"off", "false", "disabled", "none", "no", "0"})


def _third_party_fix(dep: str, caller: str, f: Findings) -> ProposedFix:
    """A dependency without telemetry of its own is a vendor we cannot fail over: switch the flag that
    routes to it to another variant when one does, otherwise fail over the caller we operate."""
    target = dep.lower()
    for fl in f.flags:
        key = str(fl.get("key") or fl.get("flag") or "")
        variants = fl.get("variants") or {}
        if not key or not isinstance(variants, dict) or str(fl.get("state") or "").upper() == "DISABLED":
            continue
        names = {str(n): str(v).lower() for n, v in variants.items()}
        routed = [n for n, v in names.items() if target in (n.lower(), v)]
        if not routed:
            continue
        current = str(fl.get("default_variant") or fl.get("defaultVariant") or "")
        if current and current not in routed:
            continue  # the flag already routes elsewhere
        others = sorted(n for n, v in names.items() if n not in routed and n.lower() not in _OFF_VARIANTS)
        if others:
            return ProposedFix(
                action="set_flag_variant",
                parameters={"flag": key, "variant": others[0]},
                rationale=f"{key} routes {caller}'s calls to the failing {dep}; switch it to '{others[0]}'.",
                risk=f"All traffic moves to {others[0]}; check its capacity and cost.",
                undo=f"set {key} back to '{routed[0]}'",
            )
    return ProposedFix(
        action="failover",
        parameters={"service": caller},
        rationale=f"{dep} is a third party we cannot fail over; fail over {caller}, which we run, to its fallback.",
        risk=f"{caller}'s fallback path may be slower or costlier.",
        undo=f"fail {caller} back",
    )


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


# A bare snake_case identifier standing on its own (`(ledger_rows rate=0)`, `ledger_rows: 3 rows ...`):
# not a key (`x_id=`), a call (`f_x(`), a dotted path (`mod.f_x`) or an attribute.
_BARE_SNAKE_RE = re.compile(r"(?<![\w.=/<>\[-])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w(=\[<>.-]|\.\w)")
# Suffixes of fields, units and metric names, not of tables.
_FIELD_SUFFIXES = (
    "_id", "_ids", "_ms", "_us", "_ns", "_s", "_sec", "_seconds", "_total", "_count", "_ratio", "_bytes",
    "_at", "_ts", "_time", "_per_second", "_per_minute", "_rate", "_pct", "_percent", "_key", "_url",
    "_name", "_type", "_size", "_len", "_version", "_code", "_status", "_level", "_flag",
)
BARE_TABLE_SURE = 0.5


def _tables(text: str) -> list[tuple[str, float]]:
    """Table names a log line points at: explicit (`table invoices`, `relation "x"`), snake_case after
    in/from (0.7), or, only in a line reporting impossible values, a bare snake_case name (0.5): the
    thing holding the bad values is usually named next to them."""
    out: list[tuple[str, float]] = []
    for rx, sure in _TABLE_RES:
        for m in rx.finditer(text):
            name = m.group(1).strip(".")
            if "<" not in name and name.lower() not in STOPWORDS and not name.isdigit():
                out.append((name, sure))
    for m in _SNAKE_RE.finditer(text):
        out.append((m.group(1), 0.7))
    if damage_strength(text) == 2:
        seen = {n for n, _ in out}
        for m in _BARE_SNAKE_RE.finditer(text):
            name = m.group(1)
            if name not in seen and not name.endswith(_FIELD_SUFFIXES):
                seen.add(name)
                out.append((name, BARE_TABLE_SURE))
    return out


def table_mentions(states: dict[str, ServiceState]) -> dict[str, set[tuple[str, str]]]:
    """Per table name: the (service, template) pairs of new bad lines reporting damage that name it.
    Two lines agreeing (a writer warning about a table and a reader failing on it) make a bare
    snake_case name credible as a table and its content as the trouble."""
    out: dict[str, set[tuple[str, str]]] = {}
    for svc, st in states.items():
        for b in st.bad_patterns:
            if b.new and damage_strength(b.text):
                for name, _ in _tables(b.example) + _tables(b.template):
                    out.setdefault(name, set()).add((svc, b.template))
    return out


def traffic_sources(text: str) -> list[str]:
    """Values that name who sends requests (client ids, campaigns, tenants, API keys) in one line."""
    return [v for _, v in traffic_pairs(text)]


def traffic_pairs(text: str) -> list[tuple[str, str]]:
    """(key, value) pairs such as ("client_id", "client-1234") or ("campaign", "winter-promo")."""
    out = []
    for m in _TRAFFIC_RE.finditer(text):
        val = m.group(2)
        masked = "<" in text[m.end(2) : m.end(2) + 2]  # `client-<NUM>`: a template, not a value
        if masked or "<" in val or val.lower() in STOPWORDS or val.isdigit() or len(val) < 3:
            continue
        out.append((m.group(1).lower(), val))
    return out


def _varies_per_line(template: str, key: str) -> bool:
    """True when the masker replaced the value after `key` by an id placeholder (`tenant=<ID>`): ids,
    hashes and addresses are per-request tokens, so the example's value is one random line, not a source
    dominating the load. Drain's own `<*>` only says values differ, and is left to the line counts."""
    rx = rf"(?<![a-z]){re.escape(key)}\s*[=:]\s*[\"']?<(?!\*>)[A-Z]+>"
    return re.search(rx, template, re.IGNORECASE) is not None


def _own_demand(key: str) -> bool:
    """Campaigns (and launches) are our own customers arriving: scale for them, do not block them."""
    return "campaign" in key or key in ("promotion", "promo", "launch")


def signal_candidates(
    f: Findings, states: dict[str, ServiceState], changes: list[Candidate] | None = None
) -> list[Candidate]:
    """Certificates, damaged data and traffic sources, named in log text, alerts or labels."""
    out: dict[tuple[str, str, str], Candidate] = {}

    def put(c: Candidate) -> None:
        k = c.key()
        if k not in out or out[k].score < c.score:
            out[k] = c

    mentions = table_mentions(states)
    named_by = {t: {svc for svc, _ in m} for t, m in mentions.items()}
    for svc, st in sorted(states.items()):
        new_bads = [b for b in st.bad_patterns if b.level in ("ERROR", "FATAL", "CRITICAL", "WARN", "WARNING")]
        for b in new_bads:
            low = b.text.lower()
            if any(w in low for w in CERT_WORDS):
                hosts = _extract_hosts(b.example) or _extract_hosts(b.template)
                for h in hosts[:1]:
                    put(
                        Candidate(
                            Suspect(kind="certificate", service=None, ref=h),
                            0.7 + 0.35 * min(1.0, b.weight) * (1.0 if b.new else 0.5),
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
                            origin=svc,
                        )
                    )
        # Damaged data: lines about bad values (NULL, zero, missing, corrupt) and the table they name.
        damage = [b for b in new_bads if b.new and damage_strength(b.text)]
        if not damage:
            continue
        strong = any(damage_strength(b.text) == 2 for b in damage)
        tables: dict[str, float] = {}
        for b in new_bads:
            for name, w in _tables(b.example) + _tables(b.template):
                tables[name] = max(tables.get(name, 0.0), w * (1.0 if b in damage else 0.8))
        strength = max(b.weight for b in damage)
        writer = None
        for ch in changes or []:
            note = " ".join(e.finding for e in ch.evidence[:1]).lower()
            if ch.score > 0.15 and any(w in note for w in CHANGE_WRITES_DATA):
                writer = ch
                break
        for table in tables:
            if len(mentions.get(table, ())) >= 2:
                tables[table] = min(1.0, tables[table] + 0.3)
        for table, tw in sorted(tables.items(), key=lambda kv: (-kv[1], kv[0]))[:2]:
            score = (0.45 + 0.3 * min(1.0, strength)) * tw * (1.0 if strong else 0.8) + (0.25 if writer else 0.0)
            ev = [
                Evidence(
                    tool="log_patterns",
                    ref=damage[0].template[:200],
                    finding=f'{svc} reports bad data: "{damage[0].example[:160] or damage[0].template[:160]}"'
                    f" (table {table})",
                )
            ]
            others = sorted(named_by.get(table, set()) - {svc})
            if others:
                ev.append(
                    Evidence(
                        tool="log_patterns",
                        finding=f"{', '.join(others)} also report{'s' if len(others) == 1 else ''} "
                        f"bad values in {table}",
                    )
                )
            if writer is not None:
                ev.append(
                    Evidence(
                        tool="recent_changes",
                        finding=f"{writer.suspect.kind} {writer.suspect.ref} wrote data shortly before; "
                        "rolling it back will not repair rows already written",
                    )
                )
            put(
                Candidate(
                    Suspect(kind="data", service=None, ref=table),
                    score,
                    f"Data in {table} is damaged",
                    ev,
                    confirm=f"Query {table} for the rows named in the errors; compare with the last backup.",
                    rule_out=f"Rows in {table} are consistent.",
                    fix=_restore_fix(table, f"Restore {table} from the last good backup or snapshot.",
                                     "Writes since the snapshot need replaying."),
                    origin=svc,
                )
            )
    for c in lost_rows_candidates(f, states):
        put(c)
    out.update({c.key(): c for c in traffic_candidates(f, states) if c.key() not in out})
    return list(out.values())


_ROW_METRIC_RE = re.compile(r"^(?:(?:rows|records|row_count|record_count)_(?:in_|of_)?([a-z][a-z0-9_]*)|"
                            r"([a-z][a-z0-9_]*?)_(?:rows|records|row_count|record_count)(?:_total)?)$")
_MISSING_ROW_RE = re.compile(
    r"\b(?:no (?:[a-z_]+ )?(?:rows?|records?|entry|entries)|(?:row|record)s? (?:not found|missing)|not found|"
    r"0 rows|zero rows|purged|deleted \d+ rows|falling back to defaults?)\b",
    re.IGNORECASE,
)


def lost_rows_candidates(f: Findings, states: dict[str, ServiceState]) -> list[Candidate]:
    """Deleted rows are data damage too: a table's row-count metric that falls sharply, backed by readers
    that stop finding rows (not found, no row, falling back to defaults) or a purge/delete job's log."""
    misses = [
        (svc, b)
        for svc, st in sorted(states.items())
        for b in st.bad_patterns
        if b.new and _MISSING_ROW_RE.search(b.text)
    ]
    out: list[Candidate] = []
    for a in f.anomalies:
        name = str(a.get("name") or "").lower()
        m = _ROW_METRIC_RE.match(name)
        if not m or str(a.get("direction") or "") != "down":
            continue
        ratio = float(a.get("change_ratio") or 1.0)
        if ratio > 0.8:
            continue  # a few percent is churn, not a purge
        table = m.group(1) or m.group(2)
        lost = min(1.0, (1.0 - max(ratio, 0.0)) / 0.5)
        purge = [
            str(ln.get("message") or "")
            for sample in f.log_samples
            for ln in sample.get("lines") or []
            if table in str(ln.get("message") or "").lower()
            and any(w in str(ln.get("message") or "").lower() for w in ("purg", "delet", "truncat", "drop"))
        ]
        purge += [
            f"{o.get('service')}'s {o.get('name')} rose {float(o.get('change_ratio') or 0.0):.0f}x"
            for o in f.anomalies
            if str(o.get("direction") or "up") == "up"
            and any(w in str(o.get("name") or "").lower() for w in ("delet", "purg", "truncat", "evict"))
        ]
        score = 0.35 + 0.25 * lost + (0.2 if misses else 0.0) + (0.15 if purge else 0.0)
        ev = [
            Evidence(
                tool="metric_anomalies",
                finding=f"{a.get('service')}'s {name} fell to {ratio:.0%} of its level: rows in {table} disappeared",
            )
        ]
        if misses:
            svc, b = misses[0]
            ev.append(
                Evidence(
                    tool="log_patterns", ref=b.template[:200], finding=f'{svc} stops finding rows: "{b.example[:160]}"'
                )
            )
        if purge:
            ev.append(Evidence(tool="search_logs", finding=f'something deleted rows: "{purge[0][:160]}"'))
        out.append(
            Candidate(
                Suspect(kind="data", service=None, ref=table),
                score,
                f"Rows in {table} were deleted",
                ev,
                confirm=f"Count rows in {table} against the last backup; look for a purge or retention job run.",
                rule_out=f"{table} holds as many rows as before.",
                fix=_restore_fix(
                    table, f"Restore the deleted rows of {table} from the last good backup or snapshot.",
                    "Rows changed since the snapshot need replaying; pause the deleting job first."),
                origin=str(a.get("service") or "") or None,
            )
        )
    return out


_RATE_WORDS = (
    "requests",
    "rps",
    "qps",
    "traffic",
    "requests_per",
    "sessions",
    "inbound",
    "visits",
    "calls_per",
    "messages_in",
    "events_in",
)


def traffic_candidates(f: Findings, states: dict[str, ServiceState]) -> list[Candidate]:
    """Who sends the load: a request-rate jump (ideally the first anomaly) plus a named source."""
    out: list[Candidate] = []
    surge: dict[str, tuple[float, bool]] = {}
    for svc, st in states.items():
        for a in st.anomalies:
            name = str(a.get("name") or "").lower()
            if str(a.get("direction") or "up") != "up" or not any(k in name for k in _RATE_WORDS):
                continue
            if any(k in name for k in ("error", "latency", "seconds", "duration", "fail", "retry", "5xx", "4xx")):
                continue
            ratio = float(a.get("change_ratio") or 1.0)
            onset = parse_time(a.get("onset"))
            others = [parse_time(o.get("onset")) for o in st.anomalies if o is not a]
            first = onset is not None and all(o is None or onset <= o + timedelta(seconds=30) for o in others)
            if st.exact_onset and onset and st.exact_onset < onset - timedelta(seconds=60):
                first = False
            if ratio >= 1.8 and (svc not in surge or ratio > surge[svc][0]):
                surge[svc] = (ratio, first)
    # Named sources: counts from sampled lines beat single examples.
    tallies: dict[tuple[str, str], float] = {}
    why: dict[tuple[str, str], str] = {}
    for sample in f.log_samples:
        svc = str(sample.get("service") or "")
        lines = sample.get("lines") or []
        counts: dict[str, int] = {}
        carrying = 0  # lines that name any source: the share is among those
        for ln in lines:
            vals = set(traffic_sources(str(ln.get("message") or "")))
            carrying += bool(vals)
            for v in vals:
                counts[v] = counts.get(v, 0) + 1
        total = max(1, carrying)
        for v, n in counts.items():
            share = n / total
            if share >= 0.2:
                k = (svc, v)
                tallies[k] = max(tallies.get(k, 0.0), 0.5 + 0.5 * share)
                why[k] = f"{v} appears in {n} of {total} sampled {svc} lines (search_logs)"
    kinds: dict[str, str] = {}
    for sample in f.log_samples:
        for ln in sample.get("lines") or []:
            for key, v in traffic_pairs(str(ln.get("message") or "")):
                kinds.setdefault(v, key)
    for svc, st in states.items():
        for b in st.bad_patterns:
            throttled = any(w in b.text.lower() for w in THROTTLE_WORDS)
            for key, v in traffic_pairs(b.example):
                if _varies_per_line(b.template, key):
                    continue  # the template masks it: a different value on every line, not one sender
                kinds.setdefault(v, key)
                k = (svc, v)
                w = (0.75 if throttled else 0.55) * (1.0 if b.new else 0.7)
                if k not in tallies or tallies[k] < w:
                    tallies[k] = max(tallies.get(k, 0.0), w)
                    why.setdefault(k, f'{svc} logs "{b.example[:160]}"')
    for al in f.alerts:
        labels = al.get("labels") or {}
        if isinstance(labels, dict):
            for k2, v in labels.items():
                if str(k2).lower() in TRAFFIC_LABELS and v and str(k2).lower() != "source":
                    k = (str(al.get("service") or ""), str(v))
                    kinds.setdefault(str(v), str(k2).lower())
                    tallies[k] = max(tallies.get(k, 0.0), 0.8)
                    why[k] = f"alert '{al.get('title')}' labels {k2}={v}"
    for (svc, val), w in sorted(tallies.items()):
        ratio, first = surge.get(svc, (0.0, False))
        if not ratio and surge:
            ratio, first = max(surge.values())
            first = False
        strength = w * (0.55 + (0.25 * min(1.0, math.log(max(ratio, 1.0)) / 1.2) if ratio else 0.0))
        if first:
            strength += 0.45
        ev = [
            Evidence(
                tool="search_logs" if "search_logs" in why[(svc, val)] else "log_patterns", finding=why[(svc, val)]
            )
        ]
        if ratio:
            ev.append(
                Evidence(
                    tool="metric_anomalies",
                    finding=f"request rate on {svc} rose {ratio:.1f}x"
                    + (", before any other symptom: the load came first" if first else ""),
                )
            )
        if _own_demand(kinds.get(val, "")) and svc:
            fix = ProposedFix(
                action="scale",
                parameters={"service": svc},
                rationale=f"{val} brings real customers; add capacity to {svc} rather than turn them away.",
                risk="Cost; downstream services (databases) must absorb the extra load too.",
                undo=f"scale {svc} back down after the peak",
            )
        else:
            params: dict[str, str | int] = {"service": svc, "source": val} if svc else {"service": val}
            fix = ProposedFix(
                action="block_traffic",
                parameters=params,
                rationale=f"Rate-limit or block {val} to protect other users.",
                risk=f"{val} is refused until unblocked; tell them.",
                undo=f"unblock {val}",
            )
        out.append(
            Candidate(
                Suspect(kind="traffic", service=svc or None, ref=val),
                strength,
                f"Traffic surge from {val}",
                ev,
                confirm=f"Break down request rate by client/campaign; {val} should dominate the increase.",
                rule_out=f"Traffic from {val} is at its usual level.",
                fix=fix,
            )
        )
    return out


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


def resource_explains_dependency(cands: list[Candidate]) -> None:
    """A failing dependency that ran out of a resource: the resource is the more precise cause,
    unless a change on that service explains both."""
    for r in cands:
        if r.suspect.kind != "resource" or r.score < 0.4:
            continue
        svc = r.suspect.service
        dep = next((c for c in cands if c.suspect.kind == "dependency" and c.suspect.service == svc), None)
        if dep is None:
            continue
        change = max(
            (
                c.score
                for c in cands
                if c.suspect.kind in ("deploy", "config", "flag", "infra") and c.suspect.service == svc
            ),
            default=0.0,
        )
        if change < dep.score and r.score < dep.score + 0.05:
            r.score = dep.score + 0.05
            r.evidence.append(
                Evidence(
                    tool="reasoning",
                    weight=0.0,
                    finding=f"{svc} fails its callers because it ran out of {r.suspect.ref}",
                )
            )


def load_first(cands: list[Candidate]) -> None:
    """When more inbound requests were the first symptom, a change on that service explains less."""
    loaded = {
        c.suspect.service
        for c in cands
        if c.suspect.kind == "traffic"
        and c.score >= 0.8
        and any("the load came first" in e.finding for e in c.evidence)
    }
    for c in cands:
        if c.suspect.kind in ("deploy", "config") and c.suspect.service in loaded:
            c.score *= 0.8
            c.evidence.append(
                Evidence(
                    tool="reasoning",
                    weight=0.0,
                    finding="the first symptom was more inbound requests, which this change does not send",
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


# ----------------------------------------------------------------------------------------------
# Step 2b: cross-candidate rules (how an on-call engineer weighs one suspect against another)

CHANGE_KINDS = ("deploy", "config", "flag", "infra")
# A change plausibly touches TLS when its text says so (short words that `words()` drops).
FAILURE_MODE_WORDS = (
    "timeout",
    "deadline",
    "retr",
    "backoff",
    "pool",
    "connect",
    "limit",
    "endpoint",
    "host",
    "region",
    "circuit",
    "breaker",
    "proxy",
    "keepalive",
    "concurren",
    "worker",
    "thread",
    "rate",
    "quota",
    "throttl",
)
_TLS_CHANGE_WORDS = ("tls", "ssl", "cert", "x509", "ca_bundle", "ca-bundle", "truststore", "keystore", "mtls")
# How long after a change on a dependency its own trouble may begin and still be blamed on it.
DEPENDENCY_CHANGE_WINDOW_MIN = 30.0
# Share of a service's new-error weight that must name one cause before that cause is taken at its word.
EXPLAINED_SHARE = 0.6


@dataclass
class NamedCause:
    """A cause a service's own new errors spell out: a certificate on a host, a failing dependency,
    damaged values in a table."""

    kind: SuspectKind
    ref: str
    text: str
    weight: float


def named_causes(states: dict[str, ServiceState], services: set[str]) -> dict[str, tuple[list[NamedCause], float]]:
    """Per service: the causes its new or surged error templates name, and the share of its error
    weight they account for (1.0: every new error says what broke)."""
    out: dict[str, tuple[list[NamedCause], float]] = {}
    mentions = table_mentions(states)
    for svc, st in sorted(states.items()):
        total = sum(b.weight for b in st.bad_patterns)
        if total <= 0:
            continue
        found: list[NamedCause] = []
        explained = 0.0
        for b in st.bad_patterns:
            text, low = b.text, b.text.lower()
            hit: tuple[SuspectKind, str] | None = None
            if any(w in low for w in CERT_WORDS):
                hosts = _extract_hosts(b.example) or _extract_hosts(b.template)
                if hosts:
                    hit = ("certificate", hosts[0])
            if hit is None and damage_strength(text) == 2 and not _write_rejected(text):
                # A bare snake_case name alone is too weak to say what broke, unless two lines agree.
                tables = [
                    (n, w)
                    for n, w in _tables(b.example) + _tables(b.template)
                    if w > BARE_TABLE_SURE or len(mentions.get(n, ())) >= 2
                ]
                if tables:
                    hit = ("data", max(tables, key=lambda t: t[1])[0])
            if hit is None and any(w in low for w in DEPENDENCY_FAIL_WORDS):
                deps = [d for d in sorted(services) if d != svc and mentions_service(text, d, services) >= 0.9]
                if deps:
                    hit = ("dependency", deps[0])
            if hit is not None:
                found.append(NamedCause(hit[0], hit[1], text, b.weight))
                explained += b.weight
        if found:
            out[svc] = (found, explained / total)
    return out


_WRITE_REJECT_WORDS = ("duplicate key", "violates", "unique constraint", "foreign key", "constraint")
_READ_DAMAGE_WORDS = ("corrupt", "checksum", "null", "zero", "0.00", "malformed", "truncated", "inconsistent")


def _write_rejected(text: str) -> bool:
    """A constraint refusing a write protects the table: the writer misbehaves, the data is fine
    (unless the line also reports values already damaged)."""
    low = text.lower()
    return any(w in low for w in _WRITE_REJECT_WORDS) and not (
        any(w in low for w in _READ_DAMAGE_WORDS) or _BAD_VALUE_RE.search(text)
    )


_NUM_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?=[a-z%]*\b)", re.IGNORECASE)


def _change_text(c: dict[str, Any]) -> str:
    parts = (c.get("note"), c.get("key"), c.get("flag"), c.get("from_value"), c.get("to_value"), c.get("version"))
    return " ".join(str(p) for p in parts if p not in (None, ""))


def change_relates_to(change: dict[str, Any], cause: NamedCause) -> str | None:
    """Why a change could have produced a cause its service's errors name, or None when nothing
    in the change (its service, key, note, values) touches it."""
    text = _change_text(change)
    low = text.lower()
    svc = str(change.get("service") or "")
    if cause.kind == "dependency" and svc == cause.ref:
        return f"it changed {cause.ref} itself"
    if cause.ref.lower() in low:
        return f"it names {cause.ref}"
    if cause.kind == "certificate" and any(w in low for w in _TLS_CHANGE_WORDS):
        return "it touches TLS settings"
    if cause.kind == "data" and any(w in low for w in CHANGE_WRITES_DATA):
        return "it writes data"
    new = _as_number(change.get("to_value"))
    if new is not None and new >= 10 and any(float(m) == new for m in _NUM_RE.findall(cause.text)):
        return f"the errors quote its new value {new:g}"
    own = words(text.replace(".", " ").replace("_", " "))
    if cause.kind == "data":
        shared = own & words(cause.ref.replace("_", " "))
        return f"it touches {', '.join(sorted(shared))}, like the table" if shared else None
    if cause.kind != "dependency":
        return None  # a certificate is only touched by TLS settings or its host, checked above
    # Operation words (`poll`, `upload`) are shared by chance; a failure mode shared with the errors
    # (a timeout key and "timed out") is what ties a change to a dependency failing.
    err_low = cause.text.lower()
    shared = {w for w in own if any(w.startswith(m) for m in FAILURE_MODE_WORDS) and w in err_low}
    if shared:
        return "it sets the failure mode the errors report: " + ", ".join(sorted(shared))
    return None


def errors_name_their_cause(cands: list[Candidate], causes: dict[str, tuple[list[NamedCause], float]]) -> None:
    """When a service's new errors themselves say what broke (a certificate, a dependency answering
    503, NaN values in a table), a change on that service that touches none of it is a bystander
    that merely happened earlier: it is ruled down. A deploy can break in more ways than its note
    says, so it is ruled down less."""
    for c in cands:
        if c.suspect.kind not in CHANGE_KINDS or c.change is None or c.target not in causes:
            continue
        named, share = causes[c.target or ""]
        if share < EXPLAINED_SHARE:
            continue
        if any(e.tool == "list_sentry_issues" and "release" in e.finding for e in c.evidence):
            continue  # Sentry ties the errors to this very release
        reasons = [change_relates_to(c.change, n) for n in named]
        if any(reasons):
            why = next(r for r in reasons if r)
            c.evidence.append(
                Evidence(tool="reasoning", weight=0.0, finding=f"{c.target}'s errors name their cause, and {why}")
            )
            continue
        top = max(named, key=lambda n: n.weight)
        c.score *= 0.75 if c.suspect.kind == "deploy" else 0.55
        c.evidence.append(
            Evidence(
                tool="reasoning",
                weight=0.0,
                finding=f"ruled down: {share:.0%} of {c.target}'s new errors name their own cause "
                f'({top.kind} {top.ref}: "{top.text[:100]}"); nothing in this change touches it',
            )
        )


def change_on_failing_dependency(cands: list[Candidate], states: dict[str, ServiceState]) -> None:
    """A failing dependency explains its callers' errors; when the dependency's own trouble began
    right after a change on the dependency, that change is the cause and the dependency the path."""
    deps = [c for c in cands if c.suspect.kind == "dependency" and c.suspect.service]
    for dep in deps:
        name = dep.suspect.service or ""
        dst = states.get(name)
        if dst is None or dst.onset is None:
            continue
        onset = dst.onset
        best: tuple[float, Candidate] | None = None
        for ch in cands:
            if ch.suspect.kind not in CHANGE_KINDS or ch.suspect.service != name or ch.change_at is None:
                continue
            gap = _minutes(onset, ch.change_at)
            if -0.75 <= gap <= DEPENDENCY_CHANGE_WINDOW_MIN and (best is None or gap < best[0]):
                best = (gap, ch)
        if best is None:
            continue
        gap, ch = best
        if ch.score < dep.score + 0.05:
            ch.score = dep.score + 0.05
        dep.score *= 0.85
        ch.evidence.append(
            Evidence(
                tool="reasoning",
                weight=0.0,
                finding=f"{name} is the failing dependency its callers' errors point at, and its own trouble "
                f"began {max(gap, 0.0):.0f} min after this change on {name}: the change is the cause",
            )
        )
        dep.evidence.append(
            Evidence(
                tool="reasoning",
                weight=0.0,
                finding=f"ruled down: {name} started failing right after its own {ch.suspect.kind} {ch.suspect.ref}",
            )
        )


# How soon after a change on a quiet dependency its callers' trouble must begin to be blamed on it.
QUIET_DEPENDENCY_WINDOW_MIN = 10.0
_TOLERANCE = timedelta(seconds=30)


def change_on_quiet_dependency(
    cands: list[Candidate],
    states: dict[str, ServiceState],
    graph: Graph,
    hurt: dict[str, list[str]],
    causes: dict[str, tuple[list[NamedCause], float]],
) -> None:
    """A dependency can break its callers without failing itself (it answers 200 with wrong content):
    it never alerts and shows no errors, and the caller's errors do not name it. When the first
    service in trouble (no other service's errors began earlier) has no change of its own before
    its onset, and a dependency it calls changed minutes before that onset, the dependency's
    change is the cause and the caller only the path.
    The caller's own changes that came after its onset do not count: they cannot have caused it."""
    change_cands = [
        c
        for c in cands
        if c.suspect.kind in CHANGE_KINDS and c.change_at is not None and c.suspect.service is not None
    ]
    for root, rst in sorted(states.items()):
        if rst.affected < 0.5 or rst.onset is None or root in hurt:
            continue
        onset = rst.onset
        deps = graph.deps.get(root, set())
        own_before = [
            c
            for c in cands
            if c.suspect.kind in CHANGE_KINDS
            and c.change_at is not None
            and (c.suspect.service == root or (c.target == root and c.suspect.service not in deps))
            and -0.75 <= _minutes(onset, c.change_at) <= DEPENDENCY_CHANGE_WINDOW_MIN
        ]
        if own_before:
            continue  # the caller changed itself first: the usual rules weigh that change
        if any(
            o != root and ost.affected >= 0.3 and ost.exact_onset is not None and ost.exact_onset < onset - _TOLERANCE
            for o, ost in states.items()
        ):
            continue  # another service's errors began first: the trouble did not start here
        if any(
            c.suspect.kind == "traffic"
            and c.suspect.service == root
            and any("the load came first" in e.finding for e in c.evidence)
            for c in cands
        ):
            continue  # more inbound requests came first: a dependency's change does not send them
        best: tuple[float, str, Candidate] | None = None
        for ch in change_cands:
            dep = ch.suspect.service or ""
            dst = states.get(dep)
            if dep not in deps or (dst is not None and dst.affected >= 0.3) or ch.change_at is None:
                continue  # a failing dependency is change_on_failing_dependency's case
            gap = _minutes(onset, ch.change_at)
            if 0.0 <= gap <= QUIET_DEPENDENCY_WINDOW_MIN and (best is None or (gap, ch.suspect.ref) < best[:2]):
                best = (gap, ch.suspect.ref, ch)
        if best is None:
            continue
        gap, _, ch = best
        named, share = causes.get(root, ([], 0.0))
        if share >= EXPLAINED_SHARE and not any(
            ch.change is not None and change_relates_to(ch.change, n) for n in named
        ):
            continue  # the caller's errors name another cause the change does not touch
        related = [
            c
            for c in cands
            if c is not ch
            and (c.suspect.service == root or c.target == root or c.origin == root)
            and c.suspect.kind not in ("traffic",)
        ]
        top = max((c.score for c in related), default=0.0)
        if ch.score < top + 0.05:
            ch.score = top + 0.05
        ch.evidence.append(
            Evidence(
                tool="reasoning",
                weight=0.0,
                finding=f"{root} is the first service in trouble and made no change of its own before it; "
                f"{root} calls {ch.suspect.service}, which changed {gap:.0f} min before {root}'s trouble began",
            )
        )
        for c in cands:
            if c.suspect.kind == "dependency" and c.suspect.service == root:
                c.score *= 0.85
                c.evidence.append(
                    Evidence(
                        tool="reasoning",
                        weight=0.0,
                        finding=f"ruled down: {root} fails after {ch.suspect.service}'s "
                        f"{ch.suspect.kind} {ch.suspect.ref}, which it calls",
                    )
                )


def data_under_dependency(cands: list[Candidate], causes: dict[str, tuple[list[NamedCause], float]]) -> None:
    """The deepest failing link wins: a dependency whose own errors report damaged values in a table
    fails because of that data; restoring the data, not failing over the service, is the fix."""
    for d in cands:
        if d.suspect.kind != "data" or d.origin is None:
            continue
        named, share = causes.get(d.origin, ([], 0.0))
        if not any(n.kind == "data" and n.ref.lower() == d.suspect.ref.lower() for n in named):
            continue
        for dep in cands:
            if dep.suspect.kind != "dependency" or dep.suspect.service != d.origin:
                continue
            if d.score < dep.score + 0.05:
                d.score = dep.score + 0.05
            d.evidence.append(
                Evidence(
                    tool="reasoning",
                    weight=0.0,
                    finding=f"{d.origin} fails its callers because the values it reads from {d.suspect.ref} "
                    "are damaged: the data is the deeper cause",
                )
            )


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


_VERBOSE_LEVELS = ("debug", "trace", "verbose", "all")


def config_plausibility(cands: list[Candidate], states: dict[str, ServiceState]) -> None:
    """Is the new value of a config change plausibly harmful? Shrinking a limit, pool, timeout or
    size by 2x or more removes capacity; turning logging up to debug fills disks. A small nudge,
    or a larger cache/TTL/batch on a service with no resource symptom, plausibly harms nothing."""
    for c in cands:
        if c.suspect.kind != "config" or c.change is None:
            continue
        old, new = _as_number(c.change.get("from_value")), _as_number(c.change.get("to_value"))
        low_new = str(c.change.get("to_value") or "").lower()
        verdict: tuple[float, str] | None = None
        if old is not None and new is not None and old > 0:
            ratio = new / old
            if ratio <= 0.5:
                verdict = (1.0, f"the new value cuts {c.suspect.ref} to {ratio:.0%} of the old one")
            else:
                st = states.get(c.suspect.service or "")
                resource = st is not None and any(
                    any(k in str(a.get("name") or "").lower() for ks in RESOURCE_METRIC_WORDS.values() for k in ks)
                    and str(a.get("direction") or "up") == "up"
                    for a in st.anomalies
                )
                if ratio > 2.0 and resource:
                    verdict = (1.0, f"{c.suspect.ref} grew {ratio:.1f}x and {c.suspect.service} uses more resources")
                else:
                    verdict = (0.8, f"{c.suspect.ref} {old:g} -> {new:g} is a moderate change that removes no capacity")
        elif any(w == low_new for w in _VERBOSE_LEVELS):
            verdict = (1.0, "logging turned up to a verbose level writes far more")
        if verdict is None:
            continue
        factor, why = verdict
        c.score *= factor
        c.evidence.append(
            Evidence(
                tool="reasoning",
                weight=0.0,
                finding=("plausibly harmless: " if factor < 1.0 else "plausibly harmful: ") + why,
            )
        )


_SCHEMA_ERROR_WORDS = (
    "decode",
    "deserializ",
    "deserialis",
    "unmarshal",
    "schema",
    "missing required field",
    "unknown field",
    "unexpected field",
    "incompatible",
    "malformed message",
    "malformed event",
    "invalid message",
    "invalid event",
)
_SCHEMA_CHANGE_WORDS = ("schema", "event", "message", "payload", "proto", "avro", "format", "field", "contract")
_GENERIC_NAME_PARTS = frozenset(
    {"service", "svc", "api", "app", "worker", "publisher", "producer", "consumer", "server", "core", "web"}
)
PRODUCER_WINDOW_MIN = 15.0


def producer_broke_consumer(cands: list[Candidate], states: dict[str, ServiceState]) -> None:
    """A consumer failing to decode what it reads was usually broken by whoever writes it: a change on
    another service, shortly before the errors start, whose name or note matches the failing messages
    (producers need not appear in depends_on). It outranks the consumer's own older change, which was
    followed by a quiet period until the producer changed."""
    changes = [c for c in cands if c.suspect.kind in CHANGE_KINDS and c.change_at and c.suspect.service]
    for svc, st in sorted(states.items()):
        texts = [
            b.text.lower() for b in st.bad_patterns if b.new and any(w in b.text.lower() for w in _SCHEMA_ERROR_WORDS)
        ]
        onset = st.exact_onset or st.onset
        if not texts or onset is None:
            continue
        blob = " ".join(texts).replace("_", "").replace("-", "")
        producers = []
        for c in changes:
            prod = str(c.suspect.service)
            at = c.change_at
            if prod == svc or at is None:
                continue
            if not timedelta(0) <= onset - at <= timedelta(minutes=PRODUCER_WINDOW_MIN):
                continue
            parts = [p for p in re.split(r"[^a-z0-9]+", prod.lower()) if len(p) >= 4 and p not in _GENERIC_NAME_PARTS]
            named = any(p in blob for p in parts)
            note = _describe_change(c.change or {}).lower()
            if named or (prod in blob or any(w in note for w in _SCHEMA_CHANGE_WORDS)):
                producers.append(c)
        if not producers:
            continue
        best = max(producers, key=lambda c: (c.change_at or onset, c.score))
        since = best.change_at or onset
        own = [c for c in changes if c.suspect.service == svc and c.change_at and c.change_at < since]
        top = max([c.score for c in own] + [best.score])
        best.score = top + 0.05
        best.evidence.append(
            Evidence(
                tool="log_patterns",
                finding=f"{svc} fails to decode what it reads, starting right after {best.suspect.service} changed: "
                f"the writer of those messages broke its consumer",
            )
        )
        for c in own:
            c.score *= 0.85


def rank(f: Findings) -> tuple[list[Candidate], dict[str, ServiceState]]:
    """All candidates, best first (deterministic: ties broken by kind and ref)."""
    bads = bad_patterns(f)
    states = service_states(f, bads)
    graph = Graph(f.edges)
    services = known_services(f, graph)
    cands = change_candidates(f, states, graph, services)
    cands += dependency_candidates(f, states, graph, services)
    cands += resource_candidates(f, states)
    cands += signal_candidates(f, states, [c for c in cands if c.suspect.kind in ("deploy", "config", "infra")])
    load_first(cands)
    causes = named_causes(states, services)
    config_plausibility(cands, states)
    errors_name_their_cause(cands, causes)
    change_on_failing_dependency(cands, states)
    change_on_quiet_dependency(cands, states, graph, victims(states, graph, services), causes)
    data_under_dependency(cands, causes)
    producer_broke_consumer(cands, states)
    memory_boost(cands, f)
    discount_symptoms(cands)
    resource_explains_dependency(cands)
    merged: dict[tuple[str, str, str], Candidate] = {}
    for c in cands:
        k = c.key()
        if k not in merged or merged[k].score < c.score:
            merged[k] = c
    ordered = sorted(merged.values(), key=lambda c: (-round(c.score, 6), c.suspect.kind, c.suspect.ref))
    return ordered, states


# ----------------------------------------------------------------------------------------------
# Step 3: the report


def _failure_share(a: dict[str, Any]) -> float:
    """Share of failing requests a metric shows after its change (error ratios, or 1 - success ratio)."""
    name = str(a.get("name") or "").lower()
    after = a.get("after")
    if not isinstance(after, int | float) or not ("ratio" in name or "rate" in name or "share" in name):
        return 0.0
    if any(w in name for w in ("error", "fail", "5xx", "401", "403", "unauthori", "timeout", "reject")):
        return float(after) if 0 <= after <= 1.5 else 0.0
    if "success" in name and 0 <= after <= 1 and str(a.get("direction")) == "down":
        share = 1.0 - float(after)
        return share if share >= 0.5 else 0.0  # a success ratio only counts once most attempts fail
    return 0.0


def _severity(f: Findings, states: dict[str, ServiceState]) -> tuple[str, str]:
    """critical: most requests of a service fail, or a revenue path fails noticeably; major: a
    critical alert, a visible error share or a stopped flow; minor: warnings only."""
    sevs = [
        str(a.get("severity") or "warning").lower()
        for a in f.alerts
        if str(a.get("status") or "firing").lower() != "resolved"
    ]
    affected = [s for s in states.values() if s.affected >= 0.5]
    worst, worst_svc = 0.0, ""
    for st in affected:
        for a in st.anomalies:
            share = _failure_share(a)
            if share > worst:
                worst, worst_svc = share, st.name
    revenue = any(w in worst_svc.lower() for w in CRITICAL_SERVICE_WORDS)
    if worst >= 0.3 or (revenue and worst >= 0.1):
        return "critical", f"about {min(worst, 1.0):.0%} of {worst_svc} requests fail" + (
            " on a revenue path" if revenue else ""
        )
    if "critical" in sevs or worst >= 0.05 or len(affected) >= 2:
        why = f"about {worst:.0%} of {worst_svc} requests fail" if worst >= 0.05 else "critical alerts fire"
        return "major", why + "; the failure is limited to part of the product or can wait minutes"
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
