"""Scoring rules from the spec: kind and ref (case-insensitive), services where both name one, fixes."""

from __future__ import annotations

from firebreak.simulations.scenario import Truth
from firebreak.simulations.scorer import SuspectIn, fix_matches, score

TRUTH = Truth.model_validate({
    "culprit": {"kind": "deploy", "service": "mailer", "ref": "4.6.2"},
    "also_accept": [{"kind": "flag", "ref": "mailer-retry-v2"}],
    "root_cause": "x",
    "severity": "major",
    "mitigations": [{"action": "rollback", "service": "mailer", "to": "4.6.1"},
                    {"action": "disable_flag", "flag": "mailer-retry-v2"}, {"action": "scale", "service": "api"}],
})


def s(kind: str, ref: str, service: str | None = None) -> SuspectIn:
    return SuspectIn(kind=kind, ref=ref, service=service)


def test_rank_and_hits() -> None:
    res = score([s("resource", "memory", "mailer"), s("deploy", "4.6.2", "mailer")], None, "major", TRUTH)
    assert (res.rank, res.hit_at_1, res.hit_at_3, res.severity_ok) == (2, False, True, True)
    res = score([s("deploy", "4.6.2")], None, None, TRUTH)  # no service named: not compared
    assert res.rank == 1 and res.severity_ok is False
    res = score([s("x", "1"), s("x", "2"), s("x", "3"), s("deploy", "4.6.2", "mailer")], None, "minor", TRUTH)
    assert res.rank == 4 and not res.hit_at_3


def test_matching_rules() -> None:
    assert score([s("Deploy", " 4.6.2 ", "MAILER")], None, None, TRUTH).rank == 1
    assert score([s("deploy", "4.6.2", "api")], None, None, TRUTH).rank is None  # other service
    assert score([s("deploy", "4.6.20", "mailer")], None, None, TRUTH).rank is None  # versions are strings
    assert score([s("resource", "memory", "mailer")], None, None, TRUTH).rank is None  # a symptom
    assert score([s("flag", "MAILER-RETRY-V2")], None, None, TRUTH).rank == 1  # also_accept


def test_fixes() -> None:
    m = TRUTH.mitigations
    assert fix_matches({"action": "rollback", "service": "mailer", "to": "4.6.1"}, m)
    assert not fix_matches({"action": "rollback", "service": "mailer", "to": "4.6.0"}, m)
    assert not fix_matches({"action": "rollback", "service": "mailer"}, m)
    assert fix_matches({"action": "disable_flag", "flag": "mailer-retry-v2"}, m)
    assert fix_matches({"action": "scale", "service": "api", "replicas": 4}, m)  # extra field: listed ones match
    assert not fix_matches({"action": "restart", "service": "mailer"}, m)
    assert not fix_matches(None, m) and not fix_matches({}, m)
    res = score([], {"action": "rollback", "service": "mailer", "to": "4.6.1"}, None, TRUTH)
    assert res.mitigation_ok and res.rank is None
