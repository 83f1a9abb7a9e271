"""Culprit: a feature flag switched (a new code path that throws or overloads a dependency, a new
variant, or a protective kill switch turned off)."""

from __future__ import annotations

from typing import Any

from firebreak.simulations.worlds.builder import World

KIND = "flag"
FEATURES = [
    "new-pricing",
    "async-writes",
    "batch-lookup",
    "v2-serializer",
    "smart-retry",
    "prefetch",
    "eager-sync",
    "inline-thumbnails",
    "fast-path",
    "bulk-export",
    "new-ranking",
    "parallel-fanout",
]


def build(w: World) -> None:
    node = w.rng.choice(w.services_of("api", "worker", "edge"))
    s = node.name
    w.touched.add(s)
    t = w.onset - w.rng.uniform(0.3, 3)
    shape = w.rng.choice(["throws", "overload", "variant", "killswitch"])
    deps = [d for d in node.depends_on if w.node(d).kind != "external"]
    if shape == "overload" and not deps:
        shape = "throws"
    key = f"{node.stem}-{w.rng.choice(FEATURES)}"
    flip: dict[str, Any]
    if shape == "killswitch":
        key = f"{node.stem}-{w.rng.choice(['load-shedding', 'circuit-breaker', 'safe-mode', 'request-guard'])}"
        w.flags[key] = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "on"}
        flip = {"flag": key, "state": "DISABLED"}
        fix = [{"action": "enable_flag", "flag": key}, {"action": "set_flag_variant", "flag": key, "variant": "on"}]
        dep = w.rng.choice(deps) if deps else s
        w.logs(
            w.onset,
            s,
            w.rng.randint(40, 120),
            [
                ("ERROR", f"call to {dep} failed: too many concurrent requests"),
                ("WARN", "queue length {queued}, no shedding"),
            ],
        )
        reasons = [f"{s} answered 503"]
        cause = f"{key} was disabled; without shedding {s} overloads"
    elif shape == "variant":
        old, new = w.rng.choice([("v1", "v2"), ("legacy", "streaming"), ("classic", "ml-ranker"), ("a", "b")])
        w.flags[key] = {"state": "ENABLED", "variants": {old: old, new: new}, "defaultVariant": old}
        flip = {"flag": key, "variant": new}
        fix = [{"action": "set_flag_variant", "flag": key, "variant": old}]
        w.logs(
            w.onset,
            s,
            w.rng.randint(30, 90),
            [
                ("ERROR", f"{new} handler failed: unsupported {node.stem} state"),
                ("ERROR", "request {req} failed with 500"),
            ],
        )
        reasons = [f"{s} answered 500"]
        cause = f"{key} moved to variant {new}, whose handler fails on most {node.stem} requests"
    else:
        w.flags[key] = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
        flip = {"flag": key, "variant": "on"}
        fix = [{"action": "disable_flag", "flag": key}, {"action": "set_flag_variant", "flag": key, "variant": "off"}]
        if shape == "throws":
            w.logs(
                w.onset,
                s,
                w.rng.randint(30, 90),
                [
                    ("ERROR", f"unhandled error in {key.replace('-', '_')} path: index out of range"),
                    ("ERROR", "request {req} failed with 500"),
                ],
            )
            reasons = [f"{s} answered 500"]
            cause = f"{key} turned on a code path in {s} that fails"
        else:
            dep = w.rng.choice(deps)
            w.logs(
                w.onset,
                s,
                w.rng.randint(30, 90),
                [("ERROR", f"call to {dep} timed out after {{ms}}ms"), ("INFO", f"fan-out of {{n}} calls to {dep}")],
            )
            w.logs(
                w.onset,
                dep,
                w.rng.randint(20, 60),
                [("ERROR", "rejected request: worker pool exhausted ({queued} queued)")],
            )
            w.metric(w.onset, dep, w.metric_base(dep, "thread_pool_busy_ratio", 0.3, 0.08), "step", 1.0)
            reasons = [f"{s} answered 504"]
            cause = f"{key} makes {s} call {dep} once per item; {dep} saturates"
    if w.rng.random() < 0.4:
        flip["note"] = w.rng.choice([f"rollout {key} to 100%", "enable for all tenants", "experiment start"])
    w.event(t, {"flag": flip})
    w.metric(w.onset, s, w.err_metric, "step", round(w.rng.uniform(0.1, 0.5), 3))
    callers = w.fail_callers(s, w.onset, reasons)
    w.symptom_alerts(s, w.onset, callers, origin_alert=not callers or None)
    w.title = w.rng.choice(
        [f"{node.stem.capitalize()} errors for part of the users", f"{w.topo.edge} failing", f"{s} slow and failing"]
    )
    w.summary = f"Flag {key}: {cause}."
    w.set_truth({"kind": "flag", "ref": key}, cause, fix)
