"""The world being built: services with normal telemetry, a timeline, flags, history and the truth.

Culprit families and red herrings only call the helpers here (add an event, make callers fail,
raise an alert), so every family writes the same scenario shape (../shared/specs/drill-scenario.md)
and the symptoms spread through the dependency graph the same way whatever the cause.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from firebreak.simulations.worlds.topology import Node, Topology, build_topology, bump

# Normal log lines per role; `{stem}` is the service's business noun.
_BASE_LINES: dict[str, list[tuple[int, str, str]]] = {
    "edge": [
        (20, "INFO", "{method} {path} {status} {ms}ms"),
        (3, "INFO", "GET /healthz 200 {ms}ms"),
        (1, "WARN", "client closed connection before response ({ms}ms)"),
    ],
    "api": [
        (18, "INFO", "{method} /v1/{stem}/{id} 200 {ms}ms"),
        (6, "INFO", "{stem} {id} updated by {user}"),
        (1, "DEBUG", "cache miss for {stem}:{id}"),
    ],
    "worker": [
        (15, "INFO", "job {job} for {stem} done in {ms}ms"),
        (4, "INFO", "picked {n} {stem} tasks"),
        (1, "INFO", "worker {worker} heartbeat"),
    ],
    "db": [
        (10, "INFO", "checkpoint complete: wrote {n} buffers"),
        (5, "INFO", "connection authorized: user=app"),
        (1, "INFO", "automatic vacuum of table {table}: pages removed {n}"),
    ],
    "cache": [(10, "INFO", "{n} changes in 60 seconds. Saving..."), (3, "INFO", "background saving terminated")],
    "queue": [(10, "INFO", "partition {partition} leader epoch {n}"), (3, "INFO", "rolled segment for {topic}")],
    "dns": [(10, "INFO", "NOERROR A {host}.svc.cluster.local {ms}ms")],
}
ERROR_METRICS = ["http_request_error_ratio", "http_5xx_ratio", "request_error_ratio", "error_rate_ratio"]
LATENCY_METRICS = ["http_request_p95_seconds", "request_latency_p99_seconds", "http_server_duration_p95_seconds"]
RATE_METRICS = ["http_requests_per_second", "requests_per_second", "http_server_requests_rate"]
# Log volumes are scaled down together so a drill runs in well under a second; ratios between the
# baseline and the bursts are what the investigator reads, and they stay the same.
LOG_SCALE = 0.4
# Old noisy warnings that were always there (red herrings when they look like the symptom).
NOISY_WARNS = [
    "connection reset by peer, retrying ({attempt}/3)",
    "slow response from upstream: {ms}ms",
    "deprecated config key {key} ignored",
    "retrying request {req} after timeout",
    "GC pause {ms}ms",
    "certificate for metrics endpoint expires in {n} days",
    "pool wait {ms}ms for connection",
    "request {req} failed validation: missing field",
]


def camel(name: str) -> str:
    return "".join(p.capitalize() for p in re.split(r"[^A-Za-z0-9]+", name) if p)


def dur(minutes: float) -> str:
    """Minutes as a spec duration (`12m`, `12m30s`)."""
    seconds = max(0, round(minutes * 60))
    m, s = divmod(seconds, 60)
    return f"{m}m{s}s" if s else f"{m}m"


class World:
    """One scenario under construction. `onset` is the minute the real cause starts to bite."""

    def __init__(self, rng: random.Random, world_id: str, kind: str, seed: int) -> None:
        self.rng = rng
        self.id = world_id
        self.kind = kind
        self.seed = seed
        self.topo: Topology = build_topology(rng)
        # Each world names its golden signals its own way (units kept), as different stacks do.
        self.err_metric = rng.choice(ERROR_METRICS)
        self.latency_metric = rng.choice(LATENCY_METRICS)
        self.rate_metric = rng.choice(RATE_METRICS)
        self.duration = rng.choice([40, 45, 50, 55, 60])
        self.onset = float(rng.randint(12, self.duration - 22))
        day = datetime(2026, 1, 5, tzinfo=UTC) + timedelta(days=rng.randint(0, 300))
        self.start = day + timedelta(minutes=15 * rng.randint(0, 95))
        self.flags: dict[str, dict[str, Any]] = {}
        self.history: list[dict[str, Any]] = []
        self.timeline: list[tuple[float, int, dict[str, Any]]] = []
        self.metrics: dict[str, dict[str, dict[str, Any]]] = {}
        self.extra_lines: dict[str, list[dict[str, Any]]] = {}
        self.alerts_at: list[float] = []
        self.truth: dict[str, Any] = {}
        self.title = ""
        self.summary = ""
        self.herrings: list[str] = []
        self.touched: set[str] = set()  # services the culprit family changed or broke (herrings stay clear)
        self.logs_off = False  # metrics-only worlds: no service writes logs at all
        self.versions: dict[str, str] = {n.name: n.version for n in self.topo.nodes.values() if n.version}
        for node in self.topo.nodes.values():
            self._base_metrics(node)

    # ---- the world's normal state -------------------------------------------------------------------
    def _base_metrics(self, node: Node) -> None:
        if node.kind == "external":
            return
        rps = round(self.rng.uniform(15, 400), 1)
        self.metric_base(node.name, self.rate_metric if node.role != "db" else "queries_per_second", rps, 0.08)
        if node.role in ("edge", "api", "worker"):
            self.metric_base(node.name, self.err_metric, round(self.rng.uniform(0.001, 0.01), 4), 0.3)
            self.metric_base(node.name, self.latency_metric, round(self.rng.uniform(0.04, 0.6), 3), 0.1)

    def metric_base(self, service: str, name: str, value: float, noise: float = 0.05) -> str:
        """Declare a normal series (kept if it already exists); returns its name."""
        self.metrics.setdefault(service, {}).setdefault(
            name, {"name": name, "every": "15s", "value": value, "noise": noise}
        )
        return name

    def base_value(self, service: str, name: str) -> float:
        return float(self.metrics[service][name]["value"])

    def add_base_line(self, service: str, level: str, text: str, weight: int = 1) -> None:
        self.extra_lines.setdefault(service, []).append({"weight": weight, "level": level, "text": text})

    def node(self, name: str) -> Node:
        return self.topo.nodes[name]

    def services_of(self, *roles: str) -> list[Node]:
        return self.topo.of_role(*roles)

    # ---- timeline -------------------------------------------------------------------------------------
    def event(self, at: float, body: dict[str, Any]) -> None:
        at = min(max(at, 0.0), float(self.duration))
        self.timeline.append((at, len(self.timeline), body))

    def deploy(self, at: float, service: str, note: str, new_version: str | None = None) -> tuple[str, str]:
        """Deploy a new version; returns (previous, new). The node's version moves on."""
        prev = self.versions.get(service) or "1.0.0"
        new = new_version or bump(self.rng, prev)
        body: dict[str, Any] = {"service": service, "version": new}
        if note:
            body["note"] = note
        self.event(at, {"deploy": body})
        self.versions[service] = new
        return prev, new

    def logs(
        self,
        at: float,
        service: str,
        rate: int,
        lines: list[tuple[str, str]] | list[tuple[str, str, int]],
        for_: float | None = None,
    ) -> None:
        out = []
        for line in lines:
            entry: dict[str, Any] = {"level": line[0], "text": line[1]}
            if len(line) > 2:
                entry["weight"] = line[2]  # type: ignore[misc]
            out.append(entry)
        scaled = max(2, round(rate * LOG_SCALE))
        body: dict[str, Any] = {"service": service, "rate": f"{scaled}/m", "lines": out}
        if for_ is not None:
            body["for"] = dur(for_)
        self.event(at, {"logs": body})

    def metric(
        self,
        at: float,
        service: str,
        name: str,
        shape: str,
        to: float,
        over: float | None = None,
        for_: float | None = None,
        then: str | None = None,
        base: float | None = None,
    ) -> None:
        if name not in self.metrics.get(service, {}):
            self.metric_base(service, name, base if base is not None else to / 5, 0.05)
        body: dict[str, Any] = {"service": service, "name": name, "shape": shape, "to": _num(to)}
        if over is not None:
            body["over"] = dur(over)
        if for_ is not None:
            body["for"] = dur(for_)
        if then:
            body["then"] = then
        self.event(at, {"metric": body})

    def alert(self, at: float, source: str, name: str, service: str, **fields: Any) -> None:
        body: dict[str, Any] = {"source": source, "name": name, "service": service}
        body.update({k: v for k, v in fields.items() if v is not None})
        if "resolve_at" in body:
            body["resolve_at"] = dur(min(float(body["resolve_at"]), self.duration))
        self.event(at, {"alert": body})
        if "resolve_at" not in fields:
            self.alerts_at.append(at)

    def error_alert(
        self,
        at: float,
        service: str,
        severity: str = "critical",
        summary: str | None = None,
        labels: dict[str, str] | None = None,
    ) -> None:
        """A metric alert on a service's error ratio, from Alertmanager or Grafana."""
        source = self.rng.choice(["alertmanager", "grafana"])
        name = self.rng.choice(
            [
                f"{camel(service)}HighErrorRate",
                f"{camel(service)}HighErrorRate",
                f"{camel(service)}5xxRatio",
                f"{service} error budget burn",
                f"{camel(service)}AvailabilitySLOBreach",
                f"{service}-errors-high",
            ]
        )
        self.alert(
            at,
            source,
            name,
            service,
            severity=severity,
            summary=summary or f"{service} error ratio above {self.rng.choice([2, 5, 10])}%",
            labels=labels or None,
        )

    def latency_alert(self, at: float, service: str, severity: str = "warning") -> None:
        source = self.rng.choice(["alertmanager", "grafana"])
        self.alert(
            at,
            source,
            f"{camel(service)}LatencyHigh",
            service,
            severity=severity,
            summary=f"{service} p95 latency above {self.rng.choice([1, 2, 3])}s",
        )

    def sentry(
        self,
        at: float,
        service: str,
        exception: str,
        message: str,
        culprit: str | None = None,
        release: str | None = None,
        count: int | None = None,
    ) -> None:
        self.alert(
            at,
            "sentry",
            f"{exception}: {message[:60]}",
            service,
            exception=exception,
            message=message,
            culprit=culprit,
            release=release or self.versions.get(service),
            level="error",
            count=count or self.rng.randint(40, 2000),
        )

    # ---- symptoms -------------------------------------------------------------------------------------
    def fail_callers(
        self, origin: str, at: float, reasons: list[str], loud: bool | None = None, max_depth: int = 3
    ) -> list[str]:
        """Callers of `origin` (and their callers) start failing a little after `at`.

        `loud`: the callers' error ratios and alerts are louder than the origin's own (a common
        trap: the alert fires on the entry point, not where the fault is). Returns the callers hit.
        """
        loud = self.rng.random() < 0.5 if loud is None else loud
        hit = []
        for caller, depth in self.topo.upstream(origin):
            if depth > max_depth or self.node(caller).kind == "external":
                continue
            t = at + depth * self.rng.uniform(0.2, 1.2)
            target = self.rng.choice([origin] + [c for c, d in self.topo.upstream(origin) if d == depth - 1])
            if depth == 1:
                target = origin
            reason = self.rng.choice(reasons)
            lines = _caller_lines(self.rng, target, reason)
            rate = self.rng.randint(40, 160) if loud else self.rng.randint(10, 60)
            self.logs(t, caller, rate, lines)
            err = round(self.rng.uniform(0.2, 0.6) if loud else self.rng.uniform(0.04, 0.2), 3)
            self.metric(t, caller, self.err_metric, "step", err)
            p95 = self.base_value(caller, self.latency_metric) * self.rng.uniform(3, 15)
            self.metric(t, caller, self.latency_metric, "step", round(p95, 3))
            hit.append(caller)
        return hit

    def symptom_alerts(
        self,
        origin: str,
        at: float,
        callers: list[str],
        origin_alert: bool | None = None,
        exception: tuple[str, str] | None = None,
    ) -> None:
        """Alerts a few minutes after `at`: on the entry point or a caller, sometimes on the origin too."""
        t = at + self.rng.uniform(2, 5)
        loud_target = callers[-1] if callers and self.rng.random() < 0.6 else (callers[0] if callers else origin)
        if self.node(loud_target).role in ("edge", "api", "worker"):
            self.error_alert(t, loud_target)
        else:
            self.latency_alert(t, loud_target, "critical")
        if origin_alert is None:
            origin_alert = self.rng.random() < 0.6
        if origin_alert and origin != loud_target and self.node(origin).kind != "external":
            self.error_alert(t + self.rng.uniform(0.5, 3), origin, severity=self.rng.choice(["warning", "critical"]))
        if exception is not None:
            svc = callers[0] if callers and self.rng.random() < 0.5 else origin
            if self.node(svc).kind in ("service",):
                self.sentry(
                    t + self.rng.uniform(-1, 2),
                    svc,
                    exception[0],
                    exception[1],
                    culprit=f"{svc.replace('-', '_')}.{self.rng.choice(['handlers', 'client', 'jobs'])}",
                )

    # ---- output -----------------------------------------------------------------------------------------
    def set_truth(
        self,
        culprit: dict[str, Any],
        root_cause: str,
        mitigations: list[dict[str, Any]],
        also_accept: list[dict[str, Any]] | None = None,
        severity: str | None = None,
    ) -> None:
        self.truth = {
            "culprit": culprit,
            "root_cause": root_cause,
            "mitigations": mitigations,
        }
        if severity:
            self.truth["severity"] = severity
        if also_accept:
            self.truth["also_accept"] = also_accept

    def to_dict(self) -> dict[str, Any]:
        services = []
        for node in self.topo.nodes.values():
            svc: dict[str, Any] = {"name": node.name}
            if node.kind != "service":
                svc["kind"] = node.kind
            if node.version:
                svc["version"] = node.version
            if node.depends_on:
                svc["depends_on"] = list(node.depends_on)
            if node.kind != "external" and not self.logs_off:
                lines = [
                    {"weight": w, "level": lv, "text": t.replace("{stem}", node.stem)}
                    for w, lv, t in _BASE_LINES[node.role]
                ]
                lines += self.extra_lines.get(node.name, [])
                svc["logs"] = {"rate": f"{self._base_rate(node)}/m", "lines": lines}
            if self.metrics.get(node.name):
                svc["metrics"] = list(self.metrics[node.name].values())
            services.append(svc)
        timeline = [{"at": dur(at), **body} for at, _, body in sorted(self.timeline, key=lambda e: (e[0], e[1]))]
        last_alert = max(self.alerts_at) if self.alerts_at else self.onset + 5
        out: dict[str, Any] = {
            "version": 1,
            "id": self.id,
            "title": self.title,
            "summary": self.summary,
            "seed": self.seed,
            "start": self.start.isoformat().replace("+00:00", "Z"),
            "duration": dur(self.duration),
            "triage_at": dur(min(self.duration, last_alert + self.rng.uniform(1, 3))),
            "services": services,
        }
        if self.flags:
            out["flags"] = self.flags
        if self.history:
            out["history"] = self.history
        out["timeline"] = timeline
        out["truth"] = {**self.truth, "severity": self.truth.get("severity") or self._severity()}
        return out

    def _severity(self) -> str:
        """README criteria, read off the entry point: most users failing is critical, a share is major."""
        worst = max(
            (
                float(b["metric"]["to"])
                for _, _, b in self.timeline
                if "metric" in b and b["metric"]["service"] == self.topo.edge and b["metric"]["name"] == self.err_metric
            ),
            default=0.0,
        )
        return "critical" if worst >= 0.3 else "major"

    def _base_rate(self, node: Node) -> int:
        rate = {"edge": self.rng.randint(40, 120), "db": self.rng.randint(10, 30)}.get(
            node.role, self.rng.randint(15, 70)
        )
        return max(2, round(rate * LOG_SCALE))


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() and abs(x) < 1e15 else round(x, 4)


def _caller_lines(rng: random.Random, target: str, reason: str) -> list[tuple[str, str]]:
    """What a caller logs when a call to `target` fails: the wording varies, the reason is kept."""
    templates = [
        f"call to {target} failed: {reason}",
        f"upstream {target} error: {reason} (request {{req}})",
        f"request {{req}} to {target} failed after {{ms}}ms: {reason}",
        f"{target} client: {reason}",
        f"giving up on {target} after {{attempt}} attempts: {reason}",
        f"dependency {target} unhealthy ({reason})",
    ]
    picked = rng.sample(templates, k=2)
    generic = rng.choice(
        [
            "POST {path} 503 {ms}ms",
            "GET {path} 500 {ms}ms",
            "returning 502 to client: upstream unavailable",
            "request {req} aborted: dependency error",
        ]
    )
    return [("ERROR", picked[0]), ("ERROR", picked[1]), ("WARN" if rng.random() < 0.5 else "ERROR", generic)]
