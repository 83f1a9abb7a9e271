"""Telemetry files of a recorded incident: metrics and traces (csv), logs (jsonl), changes (jsonl).

Each file may be gzip-compressed (`.gz`) or plain. Timestamps are RFC 3339 with a zone or integer
epoch milliseconds, and one column keeps to one of the two (a file that mixes them was exported by
two tools and is refused rather than guessed). A malformed row stops the read with one
`RecordedError` naming the file, the line and the column, before anything is written anywhere:
replaying half a file would score the investigator on a world that never existed.

Readers return plain tuples with integer times (the stores' own units), not models: a 50 MB folder
holds hundreds of thousands of rows and replay must take seconds.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from firebreak.simulations.recorded.model import RecordedError

LEVELS = ("DEBUG", "INFO", "WARN", "ERROR", "FATAL")
_LEVEL_ALIASES = {"WARNING": "WARN", "ERR": "ERROR", "CRITICAL": "FATAL", "CRIT": "FATAL", "TRACE": "DEBUG",
                  "NOTICE": "INFO", "INFORMATION": "INFO", "PANIC": "FATAL", "EMERG": "FATAL", "ALERT": "FATAL"}
_GUESS = [(re.compile(r"\b(fatal|panic|critical)\b", re.I), "FATAL"),
          (re.compile(r"\b(error|err|exception|traceback|failed|failure)\b", re.I), "ERROR"),
          (re.compile(r"\b(warn|warning)\b", re.I), "WARN"),
          (re.compile(r"\b(debug|trace)\b", re.I), "DEBUG")]
_METRIC_NAME_BAD = re.compile(r"[^a-zA-Z0-9_:]")

METRIC_COLUMNS = ("ts", "service", "name", "value")
TRACE_COLUMNS = ("trace_id", "span_id", "parent_id", "service", "operation", "start", "end", "status")


@dataclass
class Telemetry:
    """Everything a folder holds up to `triage_at`, checked, ready to write.

    metrics: (ts_ms, service, name, value, labels); logs: (ts_us, service, level, message, attributes);
    spans: (trace_id, span_id, parent_id, service, operation, start_us, end_us, status, attributes);
    changes: `/webhooks/changes` objects (validated by the change model when recorded).
    """

    metrics: list[tuple[int, str, str, float, dict[str, str]]] = field(default_factory=list)
    logs: list[tuple[int, str, str, str, dict[str, Any]]] = field(default_factory=list)
    spans: list[tuple[str, str, str | None, str, str, int, int, str, dict[str, Any]]] = field(default_factory=list)
    changes: list[tuple[str, int, int, dict[str, Any]]] = field(default_factory=list)  # (file, line, at_us, obj)
    dropped_after_triage: int = 0
    files: dict[str, str] = field(default_factory=dict)  # kind -> file read

    def services(self) -> set[str]:
        return {m[1] for m in self.metrics} | {row[1] for row in self.logs} | {s[3] for s in self.spans}


class RowError(ValueError):
    """A bad cell: the reader adds file and line; `column` names where in the row."""

    def __init__(self, column: str, message: str) -> None:
        self.column = column
        super().__init__(message)


EPOCH_MS = "epoch milliseconds"
RFC3339 = "RFC 3339"


class TimeColumn:
    """One timestamp column: RFC 3339 with a zone or epoch ms, decided by its first value, then held to it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.form: str | None = None

    def micros(self, value: object) -> int:
        """The instant as integer microseconds since the epoch (UTC)."""
        if value.__class__ is str:
            text: str = value  # type: ignore[assignment]
            if text.isdigit() or (text[:1] == "-" and text[1:].isdigit()):
                if self.form is not EPOCH_MS:
                    self._hold(EPOCH_MS)
                return int(text) * 1000
            if self.form is not RFC3339:
                self._hold(RFC3339)
            try:
                dt = datetime.fromisoformat(text)  # 3.11 reads a trailing Z as UTC
            except ValueError:
                if not text:
                    raise RowError(self.name, "a timestamp is required (RFC 3339 with a zone, or epoch "
                                              "milliseconds)") from None
                raise RowError(self.name, f"not an RFC 3339 timestamp: {value!r}") from None
            if dt.tzinfo is None:
                raise RowError(self.name, f"timestamp {value!r} has no zone (write e.g. 2026-03-02T08:00:00Z)")
            return round(dt.timestamp() * 1_000_000)
        if value.__class__ is int:
            if self.form is not EPOCH_MS:
                self._hold(EPOCH_MS)
            return int(value) * 1000  # type: ignore[call-overload]
        if value is None:
            raise RowError(self.name, "a timestamp is required (RFC 3339 with a zone, or epoch milliseconds)")
        raise RowError(self.name, f"expected an RFC 3339 timestamp or epoch milliseconds, got {value!r}")

    def _hold(self, form: str) -> None:
        if self.form is None:
            self.form = form
        elif self.form != form:
            raise RowError(self.name, f"{form} here, but the column started with {self.form}: use one form")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def find_file(folder: Path, stem: str) -> Path | None:
    """`<stem>.gz` first, then the plain file; None when neither exists."""
    for name in (f"{stem}.gz", stem):
        p = folder / name
        if p.is_file():
            return p
    return None


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")  # a BOM (spreadsheet export) is dropped
    return path.open(encoding="utf-8-sig", newline="")


