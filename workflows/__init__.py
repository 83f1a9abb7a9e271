"""Durable investigations and approvals: the services between the agent and the server.

- `workflows.approvals`: request, decide, what follows a decision;
- `workflows.executor`: the one entry point for an approved action (exactly once, outcome_unknown);
- `workflows.investigations`: queueing, running and re-queueing investigations;
- `workflows.engine`: DBOS (durable workflows, the investigation queue, recovery, replicas);
- `workflows.notify`: the protocol the server implements to reach people.
"""

from __future__ import annotations


def install() -> None:
    """Give the agent its notifier (approval requests, the executor entry point). Idempotent."""
    from firebreak.agent.notify import set_notifier
    from firebreak.workflows.approvals import Desk

    set_notifier(Desk())
