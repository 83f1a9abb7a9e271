"""Block Kit builders for approval requests, decisions, outcomes and update reminders.

Pure functions from pydantic views to `(fallback_text, blocks)`: no I/O, so they are unit-testable and the
web page can reuse the same wording. Limits from Slack's Block Kit reference are enforced here (header 150
characters, section text 3000, button text 75, confirm text 300) so a long model-written title never makes
Slack refuse the whole message.

Text we did not write (incident titles, impact, hypothesis titles and evidence, fix rationale, change
notes quoted in evidence) is quoted data: escaped (`&<>`), its mrkdwn control characters (`*_~` and the
backtick) replaced by look-alikes so it cannot format or break out of a code span, shortened, and shown
between quotation marks. Long messages are shortened field by field, titles first, so evidence and links
stay; a `<url|label>` link is never cut, only left out whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

ACTION_APPROVE = "firebreak_approve"
ACTION_REJECT = "firebreak_reject"
ACTION_APPROVE_ALT = "firebreak_approve_alt"
ACTION_CLOSE = "firebreak_close_incident"
ACTION_IDS = (ACTION_APPROVE, ACTION_REJECT, ACTION_APPROVE_ALT, ACTION_CLOSE)
ALT_SEPARATOR = "|"

SEVERITY_ICON = {"critical": ":red_circle:", "major": ":large_orange_circle:", "minor": ":large_yellow_circle:"}
STATUS_ICON = {
    "approved": ":white_check_mark:", "executed": ":white_check_mark:", "manual": ":construction:",
    "failed": ":x:", "rejected": ":no_entry_sign:", "executing": ":hourglass_flowing_sand:",
}
Block = dict[str, Any]


class Link(BaseModel):
    label: str
    url: str


class HypothesisLine(BaseModel):
    title: str
    suspect: str
    confidence: float
    evidence: list[str] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)


class FixLine(BaseModel):
    """One fix as shown to a person; `approval_id` is the row a click refers to."""

    approval_id: str
    describe: str
    rationale: str = ""
    risk: str = ""
    undo: str = ""


class ApprovalMessage(BaseModel):
    """Everything an approval request shows: built by server.approvals from the incident and report."""

    incident_id: str
    title: str
    severity: str
    status: str
    impact: str = ""
    summary: str = ""
    services: list[str] = Field(default_factory=list)
    hypotheses: list[HypothesisLine] = Field(default_factory=list)
    fix: FixLine
    alternatives: list[FixLine] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    requested_at: datetime
    transcript_hint: str = ""  # a command to read the agent's transcript when no public URL is known


class DecisionLine(BaseModel):
    """Who decided, when, through what, and what came of it."""

    decision: str
    status: str
    decided_by: str
    via: str
    decided_at: datetime
    action: str
    result: str = ""
    reason: str = ""


def escape(text: str) -> str:
    """Slack mrkdwn control characters (&, <, >) must be escaped in any text we did not write."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Look-alikes for mrkdwn's formatting characters in quoted text: shown the same, never parsed.
_MRKDWN_LOOKALIKE = str.maketrans({"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"})
TITLE_MAX = 150
EVIDENCE_MAX = 200
SECTION_MAX = 3000


def neutral(text: str) -> str:
    """Escaped and inert: `&<>` escaped and `*_~` and backticks replaced, so nothing formats or links."""
    return escape(text).translate(_MRKDWN_LOOKALIKE)


def quoted(text: str, limit: int = 500) -> str:
    """Text from outside or from a model, shown to approvers as quoted data: inert, shortened, in quotes."""
    flat = " ".join(text.split())
    return "\u201c" + neutral(_cut(flat, limit)) + "\u201d"


def fit_links(refs: list[str], limit: int, sep: str = " · ") -> str:
    """Whole `<url|label>` links joined while they fit; the rest counted, never cut inside one."""
    out: list[str] = []
    used = 0
    for i, ref in enumerate(refs):
        more = f"{sep}+{len(refs) - i - 1} more" if i < len(refs) - 1 else ""
        extra = len(ref) + (len(sep) if out else 0)
        if used + extra + len(more) > limit:
            rest = len(refs) - i
            return sep.join(out) + (sep if out else "") + f"+{rest} more"
        out.append(ref)
        used += extra
    return sep.join(out)


def link(label: str, url: str) -> str:
    return f"<{url.replace('|', '%7C').replace('>', '%3E')}|{escape(label).replace('|', '/')}>"


def who(user: str, via: str) -> str:
    """A Slack user id becomes a mention; a web/CLI name is shown as written."""
    return f"<@{user}>" if via == "slack" else escape(user)


def when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, 3000)}}


