"""Carries out an approved action, exactly once.

The only way in is an `Approval` row in status `approved` (set by `server.approvals.decide` after a person
said yes). `execute_once` claims it with a conditional UPDATE (`approved -> executing`), so a second call,
a Slack retry or a concurrent worker finds nothing to claim and gets the stored result back instead.

How an action runs:
- flag actions (disable_flag, enable_flag, set_flag_variant) through `tools.flags` (the flagd file);
- any action through `FIREBREAK_ACTION_HOOK_<ACTION>` (POST JSON) or `FIREBREAK_ACTION_COMMAND_<ACTION>`
  (the same JSON on stdin), when configured; these win over the flag store so a team can route flags to
  its own flag service;
- otherwise it is recorded as "approved, to be done by hand": never pretend it ran.

The outcome is written to the incident log in the same transaction that finishes the approval.
"""

from __future__ import annotations

import json
import logging
import shlex
import subprocess
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel
from sqlalchemy import update

from agent.actions import FLAG_ACTIONS, ProposedFix
from memory import incident_log
from memory.models import Approval, Incident
from tools.context import ToolContext

log = logging.getLogger(__name__)

ExecutionStatus = Literal["executed", "manual", "failed"]
FINISHED = ("executed", "manual", "failed")
# Actions whose success marks the incident as rolled back, or as mitigated by a hotfix-like change.
ROLLBACK_ACTIONS = frozenset({"rollback", "revert_config"})
HOTFIX_ACTIONS = frozenset(FLAG_ACTIONS)
DEFAULT_TIMEOUT_SECONDS = 120.0
MANUAL_PREFIX = "approved, to be done by hand"


def rows_changed(result: Any) -> int:
    """Rows matched by an UPDATE (the typed Result hides CursorResult.rowcount)."""
    return int(result.rowcount)


class ExecutionResult(BaseModel):
    """What happened to one approved action. `already` is true when an earlier call had done it."""

    approval_id: str
    status: ExecutionStatus
    detail: str
    executed_at: datetime | None = None
    already: bool = False


class ExecutionRefused(Exception):
    """The approval is unknown or not in a state that may run (pending, rejected, running now)."""


def action_timeout(ctx: ToolContext) -> float:
    """Seconds a hook or command may take (`FIREBREAK_ACTION_TIMEOUT_SECONDS`, default 120)."""
    return max(1.0, float(ctx.settings.action_timeout_seconds))


def execute_once(ctx: ToolContext, approval_id: str) -> ExecutionResult:
    """Run the approved action behind `approval_id` if nobody has; otherwise return what happened."""
    with ctx.db.session() as s:
        claimed = rows_changed(s.execute(
            update(Approval)
            .where(Approval.id == approval_id, Approval.status == "approved")
            .values(status="executing")
            .execution_options(synchronize_session=False)
        ))
        approval = s.get(Approval, approval_id)
        if approval is None:
            raise ExecutionRefused(f"approval {approval_id}: no such approval")
        if not claimed:
            if approval.status in FINISHED:
                return ExecutionResult(
                    approval_id=approval.id, status=approval.status,  # type: ignore[arg-type]
                    detail=approval.result or "", executed_at=approval.executed_at, already=True,
                )
            raise ExecutionRefused(
                f"approval {approval_id}: status is {approval.status!r}, only an approved action runs"
            )
        payload: dict[str, Any] = {
            "incident": approval.incident_id,
            "approval_id": approval.id,
            "action": approval.action,
            **(approval.parameters or {}),
            "approved_by": approval.decided_by,
        }
        action, params, actor = approval.action, dict(approval.parameters or {}), approval.decided_by or "?"

    started = ctx.clock.now()
    try:
        status, detail = _run(ctx, action, params, payload, actor, started)
    except Exception as exc:  # an executor must never leave the row in "executing" forever
        log.exception("executor for %s failed", approval_id)
        status, detail = "failed", f"executor error: {exc}"
    return _finish(ctx, approval_id, status, detail, started)


def execute(ctx: ToolContext, approval: Approval | str) -> ExecutionResult:
    """Alias used by the agent's action tool: same exactly-once guarantee as `execute_once`."""
    return execute_once(ctx, approval if isinstance(approval, str) else approval.id)


def describe(action: str, params: dict[str, Any]) -> str:
    try:
        return ProposedFix(action=action, parameters=params).describe()  # type: ignore[arg-type]
    except ValueError:
        return f"{action}({', '.join(f'{k}={v}' for k, v in params.items())})"


