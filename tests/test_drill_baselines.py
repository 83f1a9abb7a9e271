"""The two naive baselines: what they blame, from the stores only, scored by the drills' own scorer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from firebreak.context import ToolContext
from firebreak.simulations.baselines import aggregate_baselines, alerting_service, most_recent_change, run_baselines
from firebreak.simulations.runner import run_drill
from firebreak.simulations.scenario import Truth
from firebreak.simulations.scorer import SuspectIn, score
from firebreak.tools.changes import ChangeIn, record_change

TINY = Path(__file__).resolve().parent / "drill_data" / "tiny.yaml"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _change(ctx: ToolContext, minutes: int, **fields: object) -> None:
    with ctx.db.session() as s:
        record_change(s, ChangeIn.model_validate({**fields, "at": T0 + timedelta(minutes=minutes)}), source="test")


def _alert(ctx: ToolContext, minutes: int, service: str, title: str, summary: str = "", received: int | None = None,
           labels: dict[str, str] | None = None) -> None:
    from firebreak.state.alerts import Alert

    at = T0 + timedelta(minutes=minutes)
    got = T0 + timedelta(minutes=received if received is not None else minutes)
    with ctx.db.session() as s:
        s.add(Alert(source="alertmanager", fingerprint=f"{service}-{minutes}", status="firing", service=service,
                    severity="warning", title=title, summary=summary, started_at=at, labels=labels or {},
                    received_at=got, last_received_at=got))


def test_most_recent_change_blames_newest_first_and_undoes_it(ctx: ToolContext) -> None:
    _change(ctx, 1, kind="config", service="api", key="db.pool_size", **{"from": 50, "to": 5})
    _change(ctx, 3, kind="deploy", service="api", version="2.0.0", previous_version="1.9.0")
    _change(ctx, 30, kind="deploy", service="web", version="9.0.0")  # after triage: not seen
    guess = most_recent_change(ctx, T0 + timedelta(minutes=10))
    assert [(s.kind, s.service, s.ref) for s in guess.suspects] == [("deploy", "api", "2.0.0"),
                                                                     ("config", "api", "db.pool_size")]
    assert guess.fix == {"action": "rollback", "service": "api", "to": "1.9.0"}

    guess = most_recent_change(ctx, T0 + timedelta(minutes=2))
    assert guess.fix == {"action": "revert_config", "service": "api", "key": "db.pool_size"}
    assert most_recent_change(ctx, T0).suspects == [] and most_recent_change(ctx, T0).fix is None


def test_most_recent_change_flag_and_infra(ctx: ToolContext) -> None:
    _change(ctx, 1, kind="flag", flag="new-checkout", variant="on")
    assert most_recent_change(ctx, T0 + timedelta(minutes=5)).fix == {"action": "disable_flag", "flag": "new-checkout"}
    _change(ctx, 2, kind="flag", flag="fallback", state="DISABLED")
    assert most_recent_change(ctx, T0 + timedelta(minutes=5)).fix == {"action": "enable_flag", "flag": "fallback"}
    _change(ctx, 3, kind="infra", service="db", note="failover to replica db-2")
    guess = most_recent_change(ctx, T0 + timedelta(minutes=5))
    assert guess.suspects[0] == SuspectIn(kind="infra", service="db", ref="failover to replica db-2")
    assert guess.fix is None  # no generic undo for an infra change


def test_alerting_service_guesses_a_resource_named_in_the_alert(ctx: ToolContext) -> None:
    _alert(ctx, 5, "mailer", "MailerMemoryHigh", "Mailer memory above 90% of its limit")
    _alert(ctx, 6, "api", "ApiErrors", "5xx above 5%")
    _alert(ctx, 7, "mailer", "MailerSlow")  # a service already blamed is not repeated
    _alert(ctx, 4, "late", "LateAlert", received=20)  # received after triage: not seen
    guess = alerting_service(ctx, T0 + timedelta(minutes=10))
    assert [(s.kind, s.service, s.ref) for s in guess.suspects] == [("resource", "mailer", "memory"),
                                                                     ("dependency", None, "api")]
    assert guess.fix == {"action": "restart", "service": "mailer"}
    assert alerting_service(ctx, T0).suspects == []


def test_run_baselines_scores_with_the_given_scorer(ctx: ToolContext) -> None:
    _change(ctx, 3, kind="deploy", service="api", version="2.0.0", previous_version="1.9.0")
    _alert(ctx, 5, "web", "WebDown")
    truth = Truth.model_validate({"culprit": {"kind": "deploy", "service": "api", "ref": "2.0.0"}, "root_cause": "x",
                                  "mitigations": [{"action": "rollback", "service": "api", "to": "1.9.0"}]})
    out = run_baselines(ctx, T0 + timedelta(minutes=10), lambda sus, fix: score(sus, fix, None, truth))
    assert out == {"most_recent_change": {"rank": 1, "hit_at_1": True, "hit_at_3": True, "mitigation_ok": True},
                   "alerting_service": {"rank": None, "hit_at_1": False, "hit_at_3": False, "mitigation_ok": False}}


def test_aggregate_baselines_ratios_and_ac_for_recorded() -> None:
    hit: dict[str, Any] = {"rank": 1, "hit_at_1": True, "hit_at_3": True, "mitigation_ok": False}
    third: dict[str, Any] = {"rank": 3, "hit_at_1": False, "hit_at_3": True, "mitigation_ok": True}
    miss: dict[str, Any] = {"rank": None, "hit_at_1": False, "hit_at_3": False, "mitigation_ok": False}
    rows = [{"most_recent_change": hit, "alerting_service": miss}, {"most_recent_change": third,
                                                                     "alerting_service": miss}]
    agg = aggregate_baselines(rows, [False, True])
    assert agg["most_recent_change"] == {"hit_at_1": 0.5, "hit_at_3": 1.0, "mitigation_ok": 0.5,
                                         "ac_at_1": 0.0, "ac_at_3": 1.0, "avg_at_5": 0.6}
    assert agg["alerting_service"]["hit_at_3"] == 0.0
    assert "ac_at_1" not in aggregate_baselines(rows, [False, False])["most_recent_change"]


def test_baselines_on_a_whole_drill(settings: object) -> None:
    # tiny.yaml: the worker deploy at 5m is the culprit; a flag flip at 7m is the newest change before
    # triage (10m); the first alert is about the worker's throughput and names no resource.
    base = run_drill(TINY).details["baselines"]
    assert base["most_recent_change"] == {"rank": 2, "hit_at_1": False, "hit_at_3": True, "mitigation_ok": False}
    assert base["alerting_service"] == {"rank": None, "hit_at_1": False, "hit_at_3": False, "mitigation_ok": False}
