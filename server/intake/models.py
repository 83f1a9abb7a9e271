"""The normalised alert every source is turned into, and what one ingest did.

Kept separate from the vendor parsers so drills and tests can build alerts directly and call
`server.intake.service.ingest_alerts` without going through HTTP.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator, model_validator

from firebreak.redact import redact_obj, redact_text

# What is kept of one alert's outside text: a 16 MB description must not hold the writer (redaction is
# linear in the text) nor grow memory; the cut is said in the text itself.
MAX_TITLE_CHARS = 1_000
MAX_TEXT_CHARS = 16_000


def cap_text(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f" [… {len(text) - limit} more characters cut at intake]"


def _cap_strings(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        return cap_text(value, limit)
    if isinstance(value, dict):
        return {k: _cap_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [_cap_strings(v, limit) for v in value]
    return value


AlertStatus = Literal["firing", "resolved"]
AlertSeverity = Literal["critical", "error", "warning", "info"]


class AlertLink(BaseModel):
    """A link a person can open: the rule, a dashboard, a panel, the Sentry issue, a runbook."""

    kind: str = Field(max_length=32)
    url: str
    label: str = ""


class NormalizedAlert(BaseModel):
    """One alert, whatever sent it. `(source, fingerprint)` identifies it across re-sends."""

    source: str = Field(min_length=1, max_length=32)
    fingerprint: str = Field(min_length=1)
    status: AlertStatus = "firing"
    service: str = Field(min_length=1, max_length=200)
    severity: AlertSeverity = "warning"
    title: str = Field(min_length=1)
    summary: str = ""
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    links: list[AlertLink] = Field(default_factory=list)
    raw: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _redacted(self) -> NormalizedAlert:
        """Secrets an outside sender put in text are replaced before anything stores or shows the alert.

        Titles, summaries, label values, link URLs and the raw payload all come from outside; the
        fingerprint and service are identities (never secret-shaped) and are kept as sent.
        """
        self.title = redact_text(cap_text(self.title, MAX_TITLE_CHARS))
        self.summary = redact_text(cap_text(self.summary, MAX_TEXT_CHARS))
        self.labels = redact_obj(_cap_strings(self.labels, MAX_TEXT_CHARS))
        self.raw = redact_obj(_cap_strings(self.raw, MAX_TEXT_CHARS))
        for link in self.links:
            link.url = redact_text(link.url)
            link.label = redact_text(link.label)
        return self

    @field_validator("fingerprint")
    @classmethod
    def _bounded(cls, value: str) -> str:
        """The column holds 200 characters; a longer identity is kept as its hash."""
        value = value.replace("\x00", "")
        if not value:
            raise ValueError("must not be empty")
        if len(value) <= 200:
            return value
        return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class IngestResult(BaseModel):
    """Counts and ids from one delivery, returned to the sender and used by tests and drills."""

    received: int = 0
    created: int = 0
    updated: int = 0
    resolved: int = 0
    incidents_opened: list[str] = Field(default_factory=list)
    incidents_updated: list[str] = Field(default_factory=list)
    investigations_queued: list[str] = Field(default_factory=list)
    incidents_mitigated: list[str] = Field(default_factory=list)  # every alert of theirs has resolved
