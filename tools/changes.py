"""Changes: deploys, config changes, flag flips and infra events, the first answer to "what changed?".

`ChangeIn` is the `/webhooks/changes` JSON (interfaces.md); `record_change` writes it as a `Change`
row (webhook, drill, CLI and the flag store all go through it); `recent_changes` is the tool that
ranks changes by how close they are to the onset, because the culprit is usually the nearest one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from firebreak.clock import SystemClock
from firebreak.context import ToolContext
from firebreak.state.changes import Change
from firebreak.tools.registry import ToolError, tool

ChangeKind = Literal["deploy", "config", "flag", "infra"]
CHANGE_KINDS: tuple[str, ...] = ("deploy", "config", "flag", "infra")
FLAG_STATES = ("ENABLED", "DISABLED")
DEFAULT_LOOKBACK = timedelta(hours=48)
MAX_SCAN = 5000


class ChangeIn(BaseModel):
    """One change as CI/CD, a person, a drill or the flag store reports it.

    `deploy` needs `service` and `version`; `config` needs `key`; `flag` needs `flag` and `variant`
    or `state`; `infra` needs `note`. `at` must carry a zone; left out, the caller's "now" is used.
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    kind: ChangeKind
    service: str | None = Field(default=None, max_length=200)
    version: str | None = Field(default=None, max_length=128)
    previous_version: str | None = Field(default=None, max_length=128)
    at: datetime | None = None
    author: str | None = Field(default=None, max_length=200)
    note: str = ""
    key: str | None = Field(default=None, max_length=200)
    from_value: Any = Field(default=None, alias="from")
    to_value: Any = Field(default=None, alias="to")
    flag: str | None = Field(default=None, max_length=200)
    variant: str | None = Field(default=None, max_length=200)
    state: str | None = None

    @field_validator("version", "previous_version", "variant", mode="before")
    @classmethod
    def _scalar_to_str(cls, value: Any) -> Any:
        # YAML and hand-written JSON give 4.6 or 2 for versions; a version is a string.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("service", "version", "previous_version", "author", "key", "flag", "variant")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        return value or None

    @field_validator("at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamp has no timezone (use e.g. 2026-03-02T08:00:00Z)")
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise ValueError("timestamp is out of range once converted to UTC") from None

    @field_validator("state")
    @classmethod
    def _state(cls, value: str | None) -> str | None:
        if value is None:
            return None
        upper = value.strip().upper()
        if upper not in FLAG_STATES:
            raise ValueError(f"unknown flag state {value!r} (ENABLED or DISABLED)")
        return upper

    @model_validator(mode="after")
    def _kind_fields(self) -> ChangeIn:
        missing: list[str] = []
        if self.kind == "deploy":
            missing = [f for f in ("service", "version") if getattr(self, f) is None]
        elif self.kind == "config":
            missing = [] if self.key else ["key"]
        elif self.kind == "flag":
            if not self.flag:
                missing.append("flag")
            if self.variant is None and self.state is None:
                missing.append("variant or state")
        elif self.kind == "infra" and not self.note.strip():
            missing = ["note"]
        if missing:
            raise ValueError(f"a {self.kind} change needs {' and '.join(missing)}")
        if self.kind != "flag" and self.state is not None:
            raise ValueError("state is only for flag changes")
        return self


def record_change(
    session: Session, change: ChangeIn, *, source: str = "webhook", now: datetime | None = None
) -> Change:
    """Insert one `Change` row in the caller's transaction; `now` fills a missing `at`."""
    at = change.at or now or SystemClock().now()
    if at.tzinfo is None:
        raise ValueError("at: timestamp has no timezone (use e.g. 2026-03-02T08:00:00Z)")
    # Notes and config values come from outside: secrets in them are never stored (a config key that
    # names a secret hides both of its values whole).
    from firebreak.redact import redact_obj, redact_text, secret_key_kind

    hidden = secret_key_kind(change.key) if change.key else None

    def _value(v: Any) -> Any:
        if v is None:
            return None
        return f"[REDACTED:{hidden}]" if hidden else redact_obj(v)

    row = Change(
        kind=change.kind,
        service=change.service,
        at=at.astimezone(UTC),
        version=change.version,
        previous_version=change.previous_version,
        key=change.key,
        from_value=_value(change.from_value),
        to_value=_value(change.to_value),
        flag=change.flag,
        variant=change.variant,
        state=change.state,
        author=change.author,
        note=redact_text(change.note),
        source=source,
    )
    session.add(row)
    session.flush()
    return row


# ---------------------------------------------------------------------------------------------- tool


