"""The debrief of a practice drill: the trainee's and the investigator's answers scored against the
truth, and how it is printed side by side (a fix is read whole, never cut).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from firebreak.simulations.scorer import Score, SuspectIn


class Side(Score):
    """One column of the debrief: the trainee's or the investigator's answer and its score (the
    scorer's own `Score` fields, not a copy of them)."""

    suspects: list[SuspectIn] = Field(default_factory=list)
    fix: dict[str, Any] | None = None
    severity: str | None = None


class Debrief(BaseModel):
    run_id: str
    scenario: str
    title: str
    person: str
    summary: str
    truth: dict[str, Any]
    trainee: Side
    investigator: Side | None = None
    answer_seconds: float | None = None
    simulated_minutes: float | None = None
    note: str = ""


def _fmt_suspect(s: SuspectIn | None) -> str:
    if s is None:
        return "–"
    return f"{s.kind}: {s.ref}" + (f" ({s.service})" if s.service else "")


def _fmt_fix(fix: dict[str, Any] | None) -> str:
    if not fix:
        return "–"
    return fix.get("action", "?") + "(" + ", ".join(f"{k}={v}" for k, v in fix.items() if k != "action") + ")"


def _mark(ok: bool | None) -> str:
    return "–" if ok is None else ("right" if ok else "wrong")


def print_debrief(d: Debrief, console: Console) -> None:
    """Score and debrief: the trainee, the investigator and the truth side by side."""
    console.print(f"\n[bold]Debrief: {d.title}[/bold] ({d.scenario}), {d.person}", highlight=False)
    if d.answer_seconds is not None:
        console.print(f"answered after {d.answer_seconds:.0f} s ({d.simulated_minutes} simulated minutes)",
                      highlight=False)
    table = Table(show_lines=True)
    table.add_column("")
    for header in ("You", "Investigator", "Truth"):
        table.add_column(header, overflow="fold")  # a fix is read whole, never cut with an ellipsis
    inv = d.investigator
    truth_culprit = d.truth["culprit"]
    table.add_row(
        "Top suspect", _fmt_suspect(d.trainee.suspects[0] if d.trainee.suspects else None),
        _fmt_suspect(inv.suspects[0] if inv and inv.suspects else None),
        _fmt_suspect(SuspectIn(**truth_culprit)))
    table.add_row("Rank of the culprit", str(d.trainee.rank or "–"), str(inv.rank or "–") if inv else "n/a", "1")
    table.add_row("Fix", f"{_fmt_fix(d.trainee.fix)}\n{_mark(d.trainee.mitigation_ok)}",
                  f"{_fmt_fix(inv.fix)}\n{_mark(inv.mitigation_ok)}" if inv else "n/a",
                  "\n".join(_fmt_fix(m) for m in d.truth["mitigations"]))
    table.add_row("Severity", f"{d.trainee.severity or '–'} ({_mark(d.trainee.severity_ok)})",
                  f"{inv.severity or '–'} ({_mark(inv.severity_ok)})" if inv else "n/a", str(d.truth.get("severity")))
    console.print(table)
    score_line = (f"Your score: hit@1 {'yes' if d.trainee.hit_at_1 else 'no'}, hit@3 "
                  f"{'yes' if d.trainee.hit_at_3 else 'no'}, fix {_mark(d.trainee.mitigation_ok)}")
    console.print(score_line, highlight=False)
    console.print(f"\n[bold]Root cause[/bold]: {d.truth['root_cause']}", highlight=False)
    if d.summary:
        console.print(f"[bold]What happened[/bold]: {d.summary}", highlight=False)
