"""The post-mortem document: one pydantic model, stored as JSON and rendered as Markdown or a web form."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class PostMortemStatus(StrEnum):
    """Draft while people edit it, in review once the blameless check ran, published when indexed."""

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"


class Source(StrEnum):
    """Where a line came from: the incident's own records, or a person (or "to be answered")."""

    RECORDS = "records"
    PERSON = "person"
    TO_ANSWER = "to_answer"


class TimelineItem(BaseModel):
    at: datetime
    kind: str = Field(description="signal, alert, detection, change, hypothesis, approval, action, update, status")
    text: str


class Durations(BaseModel):
    """Minutes from the start of impact (or detection when the start is unknown)."""

    to_detect: float | None = None
    to_mitigate: float | None = None
    to_resolve: float | None = None


class Impact(BaseModel):
    severity: str
    severity_why: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_minutes: float | None = None
    who: str = ""
    lost_or_delayed: str = ""


class Why(BaseModel):
    question: str
    answer: str
    source: Source = Source.RECORDS


class ActionItem(BaseModel):
    """A remediation in the incident log: the post-mortem only points at it, the log owns its state."""

    remediation_id: int | None = None
    what: str
    owner: str
    due: date | None = None
    status: str = "open"


class BlamelessFinding(BaseModel):
    section: str
    excerpt: str
    rule: str
    suggestion: str


class PostMortem(BaseModel):
    incident_id: str
    title: str
    status: PostMortemStatus = PostMortemStatus.DRAFT
    summary: str
    impact: Impact
    timeline: list[TimelineItem] = Field(default_factory=list)
    durations: Durations = Field(default_factory=Durations)
    root_cause: str = ""
    root_cause_category: str = "unknown"
    whys: list[Why] = Field(default_factory=list)
    contributing_factors: list[str] = Field(default_factory=list)
    went_well: list[str] = Field(default_factory=list)
    went_badly: list[str] = Field(default_factory=list)
    action_items: list[ActionItem] = Field(default_factory=list)
    recurrence: str = ""
    drafted_at: datetime | None = None
    published_at: datetime | None = None
    published_by: str | None = None
    blameless: list[BlamelessFinding] = Field(default_factory=list)


class CustomerPostMortem(BaseModel):
    """What a customer reads: plain words, no internal names, hosts, people or jargon."""

    title: str
    what_happened: str
    impact: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    what_we_did: str
    what_we_are_changing: list[str] = Field(default_factory=list)
