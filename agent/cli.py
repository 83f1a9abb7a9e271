"""`firebreak transcripts ...`: agent runs at a terminal (list, show, review, export, investigate)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from firebreak.agent.transcripts import (
    TranscriptError,
    export_reviewed,
    get_transcript,
    list_transcripts,
    review_transcript,
)
from firebreak.context import ToolContext, default_context

app = typer.Typer(
    help="Agent run transcripts: list, show, review, export as an evaluation dataset.", no_args_is_help=True
)
out = Console()
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _ctx() -> ToolContext:
    return default_context()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@app.command("list")
def list_cmd(
    incident: Annotated[str | None, typer.Option("--incident", help="Only runs of this incident.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="queued, running, awaiting_approval, done, failed")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Most runs shown.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Agent runs, newest first."""
    try:
        rows = list_transcripts(_ctx(), incident_id=incident, status=status, limit=limit)
    except TranscriptError as exc:
        fail(str(exc))
    from firebreak.simulations.kept import kept_transcripts

    kept = [] if incident or status else kept_transcripts(_ctx(), limit=limit)
    if as_json:
        _print_json({"transcripts": [r.model_dump(mode="json") for r in rows],
                     "kept_drills": [{"id": d.id, "scenario": d.scenario_id, "mode": d.mode,
                                      "started_at": d.started_at.isoformat(), "rank": (d.result or {}).get("rank"),
                                      "mitigation_ok": (d.result or {}).get("mitigation_ok")} for d in kept]})
        return
    if not rows and not kept:
        out.print("no agent runs yet (`firebreak demo` or `firebreak drill run FILE` makes one)", highlight=False)
        return
    # One block per run (reads at any terminal width; ids stay whole for `show`).
    for r in rows:
        wall = f"{r.wall_seconds:.2f}s" if r.wall_seconds is not None else "-"
        model = r.model + (" (fallback)" if r.fallback else "")
        out.print(f"[bold]{r.id}[/bold]  {r.incident_id}  {r.status}  {escape(model)}  {wall}  "
                  f"{r.tool_calls} tool calls  review: {r.review_verdict or '-'}", highlight=False, soft_wrap=True)
        out.print(f"    suspect: {escape(r.top_suspect or '-')}   fix: {escape(r.proposed_fix or '-')}",
                  highlight=False, soft_wrap=True)
    if kept:
        out.print("\n[bold]Kept drill runs[/bold] (their worlds are gone; the transcripts stay)", highlight=False)
    for d in kept:
        res = d.result or {}
        rank = res.get("rank")
        out.print(f"[bold]{d.id}[/bold]  {escape(d.scenario_id)}  {d.started_at:%Y-%m-%d %H:%M}  "
                  f"rank {rank if rank is not None else '-'}  "
                  f"fix {'right' if res.get('mitigation_ok') else 'wrong'}", highlight=False, soft_wrap=True)


@app.command("show")
def show(
    transcript_id: Annotated[str, typer.Argument(help="Investigation id (inv-...) or kept drill run (drill-...).")],
    as_json: JsonOpt = False,
) -> None:
    """One run: tool calls with arguments, results and timings, the report, the approval outcome."""
    try:
        t = get_transcript(_ctx(), transcript_id)
    except TranscriptError as exc:
        fail(str(exc))
    if as_json:
        _print_json(t.model_dump(mode="json"))
        return
    out.print(
        f"[bold]{t.id}[/bold] incident {t.incident_id} - {t.status} - model {t.model}"
        + (f" (fallback: {escape(t.fallback_reason or '')})" if t.fallback else ""),
        highlight=False,
    )
    out.print(
        f"wall {t.wall_seconds}s, usage {t.usage.get('requests', 0)} requests, "
        f"{t.usage.get('input_tokens', 0)}+{t.usage.get('output_tokens', 0)} tokens",
        highlight=False,
    )
    for i, c in enumerate(t.calls, 1):
        args = json.dumps(c.args, default=str)
        res = json.dumps(c.result, default=str)
        out.print(
            f"{i:>2}. {c.name}({escape(args[:200])}) {c.duration_ms or 0:.1f} ms"
            + (f" [red]{escape(c.error)}[/red]" if c.error else ""),
            highlight=False,
        )
        out.print(f"    -> {escape(res[:300])}", highlight=False)
    if t.report:
        out.print(f"\n[bold]Report[/bold]: {escape(str(t.report.get('summary', '')))}", highlight=False)
        for j, h in enumerate(t.report.get("hypotheses") or [], 1):
            s = h.get("suspect", {})
            out.print(
                f"  {j}. {escape(str(h.get('title')))} [{s.get('kind')}:{escape(str(s.get('ref')))}] "
                f"{h.get('confidence')}",
                highlight=False,
            )
    for a in t.approvals:
        out.print(
            f"approval {a.id}: {a.action} {a.parameters} -> {a.status}"
            + (f" by {a.decided_by}" if a.decided_by else "")
            + (f": {escape(a.result)}" if a.result else ""),
            highlight=False,
        )
    if t.error:
        out.print(f"[red]error:[/red] {escape(t.error)}", highlight=False)


@app.command("review")
def review(
    transcript_id: Annotated[str, typer.Argument(help="Investigation id.")],
    verdict: Annotated[str, typer.Option("--verdict", help="right | wrong")],
    by: Annotated[str, typer.Option("--by", help="Reviewer name.")],
    note: Annotated[str, typer.Option("--note")] = "",
) -> None:
    """Mark a run right or wrong; reviewed runs are exported as evaluation examples."""
    if verdict not in ("right", "wrong"):
        fail(f"verdict: must be right or wrong, not {verdict!r}")
    try:
        review_transcript(_ctx(), transcript_id, verdict=verdict, reviewer=by, note=note)  # type: ignore[arg-type]
    except TranscriptError as exc:
        fail(str(exc))
    out.print(f"{transcript_id} reviewed: {verdict}", highlight=False)


@app.command("export")
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="JSONL file (default: standard output).")
    ] = None,
) -> None:
    """Reviewed runs as an evaluation dataset, one JSON object per line."""
    lines = (json.dumps(row, default=str) + "\n" for row in export_reviewed(_ctx()))
    if output is None:
        for line in lines:
            sys.stdout.write(line)
        return
    try:
        with output.open("w", encoding="utf-8") as fh:
            n = 0
            for line in lines:
                fh.write(line)
                n += 1
    except OSError as exc:
        fail(f"output: cannot write {output} ({exc.strerror})")
    err.print(f"{n} reviewed run(s) written to {output}", highlight=False)


@app.command("investigate")
def investigate_cmd(
    incident: Annotated[str, typer.Argument(help="Incident id to investigate now.")],
    as_json: JsonOpt = False,
) -> None:
    """Queue and run one investigation now (useful after editing telemetry or memory)."""
    from firebreak.agent.investigator import InvestigationError, investigate, queue_investigation

    ctx = _ctx()
    try:
        inv_id = queue_investigation(ctx, incident)
        report = investigate(ctx, inv_id)
    except InvestigationError as exc:
        fail(str(exc))
    if as_json:
        _print_json({"investigation": inv_id, "report": report.model_dump(mode="json")})
        return
    out.print(f"{inv_id}: {escape(report.summary)}", highlight=False)
    if report.proposed_fix:
        out.print(f"proposed fix (awaiting approval): {escape(report.proposed_fix.describe())}", highlight=False)
