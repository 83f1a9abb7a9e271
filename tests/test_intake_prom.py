"""The per-delivery Grafana/Alertmanager parser gives exactly what building each alert on its own gave.

`server/intake/prom.py` redacts and caps a whole delivery at once and validates its alerts together
(`prepared_alerts`), skipping the per-alert redaction in `NormalizedAlert`'s validator. These tests
hold it to the straightforward construction below (one `NormalizedAlert(...)` per alert, the
validator doing the caps and the redaction), on secrets, NULs, padded labels, long texts and fuzzed
payloads, and check the shortcut that skips the caps.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from firebreak.server.intake.errors import IntakeRefused
from firebreak.server.intake.fields import (
    clean,
    fingerprint_of,
    labels_fingerprint,
    link,
    real_time,
    resolve_service,
    severity_of,
)
from firebreak.server.intake.models import MAX_TEXT_CHARS, NormalizedAlert, may_hold_long_strings
from firebreak.server.intake.prom import (
    AlertmanagerPayload,
    GrafanaPayload,
    normalize_alertmanager,
    normalize_grafana,
)
from firebreak.settings import Settings
from tests.test_intake_fuzz import _prom_payload

NOW = datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
SECRETS = ("hunter2-very-secret", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345", JWT,
           "xoxb-123456789012-abcdefghijklmnop")


def reference(source: Literal["grafana", "alertmanager"], body: bytes, settings: Settings) -> list[NormalizedAlert]:
    """One NormalizedAlert built per alert, its validator capping and redacting (the former code path)."""
    raw = json.loads(body)
    model = GrafanaPayload if source == "grafana" else AlertmanagerPayload
    payload = model.model_validate(raw)
    if source == "alertmanager" and payload.version not in (None, "4"):
        raise IntakeRefused(422, "version: unsupported", "invalid_payload")
    delivery = {k: raw.get(k) for k in ("receiver", "groupKey", "externalURL", "status") if k in raw}
    out = []
    for i, a in enumerate(payload.alerts):
        status = a.status or (payload.status if payload.status in ("firing", "resolved") else None)
        if status is None:
            raise IntakeRefused(422, f"alerts.{i}.status: missing", "invalid_payload")
        labels = {clean(k, 200): clean(v) for k, v in (a.labels or {}).items() if clean(k, 200)}
        ann = a.annotations or {}
        alertname, summary = clean(labels.get("alertname")), clean(ann.get("summary"))
        title = alertname or summary or f"{source.capitalize()} alert"
        if not alertname or not summary:
            summary = clean(ann.get("description"))
        links = [*link("generator", a.generatorURL, "alert rule"),
                 *link("dashboard", getattr(a, "dashboardURL", None), "dashboard"),
                 *link("panel", getattr(a, "panelURL", None), "panel"),
                 *link("runbook", ann.get("runbook_url"), "runbook")]
        started, ended = real_time(a.startsAt) or NOW, real_time(a.endsAt)
        if status == "resolved" and ended is None:
            ended = NOW
        elif status == "firing":
            ended = None
        item = raw["alerts"][i] if isinstance(raw["alerts"][i], dict) else {}
        out.append(NormalizedAlert(
            source=source, fingerprint=fingerprint_of(clean(a.fingerprint)) or labels_fingerprint(labels),
            status=status, service=resolve_service(settings, labels),  # type: ignore[arg-type]
            severity=severity_of(labels.get("severity")),
            title=title, summary=summary, started_at=started, ended_at=ended, labels=labels, links=links,
            raw={**item, "delivery": delivery},
        ))
    return out


def fast(source: str, body: bytes, settings: Settings) -> list[NormalizedAlert]:
    parse = normalize_grafana if source == "grafana" else normalize_alertmanager
    return parse(body, settings, NOW).alerts


def _alerts(long: bool) -> list[dict[str, Any]]:
    big = "x" * (MAX_TEXT_CHARS + 500) if long else "short"
    return [
        {"status": "firing", "fingerprint": "a1", "startsAt": "2026-03-02T08:10:00+01:00",
         "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical",
                    "api_key": SECRETS[0], "instance": "db://admin:" + SECRETS[0] + "@db:5432"},
         "annotations": {"summary": f"token {SECRETS[1]} leaked", "description": big,
                         "runbook_url": f"https://wiki/run?jwt={JWT}"},
         "generatorURL": "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX",
         "dashboardURL": "", "panelURL": "https://grafana/d/1?viewPanel=2", "values": {"password": "p4ss"}},
        {"status": "resolved", "labels": {" alertname ": " Disk\x00Full ", "job": " node\x00 ", "x" * 300: "v"},
         "annotations": {"description": "only a description " + SECRETS[3]}, "endsAt": "0001-01-01T00:00:00Z"},
        {"labels": {"alertname": "A" * (1_200 if long else 10), "app": "payments"},
         "annotations": {"summary": big}, "fingerprint": "f" * 250},
    ]


@pytest.mark.parametrize("source", ["grafana", "alertmanager"])
@pytest.mark.parametrize("long", [False, True])
def test_same_alerts_as_one_by_one(source: Literal["grafana", "alertmanager"], long: bool) -> None:
    settings = Settings(_env_file=None, service_map={"payments": "billing"})  # type: ignore[call-arg]
    payload = {"receiver": f"r {SECRETS[2]}", "status": "firing", "groupKey": "{}:{}",
               "externalURL": "https://u:" + SECRETS[0] + "@am", "alerts": _alerts(long),
               **({"version": "4"} if source == "alertmanager" else {})}
    body = json.dumps(payload).encode()
    got, want = fast(source, body, settings), reference(source, body, settings)
    assert [a.model_dump() for a in got] == [a.model_dump() for a in want]
    text = json.dumps([a.model_dump(mode="json") for a in got])
    assert not any(secret in text for secret in SECRETS) and "p4ss" not in text
    assert ("more characters cut at intake" in text) is long


def test_benign_delivery_shares_the_redacted_labels() -> None:
    """Labels that cleaning leaves as sent are taken from the redacted payload, still redacted."""
    alerts = [{"status": "firing", "labels": {"alertname": "Up", "service": "api", "token": SECRETS[1]}}]
    body = json.dumps({"version": "4", "alerts": alerts}).encode()
    [a] = fast("alertmanager", body, Settings(_env_file=None))  # type: ignore[call-arg]
    assert a.labels == {"alertname": "Up", "service": "api", "token": "[REDACTED:token]"} == a.raw["labels"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=_prom_payload, source=st.sampled_from(["grafana", "alertmanager"]))
def test_fuzzed_deliveries_match(payload: dict[str, Any], source: Literal["grafana", "alertmanager"]) -> None:
    settings_ = Settings(_env_file=None)  # type: ignore[call-arg]
    body = json.dumps(payload).encode()
    try:
        want: list[NormalizedAlert] | None = reference(source, body, settings_)
    except (ValidationError, IntakeRefused, KeyError, TypeError, AttributeError):
        want = None
    try:
        got: list[NormalizedAlert] | None = fast(source, body, settings_)
    except IntakeRefused as exc:
        assert 400 <= exc.status < 500
        got = None
    assert (got is None) == (want is None)
    if got is not None and want is not None:
        assert [a.model_dump() for a in got] == [a.model_dump() for a in want]


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(['"', "\\", "x", "é", "\n", "\x00", "/"]), max_size=60),
       limit=st.integers(min_value=0, max_value=40))
def test_long_string_check_never_misses(text: str, limit: int) -> None:
    body = json.dumps({"k": [text, {"v": text + "y"}]}, ensure_ascii=bool(limit % 2)).encode()
    if len(text) + 1 > limit:
        assert may_hold_long_strings(body, limit)
