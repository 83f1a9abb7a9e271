"""Culprit: damaged data. A manual job, an import or a backfill wrote bad rows into one table; the
readers of that table fail on impossible values. Often no change is recorded at all: the job only
shows in its own logs."""

from __future__ import annotations

from firebreak.simulations.worlds.builder import World

KIND = "data"

# (table suffix, what readers log about a bad row)
_DAMAGE = [
    ("prices", "invalid price 0.00 for {sku} in {table}, refusing order"),
    ("rates", "rate for {currency} is 0 in {table}: division by zero"),
    ("settings", "tenant {tenant} has no row in {table}, using none"),
    ("accounts", "account {account} missing in {table} (foreign key {table}.owner_id)"),
    ("schedules", 'NULL value in column "starts_at" of {table} for id {id}'),
    ("catalog", "duplicate key in {table}: {sku} appears {n} times"),
]


def build(w: World) -> None:
    readers = [n for n in w.services_of("api", "worker", "edge") if any(w.node(d).role == "db" for d in n.depends_on)]
    reader = w.rng.choice(readers or w.services_of("api", "worker", "edge"))
    r = reader.name
    w.touched.add(r)
    suffix, line = w.rng.choice(_DAMAGE)
    table = w.rng.choice([f"{reader.stem.replace('-', '_')}_{suffix}", suffix, f"{w.topo.domain}_{suffix}"])
    t_job = w.onset - w.rng.uniform(0.5, 6)
    writers = [n for n in w.services_of("worker", "api") if n.name != r]
    if writers and w.rng.random() < 0.7:
        writer = w.rng.choice(writers).name
        job = w.rng.choice(["backfill", "manual import", "cleanup script", "nightly import", "migration job"])
        w.logs(t_job, writer, 6, [("INFO", f"{job} {{job}}: updated {{rows}} rows in {table}")], for_=1.5)
        origin = f"a {job} run from {writer}"
    else:
        origin = "a manual SQL session"
    w.logs(
        w.onset,
        r,
        w.rng.randint(30, 100),
        [("ERROR", line.replace("{table}", table)), ("ERROR", "request {req} failed with 500")],
    )
    w.metric(w.onset, r, w.err_metric, "step", round(w.rng.uniform(0.1, 0.5), 3))
    hit = w.fail_callers(r, w.onset, [f"{r} answered 500"])
    w.symptom_alerts(
        r,
        w.onset,
        hit,
        origin_alert=True,
        exception=("DataError", line.split(":")[0].replace("{table}", table).replace("{", "").replace("}", ""))
        if w.rng.random() < 0.5
        else None,
    )
    cause = f"{origin} damaged rows of {table}; {r} fails on them"
    w.title = w.rng.choice(
        [f"{r} errors on some records", f"Wrong data shown by {w.topo.edge}", f"{reader.stem} failing"]
    )
    w.summary = f"Data {table}: {cause}."
    w.set_truth({"kind": "data", "ref": table}, cause, [{"action": "restore_data", "ref": table}])
