"""The three stages end to end: suspects (candidate generation), features, ranking; then the fix policy
and the report. No I/O and deterministic: the same findings always give the same report."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Literal

from firebreak.agent.report import Evidence, Hypothesis, TriageReport
from firebreak.agent.triage import features, ranking, summary, suspects
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.observe import Findings

MAX_HYPOTHESES = 5
# Below this fitted probability the best suspect is a guess: the report says no cause is identified yet.
FINDING_THRESHOLD = 0.15
# Set by scripts/fit_ranker.py to record every candidate's features (never set in production).
RECORDER: Callable[[Findings], None] | None = None


def rank_suspects(f: Findings) -> tuple[Context, list[Candidate]]:
    """All suspects with their features and fitted probability, best first."""
    if RECORDER is not None:
        RECORDER(f)
    ctx = Context(f)
    cands = suspects.generate(ctx)
    for c in cands:
        features.compute(c, ctx)
    return ctx, ranking.score(cands)


def blind_spots(ctx: Context) -> list[str]:
    """What the investigation could not see, said plainly."""
    f = ctx.f
    out = []
    if not f.anomalies and not f.patterns and not f.sentry and not f.trace_errors:
        out.append("no telemetry: no metric anomalies, no new log templates, no Sentry issues, no traces")
    if not f.changes:
        out.append("no changes recorded (deploys, config, flags, infra) in the window")
    if not ctx.graph.deps:
        out.append("an empty dependency graph: which service calls which is unknown")
    out += [f"tool problem: {e}" for e in f.errors[:5]]
    return out


def table(ctx: Context, ranked: list[Candidate], limit: int = 10) -> list[dict[str, Any]]:
    """The evidence table the LLM path gets from `rank_suspects`: suspects, probability, top features."""
    rows = []
    for c in ranked[:limit]:
        contrib = ranking.model_for(c.features).contributions(c.features)
        top = sorted(((abs(v), n) for n, v in contrib.items() if c.features.get(n)), reverse=True)[:5]
        fixes = suspects.fixes_for(c, ctx)
        rows.append(
            {
                "suspect": c.suspect.model_dump(),
                "title": c.title,
                "probability": round(c.probability, 3),
                "features": {n: round(c.features[n], 3) for _, n in top},
                "evidence": [e.finding for e in c.evidence[:4]],
                "fix": fixes[0].flat() if fixes else None,
            }
        )
    return rows


def build_report(f: Findings, *, update_minutes: int, investigator: str = "offline") -> TriageReport:
    ctx, ranked = rank_suspects(f)
    top = ranked[:MAX_HYPOTHESES]
    total = max(1.0, sum(c.probability for c in top))
    hyps: list[Hypothesis] = []
    for i, c in enumerate(top):
        fixes = suspects.fixes_for(c, ctx)
        conf = round(max(0.01, c.probability / total), 2)
        status: Literal["likely", "suspected"] = "likely" if i == 0 and c.probability >= 0.5 else "suspected"
        hyps.append(
            Hypothesis(
                title=c.title,
                suspect=c.suspect,
                confidence=conf,
                evidence=[ranking.explain(c), *c.evidence[:7]],
                confirm=c.confirm,
                rule_out=c.rule_out,
                status=status,
                fix=fixes[0] if fixes else None,
                alternatives=fixes[1:3],
            )
        )
    hyps.sort(key=lambda h: -h.confidence)  # stable: equal shown confidence keeps the model's order
    blind = blind_spots(ctx)
    found = bool(hyps) and top[0].probability >= FINDING_THRESHOLD
    title = str(f.incident.get("title") or "incident")
    if found:
        h = hyps[0]
        summary_text = (
            f"{title}: most likely cause is {h.title[0].lower() + h.title[1:]} "
            f"({h.suspect.kind} {h.suspect.ref}, confidence {h.confidence:.0%})."
        )
    else:
        seen = "; ".join(blind) or "the evidence points nowhere clearly"
        summary_text = (
            f"{title}: no cause identified yet. Could not see: {seen}."
            if blind
            else (f"{title}: no cause identified yet; no suspect is backed by enough evidence.")
        )
    fix = hyps[0].fix if found and hyps else None
    severity, why = summary.severity(f, ctx.states)
    user_impact, symptoms = summary.impact(ctx.states)
    template = "application_bug"
    if found and hyps[0].suspect.kind in ("deploy", "config", "flag", "infra"):
        template = "deployment_error"
    elif found and hyps[0].suspect.kind == "traffic":
        template = "traffic_surge"
    report = TriageReport(
        summary=summary_text,
        severity=severity,  # type: ignore[arg-type]
        severity_reason=why,
        user_impact=user_impact,
        symptoms=symptoms,
        hypotheses=hyps,
        proposed_fix=fix,
        next_update_due=f.now + timedelta(minutes=update_minutes),
        customer_template=template,  # type: ignore[arg-type]
        investigator=investigator,
        notes=[f"could not see: {b}" for b in blind] + ([] if found else ["no cause identified yet"]),
    )
    if not found and hyps:
        report.hypotheses[0].evidence.insert(
            0,
            Evidence(
                tool="rank_suspects",
                weight=0.0,
                finding=f"best suspect only at probability {top[0].probability:.2f}: a lead, not a finding",
            ),
        )
    report.internal_update, report.customer_message = summary.render_messages(
        report, f, str(f.incident.get("id") or ""), title
    )
    return report
