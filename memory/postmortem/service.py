"""Post-mortem lifecycle: draft (once, then edited), review (blameless check), publish (into memory).

A draft creates the suggested action items as remediations in the incident log, once, so the log stays
the one place where owners, due dates and states live. Publishing writes the agreed root cause back to
the incident, which the memory index then carries to `similar_incidents` and the investigator.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from firebreak.memory import incident_log
from firebreak.memory.postmortem.blameless import check
from firebreak.memory.postmortem.customer import customer_version
from firebreak.memory.postmortem.draft import EXECUTED, SLOW_DETECTION_MINUTES, draft, suggested_actions
from firebreak.memory.postmortem.model import (
    ActionItem,
    BlamelessFinding,
    CustomerPostMortem,
    PostMortem,
    PostMortemStatus,
)
from firebreak.memory.postmortem.schedule import DUE_SEVERITIES, due_at
from firebreak.state.approvals import Approval
from firebreak.state.changes import Change
from firebreak.state.incidents import Incident, Remediation, TimelineEntry
from firebreak.state.postmortems import PostMortemRow
from firebreak.state.users import User

ACTION_ITEM_DAYS = 14
# Older resolutions (e.g. imported history) are not chased: the reminder is for the morning after.
DUE_WINDOW = timedelta(days=14)


class PostMortemError(ValueError):
    """A request that cannot be carried out (unknown incident, wrong state, bad document)."""


def people_names(s: Session, incident: Incident) -> set[str]:
    """Everyone the records name: web users, approvers, change authors and timeline actors."""
    names = set(s.scalars(select(User.name)))
    names |= {a for a in s.scalars(select(Approval.decided_by).where(Approval.incident_id == incident.id)) if a}
    names |= {a for a in s.scalars(select(Change.author)) if a}
    names |= {e for e in s.scalars(select(TimelineEntry.actor).where(TimelineEntry.incident_id == incident.id))}
    return {n for n in names if n and n not in ("firebreak", "intake", "system")}


def internal_names(s: Session, incident: Incident) -> set[str]:
    services = {str(x) for x in incident.services or []}
    services |= {c for c in s.scalars(select(Change.service)) if c}
    return people_names(s, incident) | services


def load(s: Session, incident_id: str) -> PostMortem | None:
    row = s.get(PostMortemRow, incident_id)
    return PostMortem.model_validate(row.document) if row else None


def save(s: Session, pm: PostMortem, *, at: datetime, by: str) -> PostMortem:
    row = s.get(PostMortemRow, pm.incident_id)
    doc = pm.model_dump(mode="json")
    if row is None:
        s.add(PostMortemRow(incident_id=pm.incident_id, status=pm.status.value, document=doc, created_at=at,
                            updated_at=at, updated_by=by))
    else:
        if row.status == PostMortemStatus.PUBLISHED and pm.status != PostMortemStatus.PUBLISHED:
            raise PostMortemError(f"the post-mortem of {pm.incident_id} is published; it can no longer be edited")
        row.status, row.document, row.updated_at, row.updated_by = pm.status.value, doc, at, by
    s.flush()
    return pm


def _refresh_actions(s: Session, pm: PostMortem, incident: Incident) -> None:
    pm.action_items = [ActionItem(remediation_id=r.id, what=r.what, owner=r.owner, due=r.due_date, status=r.status)
                       for r in incident.remediations]


def draft_or_load(s: Session, incident_id: str, *, now: datetime, actor: str, update_minutes: int = 30,
                  redraft: bool = False) -> PostMortem:
    """The stored post-mortem, or a fresh draft saved with its suggested action items as remediations."""
    incident = incident_log.get_incident(s, incident_id)
    existing = load(s, incident_id)
    if existing is not None and not redraft:
        _refresh_actions(s, existing, incident)
        return existing
    if existing is not None and existing.status == PostMortemStatus.PUBLISHED:
        raise PostMortemError(f"the post-mortem of {incident_id} is published; it can no longer be redrafted")
    pm = draft(s, incident, now=now, update_minutes=update_minutes)
    if existing is None:
        owner = f"{(incident.services or ['service'])[0]} team"
        due = (now + timedelta(days=ACTION_ITEM_DAYS)).date()
        known = {r.what for r in incident.remediations}
        for what in suggested_actions(incident, incident.report, pm.durations):
            if what not in known:
                incident_log.add_remediation(s, incident, what=what, owner=owner, due=due, at=now, actor=actor)
        s.flush()
        s.refresh(incident)
        incident_log.record(s, incident, at=now, actor=actor, kind="postmortem", text="Post-mortem drafted")
    else:
        pm.whys = existing.whys if any(w.source != "to_answer" for w in existing.whys) else pm.whys
    _refresh_actions(s, pm, incident)
    pm.blameless = check(pm, people_names(s, incident))
    return save(s, pm, at=now, by=actor)


def update(s: Session, pm: PostMortem, *, now: datetime, actor: str) -> PostMortem:
    """Store a person's edits; action items stay owned by the incident log."""
    incident = incident_log.get_incident(s, pm.incident_id)
    current = load(s, pm.incident_id)
    if current is None:
        raise PostMortemError(f"no post-mortem for {pm.incident_id}: draft it first")
    pm.status = current.status if current.status != PostMortemStatus.PUBLISHED else current.status
    _refresh_actions(s, pm, incident)
    pm.blameless = check(pm, people_names(s, incident))
    incident_log.record(s, incident, at=now, actor=actor, kind="postmortem", text="Post-mortem edited")
    return save(s, pm, at=now, by=actor)


