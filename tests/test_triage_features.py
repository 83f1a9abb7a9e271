"""Every named feature, computed from canned tool outputs: each is checked on a suspect where it must
fire and on one where it must not (a feature that cannot tell the two apart fails here)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from firebreak.agent.triage import features
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.pipeline import rank_suspects
from tests.triage_worlds import pool_world, signals_world

Key = tuple[str, str]  # (kind, ref)


@pytest.fixture(scope="module")
def pool() -> dict[Key, Candidate]:
    _, ranked = rank_suspects(pool_world())
    return {(c.suspect.kind, c.suspect.ref): c for c in ranked}


@pytest.fixture(scope="module")
def signals() -> dict[Key, Candidate]:
    _, ranked = rank_suspects(signals_world())
    return {(c.suspect.kind, c.suspect.ref): c for c in ranked}


# feature -> (world, suspect where it is high, suspect where it is low or zero)
HIGH_LOW: dict[str, tuple[str, Key, Key]] = {
    "kind_deploy": ("pool", ("deploy", "2.0"), ("flag", "web-dark-mode")),
    "kind_config": ("pool", ("config", "db.log_level"), ("deploy", "2.0")),
    "kind_flag": ("pool", ("flag", "web-dark-mode"), ("deploy", "2.0")),
    "kind_dependency": ("pool", ("dependency", "db"), ("deploy", "2.0")),
    "kind_resource": ("pool", ("resource", "memory"), ("deploy", "2.0")),
    "kind_traffic": ("signals", ("traffic", "bulkbot-7"), ("data", "invoices")),
    "kind_certificate": ("signals", ("certificate", "ledger.internal.example"), ("data", "invoices")),
    "kind_data": ("signals", ("data", "invoices"), ("traffic", "bulkbot-7")),
    "kind_infra": ("none", ("", ""), ("", "")),
    "change_precedes_onset": ("pool", ("deploy", "2.0"), ("config", "db.log_level")),
    "change_closeness": ("pool", ("deploy", "2.0"), ("config", "db.log_level")),
    "change_after_first_trouble": ("pool", ("config", "db.log_level"), ("deploy", "2.0")),
    "latest_change_before_onset": ("pool", ("flag", "web-dark-mode"), ("deploy", "2.0")),
    "changes_before_onset": ("signals", ("deploy", "3.1"), ("data", "invoices")),
    "signal_first": ("pool", ("resource", "memory"), ("dependency", "smsco")),
    "signal_lead": ("pool", ("resource", "memory"), ("dependency", "smsco")),
    "service_affected": ("pool", ("deploy", "2.0"), ("dependency", "db")),
    "explains_share": ("pool", ("deploy", "2.0"), ("dependency", "smsco")),
    "upstream_of_alerting": ("pool", ("deploy", "2.0"), ("dependency", "none")),
    "follows_other_failure": ("pool", ("flag", "web-dark-mode"), ("deploy", "2.0")),
    "is_alerting_service": ("pool", ("flag", "web-dark-mode"), ("deploy", "2.0")),
    "change_unlinked": ("none", ("", ""), ("", "")),
    "service_in_trouble": ("pool", ("deploy", "2.0"), ("dependency", "db")),
    "relevance_lexical": ("pool", ("deploy", "2.0"), ("deploy", "5.1")),
    "relevance_semantic": ("pool", ("deploy", "2.0"), ("deploy", "5.1")),
    "ref_named_in_errors": ("signals", ("certificate", "ledger.internal.example"), ("deploy", "3.1")),
    "sentry_release": ("pool", ("deploy", "2.0"), ("deploy", "5.1")),
    "errors_blame_elsewhere": ("pool", ("deploy", "5.1"), ("config", "db.log_level")),
    "callers_name_service": ("pool", ("deploy", "2.0"), ("deploy", "5.1")),
    "change_on_suspect_service": ("pool", ("resource", "memory"), ("dependency", "db")),
    "resource_rise": ("pool", ("resource", "memory"), ("resource", "connections")),
    "resource_ratio": ("pool", ("resource", "memory"), ("resource", "connections")),
    "resource_first_own": ("pool", ("resource", "memory"), ("resource", "connections")),
    "resource_at_limit": ("pool", ("resource", "connections"), ("resource", "memory")),
    "resource_is_earliest": ("pool", ("resource", "memory"), ("deploy", "2.0")),
    "traffic_share": ("signals", ("traffic", "bulkbot-7"), ("traffic", "web")),
    "traffic_surge": ("signals", ("traffic", "bulkbot-7"), ("data", "invoices")),
    "traffic_rate_first": ("signals", ("traffic", "bulkbot-7"), ("data", "invoices")),
    "traffic_throttled": ("signals", ("traffic", "bulkbot-7"), ("traffic", "web")),
    "data_damage": ("signals", ("data", "invoices"), ("traffic", "bulkbot-7")),
    "data_table_sure": ("signals", ("data", "invoices"), ("data", "reading")),
    "data_rows_lost": ("signals", ("data", "invoices"), ("data", "reading")),
    "data_readers_agree": ("signals", ("data", "invoices"), ("data", "reading")),
    "data_write_rejected": ("none", ("", ""), ("", "")),
    "data_writer_change": ("signals", ("data", "invoices"), ("traffic", "bulkbot-7")),
    "dependency_mention": ("pool", ("dependency", "db"), ("deploy", "2.0")),
    "dependency_named_failing": ("pool", ("dependency", "smsco"), ("deploy", "2.0")),
    "dependency_edge": ("pool", ("dependency", "db"), ("deploy", "2.0")),
    "dependency_own_affected": ("pool", ("dependency", "api"), ("dependency", "db")),
    "dependency_dep_earlier": ("pool", ("dependency", "api"), ("dependency", "smsco")),
    "dependency_caller_root": ("pool", ("dependency", "db"), ("dependency", "api")),
    "dependency_third_party": ("pool", ("dependency", "smsco"), ("dependency", "api")),
    "dependency_callers": ("pool", ("dependency", "db"), ("deploy", "2.0")),
    "change_on_caller_of_first_failure": ("pool", ("deploy", "5.1"), ("deploy", "2.0")),
    "certificate_expiry": ("signals", ("certificate", "ledger.internal.example"), ("data", "invoices")),
    "certificate_cert_lines": ("signals", ("certificate", "ledger.internal.example"), ("data", "invoices")),
    "similar_past_cause": ("pool", ("deploy", "2.0"), ("deploy", "5.1")),
    "self_time_growth": ("pool", ("deploy", "2.0"), ("deploy", "5.1")),
    "new_error_operations": ("pool", ("deploy", "2.0"), ("dependency", "smsco")),
    # The N-sigma features are checked on a metrics-only world in tests/test_triage_nsigma.py.
    "metrics_only": ("none", ("", ""), ("", "")),
    "resource_nsigma": ("none", ("", ""), ("", "")),
    "resource_nsigma_share": ("none", ("", ""), ("", "")),
    "resource_nsigma_top": ("none", ("", ""), ("", "")),
    "service_nsigma_share": ("none", ("", ""), ("", "")),
    "latency_nsigma_share": ("none", ("", ""), ("", "")),
    "callee_moved_more": ("none", ("", ""), ("", "")),
    "callers_slowed_share": ("none", ("", ""), ("", "")),
    "nsigma_moved_first": ("none", ("", ""), ("", "")),
}


def test_every_feature_is_checked_here() -> None:
    assert set(HIGH_LOW) == set(features.names())


def test_every_feature_says_what_it_measures() -> None:
    assert all(f.doc for f in features.registry().values())


@pytest.mark.parametrize("name", sorted(n for n, v in HIGH_LOW.items() if v[0] != "none"))
def test_feature_fires_on_one_suspect_and_not_the_other(
    name: str, pool: dict[Key, Candidate], signals: dict[Key, Candidate]
) -> None:
    world, high, low = HIGH_LOW[name]
    cands = pool if world == "pool" else signals
    assert cands[high].features[name] > 0.0
    low_value = cands[low].features[name] if low in cands else 0.0
    assert cands[high].features[name] > low_value


def _only(kind: str, build: Callable[[], object]) -> Candidate:
    f = build()
    ctx, ranked = rank_suspects(f)  # type: ignore[arg-type]
    return next(c for c in ranked if c.suspect.kind == kind)


def test_infra_kind_unlinked_change_and_rejected_writes() -> None:
    f = pool_world()
    f.changes.append(
        {"id": 9, "kind": "infra", "service": None, "at": "2026-03-02T07:00:00Z", "note": "rotate bastion keys"}
    )
    f.patterns.append(
        {
            "service": "api",
            "level": "ERROR",
            "template": "duplicate key value violates unique constraint in table orders",
            "example": "duplicate key value violates unique constraint in table orders",
            "count_before": 0,
            "count_after": 50,
            "new": True,
            "first_seen": "2026-03-02T08:14:00Z",
        }
    )
    ctx, ranked = rank_suspects(f)
    infra = next(c for c in ranked if c.suspect.kind == "infra")
    assert infra.features["kind_infra"] == 1.0 and infra.features["change_unlinked"] == 1.0
    api = next(c for c in ranked if c.suspect.ref == "2.0")
    assert api.features["change_unlinked"] == 0.0 and api.features["kind_infra"] == 0.0
    orders = next(c for c in ranked if c.suspect.kind == "data" and c.suspect.ref == "orders")
    assert orders.features["data_write_rejected"] == 1.0


def test_features_are_finite_and_zero_where_they_do_not_apply(pool: dict[Key, Candidate]) -> None:
    dep = pool[("dependency", "db")]
    assert dep.features["change_closeness"] == 0.0 and dep.features["resource_rise"] == 0.0
    for c in pool.values():
        assert all(0.0 <= v <= 1.0 for v in c.features.values()), c.suspect


def test_compute_sets_every_registered_feature() -> None:
    f = signals_world()
    ctx = Context(f)
    from firebreak.agent.triage import suspects

    c = suspects.generate(ctx)[0]
    assert list(features.compute(c, ctx)) == features.names()
