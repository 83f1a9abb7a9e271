"""Assemble a post-mortem draft from the incident's own records: nothing is typed twice.

Every fact comes from a table (incident, alerts, changes, investigations, approvals, timeline,
remediations). Judgements (what went well, what did not) are rules over those facts, so each line can be
traced to a record; the 5 Whys are seeded from the top hypothesis's evidence and left for people to finish.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from firebreak.memory.postmortem.model import (
    ActionItem,
    Durations,
    Impact,
    PostMortem,
    Source,
    TimelineItem,
    Why,
)
from firebreak.memory.stats import recurrence
from firebreak.state.alerts import Alert
from firebreak.state.approvals import Approval
from firebreak.state.changes import Change
from firebreak.state.incidents import Incident, Remediation, TimelineEntry
from firebreak.state.investigations import Investigation
from firebreak.statuses import ApprovalStatus

# Changes this long before the start of impact are still worth listing in the timeline.
CHANGE_LOOKBACK = timedelta(hours=2)
SLOW_DETECTION_MINUTES = 10
SLOW_APPROVAL_MINUTES = 15
UPDATE_KINDS = ("note", "reminder", "update")
# Approved fixes that took effect: run by an executor, or carried out by hand as recorded.
EXECUTED = (ApprovalStatus.EXECUTED.value, ApprovalStatus.MANUAL.value)


def _minutes(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return round((b - a).total_seconds() / 60.0, 1)


def _fmt_minutes(m: float) -> str:
    if m >= 120:
        return f"{m / 60:.1f} hours"
    return f"{m:.0f} minutes"


def _describe_change(c: Change) -> str:
    who = f" by {c.author}" if c.author else ""
    if c.kind == "deploy":
        prev = f" (from {c.previous_version})" if c.previous_version else ""
        what = f"{c.service} {c.version or ''} deployed{prev}"
    elif c.kind == "config":
        what = f"config {c.key} on {c.service} changed from {c.from_value!r} to {c.to_value!r}"
    elif c.kind == "flag":
        what = f"flag {c.flag} set to {c.variant or c.state}"
    else:
        what = f"{c.kind} on {c.service or 'infrastructure'}"
    note = f": {c.note}" if c.note else ""
    return f"{what}{who}{note}"


def latest_report(s: Session, incident: Incident) -> tuple[dict[str, Any] | None, Investigation | None]:
    """The report people acted on: the incident's, with the investigation that produced it."""
    inv = s.scalars(
        select(Investigation).where(Investigation.incident_id == incident.id, Investigation.report.is_not(None))
        .order_by(Investigation.finished_at.desc().nulls_last(), Investigation.queued_at.desc())
    ).first()
    report = incident.report or (inv.report if inv else None)
    return (report if isinstance(report, dict) else None), inv


def _hypotheses(report: dict[str, Any] | None) -> list[dict[str, Any]]:
    hyps = (report or {}).get("hypotheses") or []
    return [h for h in hyps if isinstance(h, dict)]


def _approval_lines(approvals: list[Approval]) -> list[TimelineItem]:
    items: list[TimelineItem] = []
    for a in approvals:
        params = ", ".join(f"{k}={v}" for k, v in sorted((a.parameters or {}).items()))
        label = f"{a.action}({params})"
        items.append(TimelineItem(at=a.requested_at, kind="approval", text=f"Fix proposed for approval: {label}"))
        if a.decided_at is not None and a.decision:
            verb = "approved" if a.decision == "approve" or a.decision == "approved" else "rejected"
            items.append(TimelineItem(at=a.decided_at, kind="approval",
                                      text=f"{a.decided_by or 'someone'} {verb} {label}"))
        if a.executed_at is not None:
            result = f": {a.result}" if a.result else ""
            items.append(TimelineItem(at=a.executed_at, kind="action", text=f"{label} ran ({a.status}){result}"))
    return items


