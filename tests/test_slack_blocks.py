"""Block Kit builders: structure, Slack's size limits, escaping of text we did not write."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from firebreak.server import slack_blocks as sb

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


def _links(text: str) -> list[str]:
    import re

    return re.findall(r"<[^<>]*>", text)


def test_long_titles_are_shortened_first_so_evidence_and_links_stay() -> None:
    hyps = [sb.HypothesisLine(title=f"Hypothesis {i} " + "very long words " * 200, suspect=f"deploy: v{i}",
                              confidence=0.5, evidence=[f"evidence {i}a", f"evidence {i}b"],
                              links=[sb.Link(label=f"log {i}", url=f"https://logs.example/q?i={i}")])
            for i in range(5)]
    _, blocks = sb.approval_request(_msg(hypotheses=hyps))
    (section,) = [b["text"]["text"] for b in blocks if b["type"] == "section" and "Top hypotheses" in
                  b["text"]["text"]]
    assert len(section) <= 3000
    for i in range(5):
        assert f"evidence {i}a" in section and f"<https://logs.example/q?i={i}|log {i}>" in section
        assert f"Hypothesis {i}" in section


def test_context_links_are_never_cut_inside() -> None:
    links = [sb.Link(label=f"dashboard {i} " + "x" * 300, url=f"https://g.example/d/{i}?" + "q" * 300)
             for i in range(8)]
    _, blocks = sb.approval_request(_msg(links=links, transcript_hint="firebreak transcripts show inv-1"))
    context = [b for b in blocks if b["type"] == "context"][0]["elements"][0]["text"]
    assert len(context) <= 3000
    assert context.count("<") == context.count(">") and all("|" in lk for lk in _links(context))
    assert "more" in context  # what did not fit is counted, not cut


def test_quoted_text_is_marked_inert_and_short() -> None:
    injected = "*URGENT* approve _now_ ~or~ `rm -rf /` <!here> " + "z" * 2000
    hyps = [sb.HypothesisLine(title=injected, suspect="config: x", confidence=0.4, evidence=[injected])]
    fix = sb.FixLine(approval_id="apr-1", describe="restart(service=api)", rationale=injected)
    text, blocks = sb.approval_request(_msg(title=injected, hypotheses=hyps, fix=fix))
    assert blocks[0]["type"] == "header" and blocks[0]["text"]["type"] == "plain_text"  # never formatted
    dump = json.dumps([text, *blocks[1:]], ensure_ascii=False)
    assert "*URGENT*" not in dump and "_now_" not in dump and "~or~" not in dump and "`rm" not in dump
    assert "<!here>" not in dump and "&lt;!here&gt;" in dump
    assert "\u201c\u2217URGENT\u2217 approve \u02cdnow\u02cd" in dump  # quoted, look-alikes, readable
    assert "z" * 900 not in dump  # shortened (the input has 2,000)


def test_reminder_code_fence_is_always_closed() -> None:
    draft = "```breakout``` & <tag> " * 400  # escaping makes it longer than the cut
    _, blocks = sb.reminder_message("INC-2026-001", 30, draft)
    code = blocks[1]["text"]["text"]
    assert code.startswith("```") and code.endswith("```") and len(code) <= 3000
    assert code.count("```") == 2


def test_mitigated_message_asks_a_person_to_close() -> None:
    text, blocks = sb.mitigated_message("INC-2026-004", "api: *HighErrorRate*", AT, 2)
    assert "mitigated" in text
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    (button,) = actions["elements"]
    assert button["action_id"] == sb.ACTION_CLOSE and button["value"] == "INC-2026-004"
    dump = json.dumps(blocks, ensure_ascii=False)
    assert "firebreak incidents close INC-2026-004" in dump and "*HighErrorRate*" not in dump
