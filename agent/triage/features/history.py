"""Similar past incidents and their causes: a past incident on the same service whose root cause was of
the same kind makes the suspect a little likelier."""

from __future__ import annotations

from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.features import feature

KIND_WORDS = {
    "deploy": ("deploy", "version", "release", "rolled back", "rollback"),
    "config": ("config", "setting"),
    "flag": ("flag",),
    "dependency": ("outage", "provider", "down", "unavailable"),
    "resource": ("memory", "disk", "cpu", "pool", "leak", "exhaust"),
    "traffic": ("traffic", "campaign", "client", "surge", "bot"),
    "certificate": ("certificate", "tls", "expired"),
    "data": ("table", "data", "migration", "rows", "corrupt"),
    "infra": ("infra", "failover", "node", "maintenance"),
}


@feature("similar_past_cause")
def similar_past_cause(cand: Candidate, ctx: Context) -> float:
    """Best similarity score of a past incident on the suspect's service whose root cause reads as the same kind."""
    best = 0.0
    svc = cand.suspect.service or cand.origin or ""
    for hit in ctx.f.similar:
        text = f"{hit.get('root_cause', '')} {hit.get('countermeasures', '')} {hit.get('title', '')}".lower()
        if (
            svc
            and str(hit.get("service") or "") == svc
            and any(w in text for w in KIND_WORDS.get(cand.suspect.kind, ()))
        ):
            best = max(best, min(1.0, float(hit.get("score") or 0.0)))
    return best
