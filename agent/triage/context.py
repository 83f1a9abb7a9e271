"""The shared view every suspect generator and feature reads: findings plus what is derived from them
once (service states, the dependency graph, the earliest onset, the symptom text, known names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from firebreak.agent.report import Evidence, Suspect
from firebreak.agent.triage.observe import Findings, minutes, parse_time, words
from firebreak.agent.triage.rises import Rises, rises
from firebreak.agent.triage.signals import (
    BadPattern,
    Graph,
    ServiceState,
    bad_patterns,
    known_services,
    service_states,
    victims,
)

AFFECTED = 0.3  # a service counts as in trouble from this `affected` level


@dataclass
class Candidate:
    """One suspect with the raw facts its generator saw; features and score are filled in later."""

    suspect: Suspect
    title: str
    evidence: list[Evidence] = field(default_factory=list)
    confirm: str = ""
    rule_out: str = ""
    at: datetime | None = None  # changes: when it landed
    change: dict[str, Any] | None = None  # changes: the recent_changes record
    origin: str | None = None  # the service whose signals name the suspect
    text: str = ""  # what the suspect says of itself (change note, key, flag name)
    facts: dict[str, float] = field(default_factory=dict)  # generator-specific measurements
    features: dict[str, float] = field(default_factory=dict)
    score: float = 0.0
    probability: float = 0.0

    def key(self) -> tuple[str, str, str]:
        return (self.suspect.kind, (self.suspect.service or "").lower(), self.suspect.ref.lower())


@dataclass
class Context:
    """Findings and the observations derived from them, computed once per investigation."""

    f: Findings
    bads: list[BadPattern] = field(init=False)
    states: dict[str, ServiceState] = field(init=False)
    graph: Graph = field(init=False)
    services: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.bads = bad_patterns(self.f)
        self.states = service_states(self.f, self.bads)
        self.graph = Graph([*self.f.edges, *self.f.trace_edges])
        self.services = known_services(self.f, self.graph)

    @cached_property
    def rises(self) -> Rises:
        """How far every queried series moved in its own noise (agent/triage/rises.py)."""
        return rises(self.f)

    @cached_property
    def max_affected(self) -> float:
        return max((s.affected for s in self.states.values()), default=0.0) or 1.0

    @cached_property
    def hurt(self) -> dict[str, list[str]]:
        """Service -> the dependencies whose earlier failure its own trouble follows."""
        return victims(self.states, self.graph, self.services)

    @cached_property
    def anomalous(self) -> list[str]:
        return sorted(s for s, st in self.states.items() if st.affected >= AFFECTED)

    @cached_property
    def earliest_onset(self) -> datetime | None:
        """The first sign of trouble on any service in trouble (what a cause must precede)."""
        times = [st.onset for s, st in self.states.items() if st.affected >= AFFECTED and st.onset]
        return min(times) if times else None

    @cached_property
    def alert_services(self) -> set[str]:
        return {str(a.get("service")) for a in self.f.alerts if a.get("service")}

    @cached_property
    def symptom_text(self) -> str:
        """What broke, in words: new error templates, alert titles and summaries, Sentry titles."""
        parts = [b.text for b in self.bads if b.new or b.level in ("ERROR", "FATAL")]
        parts += [f"{a.get('title') or ''} {a.get('summary') or ''}" for a in self.f.alerts]
        parts += [f"{i.get('title') or ''} {i.get('culprit') or ''}" for i in self.f.sentry]
        return " ".join(parts)[:20000]

    @cached_property
    def symptom_words(self) -> set[str]:
        service_words = {w for s in self.services for w in words(s.replace("-", " "))}
        return words(self.symptom_text) - service_words

    @cached_property
    def new_bad_text(self) -> str:
        return " ".join(b.text for b in self.bads if b.new)

    def onset_of(self, service: str | None) -> datetime | None:
        st = self.states.get(service or "")
        return st.onset if st is not None else None

    def affected(self, service: str | None) -> float:
        st = self.states.get(service or "")
        return st.affected if st is not None else 0.0

    def gap_minutes(self, at: datetime | None, onset: datetime | None = None) -> float | None:
        """Minutes from `at` to the onset (positive: `at` came first)."""
        onset = onset or self.earliest_onset or self.f.incident_start()
        return minutes(onset, at) if at is not None and onset is not None else None

    @cached_property
    def known_flags(self) -> set[str]:
        names = {str(fl.get("key") or fl.get("flag") or "") for fl in self.f.flags}
        names |= {str(e.get("flag") or "") for e in self.f.flag_events}
        names |= {str(c.get("flag") or "") for c in self.f.changes if c.get("flag")}
        return {n for n in names if n}

    @cached_property
    def known_versions(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for c in self.f.changes:
            svc = str(c.get("service") or "")
            for k in ("version", "previous_version"):
                if c.get(k):
                    out.setdefault(svc, set()).add(str(c[k]))
        return out

    @cached_property
    def observed_text(self) -> str:
        """Every piece of text the stores returned (log examples, samples, labels): names a fix may use."""
        parts = [f"{p.get('template') or ''} {p.get('example') or ''}" for p in self.f.patterns]
        parts += [str(ln.get("message") or "") for s in self.f.log_samples for ln in s.get("lines") or []]
        for a in self.f.alerts:
            parts.append(str(a.get("title") or ""))
            labels = a.get("labels") or {}
            if isinstance(labels, dict):
                parts += [str(v) for v in labels.values()]
        return "\n".join(parts).lower()

    def first_anomaly(self, service: str, predicate: Any) -> dict[str, Any] | None:
        """The earliest metric anomaly on `service` whose name satisfies `predicate`."""
        st = self.states.get(service)
        if st is None:
            return None
        hits = [a for a in st.anomalies if predicate(str(a.get("name") or "").lower(), a)]
        hits.sort(key=lambda a: parse_time(a.get("onset")) or self.f.now)
        return hits[0] if hits else None