def review(s: Session, incident_id: str, *, now: datetime, actor: str) -> list[BlamelessFinding]:
    """Run the blameless check and move the draft to review; findings are returned and kept on it."""
    incident = incident_log.get_incident(s, incident_id)
    pm = load(s, incident_id)
    if pm is None:
        raise PostMortemError(f"no post-mortem for {incident_id}: draft it first")
    if pm.status == PostMortemStatus.PUBLISHED:
        raise PostMortemError(f"the post-mortem of {incident_id} is already published")
    pm.blameless = check(pm, people_names(s, incident))
    pm.status = PostMortemStatus.IN_REVIEW
    incident_log.record(s, incident, at=now, actor=actor, kind="postmortem",
                        text=f"Post-mortem in review ({len(pm.blameless)} blameless finding(s))")
    save(s, pm, at=now, by=actor)
    return pm.blameless


def publish(s: Session, incident_id: str, *, now: datetime, actor: str, force: bool = False) -> PostMortem:
    """Publish once the blameless check is clean; the root cause goes back to the incident log."""
    incident = incident_log.get_incident(s, incident_id)
    pm = load(s, incident_id)
    if pm is None:
        raise PostMortemError(f"no post-mortem for {incident_id}: draft it first")
    if pm.status == PostMortemStatus.PUBLISHED:
        return pm
    findings = check(pm, people_names(s, incident))
    if findings and not force:
        raise PostMortemError(f"{len(findings)} blameless finding(s) left, e.g. {findings[0].section}: "
                              f"{findings[0].rule}; rephrase them (or publish with --force)")
    changes: dict[str, object] = {}
    if pm.root_cause and pm.root_cause != incident.root_cause:
        changes["root_cause"] = pm.root_cause
    if pm.root_cause_category != incident.root_cause_category and pm.root_cause_category in incident_log.CATEGORIES:
        changes["root_cause_category"] = pm.root_cause_category
    if changes:
        incident_log.update_incident(s, incident, changes, at=now, actor=actor)
    pm.status = PostMortemStatus.PUBLISHED
    pm.published_at, pm.published_by = now, actor
    pm.blameless = findings
    _refresh_actions(s, pm, incident)
    incident_log.record(s, incident, at=now, actor=actor, kind="postmortem", text="Post-mortem published")
    row = s.get(PostMortemRow, incident_id)
    save(s, pm, at=now, by=actor)
    if row is not None:
        row.published_at = now
    return pm


