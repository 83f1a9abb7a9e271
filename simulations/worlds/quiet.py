"""Metrics-only worlds: a resource fault (cpu hog, memory leak, disk filling) or a network delay on one
service, seen only through per-service metrics, as fault-injection testbeds and many small teams record
incidents: cpu and memory for every service, latency percentiles and throughput for some, no logs, no
traces, usually no changes, and one alert on the entry point (or a caller), not on the culprit.

Designed from how such faults behave, not from any recorded case:
- the culprit's own resource moves most (in its own noise), and first;
- its callers' latency moves too (they wait on it), less the further they are;
- healthy services move as well: load shifts when requests slow or retry, short unrelated spikes,
  slow memory creep, noisy series; so "something moved" is not enough, "what moved, how much against
  its own noise, and where in the call graph" is.
The culprit kinds are `resource` (cpu, memory, disk) and `dependency` (a slow service: delay).
"""

from __future__ import annotations

from firebreak.simulations.worlds.builder import World, camel
from firebreak.simulations.worlds.topology import Node

CPU_NAMES = ["cpu", "cpu_usage_ratio", "container_cpu_usage_ratio", "process_cpu_usage"]
MEM_NAMES = ["mem", "memory_usage_bytes", "container_memory_working_set_bytes", "process_resident_memory_bytes"]
LATENCY_SETS = [
    ["latency_p50_seconds", "latency_p90_seconds", "latency_p99_seconds"],
    ["http_request_p50_seconds", "http_request_p95_seconds"],
    ["request_latency_p99_seconds"],
    ["lat_p50", "lat_p99"],
]
RATE_NAMES = ["requests_per_second", "http_requests_rate", "throughput", "request_rate"]
DISK_NAMES = ["disk_used_ratio", "node_filesystem_used_ratio"]


class _Names:
    """How this world's stack names its series (one choice per world, as one stack is consistent)."""

    def __init__(self, w: World) -> None:
        self.cpu = w.rng.choice(CPU_NAMES)
        self.mem = w.rng.choice(MEM_NAMES)
        self.lat = w.rng.choice(LATENCY_SETS)
        self.rate = w.rng.choice(RATE_NAMES)
        self.disk = w.rng.choice(DISK_NAMES)


def _setup(w: World) -> tuple[_Names, set[str]]:
    """Replace the world's normal telemetry with metrics only; returns the names and the services
    that have latency series. Fine resolution (seconds) over a short window, or coarse over longer."""
    w.logs_off = w.rng.random() < 0.8  # sometimes the normal logs exist, with nothing new in them
    if w.rng.random() < 0.6:
        every, w.duration = w.rng.choice(["1s", "2s", "5s"]), w.rng.randint(9, 16)
        w.onset = float(w.duration - w.rng.uniform(3.5, 5.5))
    else:
        every, w.duration = w.rng.choice(["10s", "15s"]), w.rng.randint(30, 45)
        w.onset = float(w.duration - w.rng.uniform(8, 12))
    w.metrics.clear()
    n = _Names(w)
    with_latency: set[str] = set()
    for node in w.topo.nodes.values():
        if node.kind == "external":
            continue
        cpu_base = round(w.rng.uniform(0.02, 0.4), 3)
        _series(w, node.name, n.cpu, cpu_base, w.rng.uniform(0.04, 0.25), every)
        _series(w, node.name, n.mem, round(w.rng.uniform(5e7, 1.2e9)), w.rng.uniform(0.003, 0.03), every)
        if node.role == "edge" or (node.role in ("api", "worker") and w.rng.random() < 0.6):
            with_latency.add(node.name)
            base = w.rng.uniform(0.005, 0.25)
            for i, name in enumerate(n.lat):
                _series(w, node.name, name, round(base * (1 + i * 1.5), 4), w.rng.uniform(0.05, 0.2), every)
            _series(w, node.name, n.rate, round(w.rng.uniform(5, 300), 1), w.rng.uniform(0.05, 0.15), every)
    return n, with_latency


def _series(w: World, service: str, name: str, value: float, noise: float, every: str) -> None:
    w.metrics.setdefault(service, {})[name] = {"name": name, "every": every, "value": value, "noise": round(noise, 3)}


