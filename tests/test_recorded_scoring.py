"""Scoring a recorded incident: service level (blamed service, dependency refs, fixes on the culprit service),
suspect level as drills, and AC@k / Avg@5."""

from __future__ import annotations

from typing import Any

import pytest

from firebreak.simulations.recorded.model import RecordedTruth
from firebreak.simulations.scorer import SuspectIn, ac_at, avg_at, score_recorded


def truth(**extra: Any) -> RecordedTruth:
    return RecordedTruth.model_validate({"level": "service", "fault": "cpu",
                                         "culprit": {"kind": "resource", "service": "catalogue", "ref": "cpu"},
                                         **extra})


def s(kind: str, ref: str, service: str | None = None) -> SuspectIn:
    return SuspectIn(kind=kind, ref=ref, service=service)


def test_service_level_counts_the_blamed_service_whatever_the_kind() -> None:
    t = truth()
    # a memory suspect on the culprit service matches at the service level (not at the suspect level)
    res = score_recorded([s("resource", "memory", "front-end"), s("resource", "memory", "Catalogue")], None, None, t)
    assert (res.rank, res.hit_at_1, res.hit_at_3) == (2, False, True)
    # a dependency suspect blames its ref
    assert score_recorded([s("dependency", "catalogue", "front-end")], None, None, t).rank == 1
    assert score_recorded([s("dependency", "front-end", "catalogue")], None, None, t).rank is None
    # hypotheses are counted as given: the fourth is outside hit@3
    hyps = [s("resource", "cpu", x) for x in ("a", "a", "b", "catalogue")]
    res = score_recorded(hyps, None, None, t)
    assert res.rank == 4 and not res.hit_at_3
    assert score_recorded([s("deploy", "1.0")], None, None, t).rank is None  # names no service
    assert res.severity_ok is None


def test_service_level_also_accept() -> None:
    t = truth(also_accept=[{"kind": "dependency", "ref": "catalogue-db"}])
    assert score_recorded([s("resource", "cpu", "catalogue-db")], None, None, t).rank == 1


def test_service_level_fixes() -> None:
    t = truth(mitigations=[{"action": "failover", "service": "catalogue-db"}])
    assert score_recorded([], {"action": "scale", "service": "catalogue"}, None, t).mitigation_ok
    assert score_recorded([], {"action": "restart", "service": "CATALOGUE"}, None, t).mitigation_ok
    assert score_recorded([], {"action": "failover", "service": "catalogue-db"}, None, t).mitigation_ok  # listed
    assert not score_recorded([], {"action": "restart", "service": "front-end"}, None, t).mitigation_ok
    assert not score_recorded([], {"action": "disable_flag", "flag": "catalogue"}, None, t).mitigation_ok
    assert not score_recorded([], None, None, t).mitigation_ok


def test_suspect_level_is_scored_as_drills() -> None:
    t = RecordedTruth.model_validate({
        "level": "suspect", "fault": "bad-deploy", "severity": "major",
        "culprit": {"kind": "deploy", "service": "api", "ref": "5.1.0"},
        "mitigations": [{"action": "rollback", "service": "api", "to": "5.0.4"}]})
    res = score_recorded([s("resource", "cpu", "api"), s("deploy", "5.1.0", "api")],
                         {"action": "restart", "service": "api"}, "major", t)
    assert (res.rank, res.mitigation_ok, res.severity_ok) == (2, False, True)  # acting on api is not enough here
    assert score_recorded([], {"action": "rollback", "service": "api", "to": "5.0.4"}, None, t).mitigation_ok
    # with no mitigations listed, a fix acting on the culprit's service is right
    bare = RecordedTruth.model_validate({"level": "suspect", "fault": "x",
                                         "culprit": {"kind": "deploy", "service": "api", "ref": "5.1.0"}})
    assert score_recorded([], {"action": "rollback", "service": "api"}, None, bare).mitigation_ok


@pytest.mark.parametrize(("ranks", "k", "expected"), [
    ([1, 2, None, 4], 1, 0.25), ([1, 2, None, 4], 3, 0.5), ([1, 2, None, 4], 5, 0.75), ([], 1, 0.0),
])
def test_ac_at_k(ranks: list[int | None], k: int, expected: float) -> None:
    assert ac_at(ranks, k) == expected


def test_avg_at_5_is_the_mean_of_ac_1_to_5() -> None:
    assert avg_at([1]) == 1.0
    assert avg_at([3]) == pytest.approx(0.6)  # AC@1..5 = 0, 0, 1, 1, 1
    assert avg_at([None, 2]) == pytest.approx(0.4)
    assert avg_at([6]) == 0.0
