"""The post-mortem page: read the draft, edit the whys and findings, run the blameless check, publish.

Plain server-rendered forms like the rest of the web page (no scripts, CSRF on every post). The domain
work (drafting, checks, publishing) lives in `memory.postmortem.service`; this module only adapts HTTP.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, Response

from firebreak.memory import incident_log
from firebreak.memory.postmortem import service
from firebreak.memory.postmortem.model import Source
from firebreak.server.deps import Ctx
from firebreak.server.web import WebSession, check_csrf, redirect, render, signed_in, web_session

router = APIRouter(include_in_schema=False)
MAX_FIELD = 4000


def _lines(text: str) -> list[str]:
    return [ln.strip()[:MAX_FIELD] for ln in text.splitlines() if ln.strip()][:50]


def _page(incident_id: str) -> str:
    return f"/incidents/{incident_id}/postmortem"


@router.get("/incidents/{incident_id}/postmortem", response_class=HTMLResponse)
def postmortem_page(ctx: Ctx, request: Request, incident_id: str,
                    user: str = Depends(signed_in)) -> HTMLResponse:
    try:
        with ctx.db.session() as s:
            pm = service.draft_or_load(s, incident_id, now=ctx.clock.now(), actor=user,
                                       update_minutes=ctx.settings.update_minutes)
            customer = service.customer(s, pm)
    except incident_log.IncidentLogError:
        return render(request, ctx, "error.html", status_code=404, message=f"No incident {incident_id}.")
    return render(request, ctx, "postmortem.html", pm=pm, customer=customer)


@router.post("/incidents/{incident_id}/postmortem")
async def save_postmortem(ctx: Ctx, request: Request, incident_id: str, csrf: str = Form(""),
                          sess: WebSession = Depends(web_session),
                          user: str = Depends(signed_in)) -> Response:
    check_csrf(sess, csrf)
    form = await request.form()

    def field(name: str) -> str:
        value = form.get(name, "")
        return value[:MAX_FIELD] if isinstance(value, str) else ""

    try:
        with ctx.db.session() as s:
            pm = service.load(s, incident_id)
            if pm is None:
                return redirect(request, ctx, _page(incident_id), "error: draft the post-mortem first")
            pm.summary = field("summary") or pm.summary
            pm.root_cause = field("root_cause")
            for i, why in enumerate(pm.whys):
                answer = field(f"why_{i}").strip()
                if answer and answer != why.answer:
                    why.answer, why.source = answer, Source.PERSON
            pm.contributing_factors = _lines(field("contributing_factors"))
            pm.went_well = _lines(field("went_well"))
            pm.went_badly = _lines(field("went_badly"))
            saved = service.update(s, pm, now=ctx.clock.now(), actor=user)
    except service.PostMortemError as exc:
        return redirect(request, ctx, _page(incident_id), f"error: {exc}")
    note = f" {len(saved.blameless)} blameless finding(s) to rephrase." if saved.blameless else ""
    return redirect(request, ctx, _page(incident_id), "Saved." + note)


@router.post("/incidents/{incident_id}/postmortem/{step}")
def postmortem_step(ctx: Ctx, request: Request, incident_id: str, step: str, csrf: str = Form(""),
                    sess: WebSession = Depends(web_session),
                    user: str = Depends(signed_in)) -> Response:
    check_csrf(sess, csrf)
    try:
        with ctx.db.session() as s:
            if step == "review":
                found = service.review(s, incident_id, now=ctx.clock.now(), actor=user)
                message = (f"In review: {len(found)} blameless finding(s)." if found
                           else "In review: wording is blameless.")
            elif step == "publish":
                service.publish(s, incident_id, now=ctx.clock.now(), actor=user)
                message = "Published: the root cause is now in memory."
            else:
                return redirect(request, ctx, _page(incident_id), f"error: unknown step {step[:40]!r}")
    except (service.PostMortemError, incident_log.IncidentLogError) as exc:
        return redirect(request, ctx, _page(incident_id), f"error: {exc}")
    if step == "publish":
        from firebreak.memory.index import sync_incidents

        sync_incidents(ctx)
    return redirect(request, ctx, _page(incident_id), message)