def _button(text: str, action_id: str, value: str, style: str | None = None,
            confirm: tuple[str, str] | None = None) -> Block:
    btn: Block = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": _cut(text, 75), "emoji": True},
        "value": value,
    }
    if style:
        btn["style"] = style
    if confirm:
        btn["confirm"] = {
            "title": {"type": "plain_text", "text": _cut(confirm[0], 100)},
            "text": {"type": "mrkdwn", "text": _cut(confirm[1], 300)},
            "confirm": {"type": "plain_text", "text": "Yes, run it"},
            "deny": {"type": "plain_text", "text": "Cancel"},
        }
    return btn


def _head_blocks(msg: ApprovalMessage) -> list[Block]:
    icon = SEVERITY_ICON.get(msg.severity, ":white_circle:")
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": _cut(f"{msg.incident_id}: {msg.title}", 150)}},
        _section(
            f"{icon} *Severity:* {escape(msg.severity)}   *Status:* {escape(msg.status)}"
            + (f"   *Services:* {neutral(_cut(', '.join(msg.services), 300))}" if msg.services else "")
            + f"\n*Impact:* {quoted(msg.impact, 600) if msg.impact else 'under assessment'}"
            + (f"\n{quoted(msg.summary, 900)}" if msg.summary else "")
        ),
    ]
    if msg.hypotheses:
        blocks.append(_section(hypotheses_text(msg.hypotheses)))
    refs = [link(lk.label, lk.url) for lk in msg.links[:8]]
    if msg.transcript_hint:
        refs.append(f"transcript: `{neutral(_cut(msg.transcript_hint, 300))}`")
    if refs:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": fit_links(refs, SECTION_MAX)}]})
    return blocks


def hypotheses_text(hyps: list[HypothesisLine], limit: int = SECTION_MAX) -> str:
    """The hypotheses section within `limit`: titles are shortened first (down to 60 characters), then
    evidence lines go from the last hypothesis up, so each keeps its links; then whole hypotheses."""
    for title_max, evidence_n in ((TITLE_MAX, 3), (100, 3), (60, 3), (60, 2), (60, 1), (60, 0)):
        text = "*Top hypotheses*\n" + "\n".join(
            _hypothesis(i, h, title_max, evidence_n) for i, h in enumerate(hyps, 1)
        )
        if len(text) <= limit:
            return text
    kept: list[str] = []
    for i, h in enumerate(hyps, 1):
        line = _hypothesis(i, h, 60, 0)
        if len("*Top hypotheses*\n" + "\n".join([*kept, line])) + 20 > limit:
            return "*Top hypotheses*\n" + "\n".join(kept) + f"\n…and {len(hyps) - i + 1} more"
        kept.append(line)
    return "*Top hypotheses*\n" + "\n".join(kept)


def _hypothesis(i: int, h: HypothesisLine, title_max: int, evidence_n: int) -> str:
    line = f"*{i}.* {quoted(h.title, title_max)} ({neutral(_cut(h.suspect, 120))}, {h.confidence:.0%})"
    for ev in h.evidence[:evidence_n]:
        line += f"\n      • {quoted(ev, EVIDENCE_MAX)}"
    if h.links:
        line += "\n      " + fit_links([link(lk.label, lk.url) for lk in h.links[:5]], 1200)
    return line


def _fix_text(fix: FixLine, heading: str) -> str:
    text = f"*{heading}:* `{neutral(_cut(fix.describe, 500))}`"
    if fix.rationale:
        text += f"\n_Why:_ {quoted(fix.rationale, 800)}"
    if fix.risk:
        text += f"\n_Risk:_ {quoted(fix.risk, 500)}"
    if fix.undo:
        text += f"\n_Undo:_ {quoted(fix.undo, 500)}"
    return text


def approval_request(msg: ApprovalMessage) -> tuple[str, list[Block]]:
    """The request: incident, hypotheses with evidence links, the fix with Approve/Reject, alternatives."""
    blocks = _head_blocks(msg)
    blocks.append({"type": "divider"})
    blocks.append(_section(_fix_text(msg.fix, "Proposed fix")))
    blocks.append({
        "type": "actions",
        "block_id": f"firebreak:{msg.fix.approval_id}",
        "elements": [
            _button("Approve", ACTION_APPROVE, msg.fix.approval_id, "primary",
                    ("Run this fix?", f"`{neutral(_cut(msg.fix.describe, 240))}` will be executed in production.")),
            _button("Reject", ACTION_REJECT, msg.fix.approval_id, "danger"),
        ],
    })
    for alt in msg.alternatives[:5]:
        value = f"{msg.fix.approval_id}{ALT_SEPARATOR}{alt.approval_id}"
        section = _section(_fix_text(alt, "Other hypothesis' fix"))
        section["accessory"] = _button(
            "Approve this instead", ACTION_APPROVE_ALT, value, None,
            ("Run this fix instead?", f"`{neutral(_cut(alt.describe, 120))}` will be executed instead of "
                                      f"`{neutral(_cut(msg.fix.describe, 120))}`."),
        )
        blocks.append(section)
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
        f"Approval `{msg.fix.approval_id}` requested {when(msg.requested_at)}. Only approvers can decide; "
        f"also `firebreak approvals approve {msg.fix.approval_id} --as NAME` or the web page."
    )}]})
    text = f"[{msg.severity}] {msg.incident_id} {neutral(_cut(msg.title, TITLE_MAX))}: approve {msg.fix.describe}?"
    return _cut(text, 3000), blocks