def build_timeline(s: Session, incident: Incident, report: dict[str, Any] | None,
                   inv: Investigation | None, approvals: list[Approval]) -> list[TimelineItem]:
    items: list[TimelineItem] = []
    start = incident.started_at or incident.detected_at or incident.created_at
    if incident.started_at:
        items.append(TimelineItem(at=incident.started_at, kind="signal", text="Impact began (first signal)"))
    alerts = s.scalars(select(Alert).where(Alert.incident_id == incident.id).order_by(Alert.started_at)).all()
    for al in alerts:
        items.append(TimelineItem(at=al.started_at, kind="alert", text=f"{al.source} alert: {al.title} ({al.service})"))
        if al.ended_at is not None:
            items.append(TimelineItem(at=al.ended_at, kind="alert", text=f"{al.source} alert resolved: {al.title}"))
    if incident.detected_at:
        items.append(TimelineItem(at=incident.detected_at, kind="detection", text="Incident opened"))
    end = incident.resolved_at or incident.mitigated_at or incident.updated_at
    changes = s.scalars(
        select(Change).where(Change.at >= start - CHANGE_LOOKBACK, Change.at <= end).order_by(Change.at)
    ).all()
    for c in changes:
        items.append(TimelineItem(at=c.at, kind="change", text="Change: " + _describe_change(c)))
    if inv is not None and inv.finished_at is not None:
        for i, h in enumerate(_hypotheses(report)[:3], start=1):
            status = h.get("status") or "suspected"
            items.append(TimelineItem(at=inv.finished_at, kind="hypothesis",
                                      text=f"Hypothesis {i} ({status}): {h.get('title', '')}"))
    items.extend(_approval_lines(approvals))
    entries = s.scalars(
        select(TimelineEntry).where(TimelineEntry.incident_id == incident.id).order_by(TimelineEntry.id)
    ).all()
    # Countermeasures recorded by an approved fix are already on the timeline as the approval and its run.
    from_approvals = {c.what for c in incident.countermeasures if c.approval_id}
    for e in entries:
        if e.kind in UPDATE_KINDS:
            items.append(TimelineItem(at=e.at, kind="update", text=f"Update ({e.actor}): {e.text}"))
        elif e.kind == "updated" and e.field == "severity":
            items.append(TimelineItem(at=e.at, kind="status",
                                      text=f"Severity changed from {e.old_value} to {e.new_value} by {e.actor}"))
        elif e.kind == "countermeasure" and e.text not in from_approvals:
            items.append(TimelineItem(at=e.at, kind="action", text=f"Countermeasure by {e.actor}: {e.text}"))
    if incident.mitigated_at:
        items.append(TimelineItem(at=incident.mitigated_at, kind="status", text="Mitigated"))
    if incident.resolved_at:
        items.append(TimelineItem(at=incident.resolved_at, kind="status", text="Resolved"))
    order = {"signal": 0, "change": 1, "alert": 2, "detection": 3}
    return sorted(items, key=lambda it: (it.at, order.get(it.kind, 5)))


def seed_whys(incident: Incident, report: dict[str, Any] | None, first_alert: str) -> list[Why]:
    """Five whys: the first answers come from the records, the last ones are questions for the review."""
    hyps = _hypotheses(report)
    symptom = incident.symptoms or incident.user_impact or first_alert or incident.title
    whys = [Why(question="Why were users affected?", answer=symptom.strip())]
    if not hyps:
        whys.append(Why(question=f"Why did {', '.join(incident.services or []) or 'the service'} fail?",
                        answer=incident.root_cause or "No cause identified yet: to be answered in the review.",
                        source=Source.RECORDS if incident.root_cause else Source.TO_ANSWER))
    else:
        top = hyps[0]
        suspect = top.get("suspect") or {}
        evidence = [str(e.get("finding", "")) for e in top.get("evidence") or [] if isinstance(e, dict)]
        whys.append(Why(question=f"Why did {suspect.get('service') or 'the service'} fail?",
                        answer=str(top.get("title", "")).strip()))
        if evidence:
            whys.append(Why(question=f"Why do we think {suspect.get('kind', 'it')} {suspect.get('ref', '')} did it?",
                            answer=evidence[0]))
        whys.append(Why(question=f"Why did {suspect.get('kind', 'the change')} {suspect.get('ref', '')} reach "
                                 "production without being caught?",
                        answer="To be answered in the review: which test, canary, check or alert could have "
                               "caught it earlier?", source=Source.TO_ANSWER))
    whys.append(Why(question="Why did our process allow that?",
                    answer="To be answered in the review: name the missing guard in the system, not a person.",
                    source=Source.TO_ANSWER))
    return whys[:5]


