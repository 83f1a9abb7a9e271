"""Pieces every vendor parser shares: field cleaning, severities, services, timestamps, JSON and errors.

Split from `normalize.py` (Sentry) and `prom.py` (Grafana, Alertmanager) so both read one definition
of what a clean label, a severity or a refused field looks like.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any

import pydantic_core
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, TypeAdapter, ValidationError

from firebreak.server.intake.errors import IntakeRefused
from firebreak.server.intake.models import AlertLink, AlertSeverity, NormalizedAlert
from firebreak.settings import Settings

SERVICE_LABELS = ("service", "job", "app")

_SEVERITY = {
    **dict.fromkeys(("critical", "crit", "page", "p1", "sev1", "fatal", "emergency", "emerg", "alert",
                     "disaster"), "critical"),
    **dict.fromkeys(("error", "err", "major", "high", "p2", "sev2"), "error"),
    **dict.fromkeys(("warning", "warn", "minor", "medium", "average", "p3", "sev3"), "warning"),
    **dict.fromkeys(("info", "informational", "information", "low", "notice", "debug", "log", "none",
                     "ok", "p4", "p5", "sev4", "sev5"), "info"),
}


def _utc(value: datetime) -> datetime:
    """Aware -> UTC; a timestamp that cannot be represented is a field error, not a crash."""
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("timestamp out of range") from None


Timestamp = Annotated[AwareDatetime, AfterValidator(_utc)]
StrOrInt = str | int


class Lenient(BaseModel):
    """A vendor shape: only the fields we read are declared, everything else is ignored (and kept in `raw`)."""

    model_config = ConfigDict(extra="ignore")


@dataclass
class ParsedDelivery:
    """What one delivery carried: alerts to ingest, alerts the sender dropped, or why it was ignored."""

    alerts: list[NormalizedAlert] = field(default_factory=list)
    truncated: int = 0
    ignored: str | None = None


def clean(text: str | None, limit: int | None = None) -> str:
    """NUL is refused by PostgreSQL text columns; very long names are refused by varchar ones."""
    if not text:
        return ""
    text = text.replace("\x00", "").strip()
    return text[:limit] if limit else text


def fingerprint_of(value: str) -> str:
    value = value.replace("\x00", "")
    if len(value) <= 200:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def labels_fingerprint(labels: dict[str, str]) -> str:
    text = json.dumps(sorted(labels.items()), ensure_ascii=False)
    return "labels:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def severity_of(value: str | None, default: AlertSeverity = "warning") -> AlertSeverity:
    if not value:
        return default
    return _SEVERITY.get(value.strip().lower(), default)  # type: ignore[return-value]


def resolve_service(settings: Settings, labels: dict[str, str], fallback: str | None = None) -> str:
    name = ""
    for key in SERVICE_LABELS:
        if labels.get(key, "").strip():
            name = labels[key]
            break
    name = clean(name or fallback or "unknown", 200) or "unknown"
    return clean(settings.service_map.get(name, name), 200) or "unknown"


def real_time(ts: datetime | None) -> datetime | None:
    """Alertmanager and Grafana send 0001-01-01T00:00:00Z for "no end yet"."""
    if ts is None or ts.year <= 1970:
        return None
    return ts


def link(kind: str, url: str | None, label: str = "") -> list[AlertLink]:
    url = clean(url)
    return [AlertLink(kind=kind, url=url, label=label)] if url else []


def validate_model(model: type[Lenient] | TypeAdapter[Any], data: Any, prefix: str = "") -> Any:
    """The vendor shape, or IntakeRefused(422) naming up to five wrong fields."""
    try:
        if isinstance(model, TypeAdapter):
            return model.validate_python(data)
        return model.model_validate(data)
    except ValidationError as exc:
        raise IntakeRefused(422, describe_errors(exc, prefix), "invalid_payload") from None


def describe_errors(exc: ValidationError, prefix: str = "") -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in (*([prefix] if prefix else []), *err.get("loc", ())))
        parts.append(f"{loc or 'body'}: {err.get('msg')}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise IntakeRefused(400, "empty body: expected a JSON object", "malformed_json")
    try:
        value = pydantic_core.from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise IntakeRefused(400, f"body is not valid JSON: {exc}", "malformed_json") from None
    if not isinstance(value, dict):
        raise IntakeRefused(422, f"body: expected a JSON object, got {type(value).__name__}", "invalid_payload")
    return value
