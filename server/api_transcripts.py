"""Agent run transcripts over HTTP, and the one reading of a transcript that the page and the API share.

A transcript is an `Investigation` row: `messages` (pydantic-ai's message JSON, or plain role/content
dicts), `tool_calls` (one record per call, with timing) and `usage`. `transcript_steps` folds them
into one ordered timeline (model turns, tool calls with their results and durations) so a reviewer
reads a run top to bottom; it tolerates missing fields because runs written by older or other
investigators must stay readable.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from firebreak.agent.transcripts import RunFields, TranscriptNotFound, store_review
from firebreak.context import ToolContext
from firebreak.server.auth import require_api_token
from firebreak.server.deps import Ctx
from firebreak.state.investigations import Investigation

router = APIRouter(prefix="/api/transcripts", tags=["transcripts"], dependencies=[Depends(require_api_token)])

StepKind = Literal["system", "user", "model", "tool", "retry", "other"]


class Step(BaseModel):
    """One line of a run's timeline."""

    kind: StepKind
    at: datetime | None = None
    text: str = ""
    tool: str | None = None
    call_id: str | None = None
    args: Any = None
    result: Any = None
    error: str | None = None
    duration_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None
    offset_s: float | None = Field(
        default=None, description="seconds since the run's first recorded step (same clock as `at`)"
    )


class Review(BaseModel):
    verdict: Literal["right", "wrong"] | None = None
    note: str | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None


class TranscriptSummary(RunFields):
    started_at: datetime | None
    tool_call_count: int
    input_tokens: int | None
    output_tokens: int | None
    total_tokens: int | None
    error: str | None
    review: Review


class Transcript(TranscriptSummary):
    fallback_reason: str | None
    usage: dict[str, Any]
    report: dict[str, Any] | None
    steps: list[Step]
    messages: list[Any]
    tool_calls: list[Any]


class TranscriptList(BaseModel):
    transcripts: list[TranscriptSummary]
    total: int
    truncated: bool


class ReviewIn(BaseModel):
    verdict: Literal["right", "wrong"]
    note: str = Field(default="", max_length=5000)
    reviewer: str = Field(min_length=1, max_length=128)


# --- reading a transcript -------------------------------------------------------------------------


