"""OTLP export requests (opentelemetry-proto messages) -> the embedded stores' rows.

Kept apart from the HTTP router so that the whole request is converted (and checked) before
anything is written: a bad span anywhere refuses the request and nothing is half-stored.
The service of every record is its resource's `service.name` (`unknown_service` when missing, the
SDKs' own default). Metric names follow the Prometheus translation (dots to underscores, a monotonic
cumulative sum gets `_total`, a histogram becomes `_bucket{le}`, `_sum` and `_count`) so that the metric
tools read OTLP series like scraped ones.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from firebreak.redact import redact_obj  # span attributes come from outside: secrets are not stored
from firebreak.tools.log_store import LogLine
from firebreak.tools.metric_store import MetricPoint
from firebreak.tools.trace_store import SpanRow

UNKNOWN_SERVICE = "unknown_service"
_INVALID_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9_:]")
# OTLP SeverityNumber ranges (logs data model): 1-4 TRACE, 5-8 DEBUG, 9-12 INFO, 13-16 WARN, 17-20 ERROR, 21-24 FATAL.
_SEVERITY = ("INFO", "TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_ID_FIELDS = ("traceId", "spanId", "parentSpanId")
_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{22}==|[A-Za-z0-9+/]{11}=")  # 16 or 8 bytes
_ZERO16, _ZERO8 = bytes(16), bytes(8)
_AGG_CUMULATIVE = 2  # AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE


class OTLPError(ValueError):
    """A request that cannot be stored as a whole; the message names where (resource/scope/record index)."""


def any_value(v: AnyValue) -> Any:
    """An OTLP AnyValue as plain JSON-able Python."""
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind)


def attributes(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        kind = v.WhichOneof("value")
        out[kv.key] = (
            getattr(v, kind) if kind in ("string_value", "int_value", "double_value", "bool_value") else (any_value(v))
        )
    return out


def _service(resource_attrs: Iterable[KeyValue]) -> str:
    for kv in resource_attrs:
        if kv.key == "service.name":
            name = kv.value.string_value
            return name or UNKNOWN_SERVICE
    return UNKNOWN_SERVICE


def _where(ri: int, si: int, pi: int) -> str:
    return f"resourceSpans[{ri}].scopeSpans[{si}].spans[{pi}]"


def span_rows(req: ExportTraceServiceRequest) -> list[SpanRow]:
    """Every span of the request as a trace-store row; OTLPError on an unusable span."""
    rows: list[SpanRow] = []
    dumps = json.dumps
    for ri, rs in enumerate(req.resource_spans):
        service = _service(rs.resource.attributes)
        for si, ss in enumerate(rs.scope_spans):
            for pi, sp in enumerate(ss.spans):
                trace_id, span_id = sp.trace_id, sp.span_id
                if len(trace_id) != 16 or trace_id == _ZERO16:
                    raise OTLPError(f"{_where(ri, si, pi)}.traceId: must be 16 bytes, not all zero")
                if len(span_id) != 8 or span_id == _ZERO8:
                    raise OTLPError(f"{_where(ri, si, pi)}.spanId: must be 8 bytes, not all zero")
                start, end = sp.start_time_unix_nano // 1000, sp.end_time_unix_nano // 1000
                if end < start:
                    raise OTLPError(f"{_where(ri, si, pi)}.endTimeUnixNano: before startTimeUnixNano")
                attrs = attributes(sp.attributes) if sp.attributes else {}
                if sp.status.message:
                    attrs["otel.status_description"] = sp.status.message
                parent = sp.parent_span_id
                rows.append(
                    (
                        trace_id.hex(),
                        span_id.hex(),
                        parent.hex() if parent and parent != _ZERO8 else None,
                        service,
                        sp.name,
                        start,
                        end,
                        sp.status.code if sp.status.code in (0, 1, 2) else 0,
                        dumps(redact_obj(attrs), default=str, separators=(",", ":")) if attrs else None,
                    )
                )
    return rows


def _level(severity_text: str, severity_number: int) -> str:
    if severity_text:
        return severity_text
    return _SEVERITY[min((severity_number + 3) // 4, 6)] if severity_number > 0 else "INFO"


def log_lines(req: ExportLogsServiceRequest, now: datetime) -> list[LogLine]:
    """Every log record as a LogLine; the time is the record's, else its observed time, else `now`."""
    lines: list[LogLine] = []
    fromts = datetime.fromtimestamp
    for rl in req.resource_logs:
        service = _service(rl.resource.attributes)
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                ns = rec.time_unix_nano or rec.observed_time_unix_nano
                ts = fromts(ns / 1e9, tz=UTC) if ns else now
                body = rec.body
                kind = body.WhichOneof("value")
                if kind == "string_value":
                    message = body.string_value
                elif kind is None:
                    message = ""
                else:
                    value = any_value(body)
                    message = value if isinstance(value, str) else json.dumps(value, default=str)
                attrs = attributes(rec.attributes) if rec.attributes else {}
                trace_id, span_id = rec.trace_id, rec.span_id
                if trace_id and trace_id != _ZERO16:
                    attrs["trace_id"] = trace_id.hex()
                if span_id and span_id != _ZERO8:
                    attrs["span_id"] = span_id.hex()
                lines.append(LogLine(ts, service, _level(rec.severity_text, rec.severity_number), message, attrs))
    return lines


