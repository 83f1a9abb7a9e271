"""Issue 15, item 1: secrets from outside are redacted where stored and again at every way out.

The walk plants 75 secret texts (25 shapes, plain, URL-encoded and JSON-quoted) where an outsider can
put them (alert summaries and labels, a Sentry title, a change note, log lines) and where a person can
(a hand-made incident, which is stored as typed), runs the investigator, then reads every way out (web
pages, CLI, Slack, API, MCP, transcripts, exports) and counts leaks: there must be none, and the
evidence next to the secrets (versions, UUIDs, hashes, trace ids) must still be readable.
"""

from __future__ import annotations

import contextlib
import html
import io
import json
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from firebreak.context import ToolContext
from firebreak.redact import RedactingWriter, redact_obj, redact_text
from firebreak.settings import Settings, get_settings
from tests.fake_slack import FakeSlack
from tests.security_corpus import BASE, CORPUS, NEGATIVES, leaks
from tests.test_intake_common import (
    API_TOKEN,
    bearer,
    configure,
    fixture_bytes,
    make_app,
    sentry_headers,
)

TEXTS = [text for _, text, _ in CORPUS]
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PASSWORD = "correct horse battery"


def test_corpus_has_sixty_shapes_including_the_four_never_redacted_before() -> None:
    assert len(CORPUS) >= 60 and len({name for name, _, _ in CORPUS}) == len(CORPUS)
    names = {name for name, _, _ in BASE}
    assert {"db_pass", "bearer_letters", "json_pass", "password_pair"} <= names
    assert any(name == "password_pair/url" and "password%3D" in text for name, text, _ in CORPUS)
    assert any(name == "json_pass/json" and '\\"pass\\"' in text for name, text, _ in CORPUS)


@pytest.mark.parametrize(("name", "text", "secret"), CORPUS, ids=[c[0] for c in CORPUS])
def test_each_shape_is_redacted(name: str, text: str, secret: str) -> None:
    out = redact_text(text)
    assert leaks(out) == [] and "[REDACTED:" in out, out
    assert redact_text(out) == out  # idempotent
    assert leaks(json.dumps(redact_obj({"k": text, "nested": [text]}))) == []


@pytest.mark.parametrize("text", NEGATIVES)
def test_evidence_stays_readable(text: str) -> None:
    assert redact_text(text) == text
    mixed = f"{text} | {TEXTS[7]} | {TEXTS[8]}"  # next to URL-encoded and JSON-quoted secrets
    assert text in redact_text(mixed)


def test_redacting_writer_is_a_text_stream() -> None:
    out = io.StringIO()
    writer = RedactingWriter(out)
    writer.write("login " + TEXTS[0] + "\n")
    with pytest.raises(TypeError):
        writer.write(b"bytes")  # type: ignore[arg-type]
    assert leaks(out.getvalue()) == [] and "[REDACTED:" in out.getvalue()


# --- the walk ---------------------------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as f:
        yield f