def judge(incident: Incident, durations: Durations, approvals: list[Approval], report: dict[str, Any] | None,
          update_times: list[datetime], update_minutes: int) -> tuple[list[str], list[str]]:
    """What went well and what did not, each a rule over recorded facts."""
    good: list[str] = []
    bad: list[str] = []
    if durations.to_detect is not None:
        if durations.to_detect > SLOW_DETECTION_MINUTES:
            bad.append(f"The first alert fired {_fmt_minutes(durations.to_detect)} after impact began: users "
                       "likely noticed before we did.")
        else:
            good.append(f"Detected {_fmt_minutes(max(durations.to_detect, 0))} after impact began.")
    for a in approvals:
        wait = _minutes(a.requested_at, a.decided_at)
        if wait is None:
            continue
        if wait > SLOW_APPROVAL_MINUTES:
            bad.append(f"The fix ({a.action}) waited {_fmt_minutes(wait)} for an approver.")
        else:
            good.append(f"The fix ({a.action}) was decided {_fmt_minutes(wait)} after it was proposed.")
        if a.status == ApprovalStatus.FAILED:
            bad.append(f"The approved {a.action} failed when it ran: {a.result or 'no detail'}.")
        elif a.executed_at is not None and a.status in EXECUTED:
            good.append(f"The approved {a.action} ran once and was recorded.")
    hyps = _hypotheses(report)
    executed = [a for a in approvals if a.executed_at is not None and a.status in EXECUTED]
    top_fix = hyps[0].get("fix") if hyps else None
    if executed and isinstance(top_fix, dict) and top_fix.get("action") == executed[0].action:
        good.append("The first hypothesis's fix was the one that ran.")
    if incident.mitigated_at and incident.resolved_at and incident.mitigated_at < incident.resolved_at:
        good.append("Impact was mitigated before the root cause was resolved (mitigate first, then learn).")
    gaps = [_minutes(a, b) or 0.0 for a, b in zip(update_times, update_times[1:], strict=False)]
    late = [g for g in gaps if g > update_minutes * 1.5]
    if late:
        bad.append(f"{len(late)} update gap(s) longer than the {update_minutes}-minute cadence "
                   f"(longest {_fmt_minutes(max(late))}).")
    return good, bad


# Long-term fixes suggested per cause kind: system changes with an owner, never a person's diligence.
SUGGESTED: dict[str, str] = {
    "deploy": "Add a test or canary check on {service} that would have caught {ref} before full rollout",
    "config": "Validate {ref} on {service} before it is applied (range check, staged rollout)",
    "flag": "Roll out flag {ref} gradually with an automatic kill switch on error rate",
    "dependency": "Add a timeout, circuit breaker or fallback on {service} for {ref}",
    "resource": "Alert on {ref} on {service} at 80% of its limit, before it is exhausted",
    "traffic": "Rate-limit or queue {ref} on {service} so one source cannot exhaust it",
    "certificate": "Monitor the expiry of {ref} and renew automatically at least 14 days ahead",
    "data": "Validate data written to {ref} and keep a tested restore path",
    "infra": "Review the change process for {ref}: a rehearsal or automatic rollback step",
}


