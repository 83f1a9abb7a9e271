"""The web page: incidents, approvals, weekly indicators, drills and transcript review.

Server-rendered with Jinja2 and plain HTML forms (no JavaScript build, nothing fetched from a CDN).
Every page needs a signed-in named user (`firebreak users add NAME`); the session is a signed cookie
(SameSite=Lax, HttpOnly) and every form carries the session's CSRF token. Approvals go through
`server.approvals.decide`, which checks FIREBREAK_APPROVERS by the signed-in name.
"""

from __future__ import annotations

import hmac
import json
import logging
import mimetypes
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import ChainableUndefined, Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import func, select

from firebreak.context import ToolContext
from firebreak.redact import redact_obj, redact_text
from firebreak.server import throttle
from firebreak.server.api_transcripts import record_review, summary_of, transcript_of
from firebreak.server.deps import Ctx
from firebreak.server.sessions import (
    COOKIE_NAME,
    MAX_AGE_SECONDS,
    WebSession,
    open_session,
    revoke_session,
    session_is_live,
    session_key,
    sign,
    unsign,
)
from firebreak.server.users import authenticate, user_exists
from firebreak.state.alerts import Alert
from firebreak.state.approvals import Approval
from firebreak.state.drills import DrillRun
from firebreak.state.incidents import Incident
from firebreak.state.investigations import Investigation

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

router = APIRouter(include_in_schema=False)


# --- templates ------------------------------------------------------------------------------------


def _fmt_time(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt_json(value: Any) -> str:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return value
    # Redacted as data first: inside JSON text a secret sits behind escapes that hide it from the rules.
    return json.dumps(redact_obj(value), indent=2, ensure_ascii=False, default=str)


def _fmt_minutes(value: float | None) -> str:
    if value is None:
        return "–"
    if value < 90:
        return f"{value:.0f} min"
    return f"{value / 60:.1f} h"


def _safe_url(value: Any) -> str | None:
    """Only http(s) and relative links become hrefs: evidence text comes from logs and alerts."""
    if not isinstance(value, str) or not value:
        return None
    scheme = urlsplit(value).scheme.lower()
    if scheme in ("http", "https") or (not scheme and value.startswith("/")):
        return value
    return None


class Verbatim(Markup):
    """Text of our own making printed as is (the CSRF token: random, it could look like a key)."""


def _redacted(value: Any) -> Any:
    """Every value a template prints passes here: a secret that reached the database is still not shown.

    Markup (already escaped HTML from a filter or macro) is redacted as text and stays Markup.
    """
    if isinstance(value, Verbatim):
        return value
    if isinstance(value, Markup):
        return Markup(redact_text(str(value)))
    if isinstance(value, str):
        return redact_text(value)
    return value


@cache
def _env() -> Environment:
    # ChainableUndefined: a report written by another investigator version with a field missing still renders.
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html"]),
                      undefined=ChainableUndefined, finalize=_redacted)
    env.filters.update(time=_fmt_time, pretty=_fmt_json, minutes=_fmt_minutes, safe_url=_safe_url)
    return env


# --- sessions -------------------------------------------------------------------------------------


def current_session(request: Request, ctx: ToolContext) -> WebSession:
    """The request's session (a fresh anonymous one when absent or invalid); sets request.state.web_user."""
    cached = getattr(request.state, "web_session", None)
    if isinstance(cached, WebSession):
        return cached
    key = ctx.resource("web-session-key", lambda: session_key(ctx.settings))
    sess = unsign(key, request.cookies.get(COOKIE_NAME)) or WebSession()
    if sess.user:
        # The server-side row decides: logout, a password change or `users revoke` end the session.
        with ctx.db.session() as s:
            if not user_exists(s, sess.user) or not session_is_live(s, sess.sid, sess.user, now=ctx.clock.now()):
                sess.user, sess.sid = None, None
    request.state.web_session = sess
    request.state.web_user = sess.user
    return sess


def _set_cookie(request: Request, response: Response, ctx: ToolContext, sess: WebSession) -> None:
    key = ctx.resource("web-session-key", lambda: session_key(ctx.settings))
    response.set_cookie(
        COOKIE_NAME, sign(key, sess), max_age=MAX_AGE_SECONDS, httponly=True, samesite="lax",
        secure=request.url.scheme == "https", path="/",
    )


