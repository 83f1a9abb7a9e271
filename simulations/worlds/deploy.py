"""Culprit: a deploy. A new version throws, floods the database, leaks memory or breaks its consumers.

The deploy note is sometimes about the fault, sometimes a bare release label and sometimes about
something else entirely, so a ranking cannot lean on the note alone; the timing, the new error
templates and the release named by Sentry carry the rest.
"""

from __future__ import annotations

from firebreak.simulations.worlds.builder import World

KIND = "deploy"

EXCEPTIONS = [
    (
        "NullPointerException",
        'Cannot invoke "{Stem}.getId()" because "{stem}" is null',
        "null {stem} handling in the new mapper",
    ),
    ("KeyError", "'currency_code'", "{stem} payload uses the new currency_code field"),
    ("TypeError", "Cannot read properties of undefined (reading 'items')", "{stem} list rendering rewrite"),
    (
        "UnmarshalTypeError",
        "json: cannot unmarshal string into Go struct field {Stem}.amount of type int64",
        "amount encoded as string in {stem} API",
    ),
    ("ValueError", "invalid literal for int() with base 10: 'None'", "{stem} id parsing refactor"),
    ("IllegalStateException", "Duplicate key {stem}-{id} (attempted merging values)", "{stem} dedup by key"),
    ("ZeroDivisionError", "division by zero in average {stem} size", "new {stem} size statistics"),
]
UNRELATED_NOTES = [
    "copy changes on the settings page",
    "bump lint tooling",
    "update README badges",
    "new footer links",
    "rename internal metrics dashboard",
    "tweak onboarding email wording",
]


def _note(w: World, relevant: str) -> str:
    r = w.rng.random()
    if r < 0.5:
        return relevant
    if r < 0.85:
        return w.rng.choice(["", "release train", "weekly release", "merge main", "hotfix batch"])
    return w.rng.choice(UNRELATED_NOTES)


