"""The drill gate: every library scenario's recorded rank and fix, and the check a new run must pass.

The investigator is measured on the drill library; without a gate, a ranking change that loses a
scenario passes CI silently. `simulations/expectations.json` records, per scenario file, the rank of
the culprit and whether the proposed fix was right; `tests/test_drill_gate.py` fails when a run is
worse (rank lower or lost, a right fix turned wrong). Improvements pass, and are recorded on purpose
with `scripts/update_drill_gate.py`, so the file only ever moves when someone decides it should.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

ROOT = Path(__file__).resolve().parent.parent
GATE_DIRS = ("simulations/scenarios", "tests/fixtures/scenarios")
EXPECTATIONS = ROOT / "simulations" / "expectations.json"


class Expectation(BaseModel):
    """What the investigator achieved on one scenario when the expectations were last recorded."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank: int | None = Field(default=None, ge=1)  # 1-based rank of the culprit, None when it was missed
    mitigation_ok: bool


class Expectations(BaseModel):
    model_config = ConfigDict(extra="forbid")

    investigator: str = Field(description="which investigator the figures come from (offline, openai:...)")
    recorded_at: str = ""
    scenarios: dict[str, Expectation] = Field(default_factory=dict)  # repo-relative path -> expectation


def gate_files(root: Path = ROOT) -> list[str]:
    """Repo-relative paths of every scenario the gate covers, in a stable order."""
    files = []
    for d in GATE_DIRS:
        files += [p.relative_to(root).as_posix() for p in sorted((root / d).glob("*.yaml"))]
    return files


def load_expectations(path: Path = EXPECTATIONS) -> Expectations:
    """Read the recorded expectations; a missing or malformed file is an error that names it."""
    try:
        return Expectations.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read ({exc.strerror or exc}); run scripts/update_drill_gate.py") from None


def save_expectations(exp: Expectations, path: Path = EXPECTATIONS) -> None:
    data = exp.model_dump(mode="json")
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")


def regressions(expected: Expectation, rank: int | None, mitigation_ok: bool) -> list[str]:
    """Why a run is worse than recorded (empty when it is as good or better)."""
    problems = []
    if expected.rank is not None and (rank is None or rank > expected.rank):
        problems.append(f"culprit rank {rank if rank is not None else 'lost'}, recorded {expected.rank}")
    if expected.mitigation_ok and not mitigation_ok:
        problems.append("proposed fix is wrong, recorded right")
    return problems
