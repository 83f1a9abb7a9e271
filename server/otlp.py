"""OTLP over HTTP intake: POST /v1/traces, /v1/logs, /v1/metrics into the embedded stores.

Speaks what the OpenTelemetry Collector's `otlphttp` exporter and the SDKs' `otlp-proto-http`
exporters send: `application/x-protobuf` or `application/json` (OTLP/JSON: hex trace and span ids,
lowerCamelCase fields), optionally `Content-Encoding: gzip` (or deflate). Closed until
`FIREBREAK_OTLP_TOKEN` is set; senders pass `Authorization: Bearer <token>` (Collector: `headers:`
on the exporter, or the bearertokenauth extension).

Answers: 200 with an empty Export*ServiceResponse in the request's encoding; 400 for a body that is
not the OTLP message (or holds an unusable record: the whole request is refused, nothing stored);
401 for a missing or wrong token; 413 for a body over the cap; 415 for another content type or
encoding. Errors carry a JSON `detail` like every other Firebreak endpoint.

Log records carry no ids, so an exporter's retry of a batch that was in fact stored (its answer lost
or late) would store every record twice. A logs request whose every record has a timestamp is
remembered by a digest of its body (decompressed): the same body again (same resource, records and
timestamps) is answered 200 and not stored again. The memory is the last `RECENT_LOG_BATCHES`
requests of this process; a retry after a restart is stored again. A body with an untimed record is
never skipped: such records get the arrival time, so an identical body later is new data.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import json
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from firebreak.context import ToolContext
from firebreak.server.deps import Ctx
from firebreak.tools.log_store import get_log_store, log_rows
from firebreak.tools.metric_store import get_metric_store
from firebreak.tools.otlp_convert import OTLPError, hex_ids_to_base64, log_lines, metric_kinds, metric_points, span_rows
from firebreak.tools.trace_store import trace_store

MAX_BODY_BYTES = 32 * 1024 * 1024  # compressed or not: the Collector's batches are a few MB at most
MAX_INFLATED_BYTES = 128 * 1024 * 1024
RECENT_LOG_BATCHES = 65_536  # about 10 minutes at 100 requests/s; ~100 bytes each
_PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")

router = APIRouter(tags=["otlp"])
# One writer per store at a time: concurrent SQLite writers would otherwise wait in SQLite's busy
# handler, which sleeps in steps of up to 100 ms (the trace store holds its own lock).
_LOG_WRITES = threading.Lock()
_METRIC_WRITES = threading.Lock()

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Not an OTLP export request of this signal, or an unusable record"},
    401: {"description": "Missing or wrong bearer token, or FIREBREAK_OTLP_TOKEN unset"},
    413: {"description": "Body over the cap"},
    415: {"description": "Content-Type other than application/x-protobuf or application/json, or unknown encoding"},
}


def require_otlp_token(request: Request, ctx: Ctx) -> None:
    token = ctx.settings.otlp_token
    if token is None:
        raise HTTPException(401, detail="OTLP intake disabled: set FIREBREAK_OTLP_TOKEN to enable /v1/*")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.get_secret_value().encode()
    ):
        raise HTTPException(401, detail="missing or wrong bearer token", headers={"WWW-Authenticate": "Bearer"})


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, detail=f"body over {MAX_BODY_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, detail=f"body over {MAX_BODY_BYTES} bytes")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return bytes(body)
    if encoding not in ("gzip", "deflate"):
        raise HTTPException(415, detail=f"Content-Encoding {encoding!r} not supported: use gzip, deflate or none")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    try:
        out = inflater.decompress(bytes(body), MAX_INFLATED_BYTES)
    except zlib.error as exc:
        raise HTTPException(400, detail=f"body is not valid {encoding} data: {exc}") from None
    if inflater.unconsumed_tail:
        raise HTTPException(413, detail=f"body inflates past {MAX_INFLATED_BYTES} bytes")
    if not inflater.eof:
        raise HTTPException(400, detail=f"body is truncated {encoding} data")
    return out


def _parse(request: Request, body: bytes, message: type[Message], top_field: str) -> tuple[Message, bool]:
    """(request message, was it JSON); HTTPException 400/415 naming what is wrong."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    name = message.DESCRIPTOR.name
    if ctype in _PROTOBUF_TYPES:
        msg = message()
        try:
            msg.ParseFromString(body)
        except DecodeError as exc:
            raise HTTPException(400, detail=f"body is not a protobuf {name}: {exc}") from None
        if body and not msg.ListFields():  # random bytes can parse as nothing but unknown fields
            raise HTTPException(400, detail=f"body is not a protobuf {name} (no {top_field} in it)")
        return msg, False
    if ctype == "application/json":
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise HTTPException(400, detail=f"body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise HTTPException(400, detail=f"body: expected a JSON object ({name}), got {type(data).__name__}")
        if data and top_field not in data:
            raise HTTPException(400, detail=f"body: not an OTLP {name}: no {top_field!r} field")
        try:
            return json_format.ParseDict(hex_ids_to_base64(data), message(), ignore_unknown_fields=True), True
        except OTLPError as exc:
            raise HTTPException(400, detail=str(exc)) from None
        except (json_format.ParseError, binascii.Error, ValueError, TypeError) as exc:
            raise HTTPException(400, detail=f"body is not an OTLP/JSON {name}: {exc}") from None
    raise HTTPException(
        415, detail=f"Content-Type {ctype or '(none)'!r} not supported: use application/x-protobuf or application/json"
    )


async def _export(
    request: Request,
    ctx: ToolContext,
    message: type[Message],
    response: type[Message],
    top_field: str,
    store: Callable[[Any, bytes], int],
) -> Response:
    body = await _body(request)
    msg, as_json = _parse(request, body, message, top_field)
    try:
        await run_in_threadpool(store, msg, body)
    except (OTLPError, ValueError) as exc:
        raise HTTPException(400, detail=str(exc)) from None
    if as_json:
        return Response(content=json_format.MessageToJson(response(), indent=None), media_type="application/json")
    return Response(content=response().SerializeToString(), media_type="application/x-protobuf")


class RecentBatches:
    """Digests of the last `size` log requests stored (oldest forgotten first); callers hold _LOG_WRITES."""

    def __init__(self, size: int = RECENT_LOG_BATCHES) -> None:
        self.size = size
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._seen

    def add(self, digest: bytes) -> None:
        self._seen[digest] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)