def build(w: World) -> None:
    shape = w.rng.choice(["exception", "exception", "db-flood", "leak", "contract"])
    services = [n for n in w.services_of("api", "worker", "edge")]
    db = next(iter(w.services_of("db")))
    if shape == "db-flood":
        services = [n for n in services if db.name in n.depends_on] or services
        if not any(db.name in n.depends_on for n in services):
            shape = "exception"
    if shape == "contract":
        services = [n for n in services if w.topo.callers(n.name)]
        if not services:
            shape = "exception"
            services = [n for n in w.services_of("api", "worker", "edge")]
    node = w.rng.choice(services)
    s = node.name
    t_dep = w.onset - w.rng.uniform(0.5, 5)
    stem = node.stem.replace("-", "_")
    w.touched.add(s)
    if t_dep > 12 and w.rng.random() < 0.3:
        # An earlier, healthy release of the same service: the rollback goes to it, not to the start.
        w.deploy(w.rng.uniform(1, t_dep - 9), s, w.rng.choice(["", "release train", "minor fixes"]))

    if shape == "exception":
        exc, msg, relevant = w.rng.choice(EXCEPTIONS)
        msg = msg.replace("{Stem}", stem.capitalize()).replace("{stem}", stem)
        prev, new = w.deploy(t_dep, s, _note(w, relevant.replace("{stem}", node.stem)))
        w.logs(
            w.onset,
            s,
            w.rng.randint(30, 120),
            [("ERROR", f"unhandled {exc}: {msg}"), ("ERROR", "request {req} failed with 500")],
        )
        w.metric(w.onset, s, w.err_metric, "step", round(w.rng.uniform(0.15, 0.5), 3))
        callers = w.fail_callers(s, w.onset, [f"{s} answered 500 Internal Server Error"])
        w.symptom_alerts(s, w.onset, callers, origin_alert=True)
        w.sentry(
            w.onset + w.rng.uniform(1, 4),
            s,
            exc,
            msg,
            culprit=f"{stem}.handlers in {w.rng.choice(['get', 'list', 'render', 'save'])}_{stem}",
            release=new,
        )
        cause = f"{s} {new} raises {exc} on most requests"
    elif shape == "db-flood":
        table = w.rng.choice(["orders", "events", "line_items", "audit_log", f"{stem}_history", "sessions"])
        prev, new = w.deploy(t_dep, s, _note(w, f"load {node.stem} with related {table} (join) in list view"))
        w.logs(
            w.onset,
            s,
            w.rng.randint(20, 60),
            [
                ("WARN", f"slow query on {table} took {{ms}}ms"),
                ("ERROR", "timeout acquiring database connection after {ms}ms"),
            ],
        )
        w.metric(
            w.onset,
            db.name,
            w.metric_base(db.name, "cpu_usage_ratio", 0.3, 0.05),
            "ramp",
            0.98,
            over=w.rng.uniform(2, 5),
        )
        w.metric(
            w.onset,
            db.name,
            w.metric_base(db.name, "db_connections_in_use", 40, 0.05),
            "step",
            w.rng.choice([100, 200, 300]),
        )
        w.logs(
            w.onset + 1,
            db.name,
            w.rng.randint(20, 60),
            [
                ("ERROR", "canceling statement due to statement timeout"),
                ("WARN", f"duration: {{ms}} ms  statement: SELECT * FROM {table} WHERE {stem}_id = $1"),
            ],
        )
        callers = w.fail_callers(
            db.name, w.onset + 1, ["timeout acquiring database connection", f"query on {table} timed out"]
        )
        w.symptom_alerts(db.name, w.onset + 1, callers, origin_alert=True)
        cause = f"{s} {new} issues one query on {table} per row and saturates {db.name}"
    elif shape == "leak":
        prev, new = w.deploy(t_dep, s, _note(w, f"in-process cache for {node.stem} lookups"))
        mem = w.metric_base(
            s,
            w.rng.choice(["process_resident_memory_bytes", "container_memory_working_set_bytes"]),
            w.rng.choice([3e8, 5e8, 8e8]),
            0.02,
        )
        w.metric(t_dep + 0.5, s, mem, "ramp", w.base_value(s, mem) * 5, over=w.onset - t_dep + 2)
        w.logs(
            w.onset,
            s,
            w.rng.randint(8, 20),
            [("ERROR", f"container {s} OOMKilled, restarting (exit 137)"), ("WARN", "heap usage {pct}% after full GC")],
        )
        w.metric(w.onset, s, w.err_metric, "step", round(w.rng.uniform(0.1, 0.3), 3))
        callers = w.fail_callers(s, w.onset, [f"{s} connection reset", f"{s} answered 503"])
        w.symptom_alerts(s, w.onset, callers)
        cause = f"{s} {new} grows memory without bound and is OOM-killed in a loop"
    else:  # contract: the producer's deploy breaks its consumer; the consumer fails loudly
        consumer = w.rng.choice(w.topo.callers(s))
        field = w.rng.choice(["amount", "status", "created_at", "items", "currency", "owner_id"])
        prev, new = w.deploy(t_dep, s, _note(w, f"{node.stem} API v2 response shape ({field} renamed)"))
        w.logs(
            w.onset,
            consumer,
            w.rng.randint(40, 120),
            [
                ("ERROR", f"failed to decode {s} response: missing field '{field}'"),
                ("ERROR", "request {req} failed with 500"),
            ],
        )
        w.metric(w.onset, consumer, w.err_metric, "step", round(w.rng.uniform(0.3, 0.7), 3))
        callers = w.fail_callers(consumer, w.onset, [f"{consumer} answered 500"])
        w.symptom_alerts(consumer, w.onset, callers, origin_alert=True)
        w.sentry(w.onset + w.rng.uniform(1, 3), consumer, "DecodeError", f"missing field '{field}' in {s} response")
        w.touched.add(consumer)
        cause = f"{s} {new} renamed '{field}' in its responses and {consumer} cannot decode them"
    w.title = w.rng.choice(
        [
            f"{w.topo.edge} errors rising",
            f"{node.stem.capitalize()} failing for users",
            f"Errors on {s} and its callers",
        ]
    )
    w.summary = f"Deploy {s} {new}: {cause}."
    w.set_truth({"kind": "deploy", "service": s, "ref": new}, cause, [{"action": "rollback", "service": s, "to": prev}])