def _fail(path: Path, where: str, message: str) -> RecordedError:
    return RecordedError(str(path), [(where, message)])


def _csv_rows(path: Path, required: tuple[str, ...], optional: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells ordered as required + optional, '' for an absent optional column)."""
    try:
        with _open_text(path) as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if header is None:
                raise _fail(path, "line 1", f"empty file: expected the header {','.join(required)}")
            header = [h.strip() for h in header]
            missing = [c for c in required if c not in header]
            if missing:
                raise _fail(path, "line 1", f"header lacks {', '.join(missing)} (expected {','.join(required)}"
                                            f"{''.join(',' + o for o in optional)})")
            idx = [header.index(c) for c in required] + [header.index(c) if c in header else -1 for c in optional]
            width = len(header)
            for cells in reader:
                if not cells:
                    continue
                if len(cells) != width:
                    raise _fail(path, f"line {reader.line_num}", f"{len(cells)} fields where the header has {width}")
                yield reader.line_num, [cells[i] if i >= 0 else "" for i in idx]
    except UnicodeDecodeError as exc:
        raise _fail(path, "", f"not UTF-8 text ({exc.reason})") from None
    except (OSError, EOFError, zlib.error, csv.Error) as exc:
        raise _fail(path, "", f"cannot read the file: {exc}") from None


def _where(line: int, columns: tuple[str, ...], column: str) -> str:
    pos = f"column {columns.index(column) + 1} " if column in columns else ""
    return f"line {line}, {pos}({column})" if pos else f"line {line}, {column}"


def metric_name(name: str) -> str:
    """The format's metric-name rule: `[a-zA-Z_:][a-zA-Z0-9_:]*`, other characters become `_`."""
    out = _METRIC_NAME_BAD.sub("_", name.strip())
    return "_" + out if out[:1].isdigit() else out


