"""Reading recorded-incident folders: incident.yaml checks, the telemetry readers, and bad input named
by file, line and column (or field path) with nothing read past `triage_at`."""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firebreak.simulations.recorded.model import RecordedError, find_incidents, is_recorded, load_incident
from firebreak.simulations.recorded.readers import metric_name, read_folder
from firebreak.simulations.recorded.replay import check_changes

RECORDED = Path(__file__).resolve().parent / "fixtures" / "recorded"
SHOP = RECORDED / "shop-checkout-cpu"
API = RECORDED / "nested" / "api-bad-deploy"
TRACE_HEADER = "trace_id,span_id,parent_id,service,operation,start,end,status\n"


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    dst = tmp_path / "shop"
    shutil.copytree(SHOP, dst)
    return dst


def _yaml_edit(folder: Path, old: str, new: str) -> None:
    p = folder / "incident.yaml"
    text = p.read_text()
    assert old in text
    p.write_text(text.replace(old, new))


def _error(folder: Path) -> str:
    with pytest.raises(RecordedError) as exc:
        inc = load_incident(folder)
        check_changes(read_folder(folder, inc.triage_at))
    return str(exc.value)


def test_fixtures_load() -> None:
    inc = load_incident(SHOP)
    assert inc.id == "shop-checkout-cpu" and inc.truth.level == "service" and inc.truth.fault
    assert inc.triage_at == datetime(2024, 4, 9, 10, 25, tzinfo=UTC)
    assert inc.dependency_map() == {"frontend": ["checkout"], "checkout": ["payments-db"]}
    api = load_incident(API)
    assert api.window.since == datetime(2024, 5, 1, 8, 0, tzinfo=UTC)  # written as epoch milliseconds
    assert api.alerts[0].severity == "critical" and api.truth.mitigations[0].action == "rollback"
    assert find_incidents(RECORDED) == [API, SHOP] and is_recorded(SHOP) and not is_recorded(RECORDED)


def test_readers_keep_nothing_after_triage() -> None:
    inc = load_incident(SHOP)
    tel = read_folder(SHOP, inc.triage_at)
    cut = int(inc.triage_at.timestamp() * 1_000_000)
    assert tel.metrics and tel.logs and tel.spans and tel.changes and tel.dropped_after_triage > 0
    assert all(m[0] * 1000 <= cut for m in tel.metrics)
    assert all(row[0] <= cut for row in tel.logs) and all(sp[6] <= cut for sp in tel.spans)
    assert not any("AFTER-TRIAGE-MARKER" in row[3] for row in tel.logs)
    assert [c[3]["version"] for c in tel.changes if "version" in c[3]] == ["2.3.1"]  # the later deploy dropped
    assert {m[2] for m in tel.metrics} == {"cpu", "latency_p99"}  # names normalised
    assert {m[4].get("quantile") for m in tel.metrics if m[2] == "latency_p99"} == {"0.99"}
    levels = {row[2] for row in tel.logs}
    assert levels == {"INFO", "ERROR"}  # "error: ..." lines without a level are guessed ERROR
    roots = [sp for sp in tel.spans if sp[2] is None]
    assert roots and all(sp[3] == "frontend" for sp in roots)
    assert {sp[7] for sp in tel.spans} == {"ok", "error", "unset"}
    assert tel.files == {"metrics": "metrics.csv.gz", "logs": "logs.jsonl", "traces": "traces.csv",
                         "changes": "changes.jsonl"}


def test_plain_and_gzip_files_read_the_same(shop: Path) -> None:
    inc = load_incident(shop)
    before = read_folder(shop, inc.triage_at)
    (shop / "metrics.csv").write_bytes(gzip.decompress((shop / "metrics.csv.gz").read_bytes()))
    (shop / "metrics.csv.gz").unlink()
    (shop / "logs.jsonl.gz").write_bytes(gzip.compress((shop / "logs.jsonl").read_bytes()))
    (shop / "logs.jsonl").unlink()
    after = read_folder(shop, inc.triage_at)
    assert after.metrics == before.metrics and after.logs == before.logs


