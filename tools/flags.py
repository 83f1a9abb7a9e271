"""Feature-flag tools for the investigator: list the flags, evaluate one for a context, and the history
of flag changes. Read-only: the flag actions a person approves are `tools.flag_store.FlagStore.apply`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select

from firebreak.context import ToolContext
from firebreak.state.changes import Change
from firebreak.tools.flag_store import FlagError, FlagFileError, get_flag_store
from firebreak.tools.registry import ToolError, tool

MAX_VALUE_CHARS = 300


def _bounded(value: Any) -> Any:
    """Large object variants are summarised so a listing stays small."""
    if isinstance(value, dict | list):
        text = json.dumps(value, default=str)
        if len(text) > MAX_VALUE_CHARS:
            return text[: MAX_VALUE_CHARS - 1] + "…"
    elif isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        return value[: MAX_VALUE_CHARS - 1] + "…"
    return value


def _summary(definition: dict[str, Any] | None) -> dict[str, Any] | None:
    if not definition:
        return None
    return {"state": definition.get("state"), "variant": definition.get("defaultVariant")}


def _tool_error(exc: Exception) -> ToolError:
    if isinstance(exc, FlagFileError):
        return ToolError(f"{exc}; fix the file or FIREBREAK_FLAGS_FILE", status=503)
    msg = str(exc)
    return ToolError(msg, status=404 if msg.startswith(("unknown flag", "no flag file")) else 400, field="flag")


# --------------------------------------------------------------------------------------------- tools


class ListFlagsInput(BaseModel):
    search: str | None = Field(default=None, description="Only flags whose key contains this text.")
    limit: int = Field(default=100, ge=1, le=500)


class FlagInfo(BaseModel):
    key: str
    state: str
    default_variant: str | None
    variants: dict[str, Any]
    has_targeting: bool


class ListFlagsOutput(BaseModel):
    flags: list[FlagInfo]
    total: int
    truncated: bool
    file: str


@tool("flags")
def list_flags(ctx: ToolContext, args: ListFlagsInput) -> ListFlagsOutput:
    """List the feature flags with their state (ENABLED/DISABLED), default variant and variants.

    Use it to see which flags exist before evaluating one, or to spot a flag related to a failing
    service (flag keys often name the service or feature). A recent flip shows in `flag_history`.
    """
    store = get_flag_store(ctx)
    try:
        flags = store.flags()
    except FlagFileError as exc:
        raise _tool_error(exc) from None
    keys = sorted(k for k in flags if not args.search or args.search.lower() in k.lower())
    picked = keys[: args.limit]
    infos = []
    for key in picked:
        d = flags[key] if isinstance(flags[key], dict) else {}
        infos.append(FlagInfo(
            key=key, state=str(d.get("state", "?")), default_variant=d.get("defaultVariant"),
            variants={str(n): _bounded(v) for n, v in (d.get("variants") or {}).items()},
            has_targeting=bool(d.get("targeting")),
        ))
    return ListFlagsOutput(flags=infos, total=len(keys), truncated=len(keys) > len(picked), file=store.path.name)


class EvaluateFlagInput(BaseModel):
    flag: str = Field(description="The flag key.")
    context: dict[str, Any] = Field(
        default_factory=dict,
        description='Evaluation context, e.g. {"targetingKey": "user-1", "email": "a@b.com", "region": "eu"}.',
    )


class EvaluateFlagOutput(BaseModel):
    flag: str
    value: Any
    variant: str | None
    reason: str
    state: str | None = None
    type: str
    error: str | None = None
    note: str = ""


@tool("flags")
def evaluate_flag(ctx: ToolContext, args: EvaluateFlagInput) -> EvaluateFlagOutput:
    """Evaluate a feature flag for a given context (user, region, tenant...) through OpenFeature/flagd.

    Use it to check what a particular user or request actually gets, e.g. whether the affected users
    fall into a targeting rule. `reason` is STATIC, TARGETING_MATCH, DEFAULT, DISABLED or ERROR.
    """
    try:
        return EvaluateFlagOutput.model_validate(get_flag_store(ctx).evaluate(args.flag, args.context))
    except (FlagError, FlagFileError) as exc:
        raise _tool_error(exc) from None


class FlagHistoryInput(BaseModel):
    flag: str | None = Field(default=None, description="Only this flag.")
    since: datetime | None = Field(default=None, description="Only changes at or after this time.")
    limit: int = Field(default=50, ge=1, le=500)


class FlagEvent(BaseModel):
    flag: str
    at: datetime
    author: str | None
    state: str | None
    variant: str | None
    previous: str | None = Field(default=None, description="the variant served before this change, if known")
    previous_state: str | None = Field(default=None, description="ENABLED/DISABLED before this change, if known")
    note: str = ""
    source: str = ""


class FlagHistoryOutput(BaseModel):
    events: list[FlagEvent]
    total: int
    truncated: bool
    note: str = ""


@tool("flags")
def flag_history(ctx: ToolContext, args: FlagHistoryInput) -> FlagHistoryOutput:
    """Feature-flag changes, newest first: who flipped which flag to what, when, and what it was before.

    Use it when a flag might explain the incident (a flip shortly before the onset), or to confirm
    that an approved flag action took effect.
    """
    if args.since is not None and args.since.tzinfo is None:
        raise ToolError("since: timestamp has no timezone (use e.g. 2026-03-02T08:00:00Z)", field="since")
    with ctx.db.session() as s:
        q = select(Change).where(Change.kind == "flag")
        if args.flag:
            q = q.where(Change.flag == args.flag)
        rows = list(s.execute(q.order_by(Change.at, Change.id)).scalars())
    last: dict[str, dict[str, Any]] = {}
    events: list[FlagEvent] = []
    for row in rows:
        flag = row.flag or "?"
        prev = row.from_value if isinstance(row.from_value, dict) else None
        previous = _summary(prev) if prev is not None else last.get(flag)
        state = row.state or (previous or {}).get("state")
        variant = row.variant or (previous or {}).get("variant")
        last[flag] = {"state": state, "variant": variant}
        if args.since is None or row.at >= args.since:
            events.append(FlagEvent(
                flag=flag, at=row.at, author=row.author, state=row.state, variant=row.variant,
                previous=(previous or {}).get("variant"), previous_state=(previous or {}).get("state"),
                note=row.note or "", source=row.source,
            ))
    events.reverse()
    picked = events[: args.limit]
    note = ""
    if not events:
        note = f"no recorded change for flag {args.flag!r}" if args.flag else "no flag change recorded"
        if args.flag:
            try:
                if args.flag not in get_flag_store(ctx).flags():
                    note += " and no such flag in the flag file (see list_flags)"
            except FlagFileError:
                pass
    return FlagHistoryOutput(events=picked, total=len(events), truncated=len(events) > len(picked), note=note)
