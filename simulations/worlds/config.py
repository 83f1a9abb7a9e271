"""Culprit: a configuration change (pool size, timeout, rate limit, cache TTL, log level, concurrency)."""

from __future__ import annotations

from firebreak.simulations.worlds.builder import World

KIND = "config"


def build(w: World) -> None:
    node = w.rng.choice(w.services_of("api", "worker", "edge"))
    s = node.name
    t = w.onset - w.rng.uniform(0.3, 4)
    w.touched.add(s)
    db = next(iter(w.services_of("db")))
    deps = [d for d in node.depends_on if w.node(d).kind != "external"] or [db.name]
    shape = w.rng.choice(["pool", "timeout", "ratelimit", "ttl", "loglevel", "concurrency"])
    if shape == "ratelimit" and node.role != "edge":
        node = w.node(w.topo.edge)
        s = node.name
        w.touched.add(s)
    if shape == "ttl" and not [n for n in w.services_of("cache")]:
        shape = "pool"
    key_prefix = w.rng.choice(["", f"{node.stem.replace('-', '_')}.", "app."])
    old: int | str
    new: int | str

    if shape == "pool":
        key = key_prefix + w.rng.choice(["db.pool_size", "datasource.max_pool_size", "database.max_connections"])
        old, new = w.rng.choice([40, 50, 64, 100]), w.rng.choice([2, 4, 5])
        w.logs(
            w.onset,
            s,
            w.rng.randint(30, 90),
            [
                ("ERROR", "timeout acquiring connection from pool after {ms}ms"),
                ("WARN", f"pool exhausted: {new} of {new} connections busy, {{queued}} waiting"),
            ],
        )
        reasons = [f"{s} answered 503"]
        cause = f"{key} lowered from {old} to {new}: {s} queues for database connections"
    elif shape == "timeout":
        dep = w.rng.choice(deps)
        key = key_prefix + w.rng.choice([f"{dep}.timeout_ms", "upstream.timeout_ms", "http.client_timeout_ms"])
        old, new = w.rng.choice([2000, 5000, 10000]), w.rng.choice([20, 50, 80])
        w.logs(
            w.onset,
            s,
            w.rng.randint(30, 90),
            [
                ("ERROR", f"request to {dep} cancelled: deadline exceeded after {new}ms"),
                ("WARN", f"{dep} call took {{ms}}ms, over budget"),
            ],
        )
        reasons = [f"{s} answered 504 Gateway Timeout"]
        cause = f"{key} lowered from {old} to {new}: calls from {s} to {dep} time out"
    elif shape == "ratelimit":
        key = key_prefix + w.rng.choice(
            ["ratelimit.requests_per_minute", "ratelimit.default_rps", "throttle.per_client"]
        )
        old, new = w.rng.choice([600, 1000, 6000]), w.rng.choice([6, 10, 60])
        w.logs(
            w.onset,
            s,
            w.rng.randint(60, 160),
            [("WARN", "rate limit exceeded for client {client}: 429"), ("INFO", "GET {path} 429 {ms}ms")],
        )
        reasons = ["429 Too Many Requests"]
        cause = f"{key} lowered from {old} to {new}: most clients get 429"
    elif shape == "ttl":
        cache = w.services_of("cache")[0].name
        key = key_prefix + w.rng.choice(["cache.ttl", f"{cache}.ttl_seconds", "stock_cache.ttl"])
        old, new = w.rng.choice(["300", "600", "3600"]), w.rng.choice(["0", "1", "300ms"])
        w.logs(
            w.onset,
            s,
            w.rng.randint(30, 90),
            [("WARN", f"cache miss for {node.stem}:{{id}} ({cache})"), ("WARN", "slow query took {ms}ms")],
        )
        w.metric(w.onset, db.name, w.metric_base(db.name, "cpu_usage_ratio", 0.3, 0.05), "ramp", 0.97, over=3)
        reasons = [f"{s} answered 504 Gateway Timeout"]
        cause = f"{key} changed from {old} to {new}: every read misses {cache} and hammers {db.name}"
    elif shape == "loglevel":
        key = key_prefix + w.rng.choice(["logging.level", "log.level", "root_log_level"])
        old, new = "INFO", "DEBUG"
        disk = w.metric_base(s, "disk_used_ratio", round(w.rng.uniform(0.4, 0.6), 2), 0.01)
        w.metric(t + 0.5, s, disk, "ramp", 1.0, over=w.onset - t)
        w.logs(
            t + 0.5,
            s,
            w.rng.randint(80, 200),
            [("DEBUG", f"{node.stem} {{id}} payload dump {{bytes}} bytes")],
            for_=w.onset - t,
        )
        w.logs(
            w.onset,
            s,
            w.rng.randint(20, 60),
            [("ERROR", "write failed: No space left on device"), ("ERROR", "request {req} failed with 500")],
        )
        reasons = [f"{s} answered 500"]
        cause = f"{key} set to DEBUG: {s} fills its disk with debug logs"
    else:
        key = key_prefix + w.rng.choice(["worker.concurrency", "consumer.threads", "max_parallel_jobs"])
        old, new = w.rng.choice([4, 8]), w.rng.choice([64, 128, 256])
        w.logs(
            w.onset,
            db.name,
            w.rng.randint(20, 60),
            [("ERROR", "sorry, too many clients already"), ("WARN", "remaining connection slots are reserved")],
        )
        w.metric(w.onset, db.name, w.metric_base(db.name, "db_connections_in_use", 40, 0.05), "step", 500)
        w.logs(
            w.onset,
            s,
            w.rng.randint(20, 60),
            [("INFO", f"started {new} workers"), ("ERROR", "could not connect to database: too many clients")],
        )
        reasons = [f"{db.name} refused connection: too many clients"]
        cause = f"{key} raised from {old} to {new}: {s} opens more connections than {db.name} allows"
    note = w.rng.choice(["", "", "tuning", f"adjust {key.split('.')[-1]}", "align with staging"])
    body = {"service": s, "key": key, "from": old, "to": new}
    if note:
        body["note"] = note
    w.event(t, {"config": body})
    w.metric(w.onset, s, w.err_metric, "step", round(w.rng.uniform(0.1, 0.5), 3))
    callers = w.fail_callers(s, w.onset, reasons)
    w.symptom_alerts(s, w.onset, callers, origin_alert=not callers or None)
    w.title = w.rng.choice([f"{s} degraded", f"Users see errors on {w.topo.edge}", f"{node.stem} requests failing"])
    w.summary = f"Config change on {s}: {cause}."
    w.set_truth(
        {"kind": "config", "service": s, "ref": key}, cause, [{"action": "revert_config", "service": s, "key": key}]
    )
