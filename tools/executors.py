"""Runs one action against the outside world: the flag store, a hook URL, or a command.

This module only knows how to carry an action out; *whether* it may run (approved, exactly once, what to
do after a crash) is decided by the one entry point, `workflows.executor.execute_approved`, which calls
`run_action` after claiming the approval.

Every run carries an idempotency key (the approval id) so the receiving side can drop a repeat:
- a hook URL (`FIREBREAK_ACTION_HOOK_<ACTION>`) gets it in the `Idempotency-Key` header (and the JSON body);
- a command (`FIREBREAK_ACTION_COMMAND_<ACTION>`) gets it in `FIREBREAK_IDEMPOTENCY_KEY` (and the JSON on stdin);
- flag actions without a hook or command go to `tools.flags` (the flagd file);
- otherwise the action is "approved, to be done by hand": never pretend it ran.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from datetime import datetime
from typing import Any

import httpx

from firebreak.context import ToolContext
from firebreak.statuses import ApprovalStatus
from firebreak.tools.flag_store import FLAG_ACTIONS

DEFAULT_TIMEOUT_SECONDS = 120.0
MANUAL_PREFIX = "approved, to be done by hand"
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_ENV = "FIREBREAK_IDEMPOTENCY_KEY"
# Actions whose success marks the incident as rolled back, or as mitigated by a hotfix-like change.
ROLLBACK_ACTIONS = frozenset({"rollback", "revert_config"})
HOTFIX_ACTIONS = frozenset(FLAG_ACTIONS)


def rows_changed(result: Any) -> int:
    """Rows matched by an UPDATE (the typed Result hides CursorResult.rowcount)."""
    return int(result.rowcount)


def describe(action: str, params: dict[str, Any]) -> str:
    """`rollback(service=mailer, to=4.6.1)`: the same text the action catalog writes."""
    return f"{action}({', '.join(f'{k}={v}' for k, v in params.items())})"


def action_timeout(ctx: ToolContext) -> float:
    """Seconds a hook or command may take (`FIREBREAK_ACTION_TIMEOUT_SECONDS`, default 120)."""
    return max(1.0, float(ctx.settings.action_timeout_seconds))


def run_action(
    ctx: ToolContext, action: str, params: dict[str, Any], payload: dict[str, Any], *, idempotency_key: str,
    actor: str, at: datetime,
) -> tuple[ApprovalStatus, str]:
    """Carry out one action once; returns (executed | failed | manual, detail). Never raises for the action."""
    hook = ctx.settings.action_hook(action)
    command = ctx.settings.action_command(action)
    body = {**payload, "idempotency_key": idempotency_key}
    if hook:
        return _run_hook(hook, body, idempotency_key, action_timeout(ctx))
    if command:
        return _run_command(command, body, idempotency_key, action_timeout(ctx))
    if action in FLAG_ACTIONS:
        return _run_flag(ctx, action, params, actor, at)
    return ApprovalStatus.MANUAL, f"{MANUAL_PREFIX}: {describe(action, params)} (no executor configured for {action})"


def _run_flag(
    ctx: ToolContext, action: str, params: dict[str, Any], actor: str, at: datetime
) -> tuple[ApprovalStatus, str]:
    from firebreak.tools.flag_store import get_flag_store

    flag = str(params["flag"])
    variant = params.get("variant")
    try:
        outcome = get_flag_store(ctx).apply(
            action, flag, variant=None if variant is None else str(variant), actor=actor, at=at,
            note=f"approved fix ({describe(action, params)})",
        )
    except Exception as exc:  # noqa: BLE001 - the flag store's refusal is the outcome, reported as such
        return ApprovalStatus.FAILED, f"flag {flag}: {action} refused by the flag store: {exc}"
    message = getattr(outcome, "message", None) or f"flag {flag}: {describe(action, params)} applied"
    return ApprovalStatus.EXECUTED, f"{_short(message)} (flag file)"


def _run_hook(url: str, payload: dict[str, Any], key: str, timeout: float) -> tuple[ApprovalStatus, str]:
    from urllib.parse import urlsplit

    where = urlsplit(url).netloc or url  # never echo a token in the URL's path or query
    try:
        resp = httpx.post(url, json=payload, timeout=timeout, headers={IDEMPOTENCY_HEADER: key})
    except httpx.HTTPError as exc:
        return ApprovalStatus.FAILED, f"hook {where}: {type(exc).__name__}: {exc}"
    body = _short(resp.text)
    status = ApprovalStatus.EXECUTED if resp.is_success else ApprovalStatus.FAILED
    return status, f"hook {where} answered {resp.status_code}" + (f": {body}" if body else "")


def _run_command(command: str, payload: dict[str, Any], key: str, timeout: float) -> tuple[ApprovalStatus, str]:
    argv = shlex.split(command)
    if not argv:
        return ApprovalStatus.FAILED, "command: empty"
    try:
        proc = subprocess.run(
            argv, input=json.dumps(payload), capture_output=True, text=True, timeout=timeout, check=False,
            env={**os.environ, IDEMPOTENCY_ENV: key},
        )
    except subprocess.TimeoutExpired:
        return ApprovalStatus.FAILED, f"command {argv[0]} timed out after {timeout:g}s"
    except OSError as exc:
        return ApprovalStatus.FAILED, f"command {argv[0]}: {exc.strerror or exc}"
    if proc.returncode == 0:
        out = _short(proc.stdout)
        return ApprovalStatus.EXECUTED, f"command {argv[0]} exited 0" + (f": {out}" if out else "")
    err = _short(proc.stderr or proc.stdout)
    return ApprovalStatus.FAILED, f"command {argv[0]} exited {proc.returncode}" + (f": {err}" if err else "")


def _short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
