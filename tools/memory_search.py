"""Memory tools for the agent, the API, MCP and the CLI: similar past incidents, runbooks and threads.

Both tools are hybrid (embeddings plus exact identifier matching) and bounded. `similar_incidents`
first syncs the index with the incident log, so an incident written a moment ago is searchable
without any hook in the code that wrote it.
"""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

from firebreak.context import ToolContext
from firebreak.memory.embeddings import EmbeddingError
from firebreak.memory.index import get_index
from firebreak.memory.search_records import Hit, MemoryError_
from firebreak.tools.registry import ToolError, tool


class SimilarIncidentsInput(BaseModel):
    text: str = Field(min_length=1, max_length=4000, description="what is happening now, in plain words; "
                      "include error types, versions, flag keys, hosts when known")
    service: str | None = Field(default=None, description="only incidents that involved this service")
    since: AwareDatetime | None = Field(default=None, description="only incidents that started at or after this")
    k: int = Field(default=5, ge=1, le=20)
    exclude_ids: list[str] = Field(default_factory=list, max_length=50,
                                   description="incident ids to leave out, e.g. the incident being triaged")
    include_open: bool = Field(default=False, description="also return open incidents that have no root cause "
                               "yet (normally the incident being triaged itself)")


class IncidentHit(BaseModel):
    id: str
    title: str
    service: str | None = Field(description="first service of the incident")
    services: list[str]
    score: float
    excerpt: str
    source: str
    root_cause: str
    countermeasures: list[str]
    action_items: list[str] = Field(default_factory=list, description="long-term fixes from its post-mortem")
    status: str | None = None
    severity: str | None = None
    started_at: AwareDatetime | None = None
    matched_identifiers: list[str] = Field(default_factory=list)
    dense_score: float | None = None
    lexical_score: float | None = None


class SimilarIncidentsOutput(BaseModel):
    hits: list[IncidentHit]
    truncated: bool


class SearchRunbooksInput(BaseModel):
    text: str = Field(min_length=1, max_length=4000, description="the symptom or question, in plain words")
    k: int = Field(default=5, ge=1, le=20)
    service: str | None = Field(default=None, description="only sections/threads that mention this service")


class DocumentHit(BaseModel):
    source: str = Field(description="file#section for runbooks/FAQ, slack:#channel for Slack threads")
    title: str
    score: float
    excerpt: str
    kind: str = Field(description="runbook or slack")
    id: str
    started_at: AwareDatetime | None = None
    matched_identifiers: list[str] = Field(default_factory=list)


class SearchRunbooksOutput(BaseModel):
    hits: list[DocumentHit]
    truncated: bool


def _unavailable(exc: Exception) -> ToolError:
    return ToolError(f"memory search unavailable: {exc}", status=503)


@tool("memory")
def similar_incidents(ctx: ToolContext, args: SimilarIncidentsInput) -> SimilarIncidentsOutput:
    """Past incidents that look like this one: "has this happened before, and what fixed it?".

    Use early in a triage with the symptoms, the error types, the suspect versions or flags and the
    service. Each hit gives the past root cause, the countermeasures that were taken and the long-term
    action items of its post-mortem, with a score
    (0..1) and the identifiers that matched exactly. Open incidents without a root cause (such as the
    one being triaged) are left out unless `include_open` is set.
    """
    try:
        index = get_index(ctx)
        index.sync_incidents(ctx.db)
        hits = index.search(
            args.text, collection="incidents", k=args.k + 1, service=args.service, since=args.since,
            exclude=args.exclude_ids, include_open=args.include_open,
        )
    except (MemoryError_, EmbeddingError) as exc:
        raise _unavailable(exc) from exc
    return SimilarIncidentsOutput(hits=[_incident_hit(h) for h in hits[: args.k]], truncated=len(hits) > args.k)


def _incident_hit(h: Hit) -> IncidentHit:
    return IncidentHit(
        id=h.id, title=h.title, service=h.services[0] if h.services else None, services=h.services,
        score=h.score, excerpt=h.excerpt, source=h.source, root_cause=h.root_cause,
        countermeasures=h.countermeasures, action_items=h.action_items, status=h.status, severity=h.severity,
        started_at=h.started_at,
        matched_identifiers=h.matched_identifiers, dense_score=h.dense_score, lexical_score=h.lexical_score,
    )


@tool("memory")
def search_runbooks(ctx: ToolContext, args: SearchRunbooksInput) -> SearchRunbooksOutput:
    """Runbook and FAQ sections, and Slack threads, that answer a symptom or a question.

    Use to find the team's documented procedure (how to roll back, fail over, drain a queue) or a past
    discussion of the same error. Each hit names its source (file#section or Slack channel) and quotes
    the most relevant line.
    """
    try:
        hits = get_index(ctx).search(args.text, collection="documents", k=args.k + 1, service=args.service)
    except (MemoryError_, EmbeddingError) as exc:
        raise _unavailable(exc) from exc
    out = [
        DocumentHit(source=h.source, title=h.title, score=h.score, excerpt=h.excerpt, kind=h.kind, id=h.id,
                    started_at=h.started_at, matched_identifiers=h.matched_identifiers)
        for h in hits[: args.k]
    ]
    return SearchRunbooksOutput(hits=out, truncated=len(hits) > args.k)
