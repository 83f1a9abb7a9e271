"""The normalised alert every source is turned into, and what one ingest did.

Kept separate from the vendor parsers so drills and tests can build alerts directly and call
`server.intake.service.ingest_alerts` without going through HTTP.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, Field, TypeAdapter, ValidationInfo, field_validator, model_validator

from firebreak.redact import redact_obj, redact_text

# What is kept of one alert's outside text: a 16 MB description must not hold the writer (redaction is
# linear in the text) nor grow memory; the cut is said in the text itself.
MAX_TITLE_CHARS = 1_000
MAX_TEXT_CHARS = 16_000
# Validation context marking rows whose outside text the vendor parser already capped and redacted
# (once per delivery rather than once per alert: see `prepared_alerts`).
_PREPARED = "firebreak.intake.prepared"


def cap_text(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f" [… {len(text) - limit} more characters cut at intake]"


def cap_strings(value: Any, limit: int) -> Any:
    """Every string inside JSON-like data cut to `limit` characters (see `cap_text`)."""
    if isinstance(value, str):
        return cap_text(value, limit)
    if isinstance(value, dict):
        return {k: cap_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [cap_strings(v, limit) for v in value]
    return value


def may_hold_long_strings(body: bytes, limit: int = MAX_TEXT_CHARS) -> bool:
    """False only when no string in this valid JSON body can be longer than `limit` characters.

    Why: walking every string of a delivery to cap it costs as much as redacting it, and a delivery
    almost never holds a long one; this is two or three C-speed scans of the bytes. Each escaped
    backslash or quote becomes one byte first, so a string is never split at a quote it contains;
    every other character takes at least one byte, so a string of more than `limit` characters is a
    run of more than `limit` bytes after its opening quote.
    """
    if b"\\" in body:
        body = body.replace(b"\\\\", b"_").replace(b'\\"', b"_")
    return _long_run(limit).search(body) is not None


@functools.cache
def _long_run(limit: int) -> re.Pattern[bytes]:
    return re.compile(b'"[^"]{%d,}' % (limit + 1))


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
    def _redacted(self, info: ValidationInfo) -> NormalizedAlert:
        """Secrets an outside sender put in text are replaced before anything stores or shows the alert.

        Titles, summaries, label values, link URLs and the raw payload all come from outside; the
        fingerprint and service are identities (never secret-shaped) and are kept as sent. Rows built
        by `prepared_alerts` were capped and redacted by their parser already (the same functions,
        applied once to the whole delivery), so the work is not done twice.
        """
        if info.context is not None and info.context.get(_PREPARED):
            return self
        values = self.__dict__  # plain assignment: pydantic's __setattr__ costs more than the check here
        values["title"] = redact_text(cap_text(self.title, MAX_TITLE_CHARS))
        values["summary"] = redact_text(cap_text(self.summary, MAX_TEXT_CHARS))
        values["labels"] = redact_obj(cap_strings(self.labels, MAX_TEXT_CHARS))
        values["raw"] = redact_obj(cap_strings(self.raw, MAX_TEXT_CHARS))
        for link in self.links:
            link.__dict__["url"] = redact_text(link.url)
            link.__dict__["label"] = redact_text(link.label)
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


_ALERT_LIST = TypeAdapter(list[NormalizedAlert])


def prepared_alerts(rows: list[dict[str, Any]]) -> list[NormalizedAlert]:
    """Validate a whole delivery's alerts in one call, for parsers that capped and redacted them already.

    Why: building 100 models one by one, each redacting its own copy of the delivery's envelope, was
    most of a storm delivery's CPU. The caller must have passed every outside text field through
    `cap_text`/`cap_strings` and `redact_text`/`redact_obj` (`prom.py` does it once per delivery);
    the field checks (lengths, literals, aware datetimes) still run here, in pydantic-core.
    """
    return _ALERT_LIST.validate_python(rows, context={_PREPARED: True})


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
