"""Grafana adapter: dashboard search and dashboard-by-uid over the HTTP API, mapped onto the same
`Dashboard`/`Panel` shape the embedded store keeps, with links that open the dashboard and the panel.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import quote

import httpx

from firebreak.tools.metric_store import Dashboard, Panel
from firebreak.tools.registry import ToolError

log = logging.getLogger("firebreak.backends")
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_SERVICE = re.compile(r"""\b(?:service|job|app|service_name)\s*=~?\s*["']([^"']+)["']""")
_PROMQL_WORDS = {
    "sum",
    "avg",
    "min",
    "max",
    "count",
    "rate",
    "irate",
    "increase",
    "delta",
    "idelta",
    "by",
    "without",
    "histogram_quantile",
    "topk",
    "bottomk",
    "quantile",
    "stddev",
    "stdvar",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "and",
    "or",
    "unless",
    "abs",
    "clamp_min",
    "clamp_max",
    "label_replace",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "sum_over_time",
    "count_over_time",
    "deriv",
    "predict_linear",
    "le",
    "vector",
    "scalar",
    "time",
    "round",
    "ceil",
    "floor",
    "exp",
    "ln",
    "log2",
    "log10",
    "sqrt",
    "sort",
    "sort_desc",
    "absent",
    "changes",
    "resets",
    "count_values",
    "quantile_over_time",
}


def panel_metric_and_service(expr: str) -> tuple[str | None, str | None]:
    """Best-effort (metric, service) of a PromQL expression: the first selector's name and its
    service/job label. Label matchers and strings are skipped when looking for the metric name."""
    service_m = _SERVICE.search(expr)
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"|'[^']*'", " ", expr)
    stripped = _GROUPING.sub(" ", stripped)
    metric = None
    for m in _METRIC.finditer(stripped):
        word = m.group(0)
        after = stripped[m.end() :].lstrip()
        if word in _PROMQL_WORDS or after.startswith("(") or word.isdigit():
            continue
        metric = word
        break
    return metric, service_m.group(1) if service_m else None


class GrafanaClient:
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, headers=headers, transport=transport)

    def close(self) -> None:
        self._client.close()

    def _fail(self, path: str, message: str, status: int) -> ToolError:
        log.warning("Grafana call failed: GET %s%s: %s", self.base_url, path, message)
        return ToolError(message, status=status)

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            resp = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise self._fail(path, f"Grafana at {self.base_url} could not be reached: {exc}", 502) from None
        body: Any
        try:
            body = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        if resp.status_code >= 400:
            msg = body.get("message") if isinstance(body, dict) else resp.text[:200]
            status = 404 if resp.status_code == 404 else 502
            raise self._fail(path, f"Grafana answered HTTP {resp.status_code} for {path}: {msg}", status)
        if body is None:
            ctype = resp.headers.get("content-type", "").split(";")[0] or "no content type"
            raise self._fail(path, f"FIREBREAK_GRAFANA_URL {self.base_url} does not answer as Grafana: {path} gave "
                             f"HTTP {resp.status_code} {ctype}, not JSON; check the URL points at Grafana", 502)
        return body

    def search(self, query: str | None = None, *, limit: int = 50) -> list[dict[str, Any]]:
        """`GET /api/search?type=dash-db`: dashboard hits (uid, title, url, tags)."""
        params: dict[str, Any] = {"type": "dash-db", "limit": limit}
        if query:
            params["query"] = query
        hits = self._get("/api/search", params)
        return [h for h in hits if isinstance(h, dict) and h.get("type", "dash-db") == "dash-db"]

    def dashboard(self, uid: str) -> Dashboard:
        """`GET /api/dashboards/uid/:uid`, as a Dashboard whose panels link to `?viewPanel=<id>`."""
        body = self._get(f"/api/dashboards/uid/{quote(uid, safe='')}")
        dash = body.get("dashboard") or {}
        meta = body.get("meta") or {}
        rel = meta.get("url") or f"/d/{uid}/{meta.get('slug') or ''}".rstrip("/")
        url = self.base_url + rel
        panels: list[Panel] = []
        for p in _flatten(dash.get("panels") or []):
            expr = next((t.get("expr") for t in p.get("targets") or [] if t.get("expr")), None)
            metric, service = panel_metric_and_service(expr) if expr else (None, None)
            panel_url = f"{url}?viewPanel={p['id']}" if p.get("id") is not None else url
            panels.append(Panel(title=p.get("title") or "(untitled)", service=service, metric=metric, url=panel_url))
        return Dashboard(uid=dash.get("uid") or uid, title=dash.get("title") or uid, url=url, panels=panels)


def _flatten(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Panels of a dashboard, including those inside collapsed rows; the row headers themselves dropped."""
    out: list[dict[str, Any]] = []
    for p in panels:
        if p.get("type") == "row":
            out.extend(_flatten(p.get("panels") or []))
        else:
            out.append(p)
    return out
