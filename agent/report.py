"""The triage report: the investigator's structured output, read by people in one pass."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from firebreak.agent.actions import ProposedFix
from firebreak.kinds import Severity, SuspectKind

__all__ = ["Severity", "SuspectKind"]


class Suspect(BaseModel):
    """What a hypothesis blames, as in the drill spec: {kind, service, ref}."""

    model_config = ConfigDict(extra="forbid")

    kind: SuspectKind
    service: str | None = None
    ref: str


class Evidence(BaseModel):
    """One finding: which tool showed what, with a reference or link a person can open."""

    tool: str
    finding: str
    ref: str | None = None
    link: str | None = None
    weight: float | None = None


class Hypothesis(BaseModel):
    title: str
    suspect: Suspect
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[Evidence] = Field(default_factory=list)
    confirm: str = ""
    rule_out: str = ""
    status: Literal["suspected", "likely", "confirmed", "ruled_out"] = "suspected"
    fix: ProposedFix | None = None
    alternatives: list[ProposedFix] = Field(default_factory=list)  # next fixes in the policy's order


class TriageReport(BaseModel):
    summary: str
    severity: Severity
    severity_reason: str = ""
    user_impact: str = ""
    symptoms: list[str] = Field(default_factory=list)
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    proposed_fix: ProposedFix | None = None
    next_update_due: datetime | None = None
    internal_update: str = ""
    customer_template: Literal["deployment_error", "application_bug", "traffic_surge"] = "application_bug"
    customer_message: str = ""
    investigator: str = "offline"
    fallback: bool = False
    notes: list[str] = Field(default_factory=list)
