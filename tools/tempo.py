"""Grafana Tempo adapter: TraceQL search plus trace-by-id, used instead of the embedded trace store
when `settings.tempo_url` is set.

API (Tempo's HTTP API docs, "Search" and "Query"): `GET /api/search?q=<TraceQL>&start=<unix s>&end=<unix s>
&limit=<n>` answers `{"traces": [{"traceID", "rootServiceName", "rootTraceName", "startTimeUnixNano",
"durationMs", ...}]}`; `GET /api/traces/<id>` answers the trace as OTLP/JSON, `{"batches": [ResourceSpans]}`
(Tempo 2.x; `{"trace": {"resourceSpans": [...]}}` from `/api/v2/traces`, accepted too), with ids in
base64 (protobuf's JSON mapping) or hex. The spans are read with the same converter as OTLP intake.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

import httpx
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from firebreak.tools.otlp_convert import OTLPError, hex_ids_to_base64, span_rows
from firebreak.tools.registry import ToolError
from firebreak.tools.trace_store import SpanRecord, SpanStatus, from_us

MAX_TRACES = 50  # one trace-by-id request each: keep a tool call to a few seconds


def traceql_string(value: str) -> str:
    return json.dumps(value)  # TraceQL string literals are double-quoted with JSON-style escapes


def build_traceql(*, service: str | None = None, operation: str | None = None, status: SpanStatus | None = None) -> str:
    """A span-set filter, e.g. `{ resource.service.name = "cart" && status = error }` (`{}` matches all)."""
    conds = []
    if service:
        conds.append(f"resource.service.name = {traceql_string(service)}")
    if operation:
        conds.append(f"name = {traceql_string(operation)}")
    if status is not None:
        conds.append(f"status = {SpanStatus(status).value}")
    return "{ " + " && ".join(conds) + " }" if conds else "{}"


class TempoClient:
    """Tempo's search and trace-by-id endpoints; errors come back as ToolError with Tempo's own sentence."""

    name = "tempo"

    def __init__(self, base_url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            resp = self._client.get(path, params=params, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise ToolError(f"Tempo at {self.base_url} could not be reached: {exc}", status=502) from None
        if resp.status_code >= 400:
            text = re.sub(r"\s+", " ", resp.text.strip())[:500]
            raise ToolError(
                f"Tempo rejected {path}: {text or 'no reason'} (HTTP {resp.status_code})",
                status=422 if resp.status_code == 400 else 502,
            )
        try:
            return resp.json()
        except json.JSONDecodeError:
            raise ToolError(f"Tempo answered {path} with something that is not JSON", status=502) from None

    def search(self, query: str, *, since: datetime, until: datetime, limit: int) -> list[dict[str, Any]]:
        """Trace summaries matching a TraceQL query, newest first."""
        body = self._get(
            "/api/search",
            {
                "q": query,
                "start": str(int(since.timestamp())),
                "end": str(int(until.timestamp()) + 1),
                "limit": str(limit),
            },
        )
        traces = body.get("traces") if isinstance(body, dict) else None
        if not isinstance(traces, list):
            raise ToolError("Tempo answered /api/search without a `traces` list", status=502)
        traces.sort(key=lambda t: int(t.get("startTimeUnixNano") or 0), reverse=True)
        return traces

    def trace(self, trace_id: str) -> list[SpanRecord]:
        """One whole trace's spans."""
        body = self._get(f"/api/traces/{trace_id}")
        if isinstance(body, dict) and isinstance(body.get("trace"), dict):
            body = body["trace"]
        batches = (body.get("batches") or body.get("resourceSpans")) if isinstance(body, dict) else None
        if not isinstance(batches, list):
            raise ToolError(f"Tempo answered /api/traces/{trace_id} without `batches`", status=502)
        try:
            req = json_format.ParseDict(
                {"resourceSpans": hex_ids_to_base64(batches)}, ExportTraceServiceRequest(), ignore_unknown_fields=True
            )
            rows = span_rows(req)
        except (OTLPError, json_format.ParseError) as exc:
            raise ToolError(f"Tempo's trace {trace_id} could not be read: {exc}", status=502) from None
        return [
            SpanRecord(t, s, p, svc, op, from_us(start), from_us(end), _STATUS[code], json.loads(a) if a else {})
            for t, s, p, svc, op, start, end, code, a in rows
        ]

    def fetch_traces(
        self,
        *,
        since: datetime,
        until: datetime,
        service: str | None = None,
        operation: str | None = None,
        status: SpanStatus | None = None,
        limit: int = 20,
    ) -> list[list[SpanRecord]]:
        """Whole traces with a span matching the filters in the window, newest first (at most MAX_TRACES)."""
        query = build_traceql(service=service, operation=operation, status=status)
        found = self.search(query, since=since, until=until, limit=min(limit, MAX_TRACES))
        return [self.trace(str(t["traceID"])) for t in found[: min(limit, MAX_TRACES)] if t.get("traceID")]


_STATUS = {0: SpanStatus.UNSET, 1: SpanStatus.OK, 2: SpanStatus.ERROR}