@pytest.fixture
def world(ctx: ToolContext, fake: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Secrets planted through every way in; returns the ids to read them back by."""
    from firebreak.memory.incident_log import open_incident
    from firebreak.server.users import add_user
    from firebreak.tools.log_store import LogLine, get_log_store

    configure(ctx)
    s = ctx.settings
    s.slack_bot_token, s.slack_channel, s.slack_api_url = SecretStr(fake.token), "C0SEC", fake.api_url
    s.approvers = ["alice"]
    now = ctx.clock.now()
    for key, value in (("FIREBREAK_DATA_DIR", str(s.data_dir)), ("FIREBREAK_API_TOKEN", API_TOKEN)):
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    c = TestClient(make_app(ctx))
    evidence = " ".join(NEGATIVES)
    alerts = [
        {"status": "firing", "fingerprint": f"sec-{i}",
         "labels": {"alertname": "HighErrorRate", "service": "checkout", "severity": "critical",
                    **{f"note_{j}": TEXTS[j] for j in range(i, len(TEXTS), 3)}},
         "annotations": {"summary": f"errors {evidence} " + " ; ".join(TEXTS[i::3]),
                         "description": " ; ".join(TEXTS[i::3])},
         "startsAt": (now - timedelta(minutes=5)).isoformat(), "endsAt": "0001-01-01T00:00:00Z"}
        for i in range(3)
    ]
    body = {"receiver": "fb", "status": "firing", "version": "4", "groupKey": "{}:{alertname=\"x\"}",
            "externalURL": "http://am", "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
            "alerts": alerts}
    r = c.post("/webhooks/alertmanager", content=json.dumps(body).encode(), headers=bearer())
    assert r.status_code == 202, r.text
    alert_incident = r.json()["incidents_opened"][0]

    sentry = json.loads(fixture_bytes(Path(__file__).parent / "fixtures" / "vendor",
                                      "sentry-issue-created.docs.json"))
    sentry["data"]["issue"]["title"] = "OperationalError " + " ".join(t for n, t, _ in CORPUS if n.startswith(
        ("db_pass", "bearer_letters", "json_pass", "password_pair")))[:900]
    raw = json.dumps(sentry).encode()
    r = c.post("/webhooks/sentry", content=raw, headers=sentry_headers(raw, "issue"))
    assert r.status_code == 202, r.text

    change = {"kind": "deploy", "service": "checkout", "version": "8.3.0", "previous_version": "8.2.0",
              "at": (now - timedelta(minutes=20)).isoformat(), "author": "ci", "note": " ".join(TEXTS)}
    assert c.post("/webhooks/changes", json=change, headers=bearer()).status_code == 202

    get_log_store(ctx).ingest([
        LogLine(ts=now - timedelta(minutes=4, seconds=i), service="checkout", level="ERROR",
                message=f"payment failed {evidence} {text}", attributes={"raw": text})
        for i, text in enumerate(TEXTS)
    ])
    with ctx.db.session() as ss:  # typed by a person: stored as typed, so only the ways out can hide it
        manual = open_incident(ss, title="Checkout down " + TEXTS[21], services=["checkout"], severity="major",
                               at=now, actor="alice", symptoms=evidence + "\n" + "\n".join(TEXTS)).id
        add_user(ss, "alice", PASSWORD, at=now)
    return {"client": c, "incidents": [alert_incident, manual]}


def _investigate_all(ctx: ToolContext) -> list[str]:
    from sqlalchemy import select

    from firebreak.agent.investigator import investigate
    from firebreak.state.investigations import Investigation

    with ctx.db.session() as s:  # one run is enough to have a transcript to read back
        ids = list(s.scalars(select(Investigation.id).order_by(Investigation.queued_at).limit(1)))
    for inv in ids:
        investigate(ctx, inv, notify=False)
    return ids


def _cli(argv: list[str]) -> str:
    """`firebreak ARGV` in process, through `main()` (which puts the redactor on stdout and stderr)."""
    from firebreak.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = sys.argv, sys.stdout, sys.stderr
    sys.argv, sys.stdout, sys.stderr = ["firebreak", *argv], out, err
    try:
        with contextlib.suppress(SystemExit):
            main()
    finally:
        sys.argv, sys.stdout, sys.stderr = saved
    return out.getvalue() + err.getvalue()


def _mcp(ctx: ToolContext, calls: list[tuple[str, dict[str, Any]]]) -> str:
    from mcp import Client

    from firebreak.server.mcp_server import build_server

    texts: list[str] = []

    async def main() -> None:
        async with Client(build_server(ctx)) as client:
            for name, args in calls:
                res = await client.call_tool(name, args)
                texts.append(json.dumps(res.structured_content) + " ".join(
                    getattr(part, "text", "") for part in res.content))

    anyio.run(main)
    return "\n".join(texts)


def test_no_secret_leaves_by_any_way_out(ctx: ToolContext, world: dict[str, Any], fake: FakeSlack) -> None:
    from firebreak.server import slack

    c: TestClient = world["client"]
    incidents: list[str] = world["incidents"]
    investigations = _investigate_all(ctx)
    assert investigations
    with ctx.db.session() as s:  # a reviewer's note, typed by a person: stored as typed
        from firebreak.state.investigations import Investigation

        run = s.get(Investigation, investigations[0])
        assert run is not None
        run.review_verdict, run.review_note, run.reviewed_by = "wrong", "\n".join(TEXTS), "alice"
    outputs: dict[str, str] = {}

    # Web pages, signed in.
    page = c.get("/login")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    assert c.post("/login", data={"name": "alice", "password": PASSWORD, "csrf": csrf, "next": "/"},
                  follow_redirects=False).status_code == 303
    for path in ["/", *[f"/incidents/{i}" for i in incidents], "/transcripts",
                 *[f"/transcripts/{i}" for i in investigations]]:
        r = c.get(path)
        assert r.status_code == 200, (path, r.status_code)
        outputs[f"web {path}"] = html.unescape(r.text)

    # API and tools over HTTP.
    for path in ["/api/incidents", *[f"/api/incidents/{i}?include_raw=true" for i in incidents],
                 "/api/transcripts", *[f"/api/transcripts/{i}" for i in investigations]]:
        r = c.get(path, headers=AUTH)
        assert r.status_code == 200, (path, r.text)
        outputs[f"api {path}"] = r.text
    tool_calls: list[tuple[str, dict[str, Any]]] = [
        ("search_logs", {"service": "checkout", "limit": 200}), ("recent_changes", {}),
        ("list_incidents", {}), *[("incident_details", {"incident_id": i}) for i in incidents],
    ]
    for name, args in tool_calls:
        r = c.post(f"/api/tools/{name}", json=args, headers=AUTH)
        assert r.status_code == 200, (name, r.text)
        outputs[f"api tool {name}"] = r.text

    # MCP.
    outputs["mcp"] = _mcp(ctx, tool_calls)

    # CLI, listings, shows and exports.
    for argv in (["incidents", "list", "--json"], *[["incidents", "show", i, "--json"] for i in incidents],
                 *[["incidents", "show", i] for i in incidents], ["incidents", "export", "--format", "json"],
                 ["incidents", "export", "--format", "csv"], ["transcripts", "list", "--json"],
                 *[["transcripts", "show", i, "--json"] for i in investigations],
                 ["approvals", "list", "--status", "all", "--json"]):
        outputs["cli " + " ".join(argv)] = _cli(argv)

    # Slack: whatever a message would quote, including text that never went through storage.
    with ctx.db.session() as s:
        from firebreak.state.incidents import Incident

        inc = s.get(Incident, incidents[1])
        assert inc is not None
        raw_text = inc.title + "\n" + inc.symptoms
    assert leaks(raw_text)  # the hand-made incident really holds the secrets
    posted = slack.post(ctx.settings, text=raw_text, blocks=[{"type": "section", "text": {
        "type": "mrkdwn", "text": raw_text}}])
    assert posted is not None
    assert slack.update(ctx.settings, channel=posted[0], ts=posted[1], text=raw_text,
                        blocks=[{"type": "context", "elements": [{"type": "mrkdwn", "text": raw_text}]}])
    outputs["slack"] = json.dumps([r.body for r in fake.requests])

    found = {where: leaks(text) for where, text in outputs.items()}
    leaked = {where: names for where, names in found.items() if names}
    assert not leaked, json.dumps(leaked, indent=1)
    assert len(outputs) >= 20
    # Something was there to hide, and the evidence beside it is still readable.
    alert_page = outputs[f"web /incidents/{incidents[0]}"]
    assert "[REDACTED:" in alert_page and "[REDACTED:" in outputs[f"web /incidents/{incidents[1]}"]
    for text in NEGATIVES:
        assert text in alert_page, text
        assert text in outputs[f"cli incidents show {incidents[1]} --json"], text
        assert text in outputs["api tool search_logs"], text
    assert "4.6.2" in outputs["api tool search_logs"]
    # JSON printed by the CLI is still JSON after redaction (redacted value by value).
    shown = json.loads(outputs[f"cli incidents show {incidents[1]} --json"])
    assert "[REDACTED:" in json.dumps(shown) and isinstance(json.loads(outputs["cli incidents list --json"]), list)


def test_outside_text_is_redacted_before_it_is_stored(ctx: ToolContext, world: dict[str, Any]) -> None:
    """What the database holds from outside: alerts (title, summary, labels, raw), changes, log lines."""
    from sqlalchemy import select

    from firebreak.state.alerts import Alert
    from firebreak.state.changes import Change
    from firebreak.state.incidents import Incident
    from firebreak.tools.log_store import get_log_store

    with ctx.db.session() as s:
        alerts = list(s.scalars(select(Alert)))
        stored = [json.dumps([a.title, a.summary, a.labels, a.raw, [lk for lk in (a.links or [])]], default=str)
                  for a in alerts]
        stored += [json.dumps([c.note, c.from_value, c.to_value]) for c in s.scalars(select(Change))]
        sentry_incidents = [i.title for i in s.scalars(select(Incident).where(Incident.source != "manual"))]
    assert len(alerts) == 4
    conn = get_log_store(ctx)._conn()
    stored += [f"{m} {a}" for m, a in conn.execute("SELECT message, attributes FROM log_lines")]
    assert {i: leaks(t) for i, t in enumerate(stored) if leaks(t)} == {}
    assert [leaks(t) for t in sentry_incidents] == [[] for _ in sentry_incidents]
    assert any("[REDACTED:" in t for t in stored)


def test_config_change_to_a_secret_key_hides_both_values(ctx: ToolContext) -> None:
    from firebreak.tools.changes import ChangeIn, record_change

    with ctx.db.session() as s:
        row = record_change(s, ChangeIn.model_validate(
            {"kind": "config", "service": "checkout", "key": "DB_PASSWORD", "from": "old-s3cret-value",
             "to": "new-s3cret-value", "note": "rotate"}), now=ctx.clock.now())
        assert (row.from_value, row.to_value) == ("[REDACTED:password]", "[REDACTED:password]")
        plain = record_change(s, ChangeIn.model_validate(
            {"kind": "config", "service": "checkout", "key": "pool_size", "from": "10", "to": "20"}),
            now=ctx.clock.now())
        assert (plain.from_value, plain.to_value) == ("10", "20")


def test_settings_type_is_unchanged(settings: Settings) -> None:
    """The walk switches Slack on through Settings fields the product reads (not a private hook)."""
    assert {"slack_bot_token", "slack_channel", "slack_api_url", "approvers"} <= set(Settings.model_fields)


def test_imported_runbooks_are_redacted_before_indexing(tmp_path: Path) -> None:
    from firebreak.memory.importers import collect

    runbook = tmp_path / "checkout.md"
    runbook.write_text("# Checkout runbook\n\n## Database\n\nConnect with\n\n" + "\n".join(TEXTS) + "\n")
    records, _ = collect(runbook)
    assert records and all(leaks(r.title + r.text) == [] for r in records)
    assert any("[REDACTED:" in r.text for r in records)
