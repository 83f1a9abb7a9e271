"""Culprit: a dependency fails with nothing changed on our side: an internal database, cache, queue
or service goes down, or a third party has an outage (with or without a flag that switches to a
fallback provider; when the flag exists, turning it on is the only accepted fix)."""

from __future__ import annotations

from firebreak.simulations.worlds.builder import World
from firebreak.simulations.worlds.topology import THIRD_PARTY, Node, brand

KIND = "dependency"

_INTERNAL = {
    "db": [
        "connection refused ({dep}:5432)",
        "FATAL: the database system is in recovery mode",
        "could not connect to server: Connection timed out",
    ],
    "cache": [
        "Connection refused to {dep}:6379",
        "READONLY You can't write against a read only replica",
        "{dep}: Connection timed out",
    ],
    "queue": ["broker {dep} not available: NOT_LEADER_FOR_PARTITION", "{dep}: connection closed by broker"],
    "api": ["{dep} answered 503 Service Unavailable", "connection refused by {dep}"],
    "worker": ["{dep} answered 503 Service Unavailable", "connection refused by {dep}"],
}
_THIRD = [
    "{dep} answered 503 Service Unavailable after {ms}ms",
    "{dep} API timeout after {ms}ms",
    "{dep} returned 502 Bad Gateway",
    "TLS handshake with api.{dep}.com timed out",
]


def _third_party(w: World) -> Node:
    thirds = w.services_of("third_party")
    if thirds:
        return w.rng.choice(thirds)
    cat = w.rng.choice(sorted(THIRD_PARTY))
    owner = w.rng.choice(w.services_of("api", "worker"))
    node = w.topo.add(Node(brand(w.rng), "external", "third_party", cat, category=cat))
    owner.depends_on.append(node.name)
    return node


def build(w: World) -> None:
    third = w.rng.random() < 0.55
    if third:
        dep = _third_party(w)
        callers = w.topo.callers(dep.name)
        caller = callers[0]
        w.touched.update({dep.name, caller})
        what = w.rng.choice(THIRD_PARTY[dep.category])
        reason = w.rng.choice(_THIRD).replace("{dep}", dep.name)
        w.logs(
            w.onset,
            caller,
            w.rng.randint(40, 120),
            [
                ("ERROR", f"{what} via {dep.name} failed: {reason}"),
                ("WARN", f"circuit breaker {dep.name} open, {{n}} calls failed"),
            ],
        )
        w.metric(w.onset, caller, w.err_metric, "step", round(w.rng.uniform(0.2, 0.6), 3))
        hit = w.fail_callers(caller, w.onset, [f"{caller} answered 502 ({dep.name} unavailable)"])
        w.symptom_alerts(caller, w.onset, hit, origin_alert=True)
        fallback = w.rng.random() < 0.5
        if fallback:
            backup = brand(w.rng)
            style = w.rng.random()
            if style < 0.5:
                key = w.rng.choice(
                    [f"{dep.category}-fallback-provider", f"{caller}-use-{backup}", f"{dep.category}-backup-route"]
                )
                w.flags[key] = {
                    "state": "ENABLED",
                    "variants": {"on": True, "off": False},
                    "defaultVariant": "off",
                    "metadata": {"description": f"send {what} through {backup} instead of {dep.name}"},
                }
                fix = [
                    {"action": "enable_flag", "flag": key},
                    {"action": "set_flag_variant", "flag": key, "variant": "on"},
                ]
            else:
                key = f"{dep.category}-provider"
                w.flags[key] = {
                    "state": "ENABLED",
                    "variants": {dep.name: dep.name, backup: backup},
                    "defaultVariant": dep.name,
                    "metadata": {"description": f"which provider handles {what}"},
                }
                fix = [{"action": "set_flag_variant", "flag": key, "variant": backup}]
            cause = f"{dep.name} ({dep.category} provider) has an outage; the {key} flag switches to {backup}"
        else:
            fix = [{"action": "failover", "service": caller}, {"action": "failover", "service": dep.name}]
            cause = f"{dep.name} ({dep.category} provider) has an outage"
        name = dep.name
    else:
        cands = w.services_of("db", "cache", "queue") + [
            n for n in w.services_of("api", "worker") if w.topo.callers(n.name)
        ]
        dep = w.rng.choice(cands)
        name = dep.name
        w.touched.add(name)
        reasons = [r.replace("{dep}", name) for r in _INTERNAL[dep.role]]
        if dep.kind == "service":
            w.metric(w.onset, name, w.rate_metric, "drop", 0)
            w.logs(
                w.onset - 0.2,
                name,
                4,
                [
                    ("FATAL", "health check failed: process not responding"),
                    ("ERROR", "liveness probe failed: context deadline exceeded"),
                ],
                for_=2,
            )
        else:
            first = w.rate_metric if dep.role != "db" else "queries_per_second"
            w.metric(w.onset, name, first, "drop", 0)
            if w.rng.random() < 0.5:
                w.logs(
                    w.onset - 0.2,
                    name,
                    6,
                    [
                        (
                            "FATAL",
                            w.rng.choice(
                                [
                                    "terminating connection due to administrator command",
                                    "Out of memory allocating; aborting",
                                    "node lost quorum, stepping down",
                                ]
                            ),
                        )
                    ],
                    for_=1,
                )
        hit = w.fail_callers(name, w.onset, reasons)
        w.symptom_alerts(name, w.onset, hit, origin_alert=w.rng.random() < 0.4)
        fix = [{"action": "failover", "service": name}, {"action": "restart", "service": name}]
        cause = f"{name} went down with no change on our side"
        callers = w.topo.callers(name)
        if callers and w.rng.random() < 0.3:
            # A degraded mode that works without the dependency: an accepted alternative, not the first fix.
            caller = w.rng.choice(callers)
            key = f"{caller}-{w.rng.choice(['degrade-without', 'bypass', 'skip'])}-{name}"
            w.flags[key] = {
                "state": "ENABLED",
                "variants": {"on": True, "off": False},
                "defaultVariant": "off",
                "metadata": {"description": f"degraded mode: {caller} serves without {name}"},
            }
            fix.append({"action": "enable_flag", "flag": key})
    w.title = w.rng.choice(
        [f"{w.topo.edge} failing", "Users cannot complete requests", f"Errors across {w.topo.domain}"]
    )
    w.summary = f"Dependency {name}: {cause}."
    w.set_truth({"kind": "dependency", "ref": name}, cause, fix)
