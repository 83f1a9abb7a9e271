"""`firebreak approvals list|approve|reject`: the approval flow without Slack.

`--as NAME` is only a claim: before anything is decided the person proves it, in this order, with
  - a personal token from `firebreak users token NAME` on stdin (`--token-stdin`),
  - NAME's password on stdin (`--password-stdin`),
  - the OS account running the command, when FIREBREAK_CLI_OS_USERS maps it to NAME,
  - else NAME's password, asked at the terminal.
Password attempts are throttled like web sign-ins (per name and per OS account). The audit log records
how the approver was authenticated (`approver_authenticated`, or `approver_auth_failed`); the name is
then checked against FIREBREAK_APPROVERS by `server.approvals.decide`, exactly as a Slack click is.
Refusals print one line and exit 1.
"""

from __future__ import annotations

import getpass
import json
import sys
from typing import Annotated

import typer

app = typer.Typer(help="Approve or reject proposed fixes (the Slack-less path).", no_args_is_help=True)

STATUSES = ("pending", "approved", "rejected", "executing", "executed", "manual", "failed", "outcome_unknown", "all")


def _ctx():  # type: ignore[no-untyped-def]
    from firebreak.context import default_context

    return default_context()


@app.command("list")
def list_cmd(
    status: Annotated[str, typer.Option(help="pending, approved, rejected, executed, manual, failed or all")]
    = "pending",
    incident: Annotated[str | None, typer.Option(help="only this incident id")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List approvals (pending ones by default), newest first."""
    from firebreak.server.approvals import list_approvals

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


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _authenticate(ctx, name: str, token_stdin: bool, password_stdin: bool) -> str | None:  # type: ignore[no-untyped-def]
    """How `name` proved who they are ("personal_token", "password", "os_user"), or None."""
    from firebreak.server import throttle
    from firebreak.server.users import authenticate, token_user

    now = ctx.clock.now()
    if token_stdin:
        with ctx.db.session() as s:
            return "personal_token" if token_user(s, sys.stdin.readline().strip(), at=now) == name else None
    os_user = _os_user()
    if not password_stdin and os_user and ctx.settings.cli_os_users.get(os_user) == name:
        return "os_user"
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
    else:
        return None
    address = f"cli:{os_user or '?'}"
    with ctx.db.session() as s:
        held = throttle.check(s, account=name, address=address, now=now)
        ok = held is None and authenticate(s, name, password) is not None
        throttle.record(s, account=name, address=address, ok=ok, now=now)
    return "password" if ok else None


def _decide(approval_id: str, name: str, decision: str, reason: str | None, choice: str | None,
            token_stdin: bool = False, password_stdin: bool = False) -> None:
    from firebreak.server.approvals import decide
    from firebreak.state.audit import AuditEvent

    ctx = _ctx()
    name = name.strip()
    method = _authenticate(ctx, name, token_stdin, password_stdin)
    with ctx.db.session() as s:
        s.add(AuditEvent(at=ctx.clock.now(), actor=name[:128] or "?",
                         event="approver_authenticated" if method else "approver_auth_failed",
                         detail={"approval_id": approval_id, "via": "cli", "method": method,
                                 "os_user": _os_user()[:128], "decision": decision}))
    if method is None:
        typer.echo(f"not authenticated as {name!r}: give your password (--password-stdin or at the prompt), "
                   "a personal token (--token-stdin, from `firebreak users token`), or run as the OS user "
                   "mapped in FIREBREAK_CLI_OS_USERS; the attempt was logged.", err=True)
        raise typer.Exit(1)
    outcome = decide(ctx, approval_id, user=name, decision=decision, via="cli",
                     reason=reason, choice=choice, auth=method)
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
    token_stdin: Annotated[bool, typer.Option("--token-stdin", help="read your personal token from stdin")]
    = False,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read your password from stdin")]
    = False,
) -> None:
    """Approve a proposed fix; it runs once (exit 3 when it ran and failed)."""
    _decide(approval_id, name, "approve", None, choice, token_stdin, password_stdin)


@app.command("reject")
def reject_cmd(
    approval_id: Annotated[str, typer.Argument(help="approval id")],
    name: Annotated[str, typer.Option("--as", help="your name, as listed in FIREBREAK_APPROVERS")],
    reason: Annotated[str | None, typer.Option(help="why, kept in the incident log")] = None,
    token_stdin: Annotated[bool, typer.Option("--token-stdin", help="read your personal token from stdin")]
    = False,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read your password from stdin")]
    = False,
) -> None:
    """Reject a proposed fix; nothing runs."""
    _decide(approval_id, name, "reject", reason, None, token_stdin, password_stdin)


@app.command("resolve")
def resolve_cmd(
    approval_id: Annotated[str, typer.Argument(help="approval id whose outcome is unknown after a crash")],
    outcome: Annotated[str, typer.Argument(help="done (you checked: it took effect) or retry (run it again)")],
    name: Annotated[str, typer.Option("--as", help="your name, as listed in FIREBREAK_APPROVERS")],
    token_stdin: Annotated[bool, typer.Option("--token-stdin", help="read your personal token from stdin")]
    = False,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="read your password from stdin")]
    = False,
) -> None:
    """Settle an action whose outcome is unknown (the server died while it ran): done or retry (once)."""
    from firebreak.server.approvals import resolve

    ctx = _ctx()
    name = name.strip()
    if _authenticate(ctx, name, token_stdin, password_stdin) is None:
        typer.echo(f"not authenticated as {name!r}: give your password, a personal token, or run as the "
                   "mapped OS user.", err=True)
        raise typer.Exit(1)
    out = resolve(ctx, approval_id, user=name, outcome=outcome, via="cli")
    typer.echo(out.message, err=not out.ok)
    if not out.ok:
        raise typer.Exit(1)


@app.command("updates")
def updates_cmd(
    post: Annotated[bool, typer.Option("--post", help="post the due reminders in their Slack threads")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Incidents with no update for FIREBREAK_UPDATE_MINUTES, with a drafted update (cron-friendly)."""
    from firebreak.server.updates import due_reminders, post_due_updates

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
