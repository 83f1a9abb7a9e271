"""Culprit: an infrastructure change recorded by the platform team: a database failover onto a
weaker or farther replica, a node-pool drain that leaves a service without capacity, a cluster DNS
switch. The suspect's ref is the change's note, as recorded."""

from __future__ import annotations

from firebreak.simulations.worlds.builder import World
from firebreak.simulations.worlds.topology import Node

KIND = "infra"
ZONES = ["eu-west-1c", "us-east-1b", "eu-central-1a", "us-west-2c"]


def _failover(w: World) -> tuple[str, str, list[dict[str, str]], str]:
    db = w.rng.choice(w.services_of("db"))
    target = f"{db.name}-{w.rng.randint(2, 4)}"
    why = w.rng.choice([f"({w.rng.choice(ZONES)})", "for kernel patching", "(instance class downsized)", ""])
    note = f"planned failover of {db.name} primary to {target} {why}".strip()
    w.metric(w.onset, db.name, w.metric_base(db.name, "query_p95_seconds", 0.01, 0.1), "step", w.rng.uniform(0.4, 2.0))
    w.logs(w.onset, db.name, 10, [("WARN", "checkpoints are occurring too frequently ({n} seconds apart)")])
    hit = w.fail_callers(db.name, w.onset, [f"query to {db.name} timed out after {{ms}}ms", "statement timeout"])
    w.symptom_alerts(db.name, w.onset, hit, origin_alert=False)
    return db.name, note, [{"action": "failover", "service": db.name}], f"{db.name} now runs on {target}, too slow"


def _drain(w: World) -> tuple[str, str, list[dict[str, str]], str]:
    svc = w.rng.choice(w.services_of("api", "worker"))
    pool = f"np-{w.rng.randint(1, 6)}"
    note = w.rng.choice(
        [
            f"drain node pool {pool} for kernel upgrade",
            f"cordon and drain {pool} (spot reclaim)",
            f"replace node pool {pool} with smaller instances",
        ]
    )
    w.metric(w.onset, svc.name, w.metric_base(svc.name, "ready_replicas", 4, 0.0), "drop", 1)
    w.logs(
        w.onset,
        svc.name,
        15,
        [("WARN", "pod evicted: node {node} drained"), ("ERROR", "readiness probe failed: connection refused")],
    )
    w.metric(w.onset, svc.name, w.err_metric, "step", round(w.rng.uniform(0.1, 0.3), 3))
    hit = w.fail_callers(svc.name, w.onset, [f"no healthy upstream for {svc.name}", f"{svc.name} answered 503"])
    w.symptom_alerts(svc.name, w.onset, hit)
    fix = [{"action": "scale", "service": svc.name}, {"action": "restart", "service": svc.name}]
    return svc.name, note, fix, f"{svc.name} lost most of its pods when {pool} was drained"


def _dns(w: World) -> tuple[str, str, list[dict[str, str]], str]:
    dns = w.topo.add(
        Node(
            w.rng.choice(["coredns", "kube-dns", "dns-resolver"]),
            "service",
            "dns",
            "dns",
            version=f"1.{w.rng.randint(8, 12)}.{w.rng.randint(0, 4)}",
        )
    )
    w.metric_base(dns.name, "dns_request_errors_per_second", 0.1, 0.3)
    w.metric(w.onset, dns.name, "dns_request_errors_per_second", "step", w.rng.uniform(50, 300))
    note = w.rng.choice(
        [
            "switch cluster DNS to resolver pool dns-v2",
            "move cluster DNS upstream to 10.0.0.2",
            "enable DNS caching sidecar on all nodes",
        ]
    )
    targets = [n for n in w.services_of("api", "worker") if n.depends_on]
    for n in w.rng.sample(targets, k=min(2, len(targets))):
        dep = w.rng.choice(n.depends_on)
        w.logs(
            w.onset + w.rng.uniform(0, 1),
            n.name,
            w.rng.randint(20, 60),
            [
                ("ERROR", f"dial tcp: lookup {dep}: no such host"),
                ("ERROR", f"lookup {dep} on 10.0.0.10:53: i/o timeout"),
            ],
        )
        w.metric(w.onset, n.name, w.err_metric, "step", round(w.rng.uniform(0.2, 0.6), 3))
    hit = w.fail_callers(targets[0].name if targets else w.topo.edge, w.onset, ["upstream answered 503"])
    w.symptom_alerts(targets[0].name if targets else w.topo.edge, w.onset, hit, origin_alert=True)
    return dns.name, note, [{"action": "failover", "service": dns.name}], "name lookups fail across the cluster"


def build(w: World) -> None:
    shape = w.rng.choice([_failover, _drain, _dns])
    service, note, fix, effect = shape(w)
    w.touched.add(service)
    w.event(
        w.onset - w.rng.uniform(0.3, 3),
        {
            "infra": {
                "service": service,
                "note": note,
                "author": w.rng.choice(["platform-team", "infra-ops", "sre-bot"]),
            }
        },
    )
    cause = f"infra change '{note}': {effect}"
    w.title = w.rng.choice([f"{w.topo.edge} errors", f"{service} degraded", "Timeouts across services"])
    w.summary = f"Infra: {cause}."
    accept = [{"kind": "dependency", "ref": service}] if shape is _dns else None
    w.set_truth({"kind": "infra", "service": service, "ref": note}, cause, fix, also_accept=accept)
