"""Block Kit builders for approval requests, decisions, outcomes and update reminders.

Pure functions from pydantic views to `(fallback_text, blocks)`: no I/O, so they are unit-testable and the
web page can reuse the same wording. Limits from Slack's Block Kit reference are enforced here (header 150
characters, section text 3000, button text 75, confirm text 300) so a long model-written title never makes
Slack refuse the whole message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

ACTION_APPROVE = "firebreak_approve"
ACTION_REJECT = "firebreak_reject"
ACTION_APPROVE_ALT = "firebreak_approve_alt"
ACTION_IDS = (ACTION_APPROVE, ACTION_REJECT, ACTION_APPROVE_ALT)
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
            + (f"   *Services:* {escape(', '.join(msg.services))}" if msg.services else "")
            + f"\n*Impact:* {escape(msg.impact or 'under assessment')}"
            + (f"\n{escape(msg.summary)}" if msg.summary else "")
        ),
    ]
    if msg.hypotheses:
        lines = []
        for i, h in enumerate(msg.hypotheses, 1):
            line = f"*{i}. {escape(h.title)}* ({escape(h.suspect)}, {h.confidence:.0%})"
            for ev in h.evidence[:3]:
                line += f"\n      • {escape(_cut(ev, 200))}"
            if h.links:
                line += "\n      " + " · ".join(link(lk.label, lk.url) for lk in h.links[:5])
            lines.append(line)
        blocks.append(_section("*Top hypotheses*\n" + "\n".join(lines)))
    refs = [link(lk.label, lk.url) for lk in msg.links[:8]]
    if msg.transcript_hint:
        refs.append(f"transcript: `{escape(msg.transcript_hint)}`")
    if refs:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _cut(" · ".join(refs), 3000)}]})
    return blocks


def _fix_text(fix: FixLine, heading: str) -> str:
    text = f"*{heading}:* `{escape(fix.describe)}`"
    if fix.rationale:
        text += f"\n_Why:_ {escape(fix.rationale)}"
    if fix.risk:
        text += f"\n_Risk:_ {escape(fix.risk)}"
    if fix.undo:
        text += f"\n_Undo:_ {escape(fix.undo)}"
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
                    ("Run this fix?", f"`{escape(msg.fix.describe)}` will be executed in production.")),
            _button("Reject", ACTION_REJECT, msg.fix.approval_id, "danger"),
        ],
    })
    for alt in msg.alternatives[:5]:
        value = f"{msg.fix.approval_id}{ALT_SEPARATOR}{alt.approval_id}"
        section = _section(_fix_text(alt, "Other hypothesis' fix"))
        section["accessory"] = _button(
            "Approve this instead", ACTION_APPROVE_ALT, value, None,
            ("Run this fix instead?", f"`{escape(alt.describe)}` will be executed instead of "
                                      f"`{escape(msg.fix.describe)}`."),
        )
        blocks.append(section)
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
        f"Approval `{msg.fix.approval_id}` requested {when(msg.requested_at)}. Only approvers can decide; "
        f"also `firebreak approvals approve {msg.fix.approval_id} --as NAME` or the web page."
    )}]})
    text = f"[{msg.severity}] {msg.incident_id} {msg.title}: approve {msg.fix.describe}?"
    return _cut(text, 3000), blocks


def decision_summary(d: DecisionLine) -> str:
    icon = STATUS_ICON.get(d.status, ":information_source:")
    verb = "Approved" if d.decision == "approve" else "Rejected"
    text = f"{icon} *{verb}* by {who(d.decided_by, d.via)} via {d.via} at {when(d.decided_at)}: `{escape(d.action)}`"
    if d.reason:
        text += f"\n_Reason:_ {escape(d.reason)}"
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


def reminder_message(incident_id: str, minutes: int, draft: str) -> tuple[str, list[Block]]:
    """The update reminder posted in the incident thread, with a drafted update to copy."""
    head = (f":alarm_clock: No update on *{escape(incident_id)}* for {minutes} minutes. "
            "Time to post one. Draft from the latest report:")
    blocks = [_section(head), _section("```" + escape(_cut(draft, 2900)) + "```")]
    return _cut(f"No update on {incident_id} for {minutes} minutes. Draft: {draft}", 3000), blocks
