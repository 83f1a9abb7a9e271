"""`firebreak postmortem ...`: draft, edit, review and publish the post-mortem of an incident."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from firebreak.context import ToolContext, default_context
from firebreak.memory import incident_log
from firebreak.memory.incidents_cli import _actor, fail
from firebreak.memory.postmortem import service
from firebreak.memory.postmortem.model import PostMortem
from firebreak.memory.postmortem.render import customer_markdown, markdown

app = typer.Typer(help="Blameless post-mortems drafted from the incident log: draft, edit, review, publish.",
                  no_args_is_help=True)
out = Console(highlight=False, soft_wrap=True)

ByOpt = Annotated[str | None, typer.Option("--by", help="Who does this (default: your login name).")]
FormatOpt = Annotated[str, typer.Option("--format", help="md or json.")]


def _ctx() -> ToolContext:
    return default_context()


def _emit(data: Any, fmt: str, md: str) -> None:
    if fmt == "json":
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    elif fmt == "md":
        sys.stdout.write(md)
    else:
        fail(f"--format: {fmt!r} is not one of md, json")


def _index(ctx: ToolContext) -> None:
    """Bring memory up to the incident log so the published root cause is searchable at once."""
    from firebreak.memory.index import sync_incidents

    sync_incidents(ctx)


@app.command("draft")
def draft_cmd(
    incident_id: Annotated[str, typer.Argument(help="Incident id, e.g. INC-2026-0042.")],
    fmt: FormatOpt = "md",
    customer: Annotated[bool, typer.Option("--customer", help="The customer version: plain words, no "
                                                              "internal names.")] = False,
    redraft: Annotated[bool, typer.Option("--redraft", help="Rebuild from the records, keeping answered whys.")]
    = False,
    by: ByOpt = None,
) -> None:
    """Draft (or show) the post-mortem; the first draft adds suggested action items as remediations."""
    ctx = _ctx()
    s_minutes = ctx.settings.update_minutes
    try:
        with ctx.db.session() as s:
            pm = service.draft_or_load(s, incident_id, now=ctx.clock.now(), actor=_actor(by),
                                       update_minutes=s_minutes, redraft=redraft)
            if customer:
                c = service.customer(s, pm)
                _emit(c.model_dump(mode="json"), fmt, customer_markdown(c))
                return
            _emit(pm.model_dump(mode="json"), fmt, markdown(pm))
    except (incident_log.IncidentLogError, service.PostMortemError) as exc:
        fail(str(exc))


@app.command("edit")
def edit_cmd(
    file: Annotated[Path, typer.Argument(help="A post-mortem JSON file (from `draft --format json`), edited.")],
    by: ByOpt = None,
) -> None:
    """Store a person's edits (whys, root cause, factors, what went well or not)."""
    try:
        pm = PostMortem.model_validate_json(file.read_bytes())
    except OSError as exc:
        fail(f"{file}: {exc.strerror or exc}")
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(f"{file}: {where}: {first['msg']}")
    ctx = _ctx()
    try:
        with ctx.db.session() as s:
            saved = service.update(s, pm, now=ctx.clock.now(), actor=_actor(by))
    except (incident_log.IncidentLogError, service.PostMortemError) as exc:
        fail(str(exc))
    out.print(f"Saved the post-mortem of {saved.incident_id} ({len(saved.blameless)} blameless finding(s)).")


@app.command("review")
def review_cmd(incident_id: str, by: ByOpt = None) -> None:
    """Run the blameless check and move the post-mortem to review."""
    ctx = _ctx()
    try:
        with ctx.db.session() as s:
            findings = service.review(s, incident_id, now=ctx.clock.now(), actor=_actor(by))
    except (incident_log.IncidentLogError, service.PostMortemError) as exc:
        fail(str(exc))
    if not findings:
        out.print(f"{incident_id}: no blame wording found. Ready to publish.")
        return
    out.print(f"{incident_id}: {len(findings)} blameless finding(s):")
    for f in findings:
        out.print(f"- {f.section}: \"{f.excerpt}\" ({f.rule})\n  suggestion: {f.suggestion}")


@app.command("publish")
def publish_cmd(
    incident_id: str,
    force: Annotated[bool, typer.Option("--force", help="Publish even with blameless findings left.")] = False,
    by: ByOpt = None,
) -> None:
    """Publish: the root cause goes back to the incident log and into memory."""
    ctx = _ctx()
    try:
        with ctx.db.session() as s:
            pm = service.publish(s, incident_id, now=ctx.clock.now(), actor=_actor(by), force=force)
    except (incident_log.IncidentLogError, service.PostMortemError) as exc:
        fail(str(exc))
    _index(ctx)
    out.print(f"Published the post-mortem of {pm.incident_id}; it is now in memory.")


@app.command("due")
def due_cmd(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Resolved major and critical incidents whose post-mortem is due and not published."""
    ctx = _ctx()
    delay = ctx.settings.postmortem_delay_hours
    with ctx.db.session() as s:
        rows = [(inc.id, inc.title, inc.severity, when) for inc, when in
                service.due(s, now=ctx.clock.now(), delay_hours=delay)]
    if as_json:
        sys.stdout.write(json.dumps([{"incident": i, "title": t, "severity": sev, "due_at": w.isoformat()}
                                     for i, t, sev, w in rows], indent=2) + "\n")
        return
    if not rows:
        out.print("No post-mortem is due.")
    for i, t, sev, w in rows:
        out.print(f"{i}  {sev:8}  due {w:%Y-%m-%d %H:%M}  {t}")


@app.command("action")
def action_cmd(
    incident_id: str,
    what: Annotated[str, typer.Option("--what", help="The long-term fix.")],
    owner: Annotated[str, typer.Option("--owner", help="Who owns it (a person or a team).")],
    due: Annotated[str, typer.Option("--due", help="Due date, YYYY-MM-DD.")],
    by: ByOpt = None,
) -> None:
    """Add an action item: a remediation in the incident log, linked to the post-mortem."""
    try:
        due_date = date.fromisoformat(due)
    except ValueError:
        fail(f"--due: {due!r} is not a date like 2026-03-20")
    ctx = _ctx()
    try:
        with ctx.db.session() as s:
            inc = incident_log.get_incident(s, incident_id)
            rem = incident_log.add_remediation(s, inc, what=what, owner=owner, due=due_date, at=ctx.clock.now(),
                                               actor=_actor(by))
            rid = rem.id
    except incident_log.IncidentLogError as exc:
        fail(str(exc))
    out.print(f"Action item #{rid} added to {incident_id} (see `firebreak incidents remediation list`).")
