"""Customer and internal incident messages, rendered from editable text templates.

Templates live in `agent/message_templates/<kind>_<template>.txt` (kind: customer | internal;
template: investigating | deployment_error | application_bug | traffic_surge) so that communications people can edit the
wording without touching code. A folder named by `FIREBREAK_MESSAGE_TEMPLATES_DIR` overrides single files.
Placeholders are `{name}`; a placeholder with no value is left as written, so a new one added to a file
is visible in the output instead of breaking the message.

Honesty: until a hypothesis supports a cause (the top one is likely or confirmed, or at least
`CAUSE_CONFIDENCE` confident) every draft uses the `investigating` template: the team is
investigating, here is the impact. A cause category is named only from the supporting hypothesis.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, get_args

from firebreak.agent.report import TriageReport

MessageKind = Literal["customer", "internal"]
TemplateName = Literal["investigating", "deployment_error", "application_bug", "traffic_surge"]

TEMPLATES_DIR = Path(__file__).resolve().parent / "message_templates"
KINDS: tuple[str, ...] = get_args(MessageKind)
TEMPLATE_NAMES: tuple[str, ...] = get_args(TemplateName)

CAUSE_CONFIDENCE = 0.5
# What each suspect kind is called in a draft, once a hypothesis supports it.
CAUSE_CATEGORY = {
    "deploy": "a deploy", "config": "a configuration change", "flag": "a feature flag change",
    "dependency": "a failing dependency", "resource": "a resource running out", "traffic": "a traffic surge",
    "certificate": "a certificate problem", "data": "bad or damaged data", "infra": "an infrastructure change",
}
# Suspect kinds (agent.report.SuspectKind) mapped to the message scenario they call for.
SCENARIO_BY_SUSPECT = {
    "deploy": "deployment_error",
    "config": "deployment_error",
    "flag": "deployment_error",
    "infra": "deployment_error",
    "traffic": "traffic_surge",
}


class MessageTemplateError(ValueError):
    """A template that does not exist or cannot be rendered, naming the file."""


def template_path(kind: str, template: str) -> Path:
    """The file behind one message; the override folder wins when it has the file."""
    if kind not in KINDS:
        raise MessageTemplateError(f"kind: unknown message kind {kind!r} (customer or internal)")
    if template not in TEMPLATE_NAMES:
        raise MessageTemplateError(
            f"template: unknown template {template!r} ({', '.join(TEMPLATE_NAMES)})"
        )
    name = f"{kind}_{template}.txt"
    from firebreak.settings import Settings

    override = Settings().message_templates_dir
    if override and (Path(override) / name).is_file():
        return Path(override) / name
    return TEMPLATES_DIR / name


class _KeepMissing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def render_message(kind: str, template: str, **fields: Any) -> str:
    """Fill one template; values are stringified, datetimes written as `YYYY-MM-DD HH:MM UTC`."""
    path = template_path(kind, template)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MessageTemplateError(f"template {path}: cannot read ({exc.strerror})") from None
    values = _KeepMissing({k: _text(v) for k, v in fields.items()})
    try:
        return string.Formatter().vformat(text, (), values).strip()
    except (ValueError, IndexError, KeyError, AttributeError) as exc:
        raise MessageTemplateError(f"template {path}: {exc}") from None


def _text(value: Any) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def cause_supported(report: TriageReport | None) -> bool:
    """True when the top hypothesis supports naming a cause (likely/confirmed, or confident enough)."""
    if report is None or not report.hypotheses:
        return False
    top = report.hypotheses[0]
    return top.status in ("likely", "confirmed") or (top.status != "ruled_out" and top.confidence >= CAUSE_CONFIDENCE)


def scenario_for(report: TriageReport | None) -> str:
    """Which message scenario a report calls for: `investigating` until a hypothesis supports a cause,
    then the report's own choice, else the top hypothesis' kind."""
    if not cause_supported(report):
        return "investigating"
    assert report is not None
    if report.customer_template in TEMPLATE_NAMES and report.customer_template != "application_bug":
        return report.customer_template
    if report.hypotheses:
        return SCENARIO_BY_SUSPECT.get(report.hypotheses[0].suspect.kind, report.customer_template)
    return report.customer_template


def report_fields(
    *,
    incident_id: str,
    title: str,
    severity: str,
    status: str,
    services: list[str],
    started_at: datetime | None,
    user_impact: str,
    report: TriageReport | None,
    next_update: datetime | None,
    approval: str = "none requested",
    top: int = 3,
) -> dict[str, Any]:
    """The placeholder values every template understands, drawn from an incident and its report."""
    hyps = list(report.hypotheses[:top]) if report else []
    supported = cause_supported(report)
    lines = [
        f"{i}. {h.title} ({h.suspect.kind}: {h.suspect.ref}, confidence {h.confidence:.0%})"
        for i, h in enumerate(hyps, 1)
    ]
    fix = report.proposed_fix.describe() if report and report.proposed_fix else "none proposed yet"
    impact = user_impact or (report.user_impact if report else "") or "under assessment"
    return {
        "incident_id": incident_id,
        "title": title,
        "severity": severity,
        "status": status,
        "service": ", ".join(services) or "our service",
        "started_at": started_at,
        "impact": impact,
        "summary": report.summary if report else "",
        "cause": hyps[0].title if supported else "not identified yet",
        "cause_category": CAUSE_CATEGORY.get(hyps[0].suspect.kind, "unknown") if supported else "not identified yet",
        "cause_known": supported,
        "hypotheses": "\n".join(lines) or "(none yet)",
        "fix": fix,
        "approval": approval,
        "next_update": next_update,
    }


def render_fields(kind: str, template: str, fields: Mapping[str, Any]) -> str:
    """`render_message` for a prepared mapping (e.g. from `report_fields`); a report that supports no
    cause is drafted with the `investigating` template whatever scenario the caller chose."""
    if fields.get("cause_known") is False:
        template = "investigating"
    return render_message(kind, template, **{k: v for k, v in fields.items() if k != "cause_known"})
