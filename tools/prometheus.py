"""Prometheus adapter: the HTTP API (`query_range`, series and label lookups, metric metadata, the
scrape interval of its targets), used by the metrics tools when `settings.prometheus_url` is set.

Metric types come from `/api/v1/metadata`, else from the name's suffix (`_total` counter, `_bucket`
histogram...): counters are read as `rate()` and histograms as a 99th percentile, because raw
cumulative values grow on their own and hide real changes. A service is the first label of
`settings.service_labels` a series carries, else the Kubernetes pod name without its hash suffixes.
"""

from __future__ import annotations

import json
import logging
import math
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
from pydantic import BaseModel

from firebreak.tools.registry import ToolError

log = logging.getLogger("firebreak.backends")

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DEFAULT_SERVICE_LABELS = ("service", "job", "app", "app_kubernetes_io_name", "container")
MAX_POINTS = 11_000  # Prometheus refuses more than 11,000 points per series
DEFAULT_SCRAPE_SECONDS = 15.0
# Labels that tell replicas of one service apart: dropped when pods roll up to their service.
REPLICA_LABELS = ("instance", "pod", "pod_name", "pod_template_hash", "controller_revision_hash", "container_id")
# Kubernetes pod names: <deployment>-<replicaset hash>-<5 chars>, <daemonset>-<5 chars> or
# <statefulset>-<ordinal>; generated parts use Kubernetes' vowel-free alphabet, so "api-nginx" stays whole.
_SAFE = "[bcdfghjklmnpqrstvwxz2-9]"
_POD_SUFFIX = re.compile(rf"(-{_SAFE}{{6,10}}-{_SAFE}{{5}}|-{_SAFE}{{5}}|-\d+)$")


class MetricKind(StrEnum):
    """How a metric is read: gauges as they are, counters as a rate, histograms as p99."""

    GAUGE = "gauge"
    COUNTER = "counter"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"


class PromSeries(BaseModel):
    """One series of a range query: its labels and (unix seconds, value) samples."""

    metric: dict[str, str]
    values: list[tuple[float, float]]


def promql_string(value: str) -> str:
    return json.dumps(value)  # PromQL string literals accept Go/JSON escapes


def check_name(name: str) -> str:
    if not METRIC_NAME.match(name):
        raise ToolError(f"name: {name!r} is not a Prometheus metric name", status=422, field="name")
    return name


