"""`firebreak incidents ...`: the incident log at a terminal."""

from __future__ import annotations

import getpass
import json
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from sqlalchemy import select

from firebreak.context import ToolContext, default_context
from firebreak.memory import incident_log as log
from firebreak.memory import stats as st
from firebreak.memory.records import to_record
from firebreak.memory.transfer import ImportError_, export_csv, export_json, import_records, parse_timestamp, read_file
from firebreak.state.incidents import Incident, Remediation

app = typer.Typer(help="The incident log: open, update, close, remediations, stats, import/export.",
                  no_args_is_help=True)
rem_app = typer.Typer(help="Scheduled remediations (what, owner, due date, verification).", no_args_is_help=True)
app.add_typer(rem_app, name="remediation")
out = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ByOpt = Annotated[str | None, typer.Option("--by", help="Who does this (default: your login name).")]


def fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _actor(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except Exception:
        return "cli"


def _ts(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValueError as exc:
        fail(f"{field}: {exc}")


def _ctx() -> ToolContext:
    return default_context()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command("new")
def new(
    title: Annotated[str, typer.Option("--title", help="One line: what users see.")],
    service: Annotated[list[str], typer.Option("--service", help="Affected service (repeatable).")],
    severity: Annotated[str, typer.Option("--severity", help="minor | major | critical")],
    started: Annotated[str | None, typer.Option("--started", help="When users were first hit (RFC 3339).")] = None,
    detected: Annotated[str | None, typer.Option("--detected", help="When we noticed (default: now).")] = None,
    symptoms: Annotated[str, typer.Option("--symptoms")] = "",
    impact: Annotated[str, typer.Option("--impact", help="User impact in plain words.")] = "",
    tag: Annotated[list[str] | None, typer.Option("--tag")] = None,
    by: ByOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Open an incident."""
    ctx = _ctx()
    now = ctx.clock.now()
    try:
        with ctx.db.session() as s:
            inc = log.open_incident(
                s, title=title, services=service, severity=severity, at=now, actor=_actor(by),
                started_at=_ts(started, "started"), detected_at=_ts(detected, "detected") or now,
                symptoms=symptoms, user_impact=impact, tags=tag or [],
            )
            log.check_time_order(inc)
            rec = to_record(inc)
    except log.IncidentLogError as exc:
        fail(str(exc))
    if as_json:
        _print_json(rec.model_dump(mode="json"))
    else:
        out.print(f"Opened [bold]{rec.id}[/bold]: {rec.title} ({rec.severity})")


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option("--status")] = None,
    service: Annotated[str | None, typer.Option("--service")] = None,
    severity: Annotated[str | None, typer.Option("--severity")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """List incidents, newest first."""
    ctx = _ctx()
    with ctx.db.session() as s:
        q = select(Incident).order_by(Incident.created_at.desc(), Incident.id.desc())
        if status:
            q = q.where(Incident.status == status)
        if severity:
            q = q.where(Incident.severity == severity)
        rows = [i for i in s.scalars(q) if not service or service in (i.services or [])][:limit]
        data: list[dict[str, Any]] = [
            {"id": i.id, "title": i.title, "services": i.services, "severity": i.severity, "status": i.status,
                 "started_at": i.started_at, "detected_at": i.detected_at, "root_cause_category":
                 i.root_cause_category} for i in rows]
    if as_json:
        _print_json(data)
        return
    if not data:
        out.print("No incident yet: `firebreak incidents new --title T --service S --severity major` opens one; "
                  "alerts sent to `firebreak serve` open them too.", highlight=False, soft_wrap=True)
        return
    from firebreak.tables import Col, fit_table

    cols = [Col("Id", "id"), Col("Severity"), Col("Status", drop=1), Col("Services", "text", drop=3),
            Col("Started (UTC)", drop=2), Col("Title", "text")]
    started = [d["started_at"] or d["detected_at"] for d in data]
    out.print(fit_table(cols, [
        [d["id"], d["severity"], d["status"], ", ".join(d["services"] or []),
         f"{at:%Y-%m-%d %H:%M}" if at else "", d["title"]] for d, at in zip(data, started, strict=True)
    ], console=out))


@app.command("show")
def show(incident_id: str, as_json: JsonOpt = False) -> None:
    """Everything about one incident, with how often it happened before."""
    ctx = _ctx()
    try:
        with ctx.db.session() as s:
            inc = log.get_incident(s, incident_id)
            rec = to_record(inc)
            rec_stats = st.recurrence(s, inc)
    except log.IncidentLogError as exc:
        fail(str(exc))
    if as_json:
        _print_json({**rec.model_dump(mode="json"), "recurrence": rec_stats.model_dump()})
        return
    out.print(f"[bold]{rec.id}[/bold] {escape(rec.title)}")
    out.print(f"severity {rec.severity} · status {rec.status} · services {', '.join(rec.services)}")
    for label, v in (("started", rec.started_at), ("detected", rec.detected_at), ("mitigated", rec.mitigated_at),
                     ("resolved", rec.resolved_at)):
        if v:
            out.print(f"  {label:<10} {v.isoformat()}")
    for label, text in (("symptoms", rec.symptoms), ("user impact", rec.user_impact), ("root cause", rec.root_cause)):
        if text:
            out.print(f"  {label:<10} {text}")
    out.print(f"  category   {rec.root_cause_category}" + ("  [hotfix]" if rec.hotfix else "")
              + ("  [rollback]" if rec.rollback else ""))
    out.print(f"  recurrence {rec_stats.sentence}")
    if rec.countermeasures:
        out.print("[bold]Countermeasures[/bold]")
        for c in rec.countermeasures:
            worked = {True: "worked", False: "did not work", None: "outcome unknown"}[c.worked]
            out.print(f"  {c.at:%Y-%m-%d %H:%M} {c.by}: {c.what} ({worked})", markup=False)
    if rec.remediations:
        out.print("[bold]Remediations[/bold]")
        for r in rec.remediations:
            out.print(f"  [{r.status}] {r.what} (owner {r.owner}, due {r.due_date})"
                      + (f" verified: {r.verification}" if r.verification else ""), markup=False)
    out.print("[bold]Timeline[/bold]")
    for t in rec.timeline:
        text = f"{t.field}: {t.old_value!r} -> {t.new_value!r}" if t.field else t.text
        out.print(f"  {t.at:%Y-%m-%d %H:%M:%S} {t.actor}: {text}", markup=False, highlight=False)


@app.command("update")
def update(
    incident_id: str,
    title: Annotated[str | None, typer.Option("--title")] = None,
    severity: Annotated[str | None, typer.Option("--severity")] = None,
    status: Annotated[str | None, typer.Option("--status")] = None,
    started: Annotated[str | None, typer.Option("--started")] = None,
    mitigated: Annotated[str | None, typer.Option("--mitigated")] = None,
    resolved: Annotated[str | None, typer.Option("--resolved")] = None,
    symptoms: Annotated[str | None, typer.Option("--symptoms")] = None,
    impact: Annotated[str | None, typer.Option("--impact")] = None,
    root_cause: Annotated[str | None, typer.Option("--root-cause")] = None,
    category: Annotated[str | None, typer.Option("--category")] = None,
    hotfix: Annotated[bool | None, typer.Option("--hotfix/--no-hotfix")] = None,
    rollback: Annotated[bool | None, typer.Option("--rollback/--no-rollback")] = None,
    add_service: Annotated[list[str] | None, typer.Option("--add-service")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag")] = None,
    link: Annotated[list[str] | None, typer.Option("--link", help="URL (alert, Slack thread, transcript).")] = None,
    countermeasure: Annotated[str | None, typer.Option("--countermeasure", help="What was done.")] = None,
    worked: Annotated[bool | None, typer.Option("--worked/--did-not-work")] = None,
    note: Annotated[str | None, typer.Option("--note", help="A free-text timeline entry.")] = None,
    by: ByOpt = None,
) -> None:
    """Change fields; every change is kept in the timeline with who and when."""
    for label, values in (("--add-service", add_service), ("--tag", tag), ("--link", link)):
        if any(not v.strip() for v in values or []):
            fail(f"{label}: must not be empty")
    if worked is not None and not countermeasure:
        fail("--worked/--did-not-work: says whether a countermeasure worked; give it with --countermeasure")
    ctx = _ctx()
    now = ctx.clock.now()
    actor = _actor(by)
    try:
        with ctx.db.session() as s:
            inc = log.get_incident(s, incident_id)
            changes: dict[str, Any] = {}
            for field, value in (("title", title), ("severity", severity), ("status", status),
                                 ("symptoms", symptoms), ("user_impact", impact), ("root_cause", root_cause),
                                 ("root_cause_category", category), ("hotfix", hotfix), ("rollback", rollback)):
                if value is not None:
                    changes[field] = value
            for field, raw, label in (("started_at", started, "started"), ("mitigated_at", mitigated, "mitigated"),
                                      ("resolved_at", resolved, "resolved")):
                if raw is not None:
                    changes[field] = _ts(raw, label)
            if add_service:
                changes["services"] = list(dict.fromkeys([*(inc.services or []), *add_service]))
            if tag:
                changes["tags"] = list(dict.fromkeys([*(inc.tags or []), *tag]))
            if status in ("mitigated", "resolved"):
                changes.setdefault("mitigated_at", inc.mitigated_at or now)
            if status == "resolved":
                changes.setdefault("resolved_at", inc.resolved_at or now)
            entries = log.update_incident(s, inc, changes, at=now, actor=actor)
            log.check_time_order(inc)
            for url in link or []:
                log.add_link(s, inc, kind="link", url=url, at=now, actor=actor)
            if countermeasure:
                log.add_countermeasure(s, inc, what=countermeasure, by=actor, at=now, worked=worked)
            if note:
                log.record(s, inc, at=now, actor=actor, kind="note", text=note)
    except log.IncidentLogError as exc:
        fail(str(exc))
    out.print(f"{incident_id}: {len(entries)} field(s) changed" + (f", {len(link)} link(s) added" if link else "")
              + (", countermeasure recorded" if countermeasure else "") + (", note added" if note else ""))


@app.command("close")
def close(
    incident_id: str,
    root_cause: Annotated[str | None, typer.Option("--root-cause")] = None,
    category: Annotated[str | None, typer.Option("--category")] = None,
    at: Annotated[str | None, typer.Option("--at", help="When it was resolved (default: now).")] = None,
    by: ByOpt = None,
) -> None:
    """Resolve an incident (sets mitigated_at too when it was never set)."""
    ctx = _ctx()
    now = ctx.clock.now()
    when = _ts(at, "at") or now
    try:
        with ctx.db.session() as s:
            inc = log.get_incident(s, incident_id)
            if inc.status == "resolved":
                fail(f"{incident_id} is already resolved")
            changes: dict[str, Any] = {"status": "resolved", "resolved_at": when}
            if inc.mitigated_at is None:
                changes["mitigated_at"] = when
            if root_cause:
                changes["root_cause"] = root_cause
            if category:
                changes["root_cause_category"] = category
            log.update_incident(s, inc, changes, at=now, actor=_actor(by))
            missing = [f for f in ("root_cause",) if not getattr(inc, f)]
    except log.IncidentLogError as exc:
        fail(str(exc))
    out.print(f"{incident_id} resolved." + (" Root cause still empty: add it with `update --root-cause`."
                                             if missing else ""))


@rem_app.command("add")
def rem_add(
    incident_id: str,
    what: Annotated[str, typer.Option("--what")],
    owner: Annotated[str, typer.Option("--owner")],
    due: Annotated[str | None, typer.Option("--due", help="YYYY-MM-DD")] = None,
    by: ByOpt = None,
) -> None:
    """Schedule a remediation with an owner and a due date."""
    for label, value in (("--what", what), ("--owner", owner)):
        if not value.strip():
            fail(f"{label}: must not be empty")
    ctx = _ctx()
    now = ctx.clock.now()
    try:
        due_date = date.fromisoformat(due) if due else None
    except ValueError:
        fail(f"due: {due!r} is not a date (YYYY-MM-DD)")
    try:
        with ctx.db.session() as s:
            inc = log.get_incident(s, incident_id)
            rem = log.add_remediation(s, inc, what=what, owner=owner, due=due_date, at=now, actor=_actor(by))
            rem_id = rem.id
    except log.IncidentLogError as exc:
        fail(str(exc))
    out.print(f"Remediation #{rem_id} added to {incident_id}")


@rem_app.command("done")
def rem_done(
    remediation_id: int,
    verification: Annotated[str, typer.Option("--verification", help="How it was verified.")],
    by: ByOpt = None,
) -> None:
    """Mark a remediation done, with how it was verified."""
    ctx = _ctx()
    now = ctx.clock.now()
    try:
        with ctx.db.session() as s:
            rem = s.get(Remediation, remediation_id)
            if rem is None:
                fail(f"remediation: no remediation #{remediation_id}")
            log.complete_remediation(s, rem, verification=verification, at=now, actor=_actor(by))
    except log.IncidentLogError as exc:
        fail(str(exc))
    out.print(f"Remediation #{remediation_id} done")


@rem_app.command("list")
def rem_list(
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open ones past their due date.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remediations, or only the overdue ones."""
    ctx = _ctx()
    today = ctx.clock.now().date()
    with ctx.db.session() as s:
        rows = st.overdue_remediations(s, today=today) if overdue else list(
            s.scalars(select(Remediation).order_by(Remediation.due_date)))
        data: list[dict[str, Any]] = [{"id": r.id, "incident_id": r.incident_id, "what": r.what, "owner": r.owner,
                 "due_date": r.due_date, "status": r.status, "verification": r.verification} for r in rows]
    if as_json:
        _print_json(data)
        return
    from firebreak.tables import Col, fit_table

    cols = [Col("#", "id"), Col("Incident", "id"), Col("Status", drop=1), Col("Due"), Col("Owner", drop=2),
            Col("What", "text")]
    out.print(fit_table(cols, [[str(d["id"]), d["incident_id"], d["status"], str(d["due_date"] or ""), d["owner"],
                                d["what"]] for d in data], console=out))


@app.command("stats")
def stats(
    weeks: Annotated[int, typer.Option("--weeks", min=1, max=520)] = 8,
    as_json: JsonOpt = False,
    chart: Annotated[Path | None, typer.Option("--chart", help="Write an SVG chart here (FILE.svg).")] = None,
) -> None:
    """Per week: incidents by severity, hotfixes, rollbacks, time to mitigate/resolve, overdue fixes, reviews due."""
    ctx = _ctx()
    with ctx.db.session() as s:
        rows = st.weekly_stats(s, weeks=weeks, now=ctx.clock.now(),
                               postmortem_delay_hours=ctx.settings.postmortem_delay_hours)
    if chart:
        try:
            st.render_chart(rows, str(chart))
        except st.ChartFormatError as exc:
            fail(f"--chart: {exc}")
        except OSError as exc:
            fail(f"--chart: cannot write {chart} ({exc.strerror or exc})")
    if as_json:
        _print_json([r.model_dump(mode="json") for r in rows])
        return
    from firebreak.tables import Col, fit_table

    cols = [Col("Week of", "id"), Col("Total", justify="right"),
            *(Col(k.capitalize(), justify="right") for k in log.SEVERITIES),
            Col("Hotfixes", justify="right", drop=2), Col("Rollbacks", justify="right", drop=2),
            Col("Minutes to mitigate", justify="right", drop=1), Col("Minutes to resolve", justify="right", drop=3),
            Col("Overdue fixes", justify="right"), Col("Post-mortems due", justify="right", drop=1)]
    out.print(fit_table(cols, [
        [str(r.week_start), str(r.incidents), *(str(r.by_severity[k]) for k in log.SEVERITIES),
         str(r.hotfixes), str(r.rollbacks), str(r.mean_minutes_to_mitigate or "-"),
         str(r.mean_minutes_to_resolve or "-"), str(r.overdue_remediations), str(r.postmortems_due)] for r in rows
    ], console=out))
    if chart:
        out.print(f"chart written to {chart}")


@app.command("export")
def export(
    fmt: Annotated[str, typer.Option("--format", help="json | csv")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
) -> None:
    """Export the whole incident log (JSON is lossless; CSV keeps lists as JSON cells)."""
    if fmt not in ("json", "csv"):
        fail(f"format: {fmt!r} is not json or csv")
    ctx = _ctx()
    with ctx.db.session() as s:
        text = export_json(s) if fmt == "json" else export_csv(s)
    if output:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            fail(f"--output: cannot write {output} ({exc.strerror or exc})")
        err.print(f"written to {output}")
    else:
        sys.stdout.write(text)


@app.command("import")
def import_(
    path: Path,
    timezone_: Annotated[str | None, typer.Option("--timezone", help="Zone for timestamps that have none "
                                                   "(Notion exports), e.g. Europe/Paris or UTC.")] = None,
    by: ByOpt = None,
) -> None:
    """Import incidents from our JSON/CSV export or a Notion database CSV export, all or nothing."""
    ctx = _ctx()
    now = ctx.clock.now()
    try:
        records = read_file(path, default_tz=timezone_, now=now)
        with ctx.db.session() as s:
            ids = import_records(s, records, actor=_actor(by), at=now, source=path.name)
    except (ImportError_, log.IncidentLogError) as exc:
        fail(str(exc))
    except UnicodeDecodeError as exc:
        fail(f"{path.name}: cannot read as UTF-8 text ({exc.reason} at byte {exc.start})")
    except OSError as exc:
        fail(f"{path.name}: cannot read the file ({exc.strerror or exc})")
    out.print(f"imported {len(ids)} incident(s) from {path}")
