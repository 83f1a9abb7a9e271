"""`drill bench`: find scenario files and recorded-incident folders, run each, aggregate the scores.

The aggregate keeps every field the drill spec gives, adds the baselines (simulations/baselines.py)
per result and overall, and for recorded incidents the service-level AC@1, AC@3 and Avg@5 overall and
per `fault` label. Bad files anywhere below the folder stop the bench before any drill runs, so a
long bench never dies at its last case on a typo.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from firebreak.simulations.drill_result import DrillResult
from firebreak.simulations.recorded.model import RecordedIncident, find_incidents, load_incident
from firebreak.simulations.scenario import Scenario, ScenarioError, find_scenarios, load_scenario
from firebreak.simulations.scorer import ac_at, avg_at


@dataclass
class BenchItem:
    """One drill of a bench: a scenario file or a recorded-incident folder."""

    path: Path
    scenario: Scenario | None = None
    incident: RecordedIncident | None = None

    @property
    def id(self) -> str:
        if self.scenario is not None:
            return self.scenario.id
        assert self.incident is not None
        return self.incident.id


def collect(directory: Path) -> tuple[list[BenchItem], list[str]]:
    """Items in path order and one line per problem; a recorded folder's files are all read and checked."""
    from firebreak.simulations.recorded.readers import read_folder
    from firebreak.simulations.recorded.replay import check_changes

    folders = find_incidents(directory)
    inside = set(folders)
    items: list[BenchItem] = []
    problems: list[str] = []
    for f in find_scenarios(directory):
        if any(p in inside for p in f.parents):
            continue  # a recorded folder's own YAML files are not scenarios
        try:
            items.append(BenchItem(f, scenario=load_scenario(f)))
        except ScenarioError as exc:
            problems.append(str(exc))
        except UnicodeDecodeError as exc:
            problems.append(f"{f}: cannot read as UTF-8 text ({exc.reason} at byte {exc.start})")
    for folder in folders:
        try:
            inc = load_incident(folder)
            check_changes(read_folder(folder, inc.triage_at))  # checked now, read again when it runs
            items.append(BenchItem(folder, incident=inc))
        except ScenarioError as exc:
            problems.append(str(exc))
    items.sort(key=lambda it: str(it.path))
    return items, problems


def failed(item: BenchItem, error: str) -> DrillResult:
    """A drill the machinery could not finish: scored as a miss, the error kept in the details."""
    from firebreak.simulations.drill_result import failed_result

    if item.scenario is not None:
        return failed_result(item.scenario, error)
    assert item.incident is not None
    truth = item.incident.truth
    return DrillResult(scenario=item.incident.id, investigator="none", rank=None, hit_at_1=False, hit_at_3=False,
                       mitigation_ok=False, severity_ok=None if truth.severity is None else False,
                       alerts_delivered=0, incidents_opened=0, hypotheses=[], proposed_fix=None, tool_calls=0,
                       wall_seconds=0.0, details={"error": error, "recorded": True, "fault": truth.fault})


def run_item(item: BenchItem, warn: Callable[[str], None]) -> DrillResult:
    from firebreak.simulations.recorded.run import run_recorded
    from firebreak.simulations.runner import run_drill

    try:
        if item.scenario is not None:
            return run_drill(item.scenario)
        return run_recorded(item.path, incident=item.incident)
    except Exception as exc:
        warn(f"{item.id}: the drill could not run: {type(exc).__name__}: {exc}")
        return failed(item, f"{type(exc).__name__}: {exc}")


def _ac(ranks: list[int | None]) -> dict[str, float]:
    return {"ac_at_1": round(ac_at(ranks, 1), 3), "ac_at_3": round(ac_at(ranks, 3), 3),
            "avg_at_5": round(avg_at(ranks, 5), 3)}


def _result_json(r: DrillResult) -> dict[str, Any]:
    out = r.spec_json()
    out["baselines"] = r.details.get("baselines") or {}
    if r.details.get("recorded"):
        out["fault"] = r.details.get("fault")
    return out


def aggregate(results: list[DrillResult]) -> dict[str, Any]:
    """Ratios over all drills, every result, baselines; AC@k overall and by fault for recorded ones."""
    from firebreak.simulations.baselines import aggregate_baselines

    n = len(results)

    def ratio(key: str) -> float:
        return round(sum(1 for r in results if getattr(r, key)) / n, 3) if n else 0.0

    recorded = [bool(r.details.get("recorded")) for r in results]
    out: dict[str, Any] = {
        "scenarios": n,
        "hit_at_1": ratio("hit_at_1"),
        "hit_at_3": ratio("hit_at_3"),
        "mitigation_ok": ratio("mitigation_ok"),
        "median_wall_seconds": round(statistics.median(r.wall_seconds for r in results), 3) if n else 0.0,
    }
    rec = [r for r, is_rec in zip(results, recorded, strict=True) if is_rec]
    if rec:
        out.update(_ac([r.rank for r in rec]))
        faults: dict[str, list[DrillResult]] = {}
        for r in rec:
            faults.setdefault(str(r.details.get("fault")), []).append(r)
        out["by_fault"] = {}
        for fault, rs in sorted(faults.items()):
            base = aggregate_baselines([r.details.get("baselines") or {} for r in rs], [True] * len(rs))
            out["by_fault"][fault] = {"cases": len(rs), **_ac([r.rank for r in rs]), "baselines": base}
    out["baselines"] = aggregate_baselines([r.details.get("baselines") or {} for r in results], recorded)
    out["results"] = [_result_json(r) for r in results]
    return out


def summary_lines(agg: dict[str, Any]) -> list[str]:
    """The readable tail of a bench: AC@k of recorded incidents by fault, then each baseline beside it."""
    lines: list[str] = []
    if "ac_at_1" in agg:
        lines.append("recorded incidents (service level unless the folder says suspect):")
        lines.append(f"  {'fault':<24} {'cases':>5}  {'AC@1':>5}  {'AC@3':>5}  {'Avg@5':>5}")
        rows = [("all", sum(v["cases"] for v in agg["by_fault"].values()), agg)]
        rows += [(fault, v["cases"], v) for fault, v in agg["by_fault"].items()]
        for name, cases, v in rows:
            lines.append(f"  {name:<24} {cases:>5}  {v['ac_at_1']:>5.2f}  {v['ac_at_3']:>5.2f}  {v['avg_at_5']:>5.2f}")
    lines.append("baselines on the same drills:")
    for name, v in agg.get("baselines", {}).items():
        ac = (f"  AC@1 {v['ac_at_1']:.2f}  AC@3 {v['ac_at_3']:.2f}  Avg@5 {v['avg_at_5']:.2f}"
              if "ac_at_1" in v else "")
        lines.append(f"  {name:<20} hit@1 {v['hit_at_1']:.2f}  hit@3 {v['hit_at_3']:.2f}  "
                     f"right fix {v['mitigation_ok']:.2f}{ac}")
    return lines
