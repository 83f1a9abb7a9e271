"""Post-mortems: drafted from a real drill's records, blameless check, customer version, publish to memory."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.db import reset_databases
from firebreak.memory import incident_log
from firebreak.memory.postmortem import service
from firebreak.memory.postmortem.blameless import check_text
from firebreak.memory.postmortem.model import PostMortemStatus, Source
from firebreak.memory.postmortem.schedule import due_at, next_working_morning
from firebreak.settings import Settings
from firebreak.state.approvals import Approval
from firebreak.state.incidents import Incident, Remediation

SCENARIO = Path(__file__).parent / "fixtures" / "scenarios" / "mailer-retry-loop.yaml"


@pytest.fixture(scope="module")
def kept_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One drill kept on disk (like `drill run --keep`), shared by the tests of this module."""
    from firebreak.simulations.runner import run_drill

    world = tmp_path_factory.mktemp("pm") / "world"
    world.mkdir()
    result = run_drill(SCENARIO, keep_dir=world)
    assert result.incidents_opened >= 1
    reset_databases()
    return world


@pytest.fixture
def world_ctx(kept_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ToolContext]:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(kept_world, data)
    for key in ("FIREBREAK_DATA_DIR", "FIREBREAK_DATABASE_URL", "FIREBREAK_MODEL"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(data))
    monkeypatch.setenv("FIREBREAK_APPROVERS", "alice")
    settings = Settings(data_dir=data, approvers=["alice"], _env_file=None)  # type: ignore[call-arg]
    with_db = ToolContext(settings=settings, clock=FixedClock(datetime(2026, 3, 2, 9, 30, tzinfo=UTC)))
    yield with_db
    with_db.close()
    reset_databases()


def _approve_and_close(ctx: ToolContext) -> str:
    from firebreak.server.approvals import decide

    with ctx.db.session() as s:
        approval = s.scalars(select(Approval).where(Approval.status == "pending")).first()
        assert approval is not None, "the drill left an approval request"
        approval_id, incident_id = approval.id, approval.incident_id
    ctx.clock = FixedClock(datetime(2026, 3, 2, 9, 40, tzinfo=UTC))  # type: ignore[misc]
    outcome = decide(ctx, approval_id, user="alice", decision="approve", via="cli")
    assert outcome.ok, outcome.message
    with ctx.db.session() as s:
        inc = incident_log.get_incident(s, incident_id)
        incident_log.set_status(s, inc, "resolved", at=datetime(2026, 3, 2, 10, 5, tzinfo=UTC), actor="alice")
    return incident_id


def test_draft_from_a_kept_drill_has_every_section_and_the_real_timeline(world_ctx: ToolContext) -> None:
    from firebreak.memory.postmortem.render import markdown

    incident_id = _approve_and_close(world_ctx)
    with world_ctx.db.session() as s:
        pm = service.draft_or_load(s, incident_id, now=world_ctx.clock.now(), actor="alice")
        md = markdown(pm)
        rems = s.scalars(select(Remediation).where(Remediation.incident_id == incident_id)).all()
    for heading in ("## Summary", "## Impact", "## Timeline", "## Root cause: 5 Whys", "## Contributing factors",
                    "## What went well", "## What did not go well", "## Action items"):
        assert heading in md
    # who approved the fix, and when (09:40 on the drill's day)
    assert any("alice approved" in it.text and it.at == datetime(2026, 3, 2, 9, 40, tzinfo=UTC)
               for it in pm.timeline)
    kinds = {it.kind for it in pm.timeline}
    assert {"alert", "change", "hypothesis", "approval", "status"} <= kinds
    assert [it.at for it in pm.timeline] == sorted(it.at for it in pm.timeline)
    assert pm.durations.to_resolve is not None and pm.durations.to_resolve > 0
    assert len(pm.whys) >= 3 and pm.whys[0].question.startswith("Why were users affected")
    # the seeded action items are remediations the incident log lists
    assert rems and {a.remediation_id for a in pm.action_items} == {r.id for r in rems}
    assert "alice" not in " ".join(w.answer for w in pm.whys)


