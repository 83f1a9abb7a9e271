"""Drills as a regression gate: each library scenario must rank its culprit no worse than recorded in
simulations/expectations.json and keep a right fix right. Record on purpose with
`scripts/update_drill_gate.py`. The runs are slow (`-m slow`, run by .ci/run); the bookkeeping
checks below them are fast and run with the default suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from firebreak.settings import Settings
from firebreak.simulations.gate import (
    EXPECTATIONS,
    ROOT,
    Expectation,
    Expectations,
    gate_files,
    load_expectations,
    regressions,
)

# A missing file fails the bookkeeping test below with the command to run, not the collection.
EXPECTED = load_expectations() if EXPECTATIONS.exists() else Expectations(investigator="none")
FILES = gate_files()


def test_every_gate_scenario_has_a_recorded_expectation_and_none_is_stale() -> None:
    missing = sorted(set(FILES) - set(EXPECTED.scenarios))
    stale = sorted(set(EXPECTED.scenarios) - set(FILES))
    assert not missing, f"no expectation for {missing}: run scripts/update_drill_gate.py"
    assert not stale, f"expectations for scenarios that no longer exist: {stale}"


def test_the_gate_covers_the_library_and_the_example_scenarios() -> None:
    assert any(f.startswith("simulations/scenarios/") for f in FILES)
    assert "tests/fixtures/scenarios/mailer-retry-loop.yaml" in FILES


@pytest.mark.parametrize(
    ("recorded", "rank", "fix_ok", "worse"),
    [
        (Expectation(rank=1, mitigation_ok=True), 1, True, False),
        (Expectation(rank=2, mitigation_ok=False), 1, True, False),  # better passes
        (Expectation(rank=1, mitigation_ok=True), 2, True, True),  # rank lost a place
        (Expectation(rank=3, mitigation_ok=False), None, False, True),  # culprit lost entirely
        (Expectation(rank=1, mitigation_ok=True), 1, False, True),  # right fix turned wrong
        (Expectation(rank=None, mitigation_ok=False), None, False, False),  # a recorded miss stays allowed
    ],
)
def test_regressions_are_worse_rank_or_a_lost_fix(
    recorded: Expectation, rank: int | None, fix_ok: bool, worse: bool
) -> None:
    assert bool(regressions(recorded, rank, fix_ok)) is worse


@pytest.mark.slow
@pytest.mark.parametrize("rel", FILES)
def test_drill_is_no_worse_than_recorded(rel: str, settings: Settings) -> None:
    from firebreak.simulations.runner import preload, run_drill

    preload()  # imports once per process; later calls are cheap
    expected = EXPECTED.scenarios.get(rel)
    assert expected is not None, f"{rel}: no recorded expectation (scripts/update_drill_gate.py)"
    result = run_drill(Path(ROOT / rel))
    problems = regressions(expected, result.rank, bool(result.mitigation_ok))
    top = [f"{h.suspect.get('kind')}:{h.suspect.get('ref')}" for h in result.hypotheses[:3]]
    assert not problems, f"{rel}: {'; '.join(problems)} (top suspects {top}, fix {result.proposed_fix})"