def _first(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d and d[k] is not None:
            return d[k]
    return None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _maybe_json(value: Any) -> Any:
    """pydantic-ai keeps tool-call args either as a dict or as the model's raw JSON string."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_text(v) for v in value)
    if isinstance(value, dict) and "text" in value:
        return str(value["text"])
    return json.dumps(value, default=str)


def _duration_ms(rec: dict[str, Any]) -> float | None:
    ms = _first(rec, "duration_ms", "elapsed_ms")
    if isinstance(ms, int | float):
        return float(ms)
    secs = _first(rec, "duration_s", "duration_seconds", "seconds", "elapsed_s", "wall_seconds", "duration")
    if isinstance(secs, int | float):
        return float(secs) * 1000
    start, end = _time(_first(rec, "started_at", "start")), _time(_first(rec, "finished_at", "end"))
    if start and end:
        return (end - start).total_seconds() * 1000
    return None


def _tool_step(rec: dict[str, Any]) -> Step:
    error = _first(rec, "error")
    return Step(
        kind="tool",
        at=_time(_first(rec, "at", "started_at", "timestamp", "ts")),
        tool=str(_first(rec, "tool", "name", "tool_name") or "?"),
        call_id=_first(rec, "tool_call_id", "call_id", "id"),
        args=_maybe_json(_first(rec, "args", "arguments", "input")),
        result=_first(rec, "result", "output", "content"),
        error=None if error is None else _text(error),
        duration_ms=_duration_ms(rec),
    )


def _message_steps(messages: list[Any]) -> list[Step]:
    steps: list[Step] = []
    calls: dict[str, Step] = {}
    last_request_at: datetime | None = None
    for msg in messages:
        if not isinstance(msg, dict):
            steps.append(Step(kind="other", text=_text(msg)))
            continue
        if "parts" not in msg:  # OpenAI-style {"role", "content"}
            role = str(msg.get("role", ""))
            kind: StepKind = {"system": "system", "user": "user", "assistant": "model", "tool": "tool"}.get(
                role, "other"
            )  # type: ignore[assignment]
            steps.append(Step(kind=kind, text=_text(msg.get("content")), at=_time(msg.get("timestamp")),
                              tool=msg.get("name") if kind == "tool" else None))
            continue
        msg_at = _time(msg.get("timestamp"))
        if msg.get("kind") == "response":
            usage = msg.get("usage") or {}
            texts = [_text(p.get("content")) for p in msg["parts"]
                     if isinstance(p, dict) and p.get("part_kind") in ("text", "thinking")]
            turn = Step(
                kind="model", at=msg_at, text="\n\n".join(t for t in texts if t), model=msg.get("model_name"),
                input_tokens=_int(_first(usage, "input_tokens", "request_tokens")),
                output_tokens=_int(_first(usage, "output_tokens", "response_tokens")),
                duration_ms=(msg_at - last_request_at).total_seconds() * 1000
                if msg_at and last_request_at and msg_at >= last_request_at else None,
            )
            steps.append(turn)
            for p in msg["parts"]:
                if isinstance(p, dict) and p.get("part_kind") == "tool-call":
                    call = Step(kind="tool", at=msg_at, tool=p.get("tool_name"), call_id=p.get("tool_call_id"),
                                args=_maybe_json(p.get("args")))
                    steps.append(call)
                    if call.call_id:
                        calls[call.call_id] = call
            continue
        for p in msg["parts"]:
            if not isinstance(p, dict):
                continue
            part_kind = p.get("part_kind")
            p_at = _time(p.get("timestamp")) or msg_at
            if part_kind == "tool-return":
                call_id = p.get("tool_call_id")
                target = calls.get(call_id) if call_id else None
                if target is None:
                    target = Step(kind="tool", at=p_at, tool=p.get("tool_name"), call_id=call_id)
                    steps.append(target)
                target.result = p.get("content")
                if target.at and p_at and p_at >= target.at and target.duration_ms is None:
                    target.duration_ms = (p_at - target.at).total_seconds() * 1000
            elif part_kind == "retry-prompt":
                steps.append(Step(kind="retry", at=p_at, tool=p.get("tool_name"), call_id=p.get("tool_call_id"),
                                  text=_text(p.get("content"))))
            elif part_kind == "system-prompt":
                steps.append(Step(kind="system", at=p_at, text=_text(p.get("content"))))
            elif part_kind == "user-prompt":
                steps.append(Step(kind="user", at=p_at, text=_text(p.get("content"))))
            else:
                steps.append(Step(kind="other", at=p_at, text=_text(p.get("content"))))
        last_request_at = msg_at or last_request_at
    return steps


def transcript_steps(messages: list[Any] | None, tool_calls: list[Any] | None) -> list[Step]:
    """One timeline from messages and tool-call records; records add durations, errors and missing results."""
    steps = _message_steps(list(messages or []))
    records = [r for r in (tool_calls or []) if isinstance(r, dict)]
    by_id: dict[str, Step] = {s.call_id: s for s in steps if s.kind == "tool" and s.call_id}
    unmatched_calls = [s for s in steps if s.kind == "tool"]
    used: set[int] = set()
    extra: list[Step] = []
    for rec in records:
        rs = _tool_step(rec)
        target = by_id.get(rs.call_id) if rs.call_id else None
        if target is None:
            target = next((s for s in unmatched_calls if id(s) not in used and s.tool == rs.tool), None)
        if target is None:
            extra.append(rs)
            continue
        used.add(id(target))
        target.duration_ms = rs.duration_ms if rs.duration_ms is not None else target.duration_ms
        target.error = rs.error or target.error
        if target.result is None:
            target.result = rs.result
        if target.args is None:
            target.args = rs.args
    if extra:
        steps.extend(extra)
        if all(s.at is not None for s in steps):
            steps.sort(key=lambda s: s.at)  # type: ignore[arg-type,return-value]
    _set_offsets(steps)
    return steps


def _set_offsets(steps: list[Step]) -> None:
    """Offsets from the run's first timestamped step. Why not from the investigation's `started_at`:
    in a drill that is the simulated clock while messages carry the wall clock, and the difference
    read `+24078826.63 s` (issue 19); steps always share one clock with each other."""
    times = [s.at for s in steps if s.at is not None]
    if not times:
        return
    start = min(times)
    for step in steps:
        if step.at is not None:
            step.offset_s = round((step.at - start).total_seconds(), 3)


# --- rows to models -------------------------------------------------------------------------------


def _tokens(usage: dict[str, Any]) -> tuple[int | None, int | None, int | None]:
    inp = _int(_first(usage, "input_tokens", "request_tokens"))
    out = _int(_first(usage, "output_tokens", "response_tokens"))
    total = _int(usage.get("total_tokens"))
    if total is None and inp is not None and out is not None:
        total = inp + out
    return inp, out, total


def summary_of(inv: Investigation) -> TranscriptSummary:
    """One run's summary for listings, redacted (review notes and errors are free text)."""
    from firebreak.redact import redact_obj

    inp, out, total = _tokens(inv.usage or {})
    verdict = inv.review_verdict if inv.review_verdict in ("right", "wrong") else None
    summary = TranscriptSummary(
        **RunFields.fields_of(inv), started_at=inv.started_at, tool_call_count=len(inv.tool_calls or []),
        input_tokens=inp, output_tokens=out, total_tokens=total, error=inv.error,
        review=Review(verdict=verdict, note=inv.review_note,  # type: ignore[arg-type]
                      reviewed_by=inv.reviewed_by, reviewed_at=inv.reviewed_at),
    )
    return TranscriptSummary.model_validate(redact_obj(summary.model_dump(mode="python")))


def transcript_of(inv: Investigation) -> Transcript:
    """One run as the API, the web page and the CLI show it, redacted (a way out, issue 15)."""
    from firebreak.redact import redact_obj

    t = Transcript(
        **summary_of(inv).model_dump(),
        fallback_reason=inv.fallback_reason, usage=inv.usage or {}, report=inv.report,
        steps=transcript_steps(inv.messages, inv.tool_calls),
        messages=list(inv.messages or []), tool_calls=list(inv.tool_calls or []),
    )
    return Transcript.model_validate(redact_obj(t.model_dump(mode="python")))


def record_review(ctx: ToolContext, investigation_id: str, *, verdict: str, note: str, reviewer: str) -> Transcript:
    """Mark a run's conclusion right or wrong; a later review replaces an earlier one (last word wins)."""
    try:
        return store_review(
            ctx, investigation_id, verdict=verdict, note=note.strip(), reviewer=reviewer, read=transcript_of
        )
    except TranscriptNotFound as exc:
        raise LookupError(f"no transcript {exc.investigation_id}") from None


# --- routes ---------------------------------------------------------------------------------------


@router.get("", response_model=TranscriptList, summary="List agent runs, newest first")
def list_transcripts(ctx: Ctx, incident: str | None = Query(None, description="only runs of this incident id"),
    status: str | None = Query(None, description="queued, running, done, failed, ..."),
    reviewed: bool | None = Query(None, description="true: reviewed runs only; false: not yet reviewed"),
    limit: int = Query(50, ge=1, le=500)) -> TranscriptList:
    q = select(Investigation)
    if incident:
        q = q.where(Investigation.incident_id == incident)
    if status:
        q = q.where(Investigation.status == status)
    if reviewed is True:
        q = q.where(Investigation.review_verdict.is_not(None))
    elif reviewed is False:
        q = q.where(Investigation.review_verdict.is_(None))
    with ctx.db.session() as s:
        rows = list(s.scalars(q.order_by(Investigation.queued_at.desc(), Investigation.id).limit(limit + 1)))
        items = [summary_of(r) for r in rows[:limit]]
    return TranscriptList(transcripts=items, total=len(items), truncated=len(rows) > limit)


@router.get("/{transcript_id}", response_model=Transcript, summary="One agent run with its timeline")
def get_transcript(ctx: Ctx, transcript_id: str) -> Transcript:
    with ctx.db.session() as s:
        inv = s.get(Investigation, transcript_id)
        if inv is None:
            raise HTTPException(404, detail=f"transcript_id: no transcript {transcript_id}")
        return transcript_of(inv)


@router.post("/{transcript_id}/review", response_model=Transcript, summary="Mark a run's conclusion right or wrong")
def review_transcript(ctx: Ctx, transcript_id: str, body: ReviewIn) -> Transcript:
    try:
        return record_review(ctx, transcript_id, verdict=body.verdict, note=body.note, reviewer=body.reviewer)
    except LookupError as exc:
        raise HTTPException(404, detail=f"transcript_id: {exc.args[0]}") from None
