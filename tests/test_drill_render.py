"""Rendered alerts have the vendors' real shapes, are signed as the vendors sign, and the intake reads them."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from firebreak.server.intake.normalize import normalize_alertmanager, normalize_grafana, normalize_sentry
from firebreak.server.intake.signatures import verify_bearer, verify_grafana, verify_sentry
from firebreak.settings import Settings
from firebreak.simulations.generator import AlertNotice, build_world
from firebreak.simulations.render import Secrets, render
from firebreak.simulations.scenario import AlertEvent, load_scenario

TINY = Path(__file__).resolve().parent / "drill_data" / "tiny.yaml"
SECRETS = Secrets("sentry-secret", "grafana-secret", "hook-token")


@pytest.fixture
def intake_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, sentry_client_secret=SecretStr("sentry-secret"),
                    grafana_hmac_secret=SecretStr("grafana-secret"), webhook_token=SecretStr("hook-token"),
                    _env_file=None)  # type: ignore[call-arg]


def _notices() -> list[AlertNotice]:
    return [s.notice for s in build_world(load_scenario(TINY)).steps if s.notice]


def _headers(d: dict[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in d.items()}


def test_alertmanager_matches_the_v4_fixture_and_bearer(fixtures_dir: Path, intake_settings: Settings) -> None:
    fixture = json.loads((fixtures_dir / "alertmanager-0.25.0-webhook-firing.json").read_text())
    notice = next(n for n in _notices() if n.alert.source == "alertmanager" and n.status == "firing")
    [d] = render(notice, [], SECRETS, notice.at)
    body = json.loads(d.body)
    assert set(body) == set(fixture)
    assert set(body["alerts"][0]) == set(fixture["alerts"][0])
    assert body["version"] == "4" and body["alerts"][0]["labels"]["service"] == "worker"
    verify_bearer(intake_settings, _headers(d.headers), "Alertmanager")
    [alert] = normalize_alertmanager(d.body, intake_settings, notice.at).alerts
    assert (alert.service, alert.severity, alert.status, alert.title) == (
        "worker", "critical", "firing", "WorkerJobsStalled")


def test_alertmanager_resolved_notification(intake_settings: Settings) -> None:
    notice = next(n for n in _notices() if n.status == "resolved")
    [d] = render(notice, [], SECRETS, notice.at)
    body = json.loads(d.body)
    assert body["status"] == "resolved" and body["alerts"][0]["endsAt"] == "2026-03-02T08:25:00Z"
    assert normalize_alertmanager(d.body, intake_settings, notice.at).alerts[0].status == "resolved"


def test_grafana_matches_the_fixture_and_hmac(fixtures_dir: Path, intake_settings: Settings) -> None:
    fixture = json.loads((fixtures_dir / "grafana-webhook-firing.docs.json").read_text())
    notice = next(n for n in _notices() if n.alert.source == "grafana")
    [d] = render(notice, [], SECRETS, notice.at)
    body = json.loads(d.body)
    assert set(body) == set(fixture)
    assert set(body["alerts"][0]) == set(fixture["alerts"][0])
    headers = _headers(d.headers)
    assert "x-grafana-alerting-timestamp" in headers and "authorization" not in headers
    verify_grafana(intake_settings, headers, d.body, notice.at)  # the drill's clock, not the wall clock
    tampered = d.body.replace(b"WorkerErrors", b"WorkerErrorz")
    with pytest.raises(Exception, match="does not match"):
        verify_grafana(intake_settings, headers, tampered, notice.at)
    [alert] = normalize_grafana(d.body, intake_settings, notice.at).alerts
    assert (alert.service, alert.status, alert.title) == ("worker", "firing", "WorkerErrors")


def test_sentry_issue_then_event_alert_signed(fixtures_dir: Path, intake_settings: Settings) -> None:
    issue_fx = json.loads((fixtures_dir / "sentry-issue-created.docs.json").read_text())
    event_fx = json.loads((fixtures_dir / "sentry-event-alert-triggered.docs.json").read_text())
    notice = next(n for n in _notices() if n.alert.source == "sentry")
    issue_d, event_d = render(notice, [], SECRETS, notice.at)
    assert (issue_d.resource, event_d.resource) == ("issue", "event_alert")
    issue, event = json.loads(issue_d.body), json.loads(event_d.body)
    assert set(issue) == set(issue_fx) and set(issue_fx["data"]["issue"]) <= set(issue["data"]["issue"])
    assert set(event["data"]) == set(event_fx["data"])
    assert set(event_fx["data"]["event"]) - set(event["data"]["event"]) <= {"contexts", "grouping_config"}
    frames = event["data"]["event"]["exception"]["values"][0]["stacktrace"]["frames"]
    assert frames[-1]["function"] == "handle" and frames[-1]["module"] == "worker.loop"
    assert event["data"]["event"]["release"] == "1.1.0"
    for d in (issue_d, event_d):
        headers = _headers(d.headers)
        assert headers["sentry-hook-resource"] == d.resource
        verify_sentry(intake_settings, headers, d.body)
    a1 = normalize_sentry(issue_d.body, "issue", intake_settings, notice.at).alerts[0]
    a2 = normalize_sentry(event_d.body, "event_alert", intake_settings, notice.at).alerts[0]
    assert a1.service == a2.service == "worker"
    assert a1.title.startswith("KeyError")


def test_sentry_resolved_and_defaults() -> None:
    alert = AlertEvent(source="sentry", name="ValueError: bad", service="api")
    start = load_scenario(TINY).start
    notice = AlertNotice(start + timedelta(minutes=9), 0, alert, "resolved", start)
    [d] = render(notice, [], SECRETS, notice.at)
    body = json.loads(d.body)
    assert body["action"] == "resolved" and body["data"]["issue"]["status"] == "resolved"
    firing = AlertNotice(start, 0, alert, "firing", start)
    event = json.loads(render(firing, [], SECRETS, start)[1].body)["data"]["event"]
    assert event["exception"]["values"][0]["type"] == "ValueError"
    assert event["exception"]["values"][0]["value"] == "bad"
