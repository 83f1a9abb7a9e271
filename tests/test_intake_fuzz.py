"""Fuzzing the webhook endpoints: whatever a client sends, the answer is never a 5xx."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from firebreak.context import ToolContext
from tests.test_intake_common import bearer, client, configure, grafana_headers, sentry_headers

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
    st.sampled_from(["firing", "resolved", "2026-03-02T08:00:00Z", "0001-01-01T00:00:00Z", "2026-03-02T08:00:00",
                     "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00", "\x00", "4", "issue"]),
)
_json = st.recursive(
    _scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                      st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=25,
)
_labels = st.dictionaries(st.sampled_from(["alertname", "service", "job", "app", "severity", "x"]),
                          st.one_of(st.text(max_size=20), _scalars), max_size=5)
_prom_alert = st.fixed_dictionaries({}, optional={
    "status": st.one_of(st.sampled_from(["firing", "resolved"]), _scalars),
    "labels": st.one_of(_labels, _json),
    "annotations": st.one_of(_labels, _json),
    "startsAt": _scalars, "endsAt": _scalars, "fingerprint": st.one_of(st.text(max_size=300), _scalars),
    "generatorURL": _scalars, "dashboardURL": _scalars, "panelURL": _scalars,
})
_prom_payload = st.fixed_dictionaries({}, optional={
    "version": st.one_of(st.just("4"), st.just("1"), _scalars),
    "status": _scalars, "alerts": st.one_of(st.lists(_prom_alert, max_size=4), _json),
    "truncatedAlerts": st.one_of(st.integers(), _scalars), "groupKey": _scalars, "receiver": _scalars,
})
_sentry_payload = st.fixed_dictionaries({}, optional={
    "action": st.one_of(st.sampled_from(["created", "resolved", "triggered", "critical", "assigned"]), _scalars),
    "data": st.one_of(
        st.fixed_dictionaries({}, optional={
            "issue": st.one_of(_json, st.fixed_dictionaries({}, optional={
                "id": _scalars, "title": _scalars, "level": _scalars, "firstSeen": _scalars,
                "lastSeen": _scalars, "project": _json, "status": _scalars})),
            "event": st.one_of(_json, st.fixed_dictionaries({}, optional={
                "issue_id": _scalars, "event_id": _scalars, "datetime": _scalars, "timestamp": _scalars,
                "tags": _json, "url": _scalars, "title": _scalars})),
            "metric_alert": st.one_of(_json, st.fixed_dictionaries({}, optional={
                "id": _scalars, "alert_rule": _json, "projects": _json, "date_started": _scalars})),
            "error": _json, "triggered_rule": _scalars, "web_url": _scalars,
        }),
        _json,
    ),
})
_change_payload = st.fixed_dictionaries({}, optional={
    "kind": st.one_of(st.sampled_from(["deploy", "config", "flag", "infra"]), _scalars),
    "service": _scalars, "version": _scalars, "at": _scalars, "key": _scalars, "from": _json, "to": _json,
    "flag": _scalars, "variant": _scalars, "state": _scalars, "note": _scalars, "author": _scalars,
})


def _body(value: Any) -> bytes:
    return json.dumps(value).encode() if not isinstance(value, bytes) else value


_bodies = st.one_of(st.binary(max_size=200), _json.map(_body))
_resources = st.one_of(st.none(), st.sampled_from(["issue", "event_alert", "metric_alert", "error", "installation"]),
                       st.text(max_size=10).filter(lambda t: t.isprintable() and t.isascii()))
_fuzz = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def test_fuzz_webhooks_never_answer_5xx(ctx: ToolContext) -> None:
    configure(ctx)
    c = client(ctx)

    @_fuzz
    @given(payload=st.one_of(_prom_payload.map(_body), _bodies))
    @example(payload=b'{"alerts": [{"status": "firing", "startsAt": "0001-01-01T00:00:00+14:00"}]}')
    @example(payload=b'{"alerts": [{"status": "firing", "fingerprint": "\\u0000", "labels": {"job": "\\u0000"}}]}')
    def alertmanager(payload: bytes) -> None:
        r = c.post("/webhooks/alertmanager", content=payload, headers=bearer())
        assert r.status_code < 500, (payload, r.text)
        assert r.status_code in (202, 400, 413, 422), r.text
        if r.status_code != 202:
            assert r.json()["detail"]

    @_fuzz
    @given(payload=st.one_of(_prom_payload.map(_body), _bodies), stamp=st.one_of(st.none(), st.just(0)))
    def grafana(payload: bytes, stamp: int | None) -> None:
        headers = grafana_headers(payload, None if stamp is None else int(ctx.clock.now().timestamp()))
        r = c.post("/webhooks/grafana", content=payload, headers=headers)
        assert r.status_code < 500 and r.status_code != 401, (payload, r.text)

    @_fuzz
    @given(payload=st.one_of(_sentry_payload.map(_body), _bodies), resource=_resources)
    def sentry(payload: bytes, resource: str | None) -> None:
        r = c.post("/webhooks/sentry", content=payload, headers=sentry_headers(payload, resource))
        assert r.status_code < 500 and r.status_code != 401, (payload, resource, r.text)

    @_fuzz
    @given(payload=st.one_of(_change_payload.map(_body), _bodies))
    @example(payload=b'{"kind": "infra", "note": "x", "at": "9999-12-31T10:00:00-1400"}')
    @example(payload=b'{"at": "9999-12-31T10:00:00-1400"}')
    def changes(payload: bytes) -> None:
        r = c.post("/webhooks/changes", content=payload, headers=bearer())
        assert r.status_code < 500, (payload, r.text)

    printable = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=80)

    @_fuzz
    @given(path=st.sampled_from(["sentry", "grafana", "alertmanager", "changes"]),
           headers=st.dictionaries(st.sampled_from(["Authorization", "Sentry-Hook-Signature", "Sentry-Hook-Resource",
                                                    "X-Grafana-Alerting-Signature", "X-Grafana-Alerting-Timestamp",
                                                    "Content-Type", "Content-Length"]),
                                   printable, max_size=4),
           payload=_bodies)
    def headers_(path: str, headers: dict[str, str], payload: bytes) -> None:
        raw = {k.encode(): v.encode("latin-1") for k, v in headers.items() if k != "Content-Length"}
        r = c.post(f"/webhooks/{path}", content=payload, headers=raw)
        assert r.status_code < 500, (headers, r.text)

    alertmanager()
    grafana()
    sentry()
    changes()
    headers_()