def _slow_callers(w: World, n: _Names, culprit: str, with_latency: set[str], factor: float) -> list[str]:
    """Callers wait on the culprit: their latency rises, less the further they are from it."""
    hit = []
    for caller, depth in w.topo.upstream(culprit):
        if caller not in with_latency:
            continue
        share = w.rng.uniform(0.25, 0.9) ** depth
        t = w.onset + depth * w.rng.uniform(0.02, 0.4)
        for name in n.lat:
            base = w.base_value(caller, name)
            w.metric(t, caller, name, "step", round(base * (1 + (factor - 1) * share), 4))
        if w.rng.random() < 0.5:  # fewer requests complete per second while they wait
            w.metric(t, caller, n.rate, "step", round(w.base_value(caller, n.rate) * w.rng.uniform(0.6, 0.95), 1))
        hit.append(caller)
    return hit


def _own_latency(w: World, n: _Names, svc: str, with_latency: set[str], factor: float) -> None:
    if svc in with_latency:
        for name in n.lat:
            w.metric(w.onset, svc, name, "step", round(w.base_value(svc, name) * factor, 4))


def _alerts(w: World, culprit: str, callers: list[str]) -> None:
    """The page: on the entry point most of the time, on a caller sometimes, on the culprit rarely."""
    r = w.rng.random()
    target = w.topo.edge if r < 0.7 or not callers else (w.rng.choice(callers) if r < 0.9 else culprit)
    if target == culprit and w.rng.random() < 0.5:
        target = w.topo.edge
    t = w.onset + w.rng.uniform(0.5, 2)
    w.latency_alert(t, target, w.rng.choice(["warning", "critical"]))


def _noise(w: World, n: _Names, culprit: str, with_latency: set[str]) -> None:
    """Healthy services move too: load shifts, unrelated spikes, memory creep, one noisy series."""
    healthy = [x for x in w.topo.nodes.values() if x.kind != "external" and x.name != culprit]
    for node in w.rng.sample(healthy, k=min(len(healthy), w.rng.randint(1, 3))):
        what = w.rng.random()
        s = node.name
        if what < 0.35:  # more work (retries, shifted load) around the onset
            w.metric(
                w.onset + w.rng.uniform(-0.5, 1),
                s,
                n.cpu,
                "step",
                round(w.base_value(s, n.cpu) * w.rng.uniform(1.2, 2.2), 3),
            )
        elif what < 0.55:  # an earlier, unrelated spike that went away
            name = w.rng.choice([n.cpu, n.mem])
            w.metric(
                w.onset - w.rng.uniform(1.5, 4),
                s,
                name,
                "spike",
                round(w.base_value(s, name) * w.rng.uniform(1.3, 3), 3),
                for_=w.rng.uniform(0.3, 1.2),
            )
        elif what < 0.75:  # slow memory creep all window long
            w.metric(
                1.0, s, n.mem, "ramp", round(w.base_value(s, n.mem) * w.rng.uniform(1.03, 1.3)), over=w.duration - 1
            )
        elif what < 0.9:  # a noisy series: big relative noise, no change
            w.metrics[s][n.cpu]["noise"] = round(w.rng.uniform(0.3, 0.6), 3)
        elif s in with_latency:  # its latency wobbles on its own
            name = w.rng.choice(n.lat)
            w.metric(w.onset + w.rng.uniform(-1, 1), s, name, "spike", round(w.base_value(s, name) * 1.6, 4), for_=0.5)
    if w.rng.random() < 0.25:  # a change recorded somewhere else, a little before
        others = [x.name for x in w.services_of("api", "worker", "edge") if x.name != culprit]
        if others:
            s = w.rng.choice(others)
            w.deploy(w.onset - w.rng.uniform(0.5, 6), s, w.rng.choice(["", "release train", "dependency bumps"]))
            w.herrings.append(f"deploy of {s} before the onset")
    if w.rng.random() < 0.2:
        s = w.rng.choice([x.name for x in healthy])
        start = w.onset + w.rng.uniform(-2, 1)
        w.alert(
            start,
            w.rng.choice(["grafana", "alertmanager"]),
            f"{camel(s)}CpuWarning",
            s,
            severity="warning",
            summary=f"{s} briefly over threshold",
            resolve_at=start + w.rng.uniform(1, 2),
        )
        w.herrings.append(f"flapping alert on {s}")


