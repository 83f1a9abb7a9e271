"""Import and export of the incident log: JSON (lossless), CSV (ours, and Notion database exports)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from firebreak.memory import incident_log as log
from firebreak.memory.records import CountermeasureRecord, IncidentRecord, RemediationRecord, to_record
from firebreak.state.incidents import Countermeasure, Incident, Remediation, TimelineEntry

CSV_COLUMNS = [
    "id", "title", "services", "severity", "status", "started_at", "detected_at", "mitigated_at", "resolved_at",
    "symptoms", "user_impact", "root_cause", "root_cause_category", "hotfix", "rollback", "links", "tags",
    "source", "countermeasures", "remediations", "timeline", "created_at", "updated_at",
]
# Column names a Notion database export may use, normalised (lowercase, non-letters -> "_").
ALIASES = {
    "name": "title", "incident": "title", "incident_id": "id", "service": "services", "services": "services",
    "start": "started_at", "started": "started_at", "start_time": "started_at", "detected": "detected_at",
    "mitigated": "mitigated_at", "resolved": "resolved_at", "end": "resolved_at", "ended": "resolved_at",
    "ended_at": "resolved_at", "category": "root_cause_category", "root_cause_type": "root_cause_category",
    "impact": "user_impact", "remediation": "remediations", "scheduled_remediation": "remediations",
    "scheduled_remediations": "remediations", "countermeasure": "countermeasures",
    "remediation_owner": "owner", "remediation_due": "due", "due_date": "due", "tag": "tags",
}
EXTRA_COLUMNS = {"owner", "due", "verification"}


class ImportError_(ValueError):
    """A bad row or field, named: `file: row N: field: message`."""


def export_records(session: Session) -> list[IncidentRecord]:
    incidents = session.scalars(select(Incident).order_by(Incident.created_at, Incident.id)).all()
    return [to_record(i) for i in incidents]


def export_json(session: Session) -> str:
    return json.dumps({"incidents": [r.model_dump(mode="json") for r in export_records(session)]}, indent=2)


def export_csv(session: Session) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for rec in export_records(session):
        row = rec.model_dump(mode="json")
        out: dict[str, Any] = {}
        for col in CSV_COLUMNS:
            v = row.get(col)
            if col in ("services", "tags"):
                out[col] = ", ".join(v or [])
            elif isinstance(v, list | dict):
                out[col] = json.dumps(v)
            elif isinstance(v, bool):
                out[col] = "yes" if v else "no"
            else:
                out[col] = "" if v is None else v
        writer.writerow(out)
    return buf.getvalue()


def _norm(header: str) -> str:
    key = re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")
    if key in CSV_COLUMNS or key in EXTRA_COLUMNS:
        return key
    return ALIASES.get(key, key)


_NOTION_DATE = re.compile(
    r"^(?P<body>[A-Z][a-z]+ \d{1,2}, \d{4}(?: \d{1,2}:\d{2} ?(?:AM|PM)?)?)"
    r"(?: ?\((?P<paren>[^)]+)\)| (?P<zone>UTC|GMT[+-]?\d*))?$"
)


def _parse_zone(text: str) -> Any:
    text = text.strip()
    if text in ("UTC", "GMT"):
        return UTC
    m = re.fullmatch(r"(?:UTC|GMT)([+-])(\d{1,2})(?::?(\d{2}))?", text)
    if m:
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
        return timezone(delta if m.group(1) == "+" else -delta)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {text!r}") from None


def parse_timestamp(value: str, default_tz: str | None = None) -> datetime | None:
    """ISO 8601 with a zone, or Notion's "November 4, 2025 9:12 AM (UTC)". No zone: refused
    unless the importer was given one explicitly (`--timezone`)."""
    value = value.strip()
    if not value:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        m = _NOTION_DATE.match(value)
        if not m:
            raise ValueError(f"cannot read timestamp {value!r} (use ISO 8601, e.g. 2026-03-02T08:00:00Z)") from None
        body = m.group("body")
        fmt = "%B %d, %Y %I:%M %p" if ("AM" in body or "PM" in body) else (
            "%B %d, %Y %H:%M" if ":" in body else "%B %d, %Y")
        dt = datetime.strptime(body.replace("AM", " AM").replace("PM", " PM").replace("  ", " "), fmt)
        zone = m.group("paren") or m.group("zone")
        if zone:
            dt = dt.replace(tzinfo=_parse_zone(zone))
    if dt.tzinfo is None:
        if default_tz is None:
            raise ValueError(f"timestamp {value!r} has no timezone (e.g. 2026-03-02T08:00:00Z)")
        dt = dt.replace(tzinfo=_parse_zone(default_tz))
    return dt.astimezone(UTC)


def _parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in ("yes", "true", "1", "y", "checked", "x"):
        return True
    if v in ("", "no", "false", "0", "n", "unchecked"):
        return False
    raise ValueError(f"expected yes or no, got {value!r}")


def _split_list(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("["):
        return [str(v) for v in json.loads(value)]
    return [v.strip() for v in value.split(",") if v.strip()]


def _row_to_record(row: dict[str, str], default_tz: str | None, now: datetime) -> IncidentRecord:
    data: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for header, raw in row.items():
        if header is None:
            raise ValueError("row has more cells than the header")
        key = _norm(header)
        raw = (raw or "").strip()
        if key in EXTRA_COLUMNS:
            extra[key] = raw
            continue
        if key not in CSV_COLUMNS:
            continue  # Notion exports carry extra columns (e.g. "Created by"); they are not incident fields.
        try:
            if key.endswith("_at"):
                data[key] = parse_timestamp(raw, default_tz)
            elif key in ("hotfix", "rollback"):
                data[key] = _parse_bool(raw)
            elif key in ("services", "tags"):
                data[key] = _split_list(raw)
            elif key in ("links", "timeline"):
                data[key] = json.loads(raw) if raw else []
            elif key == "countermeasures":
                data[key] = _countermeasures(raw, data, now)
            elif key == "remediations" or raw:
                data[key] = raw
        except (ValueError, json.JSONDecodeError) as exc:
            raise ValueError(f"{key}: {exc}") from None
    if isinstance(data.get("remediations"), str):
        try:
            data["remediations"] = _remediations(data["remediations"], extra, default_tz)
        except ValueError as exc:
            raise ValueError(f"remediations: {exc}") from None
    if not data.get("title"):
        raise ValueError("title: missing (a Title or Name column is required)")
    if not data.get("severity"):
        raise ValueError("severity: missing")
    rec = IncidentRecord.model_validate({"id": data.pop("id", ""), **data})
    for field, value in (("severity", rec.severity), ("status", rec.status),
                         ("root_cause_category", rec.root_cause_category)):
        log._check(field, value)
    return rec


def _countermeasures(raw: str, data: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    if not raw:
        return []
    if raw.startswith("["):
        return list(json.loads(raw))
    at = data.get("mitigated_at") or data.get("started_at") or now
    return [CountermeasureRecord(at=at, what=line.strip(), by="import").model_dump()
            for line in re.split(r"[\n;]", raw) if line.strip()]


def _remediations(raw: str, extra: dict[str, str], default_tz: str | None) -> list[dict[str, Any]]:
    if not raw:
        return []
    if raw.startswith("["):
        return list(json.loads(raw))
    due: date | None = None
    if extra.get("due"):
        ts = extra["due"]
        due = date.fromisoformat(ts) if re.fullmatch(r"\d{4}-\d{2}-\d{2}", ts) else (
            parse_timestamp(ts, default_tz or "UTC") or datetime.now(UTC)).date()
    return [RemediationRecord(what=line.strip(), owner=extra.get("owner") or "unassigned", due_date=due,
                              verification=extra.get("verification", "")).model_dump()
            for line in raw.split("\n") if line.strip()]


def read_csv(text: str, *, source: str, default_tz: str | None, now: datetime) -> list[IncidentRecord]:
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if not reader.fieldnames:
        raise ImportError_(f"{source}: empty file or no header row")
    records = []
    for n, row in enumerate(reader, start=2):  # row 1 is the header
        try:
            records.append(_row_to_record(row, default_tz, now))
        except (ValueError, ValidationError) as exc:
            msg = str(exc)
            if isinstance(exc, ValidationError):
                e = exc.errors()[0]
                msg = f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            raise ImportError_(f"{source}: row {n}: {msg}") from None
    return records


def read_json(text: str, *, source: str) -> list[IncidentRecord]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportError_(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    items = data.get("incidents") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise ImportError_(f"{source}: expected a list of incidents or {{\"incidents\": [...]}}")
    records = []
    for n, item in enumerate(items):
        try:
            rec = IncidentRecord.model_validate(item)
            for field in ("severity", "status", "root_cause_category"):
                log._check(field, getattr(rec, field))
            records.append(rec)
        except ValidationError as exc:
            e = exc.errors()[0]
            raise ImportError_(f"{source}: incidents[{n}].{'.'.join(str(p) for p in e['loc'])}: {e['msg']}") from None
        except ValueError as exc:
            raise ImportError_(f"{source}: incidents[{n}].{exc}") from None
    return records


def read_file(path: Path, *, default_tz: str | None, now: datetime) -> list[IncidentRecord]:
    if not path.is_file():
        raise ImportError_(f"{path}: no such file")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return read_json(text, source=str(path))
    if path.suffix.lower() == ".csv":
        try:
            return read_csv(text, source=str(path), default_tz=default_tz, now=now)
        except ImportError_ as exc:
            if "no timezone" in str(exc):
                raise ImportError_(f"{exc}; pass --timezone for exports without zones") from None
            raise
    raise ImportError_(f"{path}: unknown format (expected .json or .csv)")


def import_records(session: Session, records: list[IncidentRecord], *, actor: str, at: datetime,
                   source: str) -> list[str]:
    """Write records in the caller's transaction; an id that exists already aborts the whole import."""
    ids = []
    for n, rec in enumerate(records):
        inc_id = rec.id or log.next_incident_id(session, (rec.started_at or rec.detected_at or at).year)
        if session.get(Incident, inc_id) is not None:
            raise ImportError_(f"{source}: record {n + 1}: id: {inc_id} already exists in the incident log")
        if rec.id:
            log._reserve_explicit_id(session, inc_id)
        inc = Incident(
            id=inc_id, title=rec.title, services=rec.services, severity=rec.severity, status=rec.status,
            started_at=rec.started_at, detected_at=rec.detected_at, mitigated_at=rec.mitigated_at,
            resolved_at=rec.resolved_at, symptoms=rec.symptoms, user_impact=rec.user_impact,
            root_cause=rec.root_cause, root_cause_category=rec.root_cause_category, hotfix=rec.hotfix,
            rollback=rec.rollback, links=rec.links, tags=rec.tags, source=rec.source,
            created_at=rec.created_at or at, updated_at=rec.updated_at or at,
        )
        session.add(inc)
        session.flush()
        for c in rec.countermeasures:
            session.add(Countermeasure(incident_id=inc_id, at=c.at, what=c.what, by=c.by, worked=c.worked,
                                       approval_id=c.approval_id))
        for r in rec.remediations:
            session.add(Remediation(incident_id=inc_id, what=r.what, owner=r.owner, due_date=r.due_date,
                                    status=r.status, verification=r.verification, done_at=r.done_at))
        for t in rec.timeline:
            session.add(TimelineEntry(incident_id=inc_id, at=t.at, actor=t.actor, kind=t.kind, field=t.field,
                                      old_value=t.old_value, new_value=t.new_value, text=t.text))
        session.flush()
        log.record(session, inc, at=at, actor=actor, kind="imported", text=f"Imported from {source}")
        ids.append(inc_id)
    return ids
