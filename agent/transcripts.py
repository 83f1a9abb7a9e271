"""Reading stored agent runs: summaries, one full transcript, reviews, and the evaluation export.

An `Investigation` row is the transcript (messages, tool calls with timings, usage, model, report);
the approval outcome is read from the `Approval` rows of the same run. Reviewed runs export as an
evaluation dataset (JSONL, one run per line): the incident's evidence as the agent saw it, the
report, and the reviewer's verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field
from sqlalchemy import select

from firebreak.context import ToolContext
from firebreak.state.approvals import Approval
from firebreak.state.investigations import Investigation
from firebreak.statuses import ALTERNATIVE_STATUSES

T = TypeVar("T")


class TranscriptError(ValueError):
    """Bad input (unknown id, bad verdict), naming the field."""


class TranscriptNotFound(TranscriptError, LookupError):
    """No run with that id (a LookupError too, so HTTP callers can answer 404)."""

    def __init__(self, investigation_id: str) -> None:
        super().__init__(f"id: no transcript {investigation_id}")
        self.investigation_id = investigation_id


class ApprovalOutcome(BaseModel):
    id: str
    action: str
    parameters: dict[str, Any]
    status: str
    decided_by: str | None = None
    decision: str | None = None
    decided_at: datetime | None = None
    executed_at: datetime | None = None
    result: str | None = None


class RunFields(BaseModel):
    """What every view of an agent run starts with (the CLI here and the HTTP API in server/)."""

    id: str
    incident_id: str
    status: str
    model: str
    fallback: bool
    queued_at: datetime
    finished_at: datetime | None = None
    wall_seconds: float | None = None

    @staticmethod
    def fields_of(inv: Investigation) -> dict[str, Any]:
        """The run fields of an `Investigation` row, as keyword arguments for a subclass."""
        return {
            "id": inv.id,
            "incident_id": inv.incident_id,
            "status": inv.status,
            "model": inv.model,
            "fallback": bool(inv.fallback),
            "queued_at": inv.queued_at,
            "finished_at": inv.finished_at,
            "wall_seconds": inv.wall_seconds,
        }


class TranscriptSummary(RunFields):
    tool_calls: int = 0
    top_suspect: str | None = None
    proposed_fix: str | None = None
    review_verdict: str | None = None


class ToolCallRecord(BaseModel):
    id: str | None = None
    name: str
    args: Any = None
    result: Any = None
    duration_ms: float | None = None
    error: str | None = None
    phase: str | None = None


class Transcript(TranscriptSummary):
    fallback_reason: str | None = None
    started_at: datetime | None = None
    error: str | None = None
    usage: dict[str, Any] = Field(default_factory=dict)
    report: dict[str, Any] | None = None
    calls: list[ToolCallRecord] = Field(default_factory=list)
    messages: list[Any] = Field(default_factory=list)
    approvals: list[ApprovalOutcome] = Field(default_factory=list)
    review_note: str | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None


def _summary(inv: Investigation) -> TranscriptSummary:
    report = inv.report or {}
    hyps = report.get("hypotheses") or []
    top = hyps[0].get("suspect") if hyps and isinstance(hyps[0], dict) else None
    fix = report.get("proposed_fix")
    fix_text = None
    if isinstance(fix, dict):
        params = ", ".join(f"{k}={v}" for k, v in (fix.get("parameters") or {}).items())
        fix_text = f"{fix.get('action')}({params})"
    return TranscriptSummary(
        **RunFields.fields_of(inv),
        tool_calls=len(inv.tool_calls or []),
        top_suspect=f"{top.get('kind')}:{top.get('ref')}" + (f" ({top.get('service')})" if top.get("service") else "")
        if isinstance(top, dict)
        else None,
        proposed_fix=fix_text,
        review_verdict=inv.review_verdict,
    )


def list_transcripts(
    ctx: ToolContext, *, incident_id: str | None = None, status: str | None = None, limit: int = 50
) -> list[TranscriptSummary]:
    """Newest first."""
    if limit < 1:
        raise TranscriptError("limit: must be at least 1")
    with ctx.db.session() as s:
        q = select(Investigation)
        if incident_id:
            q = q.where(Investigation.incident_id == incident_id)
        if status:
            q = q.where(Investigation.status == status)
        rows = s.scalars(q.order_by(Investigation.queued_at.desc(), Investigation.id.desc()).limit(limit)).all()
        return [_summary(r) for r in rows]


def get_transcript(ctx: ToolContext, investigation_id: str) -> Transcript:
    if investigation_id.startswith("drill-"):  # a kept drill run (simulations/kept.py)
        return _kept_drill_transcript(ctx, investigation_id)
    with ctx.db.session() as s:
        inv = s.get(Investigation, investigation_id)
        if inv is None:
            raise TranscriptNotFound(investigation_id)
        apprs = s.scalars(
            select(Approval)  # the request rows: an alternative a person picked is copied onto its request
            .where(Approval.investigation_id == investigation_id, Approval.status.not_in(ALTERNATIVE_STATUSES))
            .order_by(Approval.requested_at, Approval.id)
        ).all()
        base = _summary(inv).model_dump()
        return Transcript(
            **base,
            fallback_reason=inv.fallback_reason,
            started_at=inv.started_at,
            error=inv.error,
            usage=dict(inv.usage or {}),
            report=inv.report,
            calls=[
                ToolCallRecord.model_validate(c) for c in inv.tool_calls or [] if isinstance(c, dict) and c.get("name")
            ],
            messages=list(inv.messages or []),
            approvals=[
                ApprovalOutcome(
                    id=a.id,
                    action=a.action,
                    parameters=dict(a.parameters or {}),
                    status=a.status,
                    decided_by=a.decided_by,
                    decision=a.decision,
                    decided_at=a.decided_at,
                    executed_at=a.executed_at,
                    result=a.result,
                )
                for a in apprs
            ],
            review_note=inv.review_note,
            reviewed_by=inv.reviewed_by,
            reviewed_at=inv.reviewed_at,
        )


def _kept_drill_transcript(ctx: ToolContext, run_id: str) -> Transcript:
    """The transcript a drill run kept when its world was removed (simulations/kept.py), under the
    drill run's id. Read here from the `DrillRun` row: agent code does not import simulations."""
    from firebreak.state.drills import DrillRun

    with ctx.db.session() as s:
        row = s.get(DrillRun, run_id)
        result = dict(row.result or {}) if row is not None else {}
    if row is None:
        raise TranscriptNotFound(run_id)
    data = result.get("transcript")
    if not isinstance(data, dict):
        raise TranscriptNotFound(run_id)
    return Transcript.model_validate({**data, "id": run_id})


