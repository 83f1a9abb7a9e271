"""Statuses of investigations and approvals, defined once (`str` enums: they compare equal to the stored text).

Every module compares against these members, never against bare strings, so a status cannot be
misspelled or silently treated as another one (an approval that `failed` is never `approved`).
"""

from __future__ import annotations

from enum import StrEnum


class InvestigationStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    RESUMING = "resuming"
    DONE = "done"
    FAILED = "failed"


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXECUTING = "executing"
    EXECUTED = "executed"
    MANUAL = "manual"
    FAILED = "failed"
    # The process died while the action ran: nobody knows whether it took effect; a person checks.
    OUTCOME_UNKNOWN = "outcome_unknown"
    # Rows holding the alternatives offered with a request.
    ALTERNATIVE = "alternative"
    CHOSEN = "chosen"
    NOT_CHOSEN = "not_chosen"


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"


# An execution that ended (the action ran, failed, or is to be done by hand): never run again by itself.
FINISHED_EXECUTIONS = frozenset({ApprovalStatus.EXECUTED, ApprovalStatus.MANUAL, ApprovalStatus.FAILED})
ALTERNATIVE_STATUSES = (ApprovalStatus.ALTERNATIVE, ApprovalStatus.CHOSEN, ApprovalStatus.NOT_CHOSEN)
# Statuses in which a person's yes stands (the action may run, runs, or ran).
APPROVED_STATUSES = frozenset({ApprovalStatus.APPROVED, ApprovalStatus.EXECUTING, ApprovalStatus.EXECUTED,
                               ApprovalStatus.MANUAL, ApprovalStatus.OUTCOME_UNKNOWN})
