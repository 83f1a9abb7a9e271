"""Culprit: a resource at its hard limit (memory, cpu, disk, connections, file-descriptors, threads),
exhausted by its owner itself or flooded by one caller. The fix acts on the owner (restart, scale);
when one caller floods it, blocking or restarting that caller is accepted too."""

from __future__ import annotations

from firebreak.simulations.worlds.builder import World

KIND = "resource"

# resource -> (metric names, baseline, limit, error lines at the owner)
RESOURCES: dict[str, tuple[list[str], float, float, list[str]]] = {
    "memory": (
        ["process_resident_memory_bytes", "container_memory_working_set_bytes"],
        6e8,
        2.0e9,
        [
            "out of memory: cannot allocate {bytes} bytes",
            "OOM command not allowed when used memory > 'maxmemory'",
            "java.lang.OutOfMemoryError: Java heap space",
        ],
    ),
    "cpu": (
        ["cpu_usage_ratio", "container_cpu_usage_ratio"],
        0.3,
        1.0,
        [
            "event loop blocked for {ms}ms",
            "CPU throttled: {pct}% of periods",
            "request {req} took {ms}ms (cpu saturated)",
        ],
    ),
    "disk": (
        ["disk_used_ratio", "node_filesystem_used_ratio"],
        0.55,
        1.0,
        [
            "No space left on device",
            "could not extend file: No space left on device",
            "write failed: disk full ({gb} GB used)",
        ],
    ),
    "connections": (
        ["db_connections_in_use", "active_connections"],
        40,
        500,
        ["sorry, too many clients already", "remaining connection slots are reserved", "max number of clients reached"],
    ),
    "file-descriptors": (
        ["process_open_fds"],
        900,
        65536,
        ["accept4: too many open files", "socket: Too many open files", "EMFILE: too many open files"],
    ),
    "threads": (
        ["thread_pool_busy_ratio", "jvm_threads_live"],
        0.3,
        1.0,
        [
            "rejected execution: thread pool exhausted ({queued} queued)",
            "unable to create new native thread",
            "request {req} waited {ms}ms for a worker thread",
        ],
    ),
}
_OWNER_ROLES = {
    "memory": ("cache", "api", "worker"),
    "cpu": ("db", "api", "worker", "edge"),
    "disk": ("queue", "db", "api", "worker"),
    "connections": ("db", "cache"),
    "file-descriptors": ("api", "edge", "worker"),
    "threads": ("api", "worker", "edge"),
}


def build(w: World) -> None:
    res = w.rng.choice(sorted(RESOURCES))
    owners = w.services_of(*_OWNER_ROLES[res])
    owner = w.rng.choice(owners or w.services_of("api", "worker", "edge"))
    o = owner.name
    w.touched.add(o)
    names, base, limit, errors = RESOURCES[res]
    metric = w.rng.choice(names)
    if metric == "jvm_threads_live":
        base, limit = 120, 2000
    w.metric_base(o, metric, base, 0.03)
    callers = w.topo.callers(o)
    flooder = w.rng.choice(callers) if callers and w.rng.random() < 0.45 else None
    ramp = w.rng.uniform(4, 12) if res in ("memory", "disk", "file-descriptors") else w.rng.uniform(0.5, 3)
    w.metric(w.onset - ramp, o, metric, "ramp", limit, over=ramp)
    if res == "disk" and w.rng.random() < 0.5:
        w.logs(w.onset - ramp, o, 6, [("WARN", "disk usage above {pct}% on /var/lib/data")], for_=ramp)
    lines = [("ERROR", e) for e in w.rng.sample(errors, k=2)]
    w.logs(w.onset, o, w.rng.randint(20, 80), lines)
    if flooder:
        w.touched.add(flooder)
        job = w.rng.choice(["reindex", "backfill", "nightly-sync", "export", "recompute-scores"])
        w.logs(
            w.onset - ramp,
            flooder,
            w.rng.randint(20, 60),
            [
                ("INFO", f"{job} batch {{batch}}: {{rows}} rows, opened connection to {o}"),
                ("INFO", f"{job} progress {{pct}}%"),
            ],
        )
        w.metric(
            w.onset - ramp,
            flooder,
            w.rate_metric,
            "step",
            w.base_value(flooder, w.rate_metric) * w.rng.uniform(4, 10),
        )
        reasons = [f"{o}: {lines[0][1]}"]
    else:
        reasons = [f"{o}: {lines[0][1]}", f"{o} answered 503"]
    if owner.role in ("api", "worker", "edge"):
        w.metric(w.onset, o, w.err_metric, "step", round(w.rng.uniform(0.1, 0.4), 3))
    hit = w.fail_callers(o, w.onset, reasons)
    w.symptom_alerts(o, w.onset, hit, origin_alert=w.rng.random() < 0.5 or not hit)
    if w.rng.random() < 0.5:
        w.alert(
            w.onset + w.rng.uniform(0, 3),
            w.rng.choice(["grafana", "alertmanager"]),
            f"{res.replace('-', ' ').title().replace(' ', '')}NearLimit",
            o,
            severity="warning",
            summary=f"{o} {res} above 95% of its limit",
        )
    fix = [{"action": "restart", "service": o}, {"action": "scale", "service": o}]
    accept = []
    cause = f"{o} ran out of {res}"
    if flooder:
        fix = [
            {"action": "block_traffic", "service": o, "source": flooder},
            {"action": "restart", "service": flooder},
            {"action": "scale", "service": o},
            {"action": "restart", "service": o},
        ]
        accept = [{"kind": "traffic", "ref": flooder}]
        cause = f"{o} ran out of {res}, flooded by a batch job in {flooder}"
    if res == "disk":
        fix = [f for f in fix if f["action"] != "restart" or f["service"] != o]
    w.title = w.rng.choice([f"{o} degraded", f"{w.topo.edge} errors", f"Slow and failing {w.topo.domain} requests"])
    w.summary = f"Resource {res} on {o}: {cause}."
    w.set_truth({"kind": "resource", "service": o, "ref": res}, cause, fix, also_accept=accept)
