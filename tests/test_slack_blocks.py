"""Block Kit builders: structure, Slack's size limits, escaping of text we did not write."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from server import slack_blocks as sb

AT = datetime(2026, 3, 2, 8, 45, tzinfo=UTC)


def _msg(**kw: object) -> sb.ApprovalMessage:
    base: dict[str, object] = dict(
        incident_id="INC-2026-001", title="Checkout <b>down</b> & out", severity="critical", status="open",
        impact="all <!channel> payments & fail",
        hypotheses=[sb.HypothesisLine(title="Deploy 8.3.0", suspect="deploy: 8.3.0", confidence=0.7,
                                      evidence=["5xx from 13:12"],
                                      links=[sb.Link(label="Grafana|panel", url="https://g.example/d/x?a=1|2")])],
        fix=sb.FixLine(approval_id="apr-1", describe="rollback(service=checkout, to=8.2.0)", risk="low"),
        alternatives=[sb.FixLine(approval_id="apr-2", describe="restart(service=checkout)")],
        requested_at=AT,
    )
    base.update(kw)
    return sb.ApprovalMessage.model_validate(base)


def test_request_structure_and_escaping() -> None:
    text, blocks = sb.approval_request(_msg())
    assert "rollback(service=checkout, to=8.2.0)" in text
    dump = json.dumps(blocks)
    assert blocks[0]["text"]["text"] == "INC-2026-001: Checkout <b>down</b> & out"  # plain_text header
    assert "all &lt;!channel&gt; payments &amp; fail" in dump  # mrkdwn escaped: no @channel from a report
    assert "<https://g.example/d/x?a=1%7C2|Grafana/panel>" in dump
    actions = [b for b in blocks if b["type"] == "actions"][0]
    ids = [e["action_id"] for e in actions["elements"]]
    assert ids == [sb.ACTION_APPROVE, sb.ACTION_REJECT]
    assert actions["elements"][0]["confirm"]["confirm"]["text"] == "Yes, run it"
    alt = [b for b in blocks if b.get("accessory", {}).get("action_id") == sb.ACTION_APPROVE_ALT][0]
    assert alt["accessory"]["value"] == "apr-1|apr-2"


def test_limits_are_enforced() -> None:
    _, blocks = sb.approval_request(_msg(title="x" * 500, impact="y" * 5000))
    assert len(blocks[0]["text"]["text"]) <= 150
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section")
    assert len(blocks) <= 50


def test_decided_message_replaces_buttons() -> None:
    d = sb.DecisionLine(decision="approve", status="manual", decided_by="U1", via="slack", decided_at=AT,
                        action="rollback(service=checkout, to=8.2.0)", result="approved, to be done by hand")
    _, blocks = sb.decided_message(_msg(), d)
    dump = json.dumps(blocks)
    assert sb.ACTION_APPROVE not in dump and "<@U1>" in dump and "2026-03-02 08:45 UTC" in dump
    assert "nothing was run" in dump
    d2 = d.model_copy(update={"decision": "reject", "status": "rejected", "via": "web", "decided_by": "bob <x>",
                              "reason": "too risky"})
    text, blocks = sb.outcome_message(d2)
    assert "Rejected" in text and "bob &lt;x&gt;" in json.dumps(blocks) and "too risky" in text