def customer(s: Session, pm: PostMortem) -> CustomerPostMortem:
    incident = incident_log.get_incident(s, pm.incident_id)
    executed = [a.action for a in s.scalars(select(Approval).where(Approval.incident_id == incident.id,
                                                                     Approval.status.in_(EXECUTED)))]
    slow = pm.durations.to_detect is not None and pm.durations.to_detect > SLOW_DETECTION_MINUTES
    return customer_version(pm, executed_actions=executed, internal_names=internal_names(s, incident),
                            slow_detection=slow)


def due(s: Session, *, now: datetime, delay_hours: float | None = None) -> list[tuple[Incident, datetime]]:
    """Major and critical incidents resolved in the last 14 days, post-mortem unpublished and due."""
    published = set(s.scalars(select(PostMortemRow.incident_id).where(
        PostMortemRow.status == PostMortemStatus.PUBLISHED.value)))
    out = []
    for inc in s.scalars(select(Incident).where(Incident.severity.in_(DUE_SEVERITIES),
                                                Incident.resolved_at >= now - DUE_WINDOW)):
        if inc.id in published or inc.resolved_at is None:
            continue
        when = due_at(inc.resolved_at, delay_hours)
        if when <= now:
            out.append((inc, when))
    return sorted(out, key=lambda p: p[1])


def claim_reminder(s: Session, incident: Incident, *, now: datetime) -> bool:
    """Claim the post-mortem reminder for this incident (a conditional UPDATE, so two replicas never both
    post it) and make sure a draft exists to point at. False when it was claimed already."""
    from sqlalchemy import update as sql_update

    if s.get(PostMortemRow, incident.id) is None:
        draft_or_load(s, incident.id, now=now, actor="firebreak")
    claimed = s.execute(sql_update(PostMortemRow)
                        .where(PostMortemRow.incident_id == incident.id, PostMortemRow.reminded_at.is_(None))
                        .values(reminded_at=now).execution_options(synchronize_session=False))
    if getattr(claimed, "rowcount", 0) != 1:
        return False
    incident_log.record(s, incident, at=now, actor="firebreak", kind="postmortem",
                        text="Post-mortem due: draft it with `firebreak postmortem draft " + incident.id + "`")
    return True


def give_back_reminder(s: Session, incident_id: str) -> None:
    """The reminder could not be posted: release the claim so the next loop tries again."""
    row = s.get(PostMortemRow, incident_id)
    if row is not None:
        row.reminded_at = None


REMINDER_EVERY = timedelta(days=7)


def overdue_action_items(s: Session, *, today: date) -> list[Remediation]:
    """Open action items past their due date (the incident log's remediations)."""
    return list(s.scalars(select(Remediation).where(Remediation.status == "open", Remediation.due_date < today)
                          .order_by(Remediation.due_date, Remediation.id)))


def claim_action_item_reminder(s: Session, rem: Remediation, *, now: datetime) -> bool:
    """At most one reminder a week per overdue action item, kept in the incident's timeline."""
    field = f"remediation:{rem.id}"
    recent = s.scalars(select(TimelineEntry.id).where(
        TimelineEntry.incident_id == rem.incident_id, TimelineEntry.kind == "action_item_reminder",
        TimelineEntry.field == field, TimelineEntry.at > now - REMINDER_EVERY)).first()
    if recent is not None:
        return False
    incident = incident_log.get_incident(s, rem.incident_id)
    incident_log.record(s, incident, at=now, actor="firebreak", kind="action_item_reminder", field=field,
                        text=f"Reminder to {rem.owner}: action item #{rem.id} was due {rem.due_date}")
    return True
