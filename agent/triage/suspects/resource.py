"""Resources (memory, cpu, disk, connections, file descriptors, threads) of one service: its own metric
rising against its own history, or its logs saying it hit a limit. Fix: act on the owner of the
exhausted resource: restart what leaks (memory, descriptors, threads), scale what is saturated (cpu,
connections, disk)."""

from __future__ import annotations

import math
import re
from typing import Any

from firebreak.agent.actions import ProposedFix
from firebreak.agent.report import Evidence, Suspect
from firebreak.agent.triage import fix_policy
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.observe import parse_time
from firebreak.agent.triage.vocab import RESOURCE_LOG_WORDS

KIND = "resource"
READS = ("metric_anomalies", "log_patterns")
METRIC_TOKENS: dict[str, tuple[str, ...]] = {
    "memory": ("memory", "mem", "rss", "heap", "resident", "oom"),
    "disk": ("disk", "filesystem", "volume", "fs", "inodes", "storage"),
    "file-descriptors": ("fds", "fd", "descriptors", "open_files"),
    "threads": ("threads", "thread", "goroutines", "workers"),
    "connections": ("connections", "connection", "conns"),
    "cpu": ("cpu", "throttled", "load"),
}
RESTART = ("memory", "file-descriptors", "threads")


def resource_of(metric: str) -> str | None:
    """The resource a metric name measures, by its tokens (`process_resident_memory_bytes`, `mem`)."""
    tokens = set(re.split(r"[^a-z0-9]+", metric.lower()))
    low = metric.lower()
    for res, keys in METRIC_TOKENS.items():
        if any(k in tokens for k in keys) or any(len(k) > 4 and k in low for k in keys):
            return res
    return None


def _rising(a: dict[str, Any], res: str) -> bool:
    up = str(a.get("direction") or "up") == "up"
    name = str(a.get("name") or "").lower()
    if any(w in name for w in ("free", "avail", "remaining", "idle")):
        up = not up
    return up


RECENT_MINUTES = 2.0  # the trouble began at most this long before the first alert


def recent_rise(ctx: Context, points: list[tuple[Any, float]]) -> tuple[float, Any]:
    """How far a series stands, from shortly before the first alert on, above its own history, in
    standard deviations of that history (0 when it does not rise), and where the recent part starts."""
    import statistics
    from datetime import timedelta

    alert_times = [t for a in ctx.f.alerts if (t := parse_time(a.get("started_at"))) is not None]
    pivot = (min(alert_times) if alert_times else ctx.f.incident_start()) - timedelta(minutes=RECENT_MINUTES)
    before = [v for t, v in points if t < pivot]
    after = [v for t, v in points if t >= pivot]
    if len(before) < 5 or len(after) < 2:
        return 0.0, pivot
    sd = statistics.pstdev(before) or 1e-9
    mean = statistics.fmean(before)
    sd = max(sd, 1e-3 * abs(mean), 1e-9)
    return max(0.0, (statistics.fmean(after) - mean) / sd), pivot


def generate(ctx: Context) -> list[Candidate]:
    out: dict[tuple[str, str], Candidate] = {}

    def cand(svc: str, res: str) -> Candidate:
        if (svc, res) not in out:
            out[(svc, res)] = Candidate(
                suspect=Suspect(kind="resource", service=svc, ref=res),
                title=f"{svc} is running out of {res}",
                confirm=f"Check {svc}'s {res} usage against its limit and what consumes it.",
                rule_out=f"{res} usage on {svc} is normal.",
                origin=svc,
                facts={"rise": 0.0, "ratio": 0.0, "first_own": 0.0, "at_limit": 0.0, "strength": 0.0},
            )
        return out[(svc, res)]

    for svc, st in ctx.states.items():
        onsets = [t for a in st.anomalies if (t := parse_time(a.get("onset")))]
        own_first = min(onsets) if onsets else None
        for a in st.anomalies:
            res = resource_of(str(a.get("name") or ""))
            if res is None or not _rising(a, res):
                continue
            c = cand(svc, res)
            score = float(a.get("score") or 0.0)
            ratio = float(a.get("change_ratio") or 1.0)
            rise = min(1.0, math.log1p(max(score, 0.0)) / math.log1p(200.0))
            onset = parse_time(a.get("onset"))
            first = float(onset is not None and own_first is not None and onset <= own_first)
            if (svc, str(a.get("name") or "")) in ctx.f.series:
                rise = 0.0  # the whole series was read: its rise against its own history is measured below
            if rise >= c.facts["rise"]:
                c.facts.update(rise=rise, ratio=min(1.0, abs(math.log(max(ratio, 1e-3))) / 2.0), first_own=first)
                c.at = onset
            c.facts["strength"] = max(c.facts["strength"], rise)
            c.evidence.append(
                Evidence(
                    tool="metric_anomalies",
                    ref=f"{svc}/{a.get('name')}",
                    weight=round(rise, 2),
                    finding=f"{a.get('name')} on {svc} rose from {a.get('before')} to {a.get('after')} "
                    f"({score:.0f} sigma of its own noise)" + (f" at {onset:%H:%M:%S}" if onset else ""),
                )
            )
    for (svc, metric), points in sorted(ctx.f.series.items()):
        res = resource_of(metric)
        if res is None or any(w in metric.lower() for w in ("free", "avail", "remaining", "idle")):
            continue
        z, pivot = recent_rise(ctx, points)
        if z < 3.0:
            continue
        c = cand(svc, res)
        rise = min(1.0, math.log1p(z) / math.log1p(200.0))
        if rise > c.facts["rise"]:
            c.facts["rise"] = rise
            c.at = c.at or pivot
        c.facts["strength"] = max(c.facts["strength"], rise)
        c.evidence.append(
            Evidence(
                tool="query_metric",
                ref=f"{svc}/{metric}",
                weight=round(rise, 2),
                finding=f"{metric} on {svc} stands {z:.0f} standard deviations above its own "
                f"history since {pivot:%H:%M:%S}",
            )
        )
    for svc, st in ctx.states.items():
        for b in st.bad_patterns:
            low = b.text.lower()
            for res, keys in sorted(RESOURCE_LOG_WORDS.items(), key=lambda kv: kv[0] != "threads"):
                if any(k in low for k in keys):
                    c = cand(svc, res)
                    c.facts["at_limit"] = max(c.facts["at_limit"], min(1.0, 0.5 + b.weight / 2))
                    c.facts["strength"] = max(c.facts["strength"], 0.6)
                    if c.at is None or (b.first_seen and b.first_seen < c.at):
                        c.at = b.first_seen or c.at
                    c.evidence.append(
                        Evidence(
                            tool="log_patterns",
                            ref=b.template[:200],
                            finding=f'{svc} logs "{b.template[:140]}" ({b.count_after}x)',
                        )
                    )
                    break
    return list(out.values())


def fixes(cand: Candidate, ctx: Context) -> list[ProposedFix]:
    svc, res = cand.suspect.service or "", cand.suspect.ref
    restart = (
        "restart",
        {"service": svc},
        f"{svc} exhausted its own {res}; a restart releases it while the cause is fixed.",
        "Brief capacity loss; it comes back if the cause stays.",
        "none needed",
    )
    scale = (
        "scale",
        {"service": svc},
        f"{svc} is saturated on {res}; add capacity to the owner.",
        "Cost; it only buys time if demand keeps growing.",
        "scale back down",
    )
    return fix_policy.choose(cand, ctx, [restart, scale] if res in RESTART else [scale, restart])
