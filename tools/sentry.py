"""Sentry issues: what the error tracker knows about the errors behind an incident.

Two sources, one output shape. Stored webhook deliveries (`Alert` rows with source "sentry", payload in
`raw`: `issue`, `event_alert`, `error`) work on a fresh machine with no Sentry access; the Sentry REST
API (`FIREBREAK_SENTRY_API_URL` + `FIREBREAK_SENTRY_API_TOKEN`, `FIREBREAK_SENTRY_ORG`) adds what a
webhook may lack: the issue's full counts, release and the latest event's stack frames. When the API
fails, the stored view is returned with a note rather than nothing.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, Field
from sqlalchemy import select

from firebreak.context import ToolContext
from firebreak.state.alerts import Alert
from firebreak.tools.registry import ToolError, tool
from firebreak.tools.sentry_payload import epoch_datetime, tag_pairs

MAX_FRAMES = 25
MAX_TAGS = 20
DEFAULT_TIMEOUT = 10.0
_ISSUE_IN_URL = re.compile(r"/issues/(\d+)")


# ------------------------------------------------------------------------------------------- models


class SentryFrame(BaseModel):
    filename: str | None = None
    function: str | None = None
    lineno: int | None = None
    in_app: bool = False
    module: str | None = None


class SentryIssueSummary(BaseModel):
    id: str
    short_id: str | None = None
    title: str
    culprit: str | None = None
    level: str | None = None
    status: str | None = None
    release: str | None = None
    count: int = 0
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    service: str | None = None
    link: str | None = None


class SentryIssueDetail(SentryIssueSummary):
    exception_type: str | None = None
    exception_value: str | None = None
    event_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    frames: list[SentryFrame] = Field(default_factory=list)
    frames_truncated: bool = False
    source: str = "webhook"
    note: str = ""


# ------------------------------------------------------------------------------------------ parsing


def _dt(value: Any) -> datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return epoch_datetime(value)
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _release(value: Any) -> str | None:
    """Sentry gives a release as a string (events) or an object with `version` (API)."""
    if isinstance(value, dict):
        value = value.get("version") or value.get("shortVersion")
    return str(value) if value not in (None, "") else None


def _tag_map(tags: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in tag_pairs(tags):
        if isinstance(key, str) and value is not None and len(out) < MAX_TAGS:
            out[key] = str(value)[:200]
    return out


def _exceptions(event: dict[str, Any]) -> list[dict[str, Any]]:
    """Exception values from a webhook/raw event (`exception.values`) or an API event (`entries`)."""
    exc = event.get("exception")
    if isinstance(exc, dict) and isinstance(exc.get("values"), list):
        return [v for v in exc["values"] if isinstance(v, dict)]
    for entry in event.get("entries") or []:
        if isinstance(entry, dict) and entry.get("type") == "exception":
            values = (entry.get("data") or {}).get("values")
            if isinstance(values, list):
                return [v for v in values if isinstance(v, dict)]
    return []


def event_frames(event: dict[str, Any]) -> tuple[list[SentryFrame], bool, str | None, str | None]:
    """Frames of the last (outermost reported) exception, crashing frame last, bounded to MAX_FRAMES.

    Webhooks use snake_case (`lineno`, `in_app`), the REST API camelCase (`lineNo`, `inApp`).
    """
    values = _exceptions(event)
    if not values:
        return [], False, None, None
    exc = values[-1]
    raw_frames = ((exc.get("stacktrace") or {}).get("frames")) or []
    frames = [
        SentryFrame(
            filename=f.get("filename") or f.get("abs_path") or f.get("absPath"),
            function=f.get("function") or f.get("raw_function") or f.get("rawFunction"),
            lineno=f.get("lineno", f.get("lineNo")),
            in_app=bool(f.get("in_app", f.get("inApp")) or False),
            module=f.get("module"),
        )
        for f in raw_frames
        if isinstance(f, dict)
    ]
    truncated = len(frames) > MAX_FRAMES
    if truncated:
        # Keep the crash site (the end) and every in-app frame that fits.
        tail = frames[-MAX_FRAMES:]
        frames = tail
    return frames, truncated, exc.get("type"), exc.get("value")


def _issue_link(base: str | None, org: str | None, issue_id: str) -> str | None:
    if base and org:
        return f"{base}/organizations/{org}/issues/{issue_id}/"
    return None


def detail_from_alert(alert: Alert) -> SentryIssueDetail | None:
    """One stored webhook delivery as an issue; None for metric alerts (not an issue)."""
    raw = alert.raw or {}
    data = raw.get("data") or {}
    labels = alert.labels or {}
    link = next((lk.get("url") for lk in alert.links or [] if isinstance(lk, dict) and lk.get("url")), None)
    if isinstance(data.get("issue"), dict):
        issue = data["issue"]
        project = issue.get("project") or {}
        metadata = issue.get("metadata") or {}
        issue_id = str(issue.get("id") or "")
        return SentryIssueDetail(
            id=issue_id, short_id=issue.get("shortId") or labels.get("short_id"),
            title=issue.get("title") or alert.title, culprit=issue.get("culprit"), level=issue.get("level"),
            status=issue.get("status"),
            release=_release(issue.get("lastRelease") or issue.get("firstRelease")) or labels.get("release"),
            count=max(_int(issue.get("count")), alert.receive_count or 1),
            first_seen=_dt(issue.get("firstSeen")) or alert.started_at,
            last_seen=max(filter(None, [_dt(issue.get("lastSeen")), alert.last_received_at])),
            service=alert.service, link=issue.get("permalink") or issue.get("web_url") or link,
            exception_type=metadata.get("type"), exception_value=metadata.get("value"),
            tags={"project": str(project.get("slug"))} if project.get("slug") else {},
        )
    event = data.get("event") if isinstance(data.get("event"), dict) else data.get("error")
    if not isinstance(event, dict):
        return None
    issue_id = str(event.get("issue_id") or "")
    if not issue_id:
        match = _ISSUE_IN_URL.search(str(event.get("issue_url") or event.get("web_url") or ""))
        issue_id = match.group(1) if match else f"event:{event.get('event_id', alert.id)}"
    frames, truncated, exc_type, exc_value = event_frames(event)
    metadata = event.get("metadata") or {}
    tags = _tag_map(event.get("tags"))
    seen = _dt(event.get("datetime")) or _dt(event.get("timestamp")) or alert.started_at
    web = event.get("web_url")
    issue_link = web.split("/events/")[0] + "/" if isinstance(web, str) and "/events/" in web else (web or link)
    return SentryIssueDetail(
        id=issue_id, short_id=labels.get("short_id"), title=event.get("title") or alert.title,
        culprit=event.get("culprit"), level=event.get("level"), status=None,
        release=_release(event.get("release")) or tags.get("release") or labels.get("release"),
        count=max(alert.receive_count or 1, _int(event.get("count"))),
        first_seen=min(filter(None, [alert.started_at, seen])),
        last_seen=max(filter(None, [alert.last_received_at, seen])),
        service=alert.service, link=issue_link,
        exception_type=exc_type or metadata.get("type"), exception_value=exc_value or metadata.get("value"),
        event_id=event.get("event_id"), tags=tags, frames=frames, frames_truncated=truncated,
    )


def _merge(a: SentryIssueDetail, b: SentryIssueDetail) -> SentryIssueDetail:
    """Two deliveries about the same issue: keep the widest times, the largest count, any frames."""
    out = a.model_copy()
    for field in ("short_id", "culprit", "level", "status", "release", "link", "exception_type",
                  "exception_value", "event_id", "service"):
        if getattr(out, field) in (None, "") and getattr(b, field) not in (None, ""):
            setattr(out, field, getattr(b, field))
    out.count = max(a.count, b.count)
    out.first_seen = min(filter(None, [a.first_seen, b.first_seen]), default=None)
    out.last_seen = max(filter(None, [a.last_seen, b.last_seen]), default=None)
    if not out.frames and b.frames:
        out.frames, out.frames_truncated = b.frames, b.frames_truncated
    out.tags = {**b.tags, **a.tags}
    return out


def stored_issues(ctx: ToolContext, *, service: str | None = None, since: datetime | None = None) -> dict[
    str, SentryIssueDetail
]:
    """Every Sentry issue seen through webhooks, merged per issue id."""
    with ctx.db.session() as s:
        q = select(Alert).where(Alert.source == "sentry")
        if service:
            q = q.where(Alert.service == service)
        if since:
            q = q.where(Alert.last_received_at >= since)
        rows = list(s.execute(q.order_by(Alert.id)).scalars())
        details = [d for d in (detail_from_alert(a) for a in rows) if d is not None]
    issues: dict[str, SentryIssueDetail] = {}
    for d in details:
        issues[d.id] = _merge(issues[d.id], d) if d.id in issues else d
    return issues


# -------------------------------------------------------------------------------------- REST adapter


class SentryAPIError(Exception):
    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


class SentryAPI:
    """A read-only client for Sentry's REST API (`/api/0/`): issue details and the latest event."""

    def __init__(
        self, base_url: str, token: str, org: str | None = None, *, timeout: float = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        base = base[: -len("/api/0")] if base.endswith("/api/0") else base
        self.base_url = base
        self.org = org
        self._client = httpx.Client(
            base_url=base, timeout=timeout, transport=transport,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
        )

    def close(self) -> None:
        self._client.close()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """One API call; a failure is logged once with its reason (firebreak.backends) and raised."""
        try:
            return self._call(path, params)
        except SentryAPIError as exc:
            logging.getLogger("firebreak.backends").warning(
                "Sentry call failed: GET %s%s: %s", self.base_url, path, exc)
            raise

    def _call(self, path: str, params: dict[str, Any] | None = None) -> Any:
        try:
            resp = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise SentryAPIError(f"Sentry API unreachable ({type(exc).__name__}: {exc})") from None
        if resp.status_code in (401, 403):
            raise SentryAPIError(
                f"Sentry API refused the token ({resp.status_code}); check FIREBREAK_SENTRY_API_TOKEN scopes "
                "(event:read)", status=502,
            )
        if resp.status_code == 404:
            raise SentryAPIError(f"Sentry API: {path} not found", status=404)
        if resp.status_code >= 400:
            detail = ""
            try:
                body = resp.json()
                detail = body.get("detail", "") if isinstance(body, dict) else ""
            except ValueError:
                detail = resp.text[:200]
            raise SentryAPIError(f"Sentry API answered {resp.status_code}: {detail}".rstrip(": "))
        try:
            return resp.json()
        except ValueError:
            raise SentryAPIError("Sentry API answered with something that is not JSON") from None

    def _issue_path(self, issue_id: str) -> str:
        if self.org:
            return f"/api/0/organizations/{self.org}/issues/{issue_id}/"
        return f"/api/0/issues/{issue_id}/"

    def issue(self, issue_id: str) -> dict[str, Any]:
        data = self._get(self._issue_path(issue_id))
        if not isinstance(data, dict):
            raise SentryAPIError("Sentry API: issue answer is not an object")
        return data

    def latest_event(self, issue_id: str) -> dict[str, Any]:
        data = self._get(self._issue_path(issue_id) + "events/latest/")
        if not isinstance(data, dict):
            raise SentryAPIError("Sentry API: event answer is not an object")
        return data

    def resolve_short_id(self, short_id: str) -> str:
        """`MAILER-1F` -> the numeric issue id (organization short-id lookup)."""
        if not self.org:
            raise SentryAPIError(f"looking up short id {short_id!r} needs FIREBREAK_SENTRY_ORG", status=400)
        data = self._get(f"/api/0/organizations/{self.org}/shortids/{short_id}/")
        group_id = data.get("groupId") if isinstance(data, dict) else None
        if not group_id:
            raise SentryAPIError(f"Sentry API: no issue with short id {short_id!r}", status=404)
        return str(group_id)

    def list_issues(self, *, query: str = "is:unresolved", limit: int = 25) -> list[dict[str, Any]]:
        if not self.org:
            raise SentryAPIError("listing issues needs FIREBREAK_SENTRY_ORG", status=400)
        data = self._get(f"/api/0/organizations/{self.org}/issues/", {"query": query, "limit": limit})
        return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []

    def issue_detail(self, issue_id: str, *, service: str | None = None) -> SentryIssueDetail:
        """Issue + latest event folded into one detail (the latest event is best effort)."""
        issue = self.issue(issue_id)
        note = ""
        try:
            event: dict[str, Any] | None = self.latest_event(issue_id)
        except SentryAPIError as exc:
            event, note = None, f"latest event unavailable: {exc}"
        detail = detail_from_api(issue, event, service=service)
        detail.note = note
        return detail


def detail_from_api(
    issue: dict[str, Any], event: dict[str, Any] | None, *, service: str | None = None
) -> SentryIssueDetail:
    metadata = issue.get("metadata") or {}
    frames: list[SentryFrame] = []
    truncated, exc_type, exc_value = False, None, None
    tags: dict[str, str] = {}
    release = _release(issue.get("lastRelease")) or _release(issue.get("firstRelease"))
    if event:
        frames, truncated, exc_type, exc_value = event_frames(event)
        tags = _tag_map(event.get("tags"))
        release = _release(event.get("release")) or tags.get("release") or release
    project = issue.get("project") or {}
    return SentryIssueDetail(
        id=str(issue.get("id")), short_id=issue.get("shortId"), title=issue.get("title") or "",
        culprit=issue.get("culprit"), level=issue.get("level"), status=issue.get("status"), release=release,
        count=_int(issue.get("count")), first_seen=_dt(issue.get("firstSeen")), last_seen=_dt(issue.get("lastSeen")),
        service=service or project.get("slug"), link=issue.get("permalink"),
        exception_type=exc_type or metadata.get("type"), exception_value=exc_value or metadata.get("value"),
        event_id=(event or {}).get("eventID") or (event or {}).get("id"), tags=tags, frames=frames,
        frames_truncated=truncated, source="api",
    )


def get_sentry_api(ctx: ToolContext) -> SentryAPI | None:
    """The configured REST client, or None when Sentry API access is not configured."""
    s = ctx.settings
    if not s.sentry_api_url or s.sentry_api_token is None:
        return None
    token = s.sentry_api_token.get_secret_value()
    return ctx.resource("sentry_api", lambda: SentryAPI(s.sentry_api_url or "", token, s.sentry_org))


# -------------------------------------------------------------------------------------------- tools


class ListSentryIssuesInput(BaseModel):
    service: str | None = Field(default=None, description="Only issues of this service.")
    since: datetime | None = Field(default=None, description="Only issues seen at or after this time.")
    limit: int = Field(default=20, ge=1, le=100)


class ListSentryIssuesOutput(BaseModel):
    issues: list[SentryIssueSummary]
    total: int
    truncated: bool
    note: str = ""


def _aware(value: datetime | None, field: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ToolError(f"{field}: timestamp has no timezone (use e.g. 2026-03-02T08:00:00Z)", field=field)
    return value


@tool("sentry")
def list_sentry_issues(ctx: ToolContext, args: ListSentryIssuesInput) -> ListSentryIssuesOutput:
    """List the Sentry error issues seen recently (title, culprit, release, count, first/last seen).

    Use it to find which exceptions a service started throwing around the onset; an issue first seen
    right after a deploy often names the broken code. Open one with `sentry_issue` for its stack frames.
    """
    since = _aware(args.since, "since")
    issues = stored_issues(ctx, service=args.service, since=since)
    note = ""
    api = get_sentry_api(ctx)
    if api is not None and api.org:
        query = "is:unresolved" + (f" lastSeen:>{since.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S')}" if since else "")
        try:
            for raw in api.list_issues(query=query, limit=min(100, args.limit * 2)):
                d = detail_from_api(raw, None)
                slug = d.service
                d.service = ctx.settings.service_map.get(slug or "", slug)
                if args.service and d.service != args.service:
                    continue
                issues[d.id] = _merge(d, issues[d.id]) if d.id in issues else d
        except SentryAPIError as exc:
            note = f"Sentry API not used: {exc}"
    ordered = sorted(issues.values(), key=lambda d: d.last_seen or datetime.min.replace(tzinfo=UTC), reverse=True)
    picked = ordered[: args.limit]
    if not ordered and not note:
        note = "no Sentry issue received" + (f" for service {args.service!r}" if args.service else "")
    return ListSentryIssuesOutput(
        issues=[SentryIssueSummary.model_validate(d.model_dump(include=set(SentryIssueSummary.model_fields)))
                for d in picked],
        total=len(ordered), truncated=len(ordered) > len(picked), note=note,
    )


class SentryIssueInput(BaseModel):
    issue_id: str = Field(min_length=1, description="The Sentry issue id (e.g. 1170820242) or short id (FRONT-END-9).")


@tool("sentry")
def sentry_issue(ctx: ToolContext, args: SentryIssueInput) -> SentryIssueDetail:
    """One Sentry issue in detail: exception, culprit, release, counts, first/last seen and stack frames.

    Use it after `list_sentry_issues` (or an alert that names an issue) to read where the code fails;
    in-app frames (`in_app: true`) point at the team's own code, and `release` ties it to a deploy.
    """
    wanted = args.issue_id.strip()
    stored = stored_issues(ctx)
    local = stored.get(wanted) or next(
        (d for d in stored.values() if d.short_id and d.short_id.lower() == wanted.lower()), None
    )
    api = get_sentry_api(ctx)
    if api is not None:
        issue_id = local.id if local is not None else wanted
        try:
            if not issue_id.isdigit():
                issue_id = api.resolve_short_id(issue_id)
            remote = api.issue_detail(issue_id, service=local.service if local else None)
        except SentryAPIError as exc:
            if local is None:
                raise ToolError(str(exc), status=exc.status if exc.status < 500 else 502, field="issue_id") from None
            local.note = f"Sentry API not used: {exc}"
            return local
        if remote.link is None:
            remote.link = (local.link if local else None) or _issue_link(api.base_url, api.org, remote.id)
        return _merge(remote, local) if local is not None else remote
    if local is None:
        known = ", ".join(sorted(stored)[:20]) or "none received"
        raise ToolError(
            f"no Sentry issue {wanted!r} among stored webhooks (known: {known}); Sentry API access is not "
            "configured (FIREBREAK_SENTRY_API_URL, FIREBREAK_SENTRY_API_TOKEN)",
            status=404, field="issue_id",
        )
    return local