def test_byte_order_mark_is_dropped(shop: Path) -> None:
    inc = load_incident(shop)
    before = read_folder(shop, inc.triage_at)
    for name in ("traces.csv", "logs.jsonl"):
        p = shop / name
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
    after = read_folder(shop, inc.triage_at)
    assert after.spans == before.spans and after.logs == before.logs


def test_metric_name_rule() -> None:
    assert metric_name("latency p99") == "latency_p99"
    assert metric_name("http.requests/sec") == "http_requests_sec"
    assert metric_name("9lives") == "_9lives"


def test_unknown_field_named_with_folder_and_path(shop: Path) -> None:
    _yaml_edit(shop, "severity: major", "sevrity: major")
    msg = _error(shop)
    assert f"{shop}/incident.yaml: alerts[0].sevrity: unknown field" in msg
    _yaml_edit(shop, "  fault:", "  faults:")
    assert "truth.faults: unknown field" in _error(shop)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("triage_at: 2024-04-09T10:25:00Z", "triage_at: 2024-04-09T10:25:00", "triage_at: timestamp"),
    ("kind: recorded-incident", "kind: drill", "kind:"),
    ("level: service", "level: system", "truth.level:"),
    ("onset: 2024-04-09T10:19:47Z", "onset: 2024-04-09T10:29:00Z", "onset: is after triage_at"),
    ("at: 2024-04-09T10:22:00Z", "at: 2024-04-09T10:26:00Z", "alerts[0].at: is after triage_at"),
    ("culprit: {kind: resource, service: checkout, ref: cpu}", "culprit: {kind: resource, ref: cpu}",
     "truth.culprit.service: level: service needs"),
    ("id: shop-checkout-cpu", "id: Shop_CPU", "id:"),
])
def test_bad_incident_yaml(shop: Path, old: str, new: str, expected: str) -> None:
    _yaml_edit(shop, old, new)
    msg = _error(shop)
    assert msg.startswith(f"{shop}/incident.yaml: ") and expected in msg


def test_folder_without_metrics_or_incident(shop: Path, tmp_path: Path) -> None:
    (shop / "metrics.csv.gz").unlink()
    assert _error(shop) == f"{shop}: no metrics.csv.gz or metrics.csv (required)"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _error(empty) == f"{empty}: no incident.yaml in this folder"


def _rewrite(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, count))


def test_malformed_metric_row_names_file_line_and_column(shop: Path) -> None:
    plain = shop / "metrics.csv"
    plain.write_bytes(gzip.decompress((shop / "metrics.csv.gz").read_bytes()))
    (shop / "metrics.csv.gz").unlink()
    lines = plain.read_text().splitlines()
    cells = lines[3].split(",")
    assert cells[1:3] == ["checkout", "cpu"]
    lines[3] = ",".join([*cells[:3], "abc-not-a-number", *cells[4:]])
    plain.write_text("\n".join(lines) + "\n")
    assert _error(shop) == f"{plain}: line 4, column 4 (value): not a number: 'abc-not-a-number'"


def test_timestamp_forms(shop: Path) -> None:
    traces = shop / "traces.csv"
    _rewrite(traces, "2024-04-09T10:00:00.055000Z", "2024-04-09T10:00:00.055")
    assert _error(shop) == f"{traces}: line 2, column 7 (end): timestamp '2024-04-09T10:00:00.055' has no zone " \
                           "(write e.g. 2026-03-02T08:00:00Z)"
    shutil.copy(SHOP / "traces.csv", traces)
    _rewrite(traces, "2024-04-09T10:01:00Z", "1712656860000")  # epoch ms in an RFC 3339 column
    assert _error(shop).startswith(f"{traces}: line 5, column 6 (start): epoch milliseconds here, but the column "
                                   "started with RFC 3339")
    logs = shop / "logs.jsonl"
    _rewrite(logs, '"ts": 1712656800000,', '"ts": "yesterday",')
    shutil.copy(SHOP / "traces.csv", traces)
    assert _error(shop) == f"{logs}: line 1, field ts: not an RFC 3339 timestamp: 'yesterday'"