def suggested_actions(incident: Incident, report: dict[str, Any] | None, durations: Durations) -> list[str]:
    hyps = _hypotheses(report)
    out: list[str] = []
    if hyps:
        suspect = hyps[0].get("suspect") or {}
        template = SUGGESTED.get(str(suspect.get("kind")))
        if template:
            out.append(template.format(service=suspect.get("service") or ", ".join(incident.services or []),
                                       ref=suspect.get("ref", "")))
    if durations.to_detect is not None and durations.to_detect > SLOW_DETECTION_MINUTES:
        out.append("Alert on the user-facing symptom so detection takes less than "
                   f"{SLOW_DETECTION_MINUTES} minutes")
    return out


def draft(s: Session, incident: Incident, *, now: datetime, update_minutes: int = 30) -> PostMortem:
    """A complete draft from the records; action items are the incident's remediations."""
    report, inv = latest_report(s, incident)
    approvals = list(s.scalars(
        select(Approval).where(Approval.incident_id == incident.id).order_by(Approval.requested_at)
    ))
    approvals = [a for a in approvals if a.decided_at is not None or a.status == ApprovalStatus.PENDING]
    timeline = build_timeline(s, incident, report, inv, approvals)
    start = incident.started_at or incident.detected_at
    durations = Durations(
        to_detect=_minutes(incident.started_at, incident.detected_at),
        to_mitigate=_minutes(start, incident.mitigated_at),
        to_resolve=_minutes(start, incident.resolved_at),
    )
    first_alert = next((it.text for it in timeline if it.kind == "alert"), "")
    hyps = _hypotheses(report)
    report_sev = (report or {}).get("severity_reason") or ""
    impact = Impact(
        severity=incident.severity, severity_why=str(report_sev),
        started_at=start, ended_at=incident.mitigated_at or incident.resolved_at,
        duration_minutes=durations.to_mitigate or durations.to_resolve,
        who=incident.user_impact or str((report or {}).get("user_impact") or ""),
        lost_or_delayed=incident.symptoms,
    )
    updates = [it.at for it in timeline if it.kind == "update"]
    if incident.detected_at:
        updates = sorted([incident.detected_at, *updates])
    good, bad = judge(incident, durations, approvals, report, updates, update_minutes)
    root_cause = incident.root_cause or (str(hyps[0].get("title", "")) if hyps else "")
    category = incident.root_cause_category
    if category in ("", "unknown") and hyps:
        category = str((hyps[0].get("suspect") or {}).get("kind") or "unknown")
    factors = [f"Also considered: {h.get('title', '')} ({h.get('status', 'suspected')})" for h in hyps[1:3]]
    rec = recurrence(s, incident)
    if rec.last_90_days:
        factors.append(f"Recurrence: {rec.sentence}.")
    rems = s.scalars(select(Remediation).where(Remediation.incident_id == incident.id).order_by(Remediation.id))
    actions = [ActionItem(remediation_id=r.id, what=r.what, owner=r.owner, due=r.due_date, status=r.status)
               for r in rems]
    services = ", ".join(incident.services or []) or "a service"
    summary = (f"{incident.title}. {incident.severity.capitalize()} incident on {services}"
               + (f", impact for {_fmt_minutes(impact.duration_minutes)}" if impact.duration_minutes else "")
               + (f". Cause: {root_cause}" if root_cause else ". No cause identified yet")
               + ".")
    return PostMortem(
        incident_id=incident.id, title=f"Post-mortem: {incident.title}", summary=summary, impact=impact,
        timeline=timeline, durations=durations, root_cause=root_cause, root_cause_category=category,
        whys=seed_whys(incident, report, first_alert), contributing_factors=factors, went_well=good,
        went_badly=bad, action_items=actions, recurrence=rec.sentence if rec.last_90_days else "",
        drafted_at=now,
    )
