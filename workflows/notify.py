"""How workflows reach people (Slack, when configured): a protocol the server layer implements.

Workflows sit below the server, so they never import it: `server.approvals` installs its Slack
implementation with `set_people(...)` when the app or CLI starts. Until then nothing is posted (a drill or
a test without Slack), and the incident log still records everything.
"""

from __future__ import annotations

from typing import Protocol

from firebreak.context import ToolContext


class People(Protocol):
    def approval_requested(self, ctx: ToolContext, approval_id: str) -> None:
        """A new approval waits for a decision: post the request."""

    def approval_decided(self, ctx: ToolContext, approval_id: str, *, via: str, reason: str | None) -> None:
        """A decision (and its execution outcome) is final: show it where the request was posted."""

    def check_by_hand(self, ctx: ToolContext, approval_id: str) -> None:
        """The action's outcome is unknown after a crash: ask a person to check and settle it."""


class Nobody:
    """No channel configured: the incident log and the web page are the only places that show it."""

    def approval_requested(self, ctx: ToolContext, approval_id: str) -> None:
        return None

    def approval_decided(self, ctx: ToolContext, approval_id: str, *, via: str, reason: str | None) -> None:
        return None

    def check_by_hand(self, ctx: ToolContext, approval_id: str) -> None:
        return None


_people: People = Nobody()


def set_people(people: People) -> None:
    global _people
    _people = people


def get_people() -> People:
    return _people
