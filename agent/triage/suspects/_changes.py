"""Shared by the change kinds (deploy, config, flag, infra): one candidate per recorded change, with
the affected service it is best linked to (its own service, callers that name it, services its key or
note names) and how strongly. Timing and relevance are features, not computed here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from firebreak.agent.report import Evidence, Suspect, SuspectKind
from firebreak.agent.triage.context import AFFECTED, Candidate, Context
from firebreak.agent.triage.observe import key_links, mentions_service, parse_time
from firebreak.agent.triage.signals import named_failing, norm_affected

READS = ("recent_changes", "metric_anomalies", "log_patterns", "service_dependencies", "list_sentry_issues")


def change_ref(c: dict[str, Any]) -> tuple[SuspectKind, str] | None:
    kind = str(c.get("kind") or "").lower()
    if kind == "deploy" and c.get("version"):
        return "deploy", str(c["version"])
    if kind == "config" and c.get("key"):
        return "config", str(c["key"])
    if kind == "flag" and c.get("flag"):
        return "flag", str(c["flag"])
    if kind == "infra":
        return "infra", str(c.get("note") or c.get("key") or "infra change")
    return None


def change_text(c: dict[str, Any]) -> str:
    """What a change says of itself: note, key, flag, values."""
    parts = [c.get("note"), c.get("key"), c.get("flag"), c.get("variant"), c.get("from_value"), c.get("to_value")]
    return " ".join(str(p) for p in parts if p not in (None, ""))


def describe(c: dict[str, Any]) -> str:
    kind = c.get("kind")
    if kind == "deploy":
        return f"Deploy of {c.get('service')} {c.get('previous_version') or '?'} -> {c.get('version')}" + (
            f" ('{c.get('note')}')" if c.get("note") else ""
        )
    if kind == "config":
        return f"Config change on {c.get('service')}: {c.get('key')} {c.get('from_value')} -> {c.get('to_value')}"
    if kind == "flag":
        return f"Flag {c.get('flag')} set to {c.get('variant') or c.get('state') or 'changed'}"
    return f"Infra change{' on ' + str(c.get('service')) if c.get('service') else ''}: {c.get('note')}"


def _title(kind: str, ref: str, svc: str | None, c: dict[str, Any]) -> str:
    if kind == "deploy":
        return f"{svc} {ref} deploy introduced a fault" + (f" ({c.get('note')})" if c.get("note") else "")
    if kind == "config":
        return f"Config change {ref} on {svc} ({c.get('from_value')} -> {c.get('to_value')})"
    if kind == "flag":
        return f"Feature flag {ref} switched to {c.get('variant') or c.get('state')}"
    return f"Infra change: {ref}"


CONFIRM = {
    "deploy": (
        "Compare the error rate of {svc} on {ref} with any instance still on the previous version.",
        "Errors began before {ref} reached production, or persist after a rollback.",
    ),
    "config": (
        "Check {svc}'s effective value of {ref} and whether errors started when it was applied.",
        "Errors persist with {ref} at its previous value.",
    ),
    "flag": (
        "Evaluate {ref} for affected requests; only users served the new variant should fail.",
        "Users with {ref} off fail the same way.",
    ),
    "infra": ("Check whether the infra change window matches the onset.", "Trouble began before the change."),
}


def _links(c: dict[str, Any], kind: str, ref: str, ctx: Context) -> dict[str, float]:
    """Services the change touches, with how directly (1.0: its own service or named by its key)."""
    svc = str(c.get("service") or "") or None
    links: dict[str, float] = {}
    if svc:
        links[svc] = 1.0
        own_hurt = ctx.affected(svc) >= AFFECTED
        for caller in ctx.graph.callers.get(svc, set()):
            cst = ctx.states.get(caller)
            if cst is not None and named_failing(cst, svc, ctx.services):
                links[caller] = max(links.get(caller, 0.0), 0.9)
            elif own_hurt and cst is not None:
                links[caller] = max(links.get(caller, 0.0), 0.6)
        for dep in ctx.graph.deps.get(svc, set()):
            links[dep] = max(links.get(dep, 0.0), 0.5)
    if kind in ("flag", "infra") or not svc:
        for s, m in key_links(ref, ctx.services).items():
            links[s] = max(links.get(s, 0.0), 0.9 * m)
        for s in ctx.services:
            m = mentions_service(str(c.get("note") or ""), s, ctx.services)
            if m:
                links[s] = max(links.get(s, 0.0), 0.7 * m)
    return links


def _timing(c: dict[str, Any], at: datetime | None, target: str | None, ctx: Context) -> str:
    """The change in words with when it landed against the first sign of trouble."""
    onset = ctx.onset_of(target) or ctx.earliest_onset
    gap = ctx.gap_minutes(at, onset)
    where = f" in {target}" if target else ""
    if gap is None:
        return f"{describe(c)}; when it landed against the trouble{where} is unknown"
    if gap < -0.75:
        return f"{describe(c)} landed {-gap:.0f} min after the first sign of trouble{where}: ruled down, it came after"
    return f"{describe(c)} landed {max(gap, 0):.0f} min before the first sign of trouble{where}"


def generate(ctx: Context, want: str) -> list[Candidate]:
    out: list[Candidate] = []
    for c in ctx.f.changes:
        ref_kind = change_ref(c)
        if ref_kind is None or ref_kind[0] != want:
            continue
        kind, ref = ref_kind
        svc = str(c.get("service") or "") or None
        links = _links(c, kind, ref, ctx)
        best, target = 0.0, None
        for s, strength in sorted(links.items()):
            val = strength * norm_affected(ctx.states.get(s), ctx.max_affected)
            if val > best:
                best, target = val, s
        victim = 0.0
        if target in ctx.hurt:
            roots = [
                (links[u] * norm_affected(ctx.states.get(u), ctx.max_affected), u)
                for u in ctx.hurt[target]
                if u in links
            ]
            if roots:
                best, target = max(roots)
            else:
                victim = 1.0
        at = parse_time(c.get("at"))
        cand = Candidate(
            suspect=Suspect(kind=kind, service=svc, ref=ref),
            title=_title(kind, ref, svc, c),
            evidence=[
                Evidence(tool="recent_changes", ref=str(c.get("id") or ref), finding=_timing(c, at, target, ctx))
            ],
            confirm=CONFIRM[kind][0].format(svc=svc, ref=ref),
            rule_out=CONFIRM[kind][1].format(svc=svc, ref=ref),
            at=at,
            change=c,
            origin=target,
            text=change_text(c) + (f" {ref}" if kind == "flag" else ""),
            facts={"link": best, "linked_victim": victim, "unlinked": float(not links), "strength": best},
        )
        out.append(cand)
    return out