class RecentChangesInput(BaseModel):
    service: str | None = Field(
        default=None,
        description="Only changes to this service, to the services it depends on, and global changes "
        "(flags or infra events with no service).",
    )
    kind: ChangeKind | None = Field(default=None, description="Only this kind of change.")
    since: datetime | None = Field(default=None, description="Start of the window; default 48 h before `around`.")
    until: datetime | None = Field(default=None, description="End of the window; default now.")
    around: datetime | None = Field(
        default=None, description="The onset of the symptoms; changes are ranked by distance to it. Default: until."
    )
    limit: int = Field(default=20, ge=1, le=200)


class ChangeOut(BaseModel):
    id: int
    kind: str
    service: str | None
    at: datetime
    version: str | None = None
    previous_version: str | None = None
    key: str | None = None
    from_value: Any = None
    to_value: Any = None
    flag: str | None = None
    variant: str | None = None
    state: str | None = None
    author: str | None = None
    note: str = ""
    source: str = ""
    minutes_from_onset: float = Field(description="Negative: before the onset; positive: after it.")
    relation: Literal["service", "dependency", "global", "other"] = "other"


class RecentChangesOutput(BaseModel):
    around: datetime
    since: datetime
    until: datetime
    changes: list[ChangeOut]
    total: int
    truncated: bool
    note: str = ""


def _check_aware(value: datetime | None, field: str) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise ToolError(f"{field}: timestamp has no timezone (use e.g. 2026-03-02T08:00:00Z)", field=field)
    return value.astimezone(UTC)


def change_out(row: Change, around: datetime, relation: str = "other") -> ChangeOut:
    """A row as tool output; the old and new values of a secret config key (`db.password`) are masked."""
    from firebreak.redact import secret_key_kind

    from_value, to_value = row.from_value, row.to_value
    secret = secret_key_kind(row.key) if row.key and row.kind == "config" else None
    if secret:
        mark = f"[REDACTED:{secret}]"
        from_value = None if from_value is None else mark
        to_value = None if to_value is None else mark
    return ChangeOut(
        id=row.id, kind=row.kind, service=row.service, at=row.at, version=row.version,
        previous_version=row.previous_version, key=row.key, from_value=from_value, to_value=to_value,
        flag=row.flag, variant=row.variant, state=row.state, author=row.author, note=row.note or "",
        source=row.source, minutes_from_onset=round((row.at - around).total_seconds() / 60.0, 1),
        relation=relation,  # type: ignore[arg-type]
    )


@tool("changes")
def recent_changes(ctx: ToolContext, args: RecentChangesInput) -> RecentChangesOutput:
    """List deploys, config changes, feature-flag changes and infra events, nearest to the onset first.

    Use this early in every investigation: most incidents follow a change. Pass `around` = when the
    symptoms began (first alert, first error) and optionally `service`; each change carries
    `minutes_from_onset` (negative = before the onset). A change shortly before the onset on the
    affected service or one of its dependencies is the prime suspect.
    """
    until = _check_aware(args.until, "until") or ctx.clock.now()
    around = _check_aware(args.around, "around") or until
    since = _check_aware(args.since, "since") or (min(around, until) - DEFAULT_LOOKBACK)
    if since >= until:
        raise ToolError(
            f"since ({since.isoformat()}) must be before until ({until.isoformat()})", field="since"
        )
    deps = set(ctx.settings.dependencies.get(args.service, [])) if args.service else set()
    with ctx.db.session() as s:
        q = select(Change).where(Change.at >= since, Change.at <= until)
        if args.kind:
            q = q.where(Change.kind == args.kind)
        if args.service:
            q = q.where(or_(Change.service.in_({args.service, *deps}), Change.service.is_(None)))
        rows = list(s.execute(q.order_by(Change.at.desc()).limit(MAX_SCAN)).scalars())
        note = ""
        if args.service and not any(r.service == args.service for r in rows):
            known = sorted(
                {sv for sv in s.execute(select(Change.service).distinct()).scalars() if sv}
            )
            note = (
                f"no change recorded for service {args.service!r} in this window"
                + (f"; services with recorded changes: {', '.join(known[:30])}" if known else "")
            )

    def relation(row: Change) -> str:
        if row.service is None:
            return "global"
        if args.service is None:
            return "other"
        return "service" if row.service == args.service else "dependency"

    rows.sort(key=lambda r: (abs((r.at - around).total_seconds()), -r.at.timestamp(), -r.id))
    picked = rows[: args.limit]
    return RecentChangesOutput(
        around=around, since=since, until=until,
        changes=[change_out(r, around, relation(r)) for r in picked],
        total=len(rows), truncated=len(rows) > len(picked), note=note,
    )
