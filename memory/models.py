"""The state tables, re-exported from their domain modules under `firebreak/state/`.

Kept so existing imports (`from memory.models import Incident`) and the migration files keep working;
new code imports from `firebreak.state.<domain>`.
"""

from __future__ import annotations

from firebreak.state.alerts import Alert
from firebreak.state.approvals import Approval
from firebreak.state.audit import AuditEvent
from firebreak.state.base import Base, UtcDateTime
from firebreak.state.changes import Change
from firebreak.state.drills import DrillRun
from firebreak.state.incidents import Countermeasure, IdCounter, Incident, Remediation, TimelineEntry
from firebreak.state.investigations import Investigation
from firebreak.state.tables import Base as _all_tables  # noqa: F401  (every table on the metadata)
from firebreak.state.users import User

__all__ = [
    "Alert", "Approval", "AuditEvent", "Base", "Change", "Countermeasure", "DrillRun", "IdCounter", "Incident",
    "Investigation", "Remediation", "TimelineEntry", "User", "UtcDateTime",
]