def _run(
    ctx: ToolContext, action: str, params: dict[str, Any], payload: dict[str, Any], actor: str, at: datetime
) -> tuple[ExecutionStatus, str]:
    hook = ctx.settings.action_hook(action)
    command = ctx.settings.action_command(action)
    if hook:
        return _run_hook(hook, payload, action_timeout(ctx))
    if command:
        return _run_command(command, payload, action_timeout(ctx))
    if action in FLAG_ACTIONS:
        flagged = _run_flag(ctx, action, params, actor, at)
        if flagged is not None:
            return flagged
    return "manual", f"{MANUAL_PREFIX}: {describe(action, params)} (no executor configured for {action})"


def _run_flag(
    ctx: ToolContext, action: str, params: dict[str, Any], actor: str, at: datetime
) -> tuple[ExecutionStatus, str] | None:
    try:
        from tools.flags import get_flag_store
    except ImportError:
        return None
    flag = str(params["flag"])
    variant = params.get("variant")
    try:
        outcome = get_flag_store(ctx).apply(
            action, flag, variant=None if variant is None else str(variant), actor=actor, at=at,
            note=f"approved fix ({describe(action, params)})",
        )
    except Exception as exc:
        return "failed", f"flag {flag}: {action} refused by the flag store: {exc}"
    message = getattr(outcome, "message", None) or f"flag {flag}: {describe(action, params)} applied"
    return "executed", f"{_short(message)} (flag file)"


def _run_hook(url: str, payload: dict[str, Any], timeout: float) -> tuple[ExecutionStatus, str]:
    where = urlsplit(url).netloc or url  # never echo a token in the URL's path or query
    try:
        resp = httpx.post(url, json=payload, timeout=timeout)
    except httpx.HTTPError as exc:
        return "failed", f"hook {where}: {type(exc).__name__}: {exc}"
    body = _short(resp.text)
    if resp.is_success:
        return "executed", f"hook {where} answered {resp.status_code}" + (f": {body}" if body else "")
    return "failed", f"hook {where} answered {resp.status_code}" + (f": {body}" if body else "")


def _run_command(command: str, payload: dict[str, Any], timeout: float) -> tuple[ExecutionStatus, str]:
    argv = shlex.split(command)
    if not argv:
        return "failed", "command: empty"
    try:
        proc = subprocess.run(
            argv, input=json.dumps(payload), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return "failed", f"command {argv[0]} timed out after {timeout:g}s"
    except OSError as exc:
        return "failed", f"command {argv[0]}: {exc.strerror or exc}"
    if proc.returncode == 0:
        out = _short(proc.stdout)
        return "executed", f"command {argv[0]} exited 0" + (f": {out}" if out else "")
    err = _short(proc.stderr or proc.stdout)
    return "failed", f"command {argv[0]} exited {proc.returncode}" + (f": {err}" if err else "")


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _finish(
    ctx: ToolContext, approval_id: str, status: ExecutionStatus, detail: str, started: datetime
) -> ExecutionResult:
    now = ctx.clock.now()
    executed_at = started if status != "manual" else None
    with ctx.db.session() as s:
        s.execute(
            update(Approval)
            .where(Approval.id == approval_id, Approval.status == "executing")
            .values(status=status, executed_at=executed_at, result=detail)
            .execution_options(synchronize_session=False)
        )
        approval = s.get(Approval, approval_id)
        incident = s.get(Incident, approval.incident_id) if approval else None
        if approval is not None and incident is not None:
            _record(s, incident, approval, status, detail, now)
    return ExecutionResult(approval_id=approval_id, status=status, detail=detail, executed_at=executed_at)


def _record(
    s: Any, incident: Incident, approval: Approval, status: ExecutionStatus, detail: str, now: datetime
) -> None:
    """Countermeasure, timeline, and the incident's marks: written once, with the final status."""
    what = describe(approval.action, approval.parameters or {})
    by = approval.decided_by or "?"
    if status == "executed":
        text = f"{what} executed (approved by {by}): {detail}"
        worked: bool | None = None
    elif status == "manual":
        text = f"{what} approved by {by}, to be done by hand: no executor configured"
        worked = None
    else:
        text = f"{what} approved by {by} but execution failed: {detail}"
        worked = False
    incident_log.add_countermeasure(s, incident, what=text, by=by, at=now, worked=worked,
                                    approval_id=approval.id)
    if status != "executed":
        return
    marks: dict[str, Any] = {}
    if approval.action in ROLLBACK_ACTIONS:
        marks["rollback"] = True
    if approval.action in HOTFIX_ACTIONS:
        marks["hotfix"] = True
    if marks:
        incident_log.update_incident(s, incident, marks, at=now, actor="firebreak")
    if incident.status == "open":
        incident_log.set_status(s, incident, "mitigated", at=now, actor="firebreak")
