"""Deploys: a new version of a service. Fix: roll back to the version it replaced; a restart only when
that version is unknown."""

from __future__ import annotations

from firebreak.agent.actions import ProposedFix
from firebreak.agent.triage import fix_policy
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.suspects import _changes

KIND = "deploy"
READS = _changes.READS


def generate(ctx: Context) -> list[Candidate]:
    return _changes.generate(ctx, KIND)


def fixes(cand: Candidate, ctx: Context) -> list[ProposedFix]:
    svc, ref = cand.suspect.service, cand.suspect.ref
    if not svc or cand.change is None:
        return []
    prev = fix_policy.previous_version(cand.change, ctx.f.changes)
    options = []
    if prev:
        options.append(
            (
                "rollback",
                {"service": svc, "to": prev},
                f"The fault arrived with {svc} {ref}; {prev} ran without it.",
                "Changes shipped in the new version are withdrawn until re-released.",
                f"redeploy {svc} {ref}",
            )
        )
    options.append(
        (
            "restart",
            {"service": svc},
            "The previous version is unknown; a restart buys time while it is found.",
            "Brief capacity loss during the restart.",
            "none needed",
        )
    )
    return fix_policy.choose(cand, ctx, options)