def _culprit(w: World, roles: tuple[str, ...], pool: set[str] | None = None) -> Node:
    cands = [x for x in w.services_of(*roles) if pool is None or x.name in pool]
    return w.rng.choice(cands or w.services_of("api", "worker"))


def build_resource(w: World) -> None:
    """A cpu hog, a memory leak or a filling disk on one service; callers slow down."""
    n, with_latency = _setup(w)
    res = w.rng.choices(["cpu", "memory", "disk"], weights=[4, 4, 1])[0]
    owner = _culprit(w, ("api", "worker", "db", "cache", "queue", "edge") if res != "disk" else ("db", "queue", "api"))
    o = owner.name
    w.touched.add(o)
    slow = w.rng.uniform(1.2, 4)
    if res == "cpu":
        cpu = w.base_value(o, n.cpu)
        w.metric(w.onset, o, n.cpu, "step", round(min(0.98, cpu * w.rng.uniform(2.5, 10)), 3))
        slow = w.rng.uniform(1.5, 6)
    elif res == "memory":
        mem = w.base_value(o, n.mem)
        ramp = w.rng.uniform(0.3, 2.5)
        w.metric(w.onset, o, n.mem, "ramp", round(mem * w.rng.uniform(1.5, 6)), over=ramp)
        slow = w.rng.uniform(1.0, 2.5)
    else:
        for other in w.rng.sample(
            w.services_of("db", "queue", "api"), k=min(2, len(w.services_of("db", "queue", "api")))
        ):
            _series(w, other.name, n.disk, round(w.rng.uniform(0.3, 0.7), 3), 0.01, w.metrics[o][n.cpu]["every"])
        _series(w, o, n.disk, round(w.rng.uniform(0.5, 0.8), 3), 0.01, w.metrics[o][n.cpu]["every"])
        w.metric(
            w.onset - w.rng.uniform(0.5, 2),
            o,
            n.disk,
            "ramp",
            round(w.rng.uniform(0.97, 1.0), 3),
            over=w.rng.uniform(0.5, 2),
        )
        slow = w.rng.uniform(2, 8)
    _own_latency(w, n, o, with_latency, slow)
    hit = _slow_callers(w, n, o, with_latency, slow)
    _alerts(w, o, hit)
    _noise(w, n, o, with_latency)
    fix = [{"action": "restart", "service": o}, {"action": "scale", "service": o}]
    if res == "disk":
        fix = [{"action": "scale", "service": o}]
    cause = {"cpu": f"a cpu hog on {o}", "memory": f"memory leak in {o}", "disk": f"{o}'s disk filled up"}[res]
    w.title = w.rng.choice([f"{w.topo.edge} latency high", f"Slow {w.topo.domain} requests", f"{w.topo.edge} slow"])
    w.summary = f"Metrics only. Resource {res} on {o}: {cause}."
    w.set_truth({"kind": "resource", "service": o, "ref": res}, cause, fix, severity="major")


def build_delay(w: World) -> None:
    """Network delay on one service: its latency and its callers' rise; its own resources do not."""
    n, with_latency = _setup(w)
    pool = {s for s in with_latency if s != w.topo.edge and w.topo.callers(s)}
    if not pool:
        build_resource(w)
        return
    node = _culprit(w, ("api", "worker"), pool)
    o = node.name
    w.touched.add(o)
    slow = w.rng.uniform(3, 20)
    _own_latency(w, n, o, with_latency, slow)
    if w.rng.random() < 0.5:  # it does less work while packets wait
        w.metric(w.onset, o, n.cpu, "step", round(w.base_value(o, n.cpu) * w.rng.uniform(0.6, 0.9), 3))
    hit = _slow_callers(w, n, o, with_latency, slow)
    _alerts(w, o, hit)
    _noise(w, n, o, with_latency)
    cause = f"network delay on {o}"
    w.title = w.rng.choice([f"{w.topo.edge} latency high", f"Slow {w.topo.domain} requests"])
    w.summary = f"Metrics only. {cause}."
    w.set_truth(
        {"kind": "dependency", "ref": o},
        cause,
        [{"action": "failover", "service": o}, {"action": "restart", "service": o}],
        severity="major",
    )