def metric_name(name: str) -> str:
    """OTel instrument name -> a Prometheus-style metric name (what an OTLP-to-Prometheus bridge writes)."""
    out = _INVALID_METRIC_CHARS.sub("_", name)
    return "_" + out if out[:1].isdigit() else out


def _labels(kvs: Iterable[KeyValue]) -> dict[str, str]:
    return {metric_name(k): v if isinstance(v, str) else json.dumps(v) for k, v in attributes(kvs).items()}


def _ts(ns: int, now: datetime) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC) if ns else now


def _number(dp: Any) -> float:
    return float(dp.as_double if dp.WhichOneof("value") == "as_double" else dp.as_int)


def metric_points(req: ExportMetricsServiceRequest, now: datetime) -> list[MetricPoint]:
    """Every data point as MetricPoints (a histogram point gives one per bucket plus _sum and _count)."""
    points: list[MetricPoint] = []
    for rm in req.resource_metrics:
        service = _service(rm.resource.attributes)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                points.extend(_metric(m, service, now))
    return points


def metric_kinds(req: ExportMetricsServiceRequest) -> dict[str, str]:
    """Stored metric name -> counter | gauge | histogram, from the OTLP types (not from name suffixes).

    Cumulative monotonic sums are counters, as are a cumulative histogram's or summary's `_count` and
    `_sum`; a cumulative histogram's `_bucket` is a histogram; gauges, non-monotonic sums and every
    delta series (per-interval values) are gauges.
    """
    kinds: dict[str, str] = {}
    for rm in req.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                base, kind = metric_name(m.name), m.WhichOneof("data")
                if kind == "gauge":
                    kinds[base] = "gauge"
                elif kind == "sum":
                    counter = m.sum.is_monotonic and m.sum.aggregation_temporality == _AGG_CUMULATIVE
                    kinds[base if not counter or base.endswith("_total") else base + "_total"] = (
                        "counter" if counter else "gauge"
                    )
                elif kind in ("histogram", "exponential_histogram", "summary"):
                    cumulative = kind == "summary" or getattr(m, kind).aggregation_temporality == _AGG_CUMULATIVE
                    kinds[base + "_count"] = kinds[base + "_sum"] = "counter" if cumulative else "gauge"
                    if kind == "histogram":
                        kinds[base + "_bucket"] = "histogram" if cumulative else "gauge"
                    if kind == "summary":
                        kinds[base] = "gauge"
    return kinds


def _metric(m: Any, service: str, now: datetime) -> Iterator[MetricPoint]:
    base = metric_name(m.name)
    kind = m.WhichOneof("data")
    if kind == "gauge":
        for dp in m.gauge.data_points:
            yield MetricPoint(_ts(dp.time_unix_nano, now), service, base, _number(dp), _labels(dp.attributes))
    elif kind == "sum":
        counter = m.sum.is_monotonic and m.sum.aggregation_temporality == _AGG_CUMULATIVE
        name = base if not counter or base.endswith("_total") else base + "_total"
        for dp in m.sum.data_points:
            yield MetricPoint(_ts(dp.time_unix_nano, now), service, name, _number(dp), _labels(dp.attributes))
    elif kind == "histogram":
        for dp in m.histogram.data_points:
            ts, labels = _ts(dp.time_unix_nano, now), _labels(dp.attributes)
            cumulative = 0
            bounds = [*(repr(float(b)) for b in dp.explicit_bounds), "+Inf"]
            for le, count in zip(bounds, dp.bucket_counts, strict=False):
                cumulative += count
                yield MetricPoint(ts, service, base + "_bucket", float(cumulative), {**labels, "le": le})
            yield MetricPoint(ts, service, base + "_count", float(dp.count), labels)
            if dp.HasField("sum"):
                yield MetricPoint(ts, service, base + "_sum", dp.sum, labels)
    elif kind == "exponential_histogram":
        for dp in m.exponential_histogram.data_points:
            ts, labels = _ts(dp.time_unix_nano, now), _labels(dp.attributes)
            yield MetricPoint(ts, service, base + "_count", float(dp.count), labels)
            if dp.HasField("sum"):
                yield MetricPoint(ts, service, base + "_sum", dp.sum, labels)
    elif kind == "summary":
        for dp in m.summary.data_points:
            ts, labels = _ts(dp.time_unix_nano, now), _labels(dp.attributes)
            for q in dp.quantile_values:
                yield MetricPoint(ts, service, base, q.value, {**labels, "quantile": repr(q.quantile)})
            yield MetricPoint(ts, service, base + "_count", float(dp.count), labels)
            yield MetricPoint(ts, service, base + "_sum", dp.sum, labels)


def hex_ids_to_base64(node: Any, path: str = "") -> Any:
    """OTLP/JSON writes trace and span ids as hex; protobuf's JSON mapping wants base64 for bytes.

    Ids that are not hex of a trace or span id's length are left alone (Tempo answers base64).
    """
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in _ID_FIELDS and isinstance(value, str) and value:
                if len(value) in (16, 32) and _HEX.fullmatch(value):
                    out[key] = base64.b64encode(bytes.fromhex(value)).decode()
                elif _BASE64.fullmatch(value):
                    out[key] = value
                else:
                    raise OTLPError(f"{path}{key}: {value!r} is not a hex (or base64) id")
            else:
                out[key] = hex_ids_to_base64(value, f"{path}{key}.")
        return out
    if isinstance(node, list):
        return [hex_ids_to_base64(v, f"{path[:-1]}[{i}].") for i, v in enumerate(node)]
    return node
