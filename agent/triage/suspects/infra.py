"""Infrastructure changes (failovers, node drains, network or DNS changes), named by their note. Fix: fail
over again when the change moved a primary, otherwise restart what it touched."""

from __future__ import annotations

from firebreak.agent.actions import ProposedFix
from firebreak.agent.triage import fix_policy
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.suspects import _changes

KIND = "infra"
READS = _changes.READS
MOVE_WORDS = ("failover", "fail over", "replica", "primary", "region", "zone", "cluster", "switch")


def generate(ctx: Context) -> list[Candidate]:
    return _changes.generate(ctx, KIND)


def fixes(cand: Candidate, ctx: Context) -> list[ProposedFix]:
    svc, note = cand.suspect.service, cand.suspect.ref.lower()
    if not svc:
        return []
    restart = (
        "restart",
        {"service": svc},
        f"The infra change ({cand.suspect.ref}) preceded the failure on {svc}.",
        "Brief capacity loss during the restart.",
        "none needed",
    )
    failover = (
        "failover",
        {"service": svc},
        f"The infra change ({cand.suspect.ref}) moved {svc}; fail it over to a healthy instance.",
        "A second switch-over can drop in-flight connections.",
        "fail back",
    )
    moved = any(w in note for w in MOVE_WORDS)
    return fix_policy.choose(cand, ctx, [failover, restart] if moved else [restart, failover])