def decision_summary(d: DecisionLine) -> str:
    icon = STATUS_ICON.get(d.status, ":information_source:")
    verb = "Approved" if d.decision == "approve" else "Rejected"
    text = (f"{icon} *{verb}* by {who(d.decided_by, d.via)} via {d.via} at {when(d.decided_at)}: "
            f"`{neutral(_cut(d.action, 500))}`")
    if d.reason:
        text += f"\n_Reason:_ {quoted(d.reason, 800)}"
    if d.decision == "approve":
        text += "\n" + result_line(d.status, d.result)
    return text


def result_line(status: str, result: str, *, plain: bool = False) -> str:
    """The execution outcome in one line: mrkdwn for Slack, or plain text for the CLI and web page."""
    esc = (lambda x: x) if plain else escape
    head = "Result:" if plain else "*Result:*"
    if status == "executed":
        return f"{head} executed. {esc(result)}"
    if status == "manual":
        return (f"{head} approved, to be done by hand: no executor is configured for this action, "
                "nothing was run. Please carry it out and note it in the thread.")
    if status == "failed":
        return f"{head} execution FAILED. {esc(result)}"
    if status == "executing":
        return f"{head} running…"
    return f"{head} {esc(status)}" + (f". {esc(result)}" if result else "")


def decided_message(msg: ApprovalMessage, d: DecisionLine) -> tuple[str, list[Block]]:
    """The original request rewritten after the decision: same facts, buttons replaced by the outcome."""
    blocks = _head_blocks(msg)
    blocks.append({"type": "divider"})
    blocks.append(_section(_fix_text(msg.fix, "Proposed fix")))
    blocks.append(_section(decision_summary(d)))
    verb = "approved" if d.decision == "approve" else "rejected"
    return _cut(f"{msg.incident_id} {msg.title}: {d.action} {verb} by {d.decided_by} ({d.status})", 3000), blocks


def outcome_message(d: DecisionLine) -> tuple[str, list[Block]]:
    """The thread reply after a decision."""
    text = decision_summary(d)
    return _cut(text.replace("*", ""), 3000), [_section(text)]


def code_block(text: str, limit: int = SECTION_MAX) -> str:
    """Text in a closed code fence within `limit`: escaped first, then shortened, so the closing fence
    always stays; a fence inside the text cannot end the block early."""
    inner = escape(text.replace("```", "\u02cb\u02cb\u02cb"))
    return "```" + _cut(inner, limit - 6) + "```"


def reminder_message(incident_id: str, minutes: int, draft: str) -> tuple[str, list[Block]]:
    """The update reminder posted in the incident thread, with a drafted update to copy."""
    head = (f":alarm_clock: No update on *{neutral(incident_id)}* for {minutes} minutes. "
            "Time to post one. Draft from the latest report:")
    blocks = [_section(head), _section(code_block(draft))]
    return _cut(f"No update on {incident_id} for {minutes} minutes. Draft: {draft}", 3000), blocks


def mitigated_message(incident_id: str, title: str, at: datetime, alerts: int) -> tuple[str, list[Block]]:
    """Posted in the incident thread when every alert has resolved: it is mitigated; close it?"""
    head = (f":large_green_circle: Every alert of *{neutral(incident_id)}* {quoted(title, TITLE_MAX)} has "
            f"resolved ({alerts} alert{'s' if alerts != 1 else ''}, last at {when(at)}): marked *mitigated*. "
            "Is it over? A person closes it.")
    blocks: list[Block] = [
        _section(head),
        {"type": "actions", "block_id": f"firebreak-close:{incident_id}", "elements": [
            _button("Close incident", ACTION_CLOSE, incident_id, "primary",
                    ("Close this incident?", f"*{neutral(incident_id)}* will be marked resolved.")),
        ]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": (
            f"Or `firebreak incidents close {neutral(incident_id)}`. If it comes back, it reopens by itself."
        )}]},
    ]
    return _cut(f"Every alert of {incident_id} has resolved: mitigated. Close it?", 3000), blocks
