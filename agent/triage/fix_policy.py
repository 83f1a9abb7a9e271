"""Fix selection as one policy: each suspect module lists the catalog actions that would undo or relieve
its suspect, best first; this module builds them, refusing any parameter that is not a name the stores
know (issue 15: a service, flag, version, host, table or traffic source seen nowhere is never offered),
and keeps the first valid one as the proposal with the rest as alternatives.

Shared helpers for the kinds: the previous version of a deploy, the flag that offers a fallback for a
third party, the action that acts on the owner of an exhausted resource.
"""

from __future__ import annotations

import re
from typing import Any

from firebreak.agent.actions import ProposedFix
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.observe import parse_time

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@/\-]{0,199}$")
FALLBACK_WORDS = ("fallback", "backup", "secondary", "failover", "kill", "killswitch", "degrad", "alternate", "standby")
OFF_VARIANTS = frozenset({"off", "false", "disabled", "none", "no", "0"})
ON_VARIANTS = frozenset({"on", "true", "enabled", "yes", "1"})


class RefusedFix(ValueError):
    """A fix whose parameters name something the stores do not know."""


def known(ctx: Context, field: str, value: Any, params: dict[str, Any]) -> bool:
    """True when `value` for `field` is a name the stores returned (never text invented by a note)."""
    text = str(value)
    if not _SAFE_NAME.match(text):
        return False
    if field == "service":
        return text in ctx.services
    if field == "flag":
        return text in ctx.known_flags
    if field == "to" and "service" in params:
        return text in ctx.known_versions.get(str(params["service"]), set())
    if field == "variant":
        flag = next((fl for fl in ctx.f.flags if str(fl.get("key") or fl.get("flag")) == params.get("flag")), None)
        variants = (flag or {}).get("variants") or {}
        return text in variants or any(str(e.get("previous")) == text for e in ctx.f.flag_events)
    if field in ("ref", "source"):
        return text.lower() in ctx.observed_text or any(text in str(a.get("name")) for a in ctx.f.anomalies)
    return field in ("key", "replicas")


def build(ctx: Context, action: str, params: dict[str, Any], rationale: str, risk: str, undo: str) -> ProposedFix:
    """A catalog fix, or RefusedFix naming the parameter the stores do not know."""
    for name, value in params.items():
        if name == "key":
            keys = {str(c.get("key")) for c in ctx.f.changes if c.get("key")}
            if str(value) not in keys:
                raise RefusedFix(f"{action}: config key {value!r} is not a recorded change")
        elif not known(ctx, name, value, params):
            raise RefusedFix(f"{action}: {name} {str(value)[:60]!r} is not a name the stores know")
    fix = ProposedFix(action=action, parameters=params, rationale=rationale, risk=risk, undo=undo)  # type: ignore[arg-type]
    fix.validate_catalog()
    return fix


def try_build(ctx: Context, refused: list[str], *args: Any) -> ProposedFix | None:
    try:
        return build(ctx, *args)
    except (RefusedFix, ValueError) as exc:
        refused.append(str(exc))
        return None


def previous_version(c: dict[str, Any], changes: list[dict[str, Any]]) -> str | None:
    if c.get("previous_version"):
        return str(c["previous_version"])
    at = parse_time(c.get("at"))
    prior = [
        (t, str(d["version"]))
        for d in changes
        if d.get("kind") == "deploy"
        and d.get("service") == c.get("service")
        and d.get("version")
        and at is not None
        and (t := parse_time(d.get("at"))) is not None
        and t < at
    ]
    return max(prior)[1] if prior else None


def fallback_flag(ctx: Context, dep: str) -> tuple[str, str, str | None] | None:
    """(flag, action, variant) that moves calls off a failing third party: first a flag routing to it that
    offers another variant, then a flag whose name or description means fallback, backup or kill switch
    and names the dependency, when it is not already on."""
    target = dep.lower()
    dep_words = [p for p in re.split(r"[^a-z0-9]+", target) if len(p) >= 3]
    routing: tuple[str, str, str | None] | None = None
    fallback: tuple[str, str, str | None] | None = None
    for fl in ctx.f.flags:
        key = str(fl.get("key") or fl.get("flag") or "")
        variants = fl.get("variants") or {}
        if not key or not isinstance(variants, dict):
            continue
        names = {str(n): str(v).lower() for n, v in variants.items()}
        routed = [n for n, v in names.items() if target in (n.lower(), v)]
        current = str(fl.get("default_variant") or fl.get("defaultVariant") or "")
        if routed and (not current or current in routed) and routing is None:
            others = sorted(n for n, v in names.items() if n not in routed and n.lower() not in OFF_VARIANTS)
            if others:
                routing = (key, "set_flag_variant", others[0])
        text = f"{key} {fl.get('description') or ''}".lower()
        if (
            fallback is None
            and any(w in text for w in FALLBACK_WORDS)
            and (target in text or any(p in text for p in dep_words))
        ):
            enabled = str(fl.get("state") or "ENABLED").upper() != "DISABLED"
            on = current.lower() in ON_VARIANTS or names.get(current) == "true"
            if not (enabled and on):
                fallback = (key, "enable_flag", None)
    return routing or fallback


def choose(
    cand: Candidate, ctx: Context, options: list[tuple[str, dict[str, Any], str, str, str]]
) -> list[ProposedFix]:
    """Build each option in order; refused ones are noted on the candidate's evidence."""
    refused: list[str] = []
    out = [fx for opt in options if (fx := try_build(ctx, refused, *opt)) is not None]
    from firebreak.agent.report import Evidence

    for r in refused[:2]:
        cand.evidence.append(Evidence(tool="fix_policy", finding=f"fix not offered: {r}"))
    return out
