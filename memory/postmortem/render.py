"""Markdown for people: the post-mortem and its customer version."""

from __future__ import annotations

from datetime import datetime

from firebreak.memory.postmortem.model import CustomerPostMortem, PostMortem


def _t(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at else "unknown"


def _m(minutes: float | None) -> str:
    return "unknown" if minutes is None else f"{minutes:.0f} min"


def markdown(pm: PostMortem) -> str:
    lines = [f"# {pm.title}", "", f"Status: {pm.status.value} · incident {pm.incident_id}", "",
             "## Summary", "", pm.summary, "", "## Impact", "",
             f"- Severity: **{pm.impact.severity}**" + (f" ({why})" if (why := pm.impact.severity_why) else ""),
             f"- From {_t(pm.impact.started_at)} to {_t(pm.impact.ended_at)} ({_m(pm.impact.duration_minutes)})"]
    if pm.impact.who:
        lines.append(f"- Who was affected: {pm.impact.who}")
    if pm.impact.lost_or_delayed:
        lines.append(f"- What was lost or delayed: {pm.impact.lost_or_delayed}")
    d = pm.durations
    lines += ["", "## Timeline", "",
              f"Time to detect {_m(d.to_detect)} · to mitigate {_m(d.to_mitigate)} · to resolve {_m(d.to_resolve)}",
              "", "| time (UTC) | what |", "| --- | --- |"]
    lines += [f"| {it.at.strftime('%Y-%m-%d %H:%M:%S')} | {it.text.replace('|', '/')} |" for it in pm.timeline]
    lines += ["", "## Root cause: 5 Whys", ""]
    if pm.root_cause:
        lines += [f"Root cause ({pm.root_cause_category}): {pm.root_cause}", ""]
    for i, w in enumerate(pm.whys, start=1):
        mark = " _(to answer)_" if w.source == "to_answer" else ""
        lines.append(f"{i}. **{w.question}** {w.answer}{mark}")
    for title, items in (("Contributing factors", pm.contributing_factors), ("What went well", pm.went_well),
                         ("What did not go well", pm.went_badly)):
        lines += ["", f"## {title}", ""]
        lines += [f"- {x}" for x in items] or ["- (none recorded)"]
    lines += ["", "## Action items", "", "| # | what | owner | due | state |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {a.remediation_id or ''} | {a.what} | {a.owner} | {a.due or ''} | {a.status} |"
              for a in pm.action_items]
    if pm.recurrence:
        lines += ["", f"Recurrence: {pm.recurrence}."]
    if pm.blameless:
        lines += ["", "## Blameless check", ""]
        lines += [f"- {f.section}: \"{f.excerpt}\" ({f.rule}). Suggestion: {f.suggestion}" for f in pm.blameless]
    return "\n".join(lines) + "\n"


def customer_markdown(c: CustomerPostMortem) -> str:
    lines = [f"# {c.title}", "", "## What happened", "", c.what_happened, "", "## Impact", "", c.impact, "",
             "## What we did", "", c.what_we_did, "", "## What we are changing", ""]
    lines += [f"- {x}" for x in c.what_we_are_changing] or ["- We are reviewing this incident."]
    return "\n".join(lines) + "\n"