def web_session(ctx: Ctx, request: Request) -> WebSession:
    return current_session(request, ctx)


def signed_in(request: Request, sess: WebSession = Depends(web_session)) -> str:
    """Dependency: the signed-in name; anyone else is sent to the sign-in page."""
    if not sess.user:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(303, headers={"Location": f"/login?next={quote(target)}"})
    return sess.user


def check_csrf(sess: WebSession, token: str) -> None:
    if not token or not hmac.compare_digest(token, sess.csrf):
        raise HTTPException(403, detail="csrf: the form is stale or came from another site; reload the page")


# No framing (approve buttons must not be clickjacked), no script at all, forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def render(request: Request, ctx: ToolContext, name: str, status_code: int = 200, **data: Any) -> HTMLResponse:
    sess = current_session(request, ctx)
    flash, sess.flash = sess.flash, None
    html = _env().get_template(name).render(
        request=request, user=sess.user, csrf=Verbatim(sess.csrf), flash=flash,
        is_approver=bool(sess.user and ctx.settings.is_approver(sess.user)), **data,
    )
    response = HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
    _set_cookie(request, response, ctx, sess)
    return response


def redirect(request: Request, ctx: ToolContext, url: str, flash: str | None = None) -> RedirectResponse:
    sess = current_session(request, ctx)
    if flash:
        sess.flash = flash
    response = RedirectResponse(url, status_code=303)
    _set_cookie(request, response, ctx, sess)
    return response


