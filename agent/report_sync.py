"""One severity and one name per incident: the triage report and the incident log agree when the
report is stored.

The incident log is the source. The report's judgement of severity becomes the incident's (recorded in
the timeline) unless a person set it, in which case the report carries the person's severity and says
what the investigator judged. An incident opened from an alert is renamed after the service the top
hypothesis blames; the first alert's title stays in the timeline. Drafts are re-rendered when either
changed, so the header, the report and the messages never disagree.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from firebreak.agent import messages
from firebreak.agent.report import TriageReport
from firebreak.memory.incident_log import follow_report, set_by_person
from firebreak.state.incidents import Incident


def align_report(session: Session, incident: Incident, report: TriageReport, *, at: datetime) -> TriageReport:
    """The report as stored: the incident's severity and title applied, drafts redone if they changed."""
    top = report.hypotheses[0] if report.hypotheses else None
    before = (incident.severity, incident.title)
    severity = follow_report(
        session, incident, severity=report.severity, reason=report.severity_reason,
        fault_service=top.suspect.service if top else None, fault_title=top.title if top else None,
        at=at, actor=f"firebreak ({report.investigator})",
    )
    update: dict[str, object] = {}
    if severity != report.severity:
        who = set_by_person(session, incident, "severity") or "a person"
        update["severity"] = severity
        update["severity_reason"] = (f"{severity} as set by {who}; the investigator judged {report.severity}"
                                     + (f": {report.severity_reason}" if report.severity_reason else ""))
    aligned = report.model_copy(update=update)
    if update or (incident.severity, incident.title) != before:
        _redraft(incident, aligned)
    return aligned


def _redraft(incident: Incident, report: TriageReport) -> None:
    fields = messages.report_fields(
        incident_id=incident.id, title=incident.title, severity=incident.severity, status=incident.status,
        services=list(incident.services or []), started_at=incident.started_at or incident.detected_at,
        user_impact=report.user_impact, report=report, next_update=report.next_update_due,
        approval="pending approval" if report.proposed_fix else "none requested",
    )
    template = messages.scenario_for(report)
    try:
        report.internal_update = messages.render_fields("internal", template, fields)
        report.customer_message = messages.render_fields("customer", template, fields)
    except messages.MessageTemplateError:
        pass  # the drafts written with the report stay; the header and report still agree
