"""How the agent reaches people and the approved action: a protocol implemented above it.

The agent never imports the approval service or the server (they sit above it). When a report proposes
a fix, the agent calls `get_notifier().report_ready(...)`, which asks a person (Slack, web page, CLI);
when a resumed run's action tool fires, it calls `get_notifier().run_approved(...)`, the one executor entry
point. `workflows.install()` sets the implementation; without it nothing is asked and nothing runs.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

from firebreak.context import ToolContext

log = logging.getLogger(__name__)


class Notifier(Protocol):
    def report_ready(self, ctx: ToolContext, investigation_id: str) -> str | None:
        """The investigation's report is stored; ask for approval of its fix. Returns the approval id."""

    def run_approved(self, ctx: ToolContext, approval_id: str) -> dict[str, Any]:
        """Run (once) or read the outcome of an approved action: {"status", "detail", "approval_id"}."""


class Unwired:
    """No approval service installed (`workflows.install()` was not called): say so, do nothing."""

    def report_ready(self, ctx: ToolContext, investigation_id: str) -> str | None:
        log.warning("no approval service installed: investigation %s left awaiting approval", investigation_id)
        return None

    def run_approved(self, ctx: ToolContext, approval_id: str) -> dict[str, Any]:
        return {"status": "failed", "detail": "no executor installed; do it by hand", "approval_id": approval_id}


_notifier: Notifier = Unwired()


def set_notifier(notifier: Notifier) -> None:
    global _notifier
    _notifier = notifier


def get_notifier() -> Notifier:
    return _notifier
