"""Traffic: who sends the load, as logs or alert labels name it (a client id, a campaign, a tenant).
Facts: the source's share of the lines that name any source, whether the request rate of that service
rose and whether that rise came first, whether the lines speak of throttling. Fix: block the source at
the service it floods; scale for our own customers arriving (a campaign)."""

from __future__ import annotations

import math

from firebreak.agent.actions import ProposedFix
from firebreak.agent.report import Evidence, Suspect
from firebreak.agent.triage import fix_policy
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.observe import parse_time
from firebreak.agent.triage.vocab import (
    GENERIC_SOURCES,
    THROTTLE_WORDS,
    TRAFFIC_LABELS,
    own_demand,
    traffic_pairs,
    traffic_sources,
    varies_per_line,
)

# Marketing channel keys say how a visitor came (email, cpc), not who sends the load.
CHANNEL_KEYS = frozenset({"utm_source", "utm_medium", "utm_content", "utm_term"})
KIND = "traffic"
READS = ("log_patterns", "search_logs", "metric_anomalies", "incident_details")
RATE_WORDS = (
    "requests",
    "rps",
    "qps",
    "traffic",
    "sessions",
    "inbound",
    "visits",
    "calls",
    "messages_in",
    "events_in",
    "lod",
)
NOT_RATE = ("error", "latency", "seconds", "duration", "fail", "retry", "5xx", "4xx")


def surges(ctx: Context) -> dict[str, tuple[float, bool]]:
    """Per service: the largest request-rate rise (ratio) and whether it was that service's first signal."""
    out: dict[str, tuple[float, bool]] = {}
    for svc, st in ctx.states.items():
        for a in st.anomalies:
            name = str(a.get("name") or "").lower()
            if str(a.get("direction") or "up") != "up" or not any(k in name for k in RATE_WORDS):
                continue
            if any(k in name for k in NOT_RATE):
                continue
            ratio = float(a.get("change_ratio") or 1.0)
            onset = parse_time(a.get("onset"))
            others = [parse_time(o.get("onset")) for o in st.anomalies if o is not a]
            first = onset is not None and all(o is None or onset <= o for o in others)
            if st.exact_onset and onset and (st.exact_onset - onset).total_seconds() < -60:
                first = False
            if ratio >= 1.5 and (svc not in out or ratio > out[svc][0]):
                out[svc] = (ratio, first)
    return out


def generate(ctx: Context) -> list[Candidate]:
    share: dict[tuple[str, str], float] = {}
    why: dict[tuple[str, str], str] = {}
    keys: dict[str, str] = {}
    throttled: dict[tuple[str, str], float] = {}
    for sample in ctx.f.log_samples:
        svc = str(sample.get("service") or "")
        counts: dict[str, int] = {}
        carrying = 0
        for ln in sample.get("lines") or []:
            msg = str(ln.get("message") or "")
            vals = set(traffic_sources(msg))
            carrying += bool(vals)
            for v in vals:
                counts[v] = counts.get(v, 0) + 1
            for key, v in traffic_pairs(msg):
                keys.setdefault(v, key)
        for v, n in counts.items():
            k = (svc, v)
            if n / max(1, carrying) >= 0.2 and n / max(1, carrying) > share.get(k, 0.0):
                share[k] = n / max(1, carrying)
                why[k] = f"{v} appears in {n} of {carrying} sampled {svc} lines"
    for svc, st in ctx.states.items():
        for b in st.bad_patterns:
            thr = float(any(w in b.text.lower() for w in THROTTLE_WORDS))
            for key, v in traffic_pairs(b.example):
                if varies_per_line(b.template, key):
                    continue
                keys.setdefault(v, key)
                k = (svc, v)
                share[k] = max(share.get(k, 0.0), 0.6 if b.new else 0.4)
                throttled[k] = max(throttled.get(k, 0.0), thr)
                why.setdefault(k, f'{svc} logs "{b.example[:160]}"')
    for al in ctx.f.alerts:
        labels = al.get("labels") or {}
        for lk, v in labels.items() if isinstance(labels, dict) else ():
            if str(lk).lower() in TRAFFIC_LABELS and v and str(lk).lower() != "source":
                k = (str(al.get("service") or ""), str(v))
                keys.setdefault(str(v), str(lk).lower())
                share[k] = max(share.get(k, 0.0), 0.8)
                why[k] = f"alert '{al.get('title')}' labels {lk}={v}"
    rises = surges(ctx)
    out = []
    for (svc, val), sh in sorted(share.items()):
        if val.lower() in GENERIC_SOURCES or val in ctx.services or keys.get(val, "") in CHANNEL_KEYS:
            continue
        ratio, first = rises.get(svc, (0.0, False))
        if not ratio and rises:
            ratio, first = max(rises.values())[0], False
        ev = [Evidence(tool="search_logs" if "sampled" in why[(svc, val)] else "log_patterns", finding=why[(svc, val)])]
        if ratio:
            ev.append(
                Evidence(
                    tool="metric_anomalies",
                    finding=f"request rate on {svc} rose {ratio:.1f}x"
                    + (", before any other symptom" if first else ""),
                )
            )
        out.append(
            Candidate(
                suspect=Suspect(kind="traffic", service=svc or None, ref=val),
                title=f"Traffic surge from {val}",
                evidence=ev,
                confirm=f"Break down request rate by client or campaign; {val} should dominate the increase.",
                rule_out=f"Traffic from {val} is at its usual level.",
                origin=svc or None,
                text=f"{keys.get(val, '')} {val}",
                facts={
                    "share": sh,
                    "surge": min(1.0, math.log(max(ratio, 1.0)) / 1.5),
                    "rate_first": float(first),
                    "throttled": throttled.get((svc, val), 0.0),
                    "own_demand": float(own_demand(keys.get(val, ""))),
                    "strength": sh,
                },
            )
        )
    return out


def fixes(cand: Candidate, ctx: Context) -> list[ProposedFix]:
    svc, val = cand.suspect.service or "", cand.suspect.ref
    block = (
        "block_traffic",
        {"service": svc, "source": val},
        f"Rate-limit or block {val} to protect other users.",
        f"{val} is refused until unblocked; tell them.",
        f"unblock {val}",
    )
    scale = (
        "scale",
        {"service": svc},
        f"{val} brings our own customers; add capacity to {svc} rather than refuse them.",
        "Cost; downstream services must absorb the load too.",
        f"scale {svc} back down after the peak",
    )
    return fix_policy.choose(cand, ctx, [scale, block] if cand.facts.get("own_demand") else [block, scale])