def _json_object(text: str, column: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise RowError(column, "not a JSON object") from None
    if not isinstance(value, dict):
        raise RowError(column, "not a JSON object")
    return value


def read_metrics(path: Path, until_us: int, tel: Telemetry) -> None:
    columns = (*METRIC_COLUMNS, "labels")
    ts_col = TimeColumn("ts")
    append = tel.metrics.append
    names: dict[str, str] = {}
    for line, (ts, service, name, value, labels) in _csv_rows(path, METRIC_COLUMNS, ("labels",)):
        try:
            us = ts_col.micros(ts.strip())
            if not service.strip():
                raise RowError("service", "empty service")
            if not name.strip():
                raise RowError("name", "empty metric name")
            try:
                number = float(value)
            except ValueError:
                raise RowError("value", f"not a number: {value!r}") from None
            labs = {str(k): str(v) for k, v in _json_object(labels, "labels").items()} if labels else {}
        except RowError as exc:
            raise _fail(path, _where(line, columns, exc.column), str(exc)) from None
        if us > until_us:
            tel.dropped_after_triage += 1
            continue
        if math.isfinite(number):
            norm = names.get(name)
            if norm is None:
                norm = names[name] = metric_name(name)
            append((us // 1000, service.strip(), norm, number, labs))


def _level(value: object, message: str) -> str:
    if value is None or value == "":
        for rx, level in _GUESS:
            if rx.search(message):
                return level
        return "INFO"
    if not isinstance(value, str):
        raise RowError("level", f"expected one of {', '.join(LEVELS)}, got {value!r}")
    up = value.strip().upper()
    up = _LEVEL_ALIASES.get(up, up)
    if up not in LEVELS:
        raise RowError("level", f"expected one of {', '.join(LEVELS)}, got {value!r}")
    return up


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    try:
        with _open_text(path) as fh:
            for n, text in enumerate(fh, start=1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text.rstrip("\r\n"))
                except json.JSONDecodeError as exc:
                    raise _fail(path, f"line {n}, column {exc.colno}", f"not JSON: {exc.msg}") from None
                if not isinstance(obj, dict):
                    raise _fail(path, f"line {n}", "each line must be one JSON object")
                yield n, obj
    except UnicodeDecodeError as exc:
        raise _fail(path, "", f"not UTF-8 text ({exc.reason})") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise _fail(path, "", f"cannot read the file: {exc}") from None


def read_logs(path: Path, until_us: int, tel: Telemetry) -> None:
    ts_col = TimeColumn("ts")
    append = tel.logs.append
    for n, obj in _jsonl(path):
        try:
            us = ts_col.micros(obj.get("ts"))
            service = obj.get("service")
            if not isinstance(service, str) or not service.strip():
                raise RowError("service", "a non-empty service name is required")
            message = obj.get("message")
            if not isinstance(message, str):
                raise RowError("message", "a message (text) is required")
            level = _level(obj.get("level"), message)
            attrs = obj.get("attributes") or {}
            if not isinstance(attrs, dict):
                raise RowError("attributes", "must be a JSON object")
        except RowError as exc:
            raise _fail(path, f"line {n}, field {exc.column}", str(exc)) from None
        if us > until_us:
            tel.dropped_after_triage += 1
            continue
        append((us, service.strip(), level, message, attrs))


def read_traces(path: Path, until_us: int, tel: Telemetry) -> None:
    columns = (*TRACE_COLUMNS, "attributes")
    start_col, end_col = TimeColumn("start"), TimeColumn("end")
    append = tel.spans.append
    for line, cells in _csv_rows(path, TRACE_COLUMNS, ("attributes",)):
        trace_id, span_id, parent_id, service, operation, start, end, status, attributes = cells
        try:
            for col, val in (("trace_id", trace_id), ("span_id", span_id), ("service", service),
                             ("operation", operation)):
                if not val.strip():
                    raise RowError(col, f"empty {col}")
            s_us, e_us = start_col.micros(start.strip()), end_col.micros(end.strip())
            if e_us < s_us:
                raise RowError("end", "is before start")
            st = status.strip().lower() or "unset"
            if st not in ("ok", "error", "unset"):
                raise RowError("status", f"expected ok, error or empty, got {status!r}")
            attrs = _json_object(attributes, "attributes")
        except RowError as exc:
            raise _fail(path, _where(line, columns, exc.column), str(exc)) from None
        if e_us > until_us:  # not finished at triage time: no exporter would have sent it yet
            tel.dropped_after_triage += 1
            continue
        append((trace_id.strip(), span_id.strip(), parent_id.strip() or None, service.strip(), operation.strip(),
                s_us, e_us, st, attrs))


def read_changes(path: Path, until_us: int, tel: Telemetry) -> None:
    at_col = TimeColumn("at")
    for n, obj in _jsonl(path):
        try:
            if "at" not in obj:
                raise RowError("at", "a recorded change needs its time (`at`)")
            us = at_col.micros(obj["at"])
        except RowError as exc:
            raise _fail(path, f"line {n}, field {exc.column}", str(exc)) from None
        if us > until_us:
            tel.dropped_after_triage += 1
            continue
        tel.changes.append((str(path), n, us, obj))


def read_folder(folder: Path, triage_at: datetime) -> Telemetry:
    """All telemetry up to `triage_at`; a folder without metrics or with one bad row raises RecordedError."""
    delta = triage_at - _EPOCH
    until_us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    tel = Telemetry()
    metrics = find_file(folder, "metrics.csv")
    if metrics is None:
        raise RecordedError(str(folder), [("", "no metrics.csv.gz or metrics.csv (required)")])
    readers = [("metrics", metrics, read_metrics), ("logs", find_file(folder, "logs.jsonl"), read_logs),
               ("traces", find_file(folder, "traces.csv"), read_traces),
               ("changes", find_file(folder, "changes.jsonl"), read_changes)]
    for kind, path, read in readers:
        if path is not None:
            read(path, until_us, tel)
            tel.files[kind] = path.name
    return tel