def _local_next(value: str | None) -> str:
    """Only same-site paths are followed after sign-in (no open redirect)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


# --- static files ---------------------------------------------------------------------------------


@router.get("/static/{name}")
def static_file(name: str) -> Response:
    try:  # a NUL byte or an over-long name makes the OS call raise: that is still just "no such file"
        path = (STATIC / name).resolve()
        found = path.parent == STATIC and path.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise HTTPException(404, detail=f"name: no static file {name[:80]!r}")
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return Response(path.read_bytes(), media_type=media, headers={"Cache-Control": "max-age=3600"})


# --- sign-in --------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(ctx: Ctx, request: Request, next: str = "/") -> HTMLResponse:
    with ctx.db.session() as s:
        from firebreak.state.users import User

        has_users = s.scalar(select(func.count()).select_from(User)) or 0
    return render(request, ctx, "login.html", next=_local_next(next), has_users=bool(has_users), error=None)


@router.post("/login")
def login(ctx: Ctx, request: Request, name: str = Form(""), password: str = Form(""), csrf: str = Form(""),
    next: str = Form("/"), sess: WebSession = Depends(web_session)) -> Response:
    check_csrf(sess, csrf)
    address = request.client.host if request.client else "unknown"
    account = name.strip()[:128] or "?"
    now = ctx.clock.now()
    with ctx.db.session() as s:
        held = throttle.check(s, account=account, address=address, now=now)
        if held is not None:  # refused before the password is looked at; the attempt still counts
            throttle.record(s, account=account, address=address, ok=False, now=now)
            _audit(s, ctx, actor=account, event="web_login_throttled",
                   detail={"ip": address, "scope": held.scope, "failures": held.failures,
                           "retry_after_seconds": held.retry_after_seconds})
            log.warning("sign-in throttled for %r from %s (%s, %d failures, retry in %d s)", account, address,
                        held.scope, held.failures, held.retry_after_seconds)
            who = None
        else:
            who = authenticate(s, name, password) if name and password else None
            throttle.record(s, account=account, address=address, ok=who is not None, now=now)
            _audit(s, ctx, actor=account, event="web_login" if who else "web_login_failed",
                   detail={"ip": address})
        sid = open_session(s, who, now=now, address=address, user_agent=request.headers.get("user-agent")) \
            if who else None
    if held is not None:
        response = render(request, ctx, "login.html", status_code=429, next=_local_next(next), has_users=True,
                          error=f"Too many failed sign-ins: try again in {held.retry_after_seconds} s.")
        response.headers["Retry-After"] = str(held.retry_after_seconds)
        return response
    if who is None:
        return render(request, ctx, "login.html", status_code=401, next=_local_next(next), has_users=True,
                      error="Wrong name or password.")
    # A new session (and CSRF token) at sign-in: nothing from before carries over.
    new = WebSession(user=who, sid=sid)
    request.state.web_session = new
    request.state.web_user = who
    return redirect(request, ctx, _local_next(next))


@router.post("/logout")
def logout(ctx: Ctx, request: Request, csrf: str = Form(""),
           sess: WebSession = Depends(web_session)) -> Response:
    check_csrf(sess, csrf)
    if sess.sid:
        with ctx.db.session() as s:
            revoke_session(s, sess.sid, now=ctx.clock.now(), reason="logout")
    request.state.web_session = WebSession()
    return redirect(request, ctx, "/login")


def _audit(s: Any, ctx: ToolContext, *, actor: str, event: str, detail: dict[str, Any]) -> None:
    from firebreak.state.audit import AuditEvent

    s.add(AuditEvent(at=ctx.clock.now(), actor=actor, event=event, detail=detail))


# --- incidents ------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse)
def incident_list(ctx: Ctx, request: Request, status: str | None = None,
    user: str = Depends(signed_in)) -> HTMLResponse:
    with ctx.db.session() as s:
        q = select(Incident)
        if status in ("open", "mitigated", "resolved"):
            q = q.where(Incident.status == status)
        incidents = list(s.scalars(q.order_by(Incident.created_at.desc(), Incident.id.desc()).limit(200)))
        pending = dict(
            s.execute(select(Approval.incident_id, func.count()).where(Approval.status == "pending")
                      .group_by(Approval.incident_id)).tuples().all()
        )
        alerts = dict(
            s.execute(select(Alert.incident_id, func.count()).group_by(Alert.incident_id)).tuples().all()
        )
    return render(request, ctx, "incidents.html", incidents=incidents, pending=pending, alert_counts=alerts,
                  status=status)


def _report_of(incident: Incident, investigations: list[Investigation]) -> dict[str, Any] | None:
    if incident.report:
        return incident.report
    for inv in investigations:
        if inv.report:
            return inv.report
    return None


def _approvals_of(s: Any, incident_id: str) -> list[dict[str, Any]]:
    """Approvals with their alternative fixes nested, as the approvals engine presents them."""
    from firebreak.server.approvals import approvals_for_incident

    return approvals_for_incident(s, incident_id)


@router.get("/incidents/{incident_id}", response_class=HTMLResponse)
def incident_page(ctx: Ctx, request: Request, incident_id: str, user: str = Depends(signed_in)) -> HTMLResponse:
    with ctx.db.session() as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            return render(request, ctx, "error.html", status_code=404, message=f"No incident {incident_id}.")
        investigations = list(s.scalars(
            select(Investigation).where(Investigation.incident_id == incident_id)
            .order_by(Investigation.queued_at.desc())
        ))
        approvals = _approvals_of(s, incident_id)
        data: dict[str, Any] = dict(
            incident=inc, alerts=list(inc.alerts), timeline=list(inc.timeline),
            countermeasures=list(inc.countermeasures), remediations=list(inc.remediations),
            investigations=[summary_of(i) for i in investigations], approvals=approvals,
            report=_report_of(inc, investigations),
        )
        return render(request, ctx, "incident.html", **data)


@router.post("/incidents/{incident_id}/approvals/{approval_id}")
def decide_approval(ctx: Ctx, request: Request, incident_id: str, approval_id: str, decision: str = Form(""),
                    csrf: str = Form(""),
    choice: str = Form(""), reason: str = Form(""), sess: WebSession = Depends(web_session),
                       user: str = Depends(signed_in)) -> Response:
    check_csrf(sess, csrf)
    back = f"/incidents/{quote(incident_id)}"
    if decision not in ("approve", "reject"):
        return redirect(request, ctx, back, flash="error: decision must be approve or reject")
    with ctx.db.session() as s:
        row = s.get(Approval, approval_id)
        if row is None or row.incident_id != incident_id:
            return redirect(request, ctx, back, flash=f"error: no approval {approval_id} on this incident")
    from firebreak.server import approvals

    try:
        outcome = approvals.decide(ctx, approval_id, user=user, decision=decision, via="web",
                                   reason=reason.strip()[:500] or None, choice=choice or None, auth="web_session")
    except Exception as exc:  # the engine failed: say so on the page, keep the server up
        log.exception("approval decision failed for %s", approval_id)
        return redirect(request, ctx, back, flash=f"error: the decision could not be applied: {exc}")
    ok = bool(getattr(outcome, "ok", True))
    message = str(getattr(outcome, "message", "") or f"{decision} recorded")
    return redirect(request, ctx, back, flash=message if ok else f"error: {message}")


# --- drills ---------------------------------------------------------------------------------------


@router.get("/drills", response_class=HTMLResponse)
def drills(ctx: Ctx, request: Request, user: str = Depends(signed_in)) -> HTMLResponse:
    with ctx.db.session() as s:
        runs = list(s.scalars(select(DrillRun).order_by(DrillRun.started_at.desc()).limit(300)))
    return render(request, ctx, "drills.html", runs=runs)


@router.get("/drills/{run_id}", response_class=HTMLResponse)
def drill_run_page(ctx: Ctx, request: Request, run_id: str, user: str = Depends(signed_in)) -> HTMLResponse:
    """A kept drill run: its score, report and transcript (the world itself is gone)."""
    from firebreak.server.api_transcripts import transcript_steps

    with ctx.db.session() as s:
        run = s.get(DrillRun, run_id)
        if run is None:
            return render(request, ctx, "error.html", status_code=404, message=f"No drill run {run_id}.")
        s.expunge(run)
    res = run.result or {}
    kept = res.get("transcript")
    t: dict[str, Any] = kept if isinstance(kept, dict) else {}
    steps = transcript_steps(t.get("messages"), t.get("calls"))
    return render(request, ctx, "drill_run.html", run=run, res=res, report=res.get("report") or {}, steps=steps)


# --- transcripts ----------------------------------------------------------------------------------


@router.get("/transcripts", response_class=HTMLResponse)
def transcripts(ctx: Ctx, request: Request, reviewed: str | None = None, incident: str | None = None,
                user: str = Depends(signed_in)) -> HTMLResponse:
    q = select(Investigation)
    if incident:
        q = q.where(Investigation.incident_id == incident)
    if reviewed == "yes":
        q = q.where(Investigation.review_verdict.is_not(None))
    elif reviewed == "no":
        q = q.where(Investigation.review_verdict.is_(None))
    with ctx.db.session() as s:
        runs = [summary_of(i) for i in s.scalars(q.order_by(Investigation.queued_at.desc()).limit(300))]
    return render(request, ctx, "transcripts.html", runs=runs, reviewed=reviewed, incident=incident)


@router.get("/transcripts/{transcript_id}", response_class=HTMLResponse)
def transcript_page(ctx: Ctx, request: Request, transcript_id: str, user: str = Depends(signed_in)) -> HTMLResponse:
    with ctx.db.session() as s:
        inv = s.get(Investigation, transcript_id)
        if inv is None:
            return render(request, ctx, "error.html", status_code=404, message=f"No transcript {transcript_id}.")
        t = transcript_of(inv)
        incident = s.get(Incident, inv.incident_id)
        title = incident.title if incident else ""
    offsets = [step.offset_s for step in t.steps]  # from the run's first step (api_transcripts._set_offsets)
    return render(request, ctx, "transcript.html", t=t, steps=list(zip(t.steps, offsets, strict=True)),
                  incident_title=title)


@router.post("/transcripts/{transcript_id}/review")
def review(ctx: Ctx, request: Request, transcript_id: str, verdict: str = Form(""), note: str = Form(""),
           csrf: str = Form(""), sess: WebSession = Depends(web_session), user: str = Depends(signed_in)) -> Response:
    check_csrf(sess, csrf)
    back = f"/transcripts/{quote(transcript_id)}"
    if verdict not in ("right", "wrong"):
        return redirect(request, ctx, back, flash="error: verdict: choose right or wrong")
    if len(note) > 5000:
        return redirect(request, ctx, back, flash="error: note: at most 5000 characters")
    try:
        record_review(ctx, transcript_id, verdict=verdict, note=note, reviewer=user)
    except (LookupError, ValueError, ValidationError) as exc:
        return redirect(request, ctx, back, flash=f"error: {exc}")
    return redirect(request, ctx, back, flash=f"Review saved: {verdict}.")

