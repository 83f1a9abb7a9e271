"""Dependencies: a service or third party its callers fail on. Proposed when an affected caller's new
errors (or Sentry issues) name it, or a dependency edge leads from an affected caller to an affected
callee. Fix: for a third party, the flag that offers its fallback, else fail over the caller we run; for
one of ours, fail it over (a dead primary) or restart it."""

from __future__ import annotations

from firebreak.agent.actions import ProposedFix
from firebreak.agent.report import Evidence, Suspect
from firebreak.agent.triage import fix_policy
from firebreak.agent.triage.context import AFFECTED, Candidate, Context
from firebreak.agent.triage.observe import mentions_service
from firebreak.agent.triage.vocab import DEPENDENCY_FAIL_WORDS

KIND = "dependency"
READS = ("log_patterns", "list_sentry_issues", "service_dependencies", "service_map", "metric_anomalies")


def generate(ctx: Context) -> list[Candidate]:
    out: dict[str, Candidate] = {}
    for caller, cst in sorted(ctx.states.items()):
        if cst.affected < AFFECTED:
            continue
        texts = [(b.weight, b.example or b.template) for b in cst.bad_patterns]
        texts += [
            (0.5, f"{i.get('title', '')} {i.get('culprit', '')}") for i in ctx.f.sentry if i.get("service") == caller
        ]
        for dep in sorted(ctx.services - {caller}):
            mention, failing, example = 0.0, 0.0, ""
            for w, text in texts:
                m = mentions_service(text, dep, ctx.services)
                if not m:
                    continue
                fails = any(word in text.lower() for word in DEPENDENCY_FAIL_WORDS)
                val = min(1.0, w * m)
                if val * (1.0 if fails else 0.5) > mention * (1.0 if failing else 0.5):
                    mention, failing, example = val, float(fails), text
            edge = dep in ctx.graph.deps.get(caller, set())
            own = ctx.affected(dep)
            if mention == 0.0 and not (edge and own > AFFECTED):
                continue
            dep_onset, caller_onset = ctx.onset_of(dep), cst.onset
            earlier = float(bool(dep_onset and caller_onset and dep_onset <= caller_onset))
            facts = {
                "mention": mention,
                "named_failing": mention * failing,
                "edge": float(edge),
                "own_affected": own,
                "dep_earlier": earlier,
                "caller_root": float(caller not in ctx.hurt),
                "third_party": float(dep not in ctx.states and dep not in ctx.graph.deps),
                "strength": 0.5 * mention + 0.3 * own + 0.2 * edge,
            }
            ev = []
            if mention:
                ev.append(
                    Evidence(
                        tool="log_patterns",
                        ref=example[:200],
                        weight=round(mention, 2),
                        finding=f'{caller}\'s new errors name {dep}: "{example[:160]}"',
                    )
                )
            if edge:
                ev.append(
                    Evidence(tool="service_dependencies", ref=f"{caller}->{dep}", finding=f"{caller} depends on {dep}")
                )
            old = out.get(dep)
            if old is not None:
                old.facts["callers"] = old.facts.get("callers", 1.0) + 1.0
                if facts["strength"] <= old.facts["strength"]:
                    old.evidence.extend(ev[:1])
                    continue
                facts["callers"] = old.facts["callers"]
                ev = ev + old.evidence[:2]
            out[dep] = Candidate(
                suspect=Suspect(kind="dependency", service=dep, ref=dep),
                title=f"{dep} is failing and {caller} suffers from it",
                evidence=ev,
                confirm=f"Check {dep}'s own health and whether other callers of {dep} fail too.",
                rule_out=f"{dep} answers other callers normally, or {caller} fails on calls not reaching {dep}.",
                origin=caller,
                facts={"callers": 1.0, **facts},
            )
    for svc in ctx.anomalous:
        # A service in trouble of its own is a suspect even when no caller names it (a broker, a cache).
        if svc in out:
            continue
        callers = sorted(c for c in ctx.graph.callers.get(svc, set()) if ctx.affected(c) > 0)
        if not ctx.graph.callers.get(svc):
            continue  # nothing calls it: not a dependency of anything (its own causes are other suspects)
        out[svc] = Candidate(
            suspect=Suspect(kind="dependency", service=svc, ref=svc),
            title=f"{svc} is failing",
            evidence=[e for e in ctx.states[svc].signals[:3]],
            confirm=f"Check {svc}'s own health and logs around the onset.",
            rule_out=f"{svc}'s trouble only follows a failure it depends on.",
            origin=callers[0] if callers else None,
            facts={
                "own_affected": ctx.affected(svc),
                "edge": float(bool(callers)),
                "callers": float(len(callers)),
                "caller_root": 1.0,
                "strength": 0.3 * ctx.affected(svc),
            },
        )
    return list(out.values())


def fixes(cand: Candidate, ctx: Context) -> list[ProposedFix]:
    dep, caller = cand.suspect.ref, cand.origin or ""
    options = []
    fb = fix_policy.fallback_flag(ctx, dep)
    third_party = cand.facts.get("third_party", 0.0) > 0 or ctx.affected(dep) <= 0.1
    if fb is not None:
        flag, action, variant = fb
        params = {"flag": flag, **({"variant": variant} if variant else {})}
        options.append(
            (
                action,
                params,
                f"{flag} offers a fallback for {dep}; switch {caller or 'callers'} to it.",
                "The fallback path may be slower or costlier.",
                f"switch {flag} back",
            )
        )
    if third_party and caller:
        options.append(
            (
                "failover",
                {"service": caller},
                f"{dep} is outside our control; fail over {caller}, which we run.",
                f"{caller}'s fallback path may be slower or costlier.",
                f"fail {caller} back",
            )
        )
        options.append(
            (
                "block_traffic",
                {"service": caller, "source": dep},
                f"Stop {caller} calling {dep} while it is down.",
                "Features needing it are unavailable.",
                "unblock",
            )
        )
    options.append(
        (
            "failover",
            {"service": dep},
            f"Route calls away from the failing {dep}.",
            "The standby may be colder or behind.",
            f"fail {dep} back",
        )
    )
    options.append(
        (
            "restart",
            {"service": dep},
            f"Restart {dep}, which its callers fail on.",
            "Brief loss of capacity.",
            "none needed",
        )
    )
    return fix_policy.choose(cand, ctx, options)
