"""OTLP log retries: an exporter that re-sends a batch it already delivered must not double the records.

Log records carry no ids, so the intake recognises a retried request by its (decompressed) body when
every record has a timestamp; untimed records are stored each time, they are new data.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from pydantic import SecretStr

from firebreak.context import ToolContext
from firebreak.server.app import create_app
from firebreak.server.otlp import RecentBatches
from firebreak.tools.log_store import get_log_store

TOKEN = "t0ken"
PROTO = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-protobuf"}
EPOCH, FAR = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
T0 = 1_772_438_400_000_000_000  # 2026-03-02T08:00:00Z in ns


@pytest.fixture
def client(ctx: ToolContext) -> Iterator[TestClient]:
    ctx.settings.otlp_token = SecretStr(TOKEN)
    with TestClient(create_app(ctx, start_worker=False)) as c:
        yield c


def _request(n: int, *, first_ns: int = T0, timed: bool = True, service: str = "mailer") -> bytes:
    records = [
        LogRecord(
            time_unix_nano=first_ns + i * 1_000_000 if timed else 0,
            severity_text="INFO",
            body=AnyValue(string_value=f"sent mail {i}"),
        )
        for i in range(n)
    ]
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value=service))])
    req = ExportLogsServiceRequest(
        resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=records)])]
    )
    return req.SerializeToString()


def _count(ctx: ToolContext, service: str = "mailer") -> int:
    return get_log_store(ctx).search(since=EPOCH, until=FAR, service=service, limit=1)[1]


def test_a_retried_batch_is_stored_once(client: TestClient, ctx: ToolContext) -> None:
    body = _request(20)
    assert client.post("/v1/logs", content=body, headers=PROTO).status_code == 200
    assert client.post("/v1/logs", content=body, headers=PROTO).status_code == 200  # the sender stops retrying
    assert _count(ctx) == 20
    # Compressed this time (another gzip header time): the same records, still a retry.
    r = client.post("/v1/logs", content=gzip.compress(body, mtime=12345), headers={**PROTO, "Content-Encoding": "gzip"})
    assert r.status_code == 200 and _count(ctx) == 20


def test_other_records_or_times_are_not_a_retry(client: TestClient, ctx: ToolContext) -> None:
    client.post("/v1/logs", content=_request(5), headers=PROTO)
    client.post("/v1/logs", content=_request(5, first_ns=T0 + 1), headers=PROTO)  # 1 ns later
    client.post("/v1/logs", content=_request(6), headers=PROTO)  # one more record
    client.post("/v1/logs", content=_request(5, service="relay"), headers=PROTO)  # another resource
    assert _count(ctx) == 16 and _count(ctx, "relay") == 5


def test_untimed_records_are_stored_each_time(client: TestClient, ctx: ToolContext) -> None:
    body = _request(3, timed=False)
    for _ in range(2):
        assert client.post("/v1/logs", content=body, headers=PROTO).status_code == 200
    assert _count(ctx) == 6


def test_a_retried_json_batch_is_stored_once(client: TestClient, ctx: ToolContext) -> None:
    logs = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "mailer"}}]},
                "scopeLogs": [{"logRecords": [{"timeUnixNano": str(T0), "body": {"stringValue": "hello"}}]}],
            }
        ]
    }
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for _ in range(3):
        assert client.post("/v1/logs", content=json.dumps(logs), headers=headers).status_code == 200
    assert _count(ctx) == 1


def test_recent_batches_forget_the_oldest() -> None:
    recent = RecentBatches(size=3)
    for d in (b"a", b"b", b"c", b"d"):
        recent.add(d)
    assert b"a" not in recent and all(d in recent for d in (b"b", b"c", b"d"))
