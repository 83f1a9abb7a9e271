"""Grafana adapter (search + dashboard by uid) against recorded answers in tests/data/grafana."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
from pydantic import SecretStr

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.settings import Settings
from firebreak.tools.grafana import GrafanaClient, panel_metric_and_service
from firebreak.tools.registry import ToolError, call_tool

DATA = Path(__file__).parent / "data" / "grafana"
GRAFANA = "http://grafana.test:3000"


def _load(name: str) -> object:
    return json.loads((DATA / name).read_text())


@pytest.fixture
def gctx(settings: Settings, clock: FixedClock) -> Iterator[ToolContext]:
    s = settings.model_copy(update={"grafana_url": GRAFANA, "grafana_token": SecretStr("glsa_test_token")})
    c = ToolContext(settings=s, clock=clock)
    yield c
    c.close()


def _mock_grafana() -> respx.Route:
    search = respx.get(f"{GRAFANA}/api/search").mock(
        return_value=httpx.Response(200, json=_load("search-dash-db.json"))
    )
    respx.get(f"{GRAFANA}/api/dashboards/uid/cIBgcSjkk").mock(
        return_value=httpx.Response(200, json=_load("dashboard-uid-cIBgcSjkk.json"))
    )
    respx.get(f"{GRAFANA}/api/dashboards/uid/api-red").mock(
        return_value=httpx.Response(200, json=_load("dashboard-uid-api-red.json"))
    )
    return search


@respx.mock
def test_list_dashboards_from_grafana(gctx: ToolContext) -> None:
    search = _mock_grafana()
    out = call_tool(gctx, "list_dashboards", {})
    assert out["source"] == "grafana" and not out["truncated"]
    assert search.calls.last.request.headers["Authorization"] == "Bearer glsa_test_token"
    assert search.calls.last.request.url.params["type"] == "dash-db"
    mailer, api = out["dashboards"]
    assert mailer["uid"] == "cIBgcSjkk" and mailer["url"] == f"{GRAFANA}/d/cIBgcSjkk/mailer-overview"
    assert [(p["title"], p["service"], p["metric"]) for p in mailer["panels"]] == [
        ("Memory", "mailer", "process_resident_memory_bytes"),
        ("Send rate", "mailer", "mailer_sent_total"),
        ("Queue depth", "mailer", "mailer_queue_depth"),  # inside a collapsed row
        ("Runbook", None, None),
    ]
    assert mailer["panels"][0]["url"] == f"{GRAFANA}/d/cIBgcSjkk/mailer-overview?viewPanel=2"
    assert api["panels"][0]["metric"] == "http_requests_total" and api["panels"][0]["service"] == "api"


@respx.mock
def test_list_dashboards_for_a_service(gctx: ToolContext) -> None:
    search = _mock_grafana()
    out = call_tool(gctx, "list_dashboards", {"service": "mailer"})
    assert search.calls.last.request.url.params["query"] == "mailer"
    assert [d["uid"] for d in out["dashboards"]] == ["cIBgcSjkk"]


@respx.mock
def test_missing_dashboard_and_unreachable_grafana() -> None:
    respx.get(f"{GRAFANA}/api/dashboards/uid/nope").mock(
        return_value=httpx.Response(404, json=_load("dashboard-not-found.json"))
    )
    client = GrafanaClient(GRAFANA)
    with pytest.raises(ToolError) as err:
        client.dashboard("nope")
    assert err.value.status == 404 and "Dashboard not found" in err.value.message
    respx.get(f"{GRAFANA}/api/search").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(ToolError) as err:
        client.search()
    assert err.value.status == 502 and "could not be reached" in err.value.message


@pytest.mark.parametrize(
    ("expr", "metric", "service"),
    [
        (
            'histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{job="api"}[5m])) by (le))',
            "http_request_duration_seconds_bucket",
            "api",
        ),
        ("up", "up", None),
        ('sum by (code) (rate(x_total{service=~"checkout"}[1m]))', "x_total", "checkout"),
    ],
)
def test_panel_metric_and_service(expr: str, metric: str, service: str | None) -> None:
    assert panel_metric_and_service(expr) == (metric, service)