def service_labels(labels: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The configured service labels, checked (FIREBREAK_SERVICE_LABELS)."""
    out = tuple(labels or DEFAULT_SERVICE_LABELS)
    bad = [lb for lb in out if not LABEL_NAME.match(lb)]
    if bad:
        raise ToolError(f"FIREBREAK_SERVICE_LABELS: {bad[0]!r} is not a Prometheus label name", status=500)
    return out


def selector(name: str | None, service: str | None, label: str = "service") -> str:
    if name is not None:
        check_name(name)
    matchers = [f"{label}={promql_string(service)}"] if service else [f'{label}!=""']
    return (name or "") + "{" + ",".join(matchers) + "}"


def kind_of(name: str, metadata: dict[str, str]) -> tuple[MetricKind, str]:
    """(kind, family) of a series name: the metadata first (under the series name, or the family name
    OpenMetrics gives counters and histograms), then the suffix (`_total` counter, `_bucket` histogram).
    `x_count` and `x_sum` of a histogram or summary are counters of their own."""
    own = metadata.get(name)
    if own in ("gauge", "counter"):
        return MetricKind(own), name
    for suffix in ("_bucket", "_count", "_sum", "_total"):
        if not name.endswith(suffix):
            continue
        family = name[: -len(suffix)]
        typ = metadata.get(family)
        if suffix == "_bucket" and typ in (None, "histogram"):
            return MetricKind.HISTOGRAM, family
        if suffix in ("_count", "_sum") and typ in ("histogram", "summary"):
            return MetricKind.COUNTER, name
        if suffix == "_total" and typ in (None, "counter", "unknown"):
            return MetricKind.COUNTER, name
    if own in ("histogram", "summary"):
        return MetricKind(own), name
    return MetricKind.GAUGE, name


def rate_window(step_s: float, scrape_s: float) -> str:
    """A `rate()` range fitted to the step: at least two steps and four scrapes, so no point is empty."""
    return f"{max(1, math.ceil(max(2 * step_s, 4 * scrape_s) * 1000))}ms"


def service_of(labels: dict[str, str], order: tuple[str, ...]) -> str | None:
    """A series' service: the first configured label it carries, else its pod's workload name."""
    for label in order:
        if labels.get(label):
            return labels[label]
    pod = labels.get("pod") or labels.get("pod_name")
    if pod:
        return _POD_SUFFIX.sub("", pod) or pod
    return None


class PrometheusClient:
    """Errors come back as ToolError carrying Prometheus's own `error` sentence; each is logged once."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)
        self._metadata: dict[str, str] | None = None
        self._scrape: float | None = None

    def close(self) -> None:
        self._client.close()

    def _fail(self, path: str, message: str, status: int) -> ToolError:
        log.warning("Prometheus call failed: GET %s%s: %s", self.base_url, path, message)
        return ToolError(message, status=status)

    def _get(self, path: str, params: httpx.QueryParams) -> Any:
        try:
            resp = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise self._fail(path, f"Prometheus at {self.base_url} could not be reached: {exc}", 502) from None
        try:
            body = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise self._fail(path, self._not_prometheus(resp, "without JSON"), 502) from None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise self._fail(path, self._not_prometheus(resp, "with JSON that is not a Prometheus API answer"), 502)
        if body.get("status") != "success":
            err, kind = body.get("error"), body.get("errorType")
            status = 422 if kind == "bad_data" or resp.status_code == 400 else 502
            raise self._fail(path, f"Prometheus rejected the query: {err or kind or 'no reason given'}", status)
        return body.get("data")

    def _not_prometheus(self, resp: httpx.Response, what: str) -> str:
        """Name what answered instead of Prometheus (a login page, Grafana, a proxy's error page)."""
        ctype = resp.headers.get("content-type", "").split(";")[0] or "no content type"
        server = resp.headers.get("server")
        text = re.sub(r"\s+", " ", resp.text)[:160]
        title = re.search(r"<title>(.*?)</title>", resp.text, re.I | re.S)
        named = f" (page title {title.group(1).strip()[:80]!r})" if title else ""
        return (
            f"FIREBREAK_PROMETHEUS_URL {self.base_url} does not answer as Prometheus: HTTP {resp.status_code} "
            f"{what}, {ctype}{f', server {server}' if server else ''}{named}; check the URL points at "
            f"Prometheus itself (answer starts: {text!r})"
        )

    def query_range(self, query: str, *, start: datetime, end: datetime, step_seconds: float) -> list[PromSeries]:
        """A PromQL range query; a matrix of series. Step is widened to stay under Prometheus' point cap."""
        span = (end - start).total_seconds()
        step = max(step_seconds, span / MAX_POINTS, 0.001)
        data = self._get(
            "/api/v1/query_range",
            httpx.QueryParams({"query": query, "start": _ts(start), "end": _ts(end), "step": f"{step:g}"}),
        )
        if not isinstance(data, dict) or data.get("resultType") != "matrix":
            kind = data.get("resultType") if isinstance(data, dict) else None
            raise self._fail("/api/v1/query_range", f"Prometheus answered with {kind!r}, not a range matrix", 502)
        out: list[PromSeries] = []
        for series in data.get("result") or []:
            values = [(float(t), _float(v)) for t, v in series.get("values") or []]
            out.append(PromSeries(metric=series.get("metric") or {}, values=values))
        return out

    def label_values(self, label: str, *, start: datetime | None = None, end: datetime | None = None) -> list[str]:
        params = {"start": _ts(start), "end": _ts(end)} if start and end else {}
        data = self._get(f"/api/v1/label/{label}/values", httpx.QueryParams(params))
        return [str(v) for v in data or []]

    def series_names(self, match: str, *, start: datetime, end: datetime) -> list[dict[str, str]]:
        data = self._get(
            "/api/v1/series", httpx.QueryParams([("match[]", match), ("start", _ts(start)), ("end", _ts(end))])
        )
        return list(data or [])

    def metadata(self) -> dict[str, str]:
        """Metric family -> type from `/api/v1/metadata` (once per client; empty when refused)."""
        if self._metadata is None:
            try:
                data = self._get("/api/v1/metadata", httpx.QueryParams())
            except ToolError:
                data = {}
            self._metadata = {
                str(name): str(entries[0].get("type") or "unknown")
                for name, entries in (data or {}).items()
                if isinstance(entries, list) and entries and isinstance(entries[0], dict)
            }
        return self._metadata

    def scrape_seconds(self) -> float:
        """The shortest scrape interval of the active targets (15 s when Prometheus does not say)."""
        if self._scrape is None:
            try:
                data = self._get("/api/v1/targets", httpx.QueryParams({"state": "active"}))
            except ToolError:
                data = {}
            found = [
                _duration(t.get("scrapeInterval"))
                for t in (data or {}).get("activeTargets") or []
                if isinstance(t, dict)
            ]
            intervals = [s for s in found if s]
            self._scrape = min(intervals) if intervals else DEFAULT_SCRAPE_SECONDS
        return self._scrape


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _duration(text: Any) -> float | None:
    if not isinstance(text, str):
        return None
    parts = _DURATION.findall(text)
    return sum(float(n) * _UNIT[u] for n, u in parts) if parts else None


def _ts(value: datetime) -> str:
    return f"{value.astimezone(UTC).timestamp():.3f}"


def _float(value: str) -> float:
    v = float(value)  # Prometheus encodes NaN and ±Inf as strings too
    return v if math.isfinite(v) else math.nan
