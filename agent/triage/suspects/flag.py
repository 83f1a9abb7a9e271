"""Feature flags switched (variant or state). Fix: undo the latest switch of that flag: disable what was
turned on, enable what was turned off, or set the variant it had before."""

from __future__ import annotations

from firebreak.agent.actions import ProposedFix
from firebreak.agent.triage import fix_policy
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.suspects import _changes

KIND = "flag"
READS = (*_changes.READS, "flag_history", "list_flags")


def generate(ctx: Context) -> list[Candidate]:
    return _changes.generate(ctx, KIND)


def fixes(cand: Candidate, ctx: Context) -> list[ProposedFix]:
    c = cand.change or {}
    flag = cand.suspect.ref
    variant = str(c.get("variant") or "").lower()
    state = str(c.get("state") or "").upper()
    previous = next(
        (str(e["previous"]) for e in ctx.f.flag_events if e.get("flag") == flag and e.get("previous")), None
    )
    options = []
    if state == "DISABLED":
        options.append(
            (
                "enable_flag",
                {"flag": flag},
                f"Turning {flag} off preceded the failure; turn it back on.",
                "Restores the previous behaviour of the flag.",
                f"disable {flag} again",
            )
        )
    elif variant and variant not in fix_policy.ON_VARIANTS and previous and previous.lower() != variant:
        options.append(
            (
                "set_flag_variant",
                {"flag": flag, "variant": previous},
                f"{flag} was switched to '{variant}' just before the failure; switch back to '{previous}'.",
                "Users get the previous variant again.",
                f"set {flag} to {variant} again",
            )
        )
    options.append(
        (
            "disable_flag",
            {"flag": flag},
            f"{flag} was switched just before the failure; turning it off restores the old path.",
            "The feature behind the flag is hidden until fixed.",
            f"re-enable {flag}",
        )
    )
    return fix_policy.choose(cand, ctx, options)
