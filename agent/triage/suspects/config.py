"""Configuration changes: a key of a service changed value. Fix: revert the key."""

from __future__ import annotations

from firebreak.agent.actions import ProposedFix
from firebreak.agent.triage import fix_policy
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.suspects import _changes

KIND = "config"
READS = _changes.READS


def generate(ctx: Context) -> list[Candidate]:
    return _changes.generate(ctx, KIND)


def fixes(cand: Candidate, ctx: Context) -> list[ProposedFix]:
    svc, ref, c = cand.suspect.service, cand.suspect.ref, cand.change or {}
    if not svc:
        return []
    return fix_policy.choose(
        cand,
        ctx,
        [
            (
                "revert_config",
                {"service": svc, "key": ref},
                f"Restore {ref} to {c.get('from_value')}, its value before the failure.",
                "Whatever the change was meant to achieve is undone.",
                f"set {ref} to {c.get('to_value')} again",
            ),
        ],
    )
