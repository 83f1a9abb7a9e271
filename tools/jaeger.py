"""Jaeger adapter: the query service's HTTP JSON API, used instead of the embedded trace store when
`settings.jaeger_url` is set (and `tempo_url` is not).

API (Jaeger's query service, the JSON API its UI uses; see jaeger-ui's `api/jaeger` and Jaeger's
`cmd/query/app/http_handler.go`): `GET /api/services` answers `{"data": ["frontend", ...]}`;
`GET /api/traces?service=&operation=&start=<µs>&end=<µs>&limit=&tags=<json>` answers
`{"data": [{"traceID", "spans": [{"traceID", "spanID", "operationName", "references": [{"refType":
"CHILD_OF", "traceID", "spanID"}], "startTime": µs, "duration": µs, "tags": [{"key", "type", "value"}],
"processID"}], "processes": {"p1": {"serviceName", "tags"}}}], "errors": null}`. A span failed when it
has the tag `error=true` or `otel.status_code=ERROR`. `service` is required by that endpoint, so an
unfiltered fetch asks each service in turn.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

import httpx

from firebreak.tools.registry import ToolError
from firebreak.tools.trace_store import SpanRecord, SpanStatus, from_us, to_us

MAX_TRACES = 200


def _status(tags: dict[str, Any]) -> SpanStatus:
    code = str(tags.get("otel.status_code", "")).upper()
    if code == "ERROR" or str(tags.get("error", "")).lower() == "true":
        return SpanStatus.ERROR
    return SpanStatus.OK if code == "OK" else SpanStatus.UNSET


def spans_of(trace: dict[str, Any]) -> list[SpanRecord]:
    """One Jaeger trace object as SpanRecords (service from the span's process)."""
    processes = trace.get("processes") or {}
    out: list[SpanRecord] = []
    for sp in trace.get("spans") or []:
        tags = {str(t.get("key")): t.get("value") for t in sp.get("tags") or [] if isinstance(t, dict)}
        parent = next(
            (r.get("spanID") for r in sp.get("references") or [] if r.get("refType") == "CHILD_OF"), None
        ) or next((r.get("spanID") for r in sp.get("references") or []), None)
        process = processes.get(sp.get("processID")) or sp.get("process") or {}
        start = int(sp["startTime"])
        out.append(
            SpanRecord(
                trace_id=str(sp.get("traceID") or trace.get("traceID")),
                span_id=str(sp["spanID"]),
                parent_id=str(parent) if parent else None,
                service=str(process.get("serviceName") or "unknown_service"),
                operation=str(sp.get("operationName") or ""),
                start=from_us(start),
                end=from_us(start + int(sp.get("duration") or 0)),
                status=_status(tags),
                attributes={k: v for k, v in tags.items() if k not in ("error", "otel.status_code", "span.kind")},
            )
        )
    return out


class JaegerClient:
    """Jaeger query service client; errors come back as ToolError with Jaeger's own sentence."""

    name = "jaeger"

    def __init__(self, base_url: str, *, timeout: float = 10.0, transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, str] | None = None) -> list[Any]:
        try:
            resp = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ToolError(f"Jaeger at {self.base_url} could not be reached: {exc}", status=502) from None
        try:
            body = resp.json()
        except json.JSONDecodeError:
            body = None
        errors = body.get("errors") if isinstance(body, dict) else None
        if resp.status_code >= 400 or errors:
            msg = "; ".join(str(e.get("msg", e)) for e in errors if isinstance(e, dict)) if errors else ""
            msg = msg or re.sub(r"\s+", " ", resp.text.strip())[:500]
            raise ToolError(
                f"Jaeger rejected {path}: {msg or 'no reason'} (HTTP {resp.status_code})",
                status=422 if resp.status_code == 400 else 502,
            )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise ToolError(f"Jaeger answered {path} without a `data` list", status=502)
        return data

    def services(self) -> list[str]:
        return sorted(str(s) for s in self._get("/api/services"))

    def traces(
        self,
        service: str,
        *,
        since: datetime,
        until: datetime,
        operation: str | None = None,
        status: SpanStatus | None = None,
        limit: int = 20,
    ) -> list[list[SpanRecord]]:
        params = {"service": service, "start": str(to_us(since)), "end": str(to_us(until)), "limit": str(limit)}
        if operation:
            params["operation"] = operation
        if status == SpanStatus.ERROR:
            params["tags"] = json.dumps({"error": "true"})
        return [spans_of(t) for t in self._get("/api/traces", params) if isinstance(t, dict)]

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
        """Whole traces with a span matching the filters, newest first (at most MAX_TRACES)."""
        limit = min(limit, MAX_TRACES)
        services = [service] if service else self.services()
        per = max(1, math.ceil(limit / max(len(services), 1)))
        seen: dict[str, list[SpanRecord]] = {}
        for svc in services:
            for spans in self.traces(svc, since=since, until=until, operation=operation, status=status, limit=per):
                if spans and spans[0].trace_id not in seen:
                    if status is not None and not any(
                        s.status == status and (not service or s.service == service) for s in spans
                    ):
                        continue
                    seen[spans[0].trace_id] = spans
        found = sorted(seen.values(), key=lambda t: min(s.start for s in t), reverse=True)
        return found[:limit]
