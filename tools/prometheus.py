"""Prometheus adapter: the HTTP API's `query_range` (and series lookups), used by the metrics tools when
`settings.prometheus_url` is set. A service is the `service` label, falling back to `job`.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel

from tools.registry import ToolError

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
SERVICE_LABELS = ("service", "job")
MAX_POINTS = 11_000  # Prometheus refuses more than 11,000 points per series


class PromSeries(BaseModel):
    """One series of a range query: its labels and (unix seconds, value) samples."""

    metric: dict[str, str]
    values: list[tuple[float, float]]


def promql_string(value: str) -> str:
    return json.dumps(value)  # PromQL string literals accept Go/JSON escapes


def selector(name: str | None, service: str | None, label: str = "service") -> str:
    if name is not None and not METRIC_NAME.match(name):
        raise ToolError(f"name: {name!r} is not a Prometheus metric name", status=422, field="name")
    matchers = [f"{label}={promql_string(service)}"] if service else [f'{label}!=""']
    return (name or "") + "{" + ",".join(matchers) + "}"


class PrometheusClient:
    """Errors come back as ToolError carrying Prometheus's own `error` sentence."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: httpx.QueryParams) -> Any:
        try:
            resp = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ToolError(f"Prometheus at {self.base_url} could not be reached: {exc}", status=502) from None
        try:
            body = resp.json()
        except json.JSONDecodeError:
            text = re.sub(r"\s+", " ", resp.text)[:300]
            raise ToolError(f"Prometheus answered HTTP {resp.status_code} without JSON: {text}", status=502) from None
        if not isinstance(body, dict) or body.get("status") != "success":
            err = body.get("error") if isinstance(body, dict) else None
            kind = body.get("errorType") if isinstance(body, dict) else None
            status = 422 if kind == "bad_data" or resp.status_code == 400 else 502
            raise ToolError(f"Prometheus rejected the query: {err or 'unexpected answer'}", status=status)
        return body.get("data")

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
            raise ToolError(f"Prometheus answered with {kind!r}, not a range matrix", status=502)
        out: list[PromSeries] = []
        for series in data.get("result") or []:
            values = [(float(t), _float(v)) for t, v in series.get("values") or []]
            out.append(PromSeries(metric=series.get("metric") or {}, values=values))
        return out

    def label_values(self, label: str) -> list[str]:
        data = self._get(f"/api/v1/label/{label}/values", httpx.QueryParams())
        return [str(v) for v in data or []]

    def series_names(self, match: str, *, start: datetime, end: datetime) -> list[dict[str, str]]:
        data = self._get(
            "/api/v1/series", httpx.QueryParams([("match[]", match), ("start", _ts(start)), ("end", _ts(end))])
        )
        return list(data or [])


def _ts(value: datetime) -> str:
    return f"{value.astimezone(UTC).timestamp():.3f}"


def _float(value: str) -> float:
    v = float(value)  # Prometheus encodes NaN and ±Inf as strings too
    return v if math.isfinite(v) else math.nan
