"""The parts of the report that describe the incident rather than its cause: severity and why, user
impact, the list of symptoms, and the internal and customer messages from the message templates."""

from __future__ import annotations

from typing import Any

from firebreak.agent.report import TriageReport
from firebreak.agent.triage.observe import Findings, parse_time
from firebreak.agent.triage.signals import ServiceState, num
from firebreak.agent.triage.vocab import CRITICAL_SERVICE_WORDS


def _failure_share(a: dict[str, Any]) -> float:
    """Share of failing requests a metric shows after its change (error ratios, or 1 - success ratio)."""
    name = str(a.get("name") or "").lower()
    after = a.get("after")
    if not isinstance(after, int | float) or not ("ratio" in name or "rate" in name or "share" in name):
        return 0.0
    if any(w in name for w in ("error", "fail", "5xx", "401", "403", "unauthori", "timeout", "reject")):
        return float(after) if 0 <= after <= 1.5 else 0.0
    if "success" in name and 0 <= after <= 1 and str(a.get("direction")) == "down":
        share = 1.0 - float(after)
        return share if share >= 0.5 else 0.0  # a success ratio only counts once most attempts fail
    return 0.0


def severity(f: Findings, states: dict[str, ServiceState]) -> tuple[str, str]:
    """critical: most requests of a service fail, or a revenue path fails noticeably; major: a
    critical alert, a visible error share or a stopped flow; minor: warnings only."""
    sevs = [
        str(a.get("severity") or "warning").lower()
        for a in f.alerts
        if str(a.get("status") or "firing").lower() != "resolved"
    ]
    affected = [s for s in states.values() if s.affected >= 0.5]
    worst, worst_svc = 0.0, ""
    for st in affected:
        for a in st.anomalies:
            share = _failure_share(a)
            if share > worst:
                worst, worst_svc = share, st.name
    revenue = any(w in worst_svc.lower() for w in CRITICAL_SERVICE_WORDS)
    if worst >= 0.3 or (revenue and worst >= 0.1):
        return "critical", f"about {min(worst, 1.0):.0%} of {worst_svc} requests fail" + (
            " on a revenue path" if revenue else ""
        )
    if "critical" in sevs or worst >= 0.05 or len(affected) >= 2:
        why = f"about {worst:.0%} of {worst_svc} requests fail" if worst >= 0.05 else "critical alerts fire"
        return "major", why + "; the failure is limited to part of the product or can wait minutes"
    return "minor", "only warning-level alerts; degradation without a broken user flow"


def impact(states: dict[str, ServiceState]) -> tuple[str, list[str]]:
    """Plain-words impact and the list of symptoms (what is observed, not why)."""
    symptoms: list[str] = []
    impacts: list[str] = []
    for s in sorted(states.values(), key=lambda s: -s.affected)[:4]:
        if s.affected < 0.3:
            continue
        for a in s.anomalies[:4]:
            name = str(a.get("name") or "")
            before, after = a.get("before"), a.get("after")
            symptoms.append(f"{name} on {s.name}: {num(before)} -> {num(after)}")
            low = name.lower()
            if "error" in low and isinstance(after, int | float):
                impacts.append(
                    f"about {after:.0%} of {s.name} requests fail" if after <= 1 else f"{s.name} returns errors"
                )
            elif ("latency" in low or "seconds" in low or "p95" in low or "p99" in low) and str(
                a.get("direction")
            ) == "up":
                impacts.append(
                    f"{s.name} is slow ({num(before)}s -> {num(after)}s)" if "seconds" in low else f"{s.name} is slow"
                )
            elif (
                str(a.get("direction")) == "down"
                and isinstance(after, int | float)
                and isinstance(before, int | float)
                and before
                and after < 0.3 * before
                and not any(w in low for w in ("memory", "disk", "cpu"))
            ):
                impacts.append(
                    f"{s.name} has {'stopped' if after <= 0.05 * before else 'slowed'} its work "
                    f"({name.replace('_', ' ')}); pending work is delayed, nothing shows data was lost"
                )
        for b in s.bad_patterns[:3]:
            symptoms.append(f'{s.name} logs "{b.template[:120]}" ({b.count_after}x)')
    seen: set[str] = set()
    impacts = [i for i in impacts if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]
    if not impacts:
        names = [s.name for s in states.values() if s.affected >= 0.3]
        impacts = [f"{', '.join(names) or 'the service'} is degraded; users may see errors or delays"]
    return "; ".join(impacts[:3]).capitalize() + ".", symptoms[:12]


def render_messages(report: TriageReport, f: Findings, incident_id: str, title: str) -> tuple[str, str]:
    """Internal update and customer message, from agent/messages.py templates when present."""
    services = [str(s) for s in f.incident.get("services") or []]
    started = parse_time(f.incident.get("started_at")) or f.incident_start()
    try:
        from firebreak.agent import messages as msg

        fields = msg.report_fields(
            incident_id=incident_id,
            title=title,
            severity=report.severity,
            status=str(f.incident.get("status") or "open"),
            services=services,
            started_at=started,
            user_impact=report.user_impact,
            report=report,
            next_update=report.next_update_due,
            approval="pending approval" if report.proposed_fix else "none requested",
        )
        return (
            msg.render_fields("internal", report.customer_template, fields),
            msg.render_fields("customer", report.customer_template, fields),
        )
    except Exception:  # noqa: BLE001 - templates are optional; fall back to plain text
        top = report.hypotheses[0] if report.hypotheses else None
        fix = report.proposed_fix.describe() if report.proposed_fix else "none yet"
        internal = (
            f"[{incident_id}] {report.severity.upper()} {title}\nImpact: {report.user_impact}\n"
            f"Likely cause: {top.title if top else 'under investigation'}\nProposed fix (needs approval): {fix}\n"
            f"Next update: {report.next_update_due:%H:%M} UTC"
            if report.next_update_due
            else ""
        )
        customer = (
            f"We are investigating an issue affecting {', '.join(services) or 'our service'}. "
            f"{report.user_impact} We will post an update by "
            f"{report.next_update_due:%H:%M} UTC."
            if report.next_update_due
            else ""
        )
        return internal, customer
