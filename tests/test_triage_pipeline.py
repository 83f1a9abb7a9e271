"""The triage stages end to end: suspect modules found by name, the stored ranking model, hypotheses
ordered by their shown confidence, and an honest report when nothing can be seen."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from firebreak.agent.triage import features, ranking, suspects
from firebreak.agent.triage.context import Context
from firebreak.agent.triage.observe import Findings
from firebreak.agent.triage.pipeline import blind_spots, build_report, rank_suspects, table
from tests.triage_worlds import T0, pool_world, signals_world

TRIAGE = Path(__file__).resolve().parent.parent / "agent" / "triage"


def test_one_module_per_suspect_kind_each_saying_what_it_reads() -> None:
    found = suspects.sources()
    assert set(found) == {
        "deploy",
        "config",
        "flag",
        "dependency",
        "resource",
        "traffic",
        "certificate",
        "data",
        "infra",
    }
    assert all(src.reads for src in found.values())


def test_no_triage_module_is_over_500_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in TRIAGE.rglob("*.py")}
    assert max(sizes.values()) <= 500, sizes


def test_the_stored_model_is_versioned_and_names_only_known_features() -> None:
    data = json.loads(ranking.WEIGHTS_PATH.read_text())
    assert data["version"] and set(data["coef"]) <= set(features.names())
    assert ranking.load().version == data["version"]


def test_weights_naming_a_feature_the_code_lacks_are_refused(tmp_path: Path) -> None:
    data = json.loads(ranking.WEIGHTS_PATH.read_text())
    data["coef"]["no_such_feature"] = 1.0
    bad = tmp_path / "w.json"
    bad.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no_such_feature"):
        ranking.load(bad)


def test_ranking_is_deterministic_and_best_first() -> None:
    _, a = rank_suspects(pool_world())
    _, b = rank_suspects(pool_world())
    assert [c.key() for c in a] == [c.key() for c in b]
    assert [c.score for c in a] == sorted((c.score for c in a), reverse=True)


def test_hypotheses_are_ordered_by_their_shown_confidence_and_explained() -> None:
    for world in (pool_world(), signals_world()):
        report = build_report(world, update_minutes=30)
        confs = [h.confidence for h in report.hypotheses]
        assert confs == sorted(confs, reverse=True) and len(confs) <= 5
        for h in report.hypotheses:
            assert h.evidence[0].tool == "rank_suspects" and "weighed most" in h.evidence[0].finding


def test_a_world_with_nothing_to_see_says_no_cause_identified_yet_and_why() -> None:
    f = Findings(now=T0 + timedelta(minutes=30))
    f.incident = {"id": "INC-9", "title": "checkout alert", "alerts": [{"service": "checkout", "title": "Errors"}]}
    report = build_report(f, update_minutes=30)
    assert "no cause identified yet" in report.summary
    assert report.proposed_fix is None
    notes = " ".join(report.notes)
    assert "no telemetry" in notes and "no changes" in notes and "empty dependency graph" in notes


def test_blind_spots_name_only_what_is_missing() -> None:
    ctx = Context(pool_world())
    assert blind_spots(ctx) == []


def test_the_evidence_table_for_the_llm_path() -> None:
    ctx, ranked = rank_suspects(pool_world())
    rows = table(ctx, ranked, limit=3)
    assert len(rows) == 3
    assert rows[0]["suspect"] == ranked[0].suspect.model_dump()
    assert 0 < rows[0]["probability"] <= 1 and rows[0]["features"]
    json.dumps(rows)  # plain JSON for a model
