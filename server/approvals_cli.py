"""`firebreak approvals list|approve|reject`: the approval flow without Slack.

The operator's name (`--as`) is checked against FIREBREAK_APPROVERS by `server.approvals.decide`, exactly
as a Slack click is; refusals print one line and exit 1.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

app = typer.Typer(help="Approve or reject proposed fixes (the Slack-less path).", no_args_is_help=True)

STATUSES = ("pending", "approved", "rejected", "executing", "executed", "manual", "failed", "all")


def _ctx():  # type: ignore[no-untyped-def]
    from tools.context import default_context

    return default_context()


@app.command("list")
def list_cmd(
    status: Annotated[str, typer.Option(help="pending, approved, rejected, executed, manual, failed or all")]
    = "pending",
    incident: Annotated[str | None, typer.Option(help="only this incident id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List approvals (pending ones by default), newest first."""
    from server.approvals import list_approvals

    if status not in STATUSES:
        typer.echo(f"--status: unknown status {status!r} ({', '.join(STATUSES)})", err=True)
        raise typer.Exit(2)
    rows = list_approvals(_ctx(), status=None if status == "all" else status, incident_id=incident)
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    if not rows:
        typer.echo(f"no {'' if status == 'all' else status + ' '}approvals")
        return
    for r in rows:
        line = f"{r.id}  {r.incident_id}  {r.status:<9} {r.describe}  requested {r.requested_at:%Y-%m-%d %H:%M}Z"
        if r.decided_by:
            line += f"  by {r.decided_by}"
        typer.echo(line)
        if r.result:
            typer.echo(f"    result: {r.result}")
        for i, alt in enumerate(r.alternatives, 1):
            typer.echo(f"    alternative {i} ({alt.id}, {alt.status}): {alt.action} "
                       + ", ".join(f"{k}={v}" for k, v in alt.parameters.items()))


def _decide(approval_id: str, name: str, decision: str, reason: str | None, choice: str | None) -> None:
    from server.approvals import decide

    outcome = decide(_ctx(), approval_id, user=name.strip(), decision=decision, via="cli",
                     reason=reason, choice=choice)
    typer.echo(outcome.message, err=not outcome.ok)
    if not outcome.ok:
        raise typer.Exit(1)
    if outcome.execution is not None and outcome.execution.status == "failed":
        raise typer.Exit(3)


@app.command("approve")
def approve_cmd(
    approval_id: Annotated[str, typer.Argument(help="approval id, e.g. apr-1a2b3c4d5e6f")],
    name: Annotated[str, typer.Option("--as", help="your name, as listed in FIREBREAK_APPROVERS")],
    choice: Annotated[str | None, typer.Option(help="run alternative N (or its id) instead")] = None,
) -> None:
    """Approve a proposed fix; it runs once (exit 3 when it ran and failed)."""
    _decide(approval_id, name, "approve", None, choice)


@app.command("reject")
def reject_cmd(
    approval_id: Annotated[str, typer.Argument(help="approval id")],
    name: Annotated[str, typer.Option("--as", help="your name, as listed in FIREBREAK_APPROVERS")],
    reason: Annotated[str | None, typer.Option(help="why, kept in the incident log")] = None,
) -> None:
    """Reject a proposed fix; nothing runs."""
    _decide(approval_id, name, "reject", reason, None)


@app.command("updates")
def updates_cmd(
    post: Annotated[bool, typer.Option("--post", help="post the due reminders in their Slack threads")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Incidents with no update for FIREBREAK_UPDATE_MINUTES, with a drafted update (cron-friendly)."""
    from server.updates import due_reminders, post_due_updates

    ctx = _ctx()
    rows = post_due_updates(ctx) if post else due_reminders(ctx)
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    if not rows:
        typer.echo("no reminders posted" if post else "no update is due")
        return
    for r in rows:
        typer.echo(f"{r.incident_id}  {r.status}  no update for {r.minutes_since} min"
                   + ("  (posted in Slack)" if post else ""))
        typer.echo("    " + r.draft.replace("\n", "\n    "))
