"""Time windows of tool inputs: zone-checked `since`/`until` and the default window, written once.

The log and metric tools take the same optional range; a naive time is refused naming its field,
and an empty or reversed range is a 422 naming `since`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ValidationInfo, field_validator

from firebreak.clock import ensure_aware
from firebreak.context import ToolContext
from firebreak.tools.registry import ToolError


class ZonedRange(BaseModel):
    """Base for tool inputs with optional `since`/`until` fields (declared by the subclass): both UTC-aware."""

    @field_validator("since", "until", check_fields=False)
    @classmethod
    def _zoned(cls, v: datetime | None, info: ValidationInfo) -> datetime | None:
        return None if v is None else ensure_aware(v, info.field_name or "timestamp")


def resolve_range(
    ctx: ToolContext, since: datetime | None, until: datetime | None, default: timedelta
) -> tuple[datetime, datetime]:
    """(start, end): `until` defaults to now and `since` to `default` before it; start must precede end."""
    end = until or ctx.clock.now()
    start = since or end - default
    if start >= end:
        raise ToolError(
            f"since ({start.isoformat()}) must be before until ({end.isoformat()}): swap or widen the range",
            status=422,
            field="since",
        )
    return start, end