def test_bad_log_lines(shop: Path) -> None:
    logs = shop / "logs.jsonl"
    _rewrite(logs, '"level": "INFO"', '"level": "LOUD"')
    assert _error(shop) == f"{logs}: line 1, field level: expected one of DEBUG, INFO, WARN, ERROR, FATAL, got 'LOUD'"
    shutil.copy(SHOP / "logs.jsonl", logs)
    with logs.open("a") as fh:
        fh.write('{"ts": 1712656800000, "service": "x", "message": "ok"\n')
    lines = len(logs.read_text().splitlines())
    assert _error(shop) == f"{logs}: line {lines}, column 54: not JSON: Expecting ',' delimiter"  # cut JSON


def test_bad_trace_and_change_rows(shop: Path) -> None:
    traces = shop / "traces.csv"
    _rewrite(traces, ",ok\n", ",fine\n")
    assert _error(shop) == f"{traces}: line 2, column 8 (status): expected ok, error or empty, got 'fine'"
    shutil.copy(SHOP / "traces.csv", traces)
    _rewrite(traces, "GET /checkout,2024-04-09T10:00:00Z", "GET /checkout")
    assert _error(shop) == f"{traces}: line 2: 7 fields where the header has 8"
    shutil.copy(SHOP / "traces.csv", traces)
    changes = shop / "changes.jsonl"
    _rewrite(changes, '"kind": "config"', '"kind": "weather"')
    assert _error(shop).startswith(f"{changes}: line 1, field kind: ")
    _rewrite(changes, '"kind": "weather"', '"kind": "config"')
    _rewrite(changes, '"at": "2024-04-09T10:05:00Z", ', "")
    assert _error(shop) == f"{changes}: line 1, field at: a recorded change needs its time (`at`)"


def test_header_checks(shop: Path) -> None:
    traces = shop / "traces.csv"
    _rewrite(traces, "trace_id,span_id,parent_id", "trace,span_id,parent_id")
    assert _error(shop) == (f"{traces}: line 1: header lacks trace_id (expected trace_id,span_id,parent_id,service,"
                            "operation,start,end,status,attributes)")


def test_broken_gzip_is_one_error(shop: Path) -> None:
    gz = shop / "metrics.csv.gz"
    data = gz.read_bytes()
    gz.write_bytes(data[: len(data) // 2])  # cut short
    assert _error(shop).startswith(f"{gz}: cannot read the file: ")
    broken = bytearray(data)
    broken[40:60] = b"\xff" * 20  # damaged deflate stream
    gz.write_bytes(bytes(broken))
    assert _error(shop).startswith(f"{gz}: ")
    gz.write_bytes(b"plain text, not gzip")
    assert _error(shop).startswith(f"{gz}: cannot read the file: ")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.text(alphabet=st.sampled_from(list('0123456789-:TZ.,{}"[] \nabcdeflnorstuv')), max_size=300),
       target=st.sampled_from(["metrics.csv", "logs.jsonl", "traces.csv", "changes.jsonl"]))
def test_any_file_content_is_read_or_one_recorded_error(tmp_path_factory: pytest.TempPathFactory, body: str,
                                                        target: str) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    shutil.copy(SHOP / "incident.yaml", folder / "incident.yaml")
    shutil.copy(SHOP / "metrics.csv.gz", folder / "metrics.csv.gz")
    if target == "metrics.csv":
        (folder / "metrics.csv.gz").unlink()
    header = {"metrics.csv": "ts,service,name,value\n", "traces.csv": TRACE_HEADER}.get(target, "")
    (folder / target).write_text(header + body)
    try:
        inc = load_incident(folder)
        check_changes(read_folder(folder, inc.triage_at))
    except RecordedError as exc:
        assert str(exc).startswith(str(folder)) and "\n" not in str(exc)
