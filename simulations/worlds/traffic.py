"""Culprit: traffic. One source (a client id, a partner sync, a bot, a campaign) carries a surge that
saturates the entry point and what it calls. Abusive sources are blocked; a legitimate campaign is
served by scaling."""

from __future__ import annotations

from firebreak.simulations.worlds.builder import World
from firebreak.simulations.worlds.topology import brand


def _source(w: World) -> tuple[str, str, bool]:
    """(name as logged, what it is, whether blocking it is the fix)."""
    style = w.rng.choice(["client", "partner", "bot", "campaign", "tenant"])
    if style == "client":
        return f"client-{w.rng.randint(1000, 9999)}", "an API client", True
    if style == "partner":
        return f"{brand(w.rng)}-{w.rng.choice(['sync', 'feed', 'etl', 'importer'])}", "a partner integration", True
    if style == "bot":
        return (
            f"{w.rng.choice(['crawlbot', 'pricegrab', 'scrapy-fleet', 'seo-audit'])}-{w.rng.randint(1, 9)}",
            "a bot",
            True,
        )
    if style == "tenant":
        return f"tenant-{w.rng.randint(100, 999)}", "one tenant's bulk job", True
    season = w.rng.choice(["spring-sale", "black-friday", "summer-drop", "flash-deal", "newsletter"])
    return f"{season}-{w.rng.randint(10, 99)}", "a marketing campaign", False


KIND = "traffic"


def build(w: World) -> None:
    edge = w.node(w.topo.edge)
    e = edge.name
    w.touched.add(e)
    source, what, block = _source(w)
    label = w.rng.choice(["client", "client_id", "source", "utm_campaign" if not block else "api_key_owner"])
    ramp = w.rng.uniform(1, 4)
    rps = w.base_value(e, w.rate_metric)
    w.metric(w.onset - ramp, e, w.rate_metric, "ramp", round(rps * w.rng.uniform(5, 12), 1), over=ramp)
    w.logs(
        w.onset - ramp,
        e,
        w.rng.randint(120, 200),
        [
            ("INFO", f"{{method}} {{path}} 200 {{ms}}ms {label}={source}", 6),
            ("WARN", f"{{method}} {{path}} 503 {{ms}}ms {label}={source}", 2),
        ],
    )
    w.add_base_line(e, "INFO", f"{{method}} {{path}} 200 {{ms}}ms {label}={{client}}", weight=6)
    internal = w.rng.choice([w.node(d) for d in edge.depends_on])
    pool = w.metric_base(internal.name, "thread_pool_busy_ratio", 0.3, 0.08)
    w.metric(w.onset, internal.name, pool, "step", 1.0)
    w.logs(
        w.onset,
        internal.name,
        w.rng.randint(20, 60),
        [
            ("ERROR", "rejected request: thread pool exhausted ({queued} queued)"),
            ("WARN", "request {req} queued for {ms}ms"),
        ],
    )
    w.metric(w.onset, internal.name, w.err_metric, "step", round(w.rng.uniform(0.1, 0.3), 3))
    w.metric(w.onset, e, w.err_metric, "step", round(w.rng.uniform(0.1, 0.4), 3))
    w.metric(w.onset, e, w.latency_metric, "step", round(w.base_value(e, w.latency_metric) * 8, 3))
    w.fail_callers(internal.name, w.onset, [f"{internal.name} answered 503 (overloaded)"], max_depth=1)
    # Some alerting rules group by the caller, so the source is named in the alert's labels too.
    labels = {f"top_{label}": source} if w.rng.random() < 0.4 else None
    w.error_alert(w.onset + w.rng.uniform(2, 4), e, summary=f"{e} 5xx ratio above 5%", labels=labels)
    if w.rng.random() < 0.5:
        w.latency_alert(w.onset + w.rng.uniform(2, 5), internal.name, "critical")
    if block:
        fix = [{"action": "block_traffic", "service": e, "source": source}, {"action": "block_traffic", "service": e}]
    else:
        fix = [{"action": "scale", "service": e}, {"action": "scale", "service": internal.name}]
    cause = f"{what} ({source}) multiplied the request rate on {e}; {internal.name} saturated"
    w.title = w.rng.choice([f"{e} slow and failing", "Timeouts for users", f"{e} overloaded"])
    w.summary = f"Traffic from {source}: {cause}."
    w.set_truth({"kind": "traffic", "ref": source}, cause, fix)