def _retry_digest(msg: ExportLogsServiceRequest, body: bytes, as_json: bool) -> bytes | None:
    """The digest that recognises a retried logs request, or None when one record has no timestamp."""
    for rl in msg.resource_logs:
        for sl in rl.scope_logs:
            for rec in sl.log_records:
                if not (rec.time_unix_nano or rec.observed_time_unix_nano):
                    return None
    return hashlib.blake2b(body, digest_size=16, person=b"json" if as_json else b"protobuf").digest()


@router.post("/v1/traces", responses=_ERRORS, dependencies=[Depends(require_otlp_token)])
async def otlp_traces(request: Request, ctx: Ctx) -> Response:
    """OTLP/HTTP traces: spans into the embedded trace store."""

    def store(msg: ExportTraceServiceRequest, body: bytes) -> int:
        rows = span_rows(msg)
        return trace_store(ctx).add_rows(rows) if rows else 0

    return await _export(request, ctx, ExportTraceServiceRequest, ExportTraceServiceResponse, "resourceSpans", store)


@router.post("/v1/logs", responses=_ERRORS, dependencies=[Depends(require_otlp_token)])
async def otlp_logs(request: Request, ctx: Ctx) -> Response:
    """OTLP/HTTP logs: records into the embedded log store."""

    as_json = request.headers.get("content-type", "").split(";")[0].strip().lower() == "application/json"

    def store(msg: ExportLogsServiceRequest, body: bytes) -> int:
        digest = _retry_digest(msg, body, as_json)
        recent = ctx.resource("otlp_recent_log_batches", RecentBatches)
        if digest is not None and digest in recent:  # a retry costs no conversion (checked again below)
            return 0
        lines = log_lines(msg, ctx.clock.now())
        if not lines:
            return 0
        rows = list(log_rows(lines))  # converted and redacted outside the lock: another request may write
        with _LOG_WRITES:
            if digest is not None and digest in recent:
                return 0
            stored = get_log_store(ctx).insert(rows, batch_size=len(rows))
            if digest is not None:
                recent.add(digest)
            return stored

    return await _export(request, ctx, ExportLogsServiceRequest, ExportLogsServiceResponse, "resourceLogs", store)


@router.post("/v1/metrics", responses=_ERRORS, dependencies=[Depends(require_otlp_token)])
async def otlp_metrics(request: Request, ctx: Ctx) -> Response:
    """OTLP/HTTP metrics: data points into the embedded metric store (Prometheus-style names)."""

    def store(msg: ExportMetricsServiceRequest, body: bytes) -> int:
        points = metric_points(msg, ctx.clock.now())
        if not points:
            return 0
        with _METRIC_WRITES:
            store = get_metric_store(ctx)
            stored = store.ingest(points)
            for name, kind in metric_kinds(msg).items():  # OTLP says what each series is
                if store.metric_kind(name) != kind:
                    store.set_metric_kind(name, kind)
            return stored

    return await _export(
        request, ctx, ExportMetricsServiceRequest, ExportMetricsServiceResponse, "resourceMetrics", store
    )
