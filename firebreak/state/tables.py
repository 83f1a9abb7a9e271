"""Every state table, imported once so the metadata is complete (migrations, mappers, tests).

A new domain module with tables is added here by name: nothing is discovered silently.
"""

from __future__ import annotations

from firebreak.state import (  # noqa: F401
    alerts,
    approvals,
    audit,
    changes,
    drills,
    incidents,
    investigations,
    postmortems,
    replicas,
    security,
    users,
)
from firebreak.state.base import Base

__all__ = ["Base"]