def review_transcript(
    ctx: ToolContext, investigation_id: str, *, verdict: Literal["right", "wrong"], reviewer: str, note: str = ""
) -> Transcript:
    """A person's judgement of the run; reviewed runs become evaluation examples."""
    _check_verdict(verdict)
    if not reviewer.strip():
        raise TranscriptError("reviewer: must not be empty")
    store_review(ctx, investigation_id, verdict=verdict, note=note, reviewer=reviewer, read=lambda inv: None)
    return get_transcript(ctx, investigation_id)


def _check_verdict(verdict: str) -> None:
    if verdict not in ("right", "wrong"):
        raise TranscriptError(f"verdict: must be right or wrong, not {verdict!r}")


def store_review(
    ctx: ToolContext,
    investigation_id: str,
    *,
    verdict: str,
    note: str,
    reviewer: str,
    read: Callable[[Investigation], T],
) -> T:
    """Record a verdict on a run (a later review replaces an earlier one: last word wins).

    `read` turns the updated row into what the caller returns, inside the same session.
    """
    _check_verdict(verdict)
    with ctx.db.session() as s:
        inv = s.get(Investigation, investigation_id)
        if inv is None:
            raise TranscriptNotFound(investigation_id)
        inv.review_verdict = verdict
        inv.review_note = note
        inv.reviewed_by = reviewer
        inv.reviewed_at = ctx.clock.now()
        return read(inv)


def export_reviewed(ctx: ToolContext) -> Iterator[dict[str, Any]]:
    """One evaluation example per reviewed run: inputs (tool results), output (report), label (verdict)."""
    with ctx.db.session() as s:
        ids = list(
            s.scalars(
                select(Investigation.id)
                .where(Investigation.review_verdict.is_not(None))
                .order_by(Investigation.queued_at, Investigation.id)
            ).all()
        )
    for inv_id in ids:
        t = get_transcript(ctx, inv_id)
        yield {
            "id": t.id,
            "incident_id": t.incident_id,
            "model": t.model,
            "fallback": t.fallback,
            "tool_calls": [c.model_dump(mode="json") for c in t.calls],
            "report": t.report,
            "approvals": [a.model_dump(mode="json") for a in t.approvals],
            "label": {
                "verdict": t.review_verdict,
                "note": t.review_note,
                "reviewed_by": t.reviewed_by,
                "reviewed_at": t.reviewed_at.isoformat() if t.reviewed_at else None,
            },
        }