def test_remediation_list_shows_the_action_items(world_ctx: ToolContext) -> None:
    from firebreak.cli import app

    incident_id = _approve_and_close(world_ctx)
    runner = CliRunner()
    res = runner.invoke(app, ["postmortem", "draft", incident_id, "--format", "json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    res2 = runner.invoke(app, ["incidents", "remediation", "list", "--json"])
    assert res2.exit_code == 0, res2.output
    listed = {r["what"] for r in json.loads(res2.stdout)}
    assert doc["action_items"] and {a["what"] for a in doc["action_items"]} <= listed


def test_blameless_check_flags_a_planted_sentence_and_suggests_a_system_phrasing(world_ctx: ToolContext) -> None:
    incident_id = _approve_and_close(world_ctx)
    with world_ctx.db.session() as s:
        pm = service.draft_or_load(s, incident_id, now=world_ctx.clock.now(), actor="alice")
        assert pm.blameless == []
        pm.whys[-1].answer = "Bob forgot to run the migration."
        pm.whys[-1].source = Source.PERSON
        service.update(s, pm, now=world_ctx.clock.now(), actor="alice")
        findings = service.review(s, incident_id, now=world_ctx.clock.now(), actor="alice")
        assert findings and "Bob" in findings[0].rule
        assert "run the migration" in findings[0].suggestion and "Bob" not in findings[0].suggestion
        with pytest.raises(service.PostMortemError, match="blameless"):
            service.publish(s, incident_id, now=world_ctx.clock.now(), actor="alice")


@pytest.mark.parametrize("text", ["It was human error.", "Carol forgot to renew the cert.",
                                  "The outage was the fault of the on-call engineer."])
def test_blame_wording_is_flagged(text: str) -> None:
    assert check_text("x", text)


@pytest.mark.parametrize("text", ["The deploy pipeline did not run the migration step.",
                                  "Nothing alerted on the certificate expiry.",
                                  "The retry loop shipped in 4.6.2 ignored max attempts."])
def test_system_level_wording_passes(text: str) -> None:
    assert check_text("x", text) == []


def test_customer_version_has_no_internal_host_or_person(world_ctx: ToolContext) -> None:
    incident_id = _approve_and_close(world_ctx)
    with world_ctx.db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        incident_log.update_incident(s, inc, {"user_impact": "mail via smtp-relay.internal.example.com late"},
                                     at=world_ctx.clock.now(), actor="alice")
        pm = service.draft_or_load(s, incident_id, now=world_ctx.clock.now(), actor="alice")
        c = service.customer(s, pm)
        text = json.dumps(c.model_dump(mode="json"))
        names = service.internal_names(s, inc)
    assert "alice" not in text.lower()
    assert "example.com" not in text and "smtp-relay" not in text
    for name in names:
        assert name.lower() not in text.lower(), name
    assert "rolled back" in c.what_we_did or "switched" in c.what_we_did


def test_publish_makes_it_the_first_memory_hit_for_its_symptoms(world_ctx: ToolContext) -> None:
    from firebreak.memory.index import get_index, sync_incidents

    incident_id = _approve_and_close(world_ctx)
    with world_ctx.db.session() as s:
        pm = service.draft_or_load(s, incident_id, now=world_ctx.clock.now(), actor="alice")
        pm.root_cause = "Release 4.6.2 rewrote the retry policy so mail jobs retried forever and filled memory"
        service.update(s, pm, now=world_ctx.clock.now(), actor="alice")
        published = service.publish(s, incident_id, now=world_ctx.clock.now(), actor="alice")
        inc = s.get(Incident, incident_id)
        assert inc is not None
        symptoms = inc.symptoms or inc.title
    assert published.status == PostMortemStatus.PUBLISHED
    sync_incidents(world_ctx)
    hits = get_index(world_ctx).search(symptoms, k=3)
    assert hits and hits[0].id == incident_id
    assert "retried forever" in (hits[0].root_cause or "")
    assert hits[0].action_items  # the post-mortem's action items travel with the past incident
    from firebreak.tools.registry import call_tool

    found = call_tool(world_ctx, "similar_incidents", {"text": symptoms, "include_open": True})
    top = found["hits"][0]
    assert top["id"] == incident_id and "retried forever" in top["root_cause"] and top["action_items"]


def test_due_after_next_working_morning_and_reminded_once(world_ctx: ToolContext) -> None:
    incident_id = _approve_and_close(world_ctx)  # resolved Monday 2026-03-02 10:05
    with world_ctx.db.session() as s:
        assert service.due(s, now=datetime(2026, 3, 2, 18, 0, tzinfo=UTC)) == []
        due = service.due(s, now=datetime(2026, 3, 3, 9, 0, tzinfo=UTC))
        assert [i.id for i, _ in due] == [incident_id]
        inc = s.get(Incident, incident_id)
        assert inc is not None
        assert service.claim_reminder(s, inc, now=datetime(2026, 3, 3, 9, 0, tzinfo=UTC)) is True
        assert service.claim_reminder(s, inc, now=datetime(2026, 3, 3, 9, 5, tzinfo=UTC)) is False
    # a Friday evening resolution is due on Monday morning
    assert next_working_morning(datetime(2026, 3, 6, 18, 0, tzinfo=UTC)) == \
        datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    assert due_at(datetime(2026, 3, 6, 18, 0, tzinfo=UTC), 4) == datetime(2026, 3, 6, 22, 0, tzinfo=UTC)
    _ = timedelta


def test_unknown_incident_is_one_line(world_ctx: ToolContext) -> None:
    from firebreak.cli import app

    res = CliRunner().invoke(app, ["postmortem", "draft", "INC-1999-0001"])
    assert res.exit_code == 2
    assert "INC-1999-0001" in res.output and "Traceback" not in res.output


def test_drill_debrief_has_the_post_mortem_shape_and_the_real_cause(world_ctx: ToolContext) -> None:
    from firebreak.simulations.debrief import debrief
    from firebreak.simulations.scenario import load_scenario

    sc = load_scenario(SCENARIO)
    pm = debrief(world_ctx, sc, {"rank": 2, "mitigation_ok": True, "severity_ok": True},
                 now=world_ctx.clock.now())
    assert pm is not None
    assert pm.title.startswith("Drill debrief:") and pm.root_cause == sc.truth.root_cause
    assert pm.whys[1].answer == sc.truth.root_cause and len(pm.whys) <= 5
    assert any("position 2" in x for x in pm.went_badly)
    assert any("fix was one the scenario accepts" in x for x in pm.went_well)
    assert pm.timeline and pm.timeline[0].at <= pm.timeline[-1].at
