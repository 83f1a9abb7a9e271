"""Markdown is split by heading; a Slack export becomes one record per thread."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from firebreak.memory.importers import ImportProblem, collect, markdown_records, slack_records

DATA = Path(__file__).parent / "data" / "memory"


def test_markdown_sections_with_heading_path() -> None:
    recs = markdown_records(DATA / "runbooks" / "mailer.md", root=DATA / "runbooks")
    titles = [r.title for r in recs]
    assert titles == [
        "Mailer runbook",
        "Mailer runbook > Out of memory (OOMKilled, MemoryError)",
        "Mailer runbook > SMTP relay timeouts",
    ]
    oom = recs[1]
    assert "kubectl -n mail rollout undo" in oom.text  # the fenced "# Example heading" did not split it
    assert oom.source == "mailer.md#out-of-memory-oomkilled-memoryerror"
    assert oom.services == ["mailer"]  # from the front matter
    assert oom.kind == "runbook" and oom.origin == str((DATA / "runbooks" / "mailer.md").resolve())
    assert len({r.id for r in recs}) == 3


def test_markdown_without_h1_uses_file_name_and_known_services(tmp_path: Path) -> None:
    md = tmp_path / "db-failover.md"
    md.write_text("intro line\n\n## Promote replica\nRun pg_ctl promote on postgres-2.\n")
    recs = markdown_records(md, services=["postgres-2", "checkout"])
    assert [r.title for r in recs] == ["db failover", "db failover > Promote replica"]
    assert recs[1].services == ["postgres-2"]


def test_long_sections_are_chunked(tmp_path: Path) -> None:
    md = tmp_path / "long.md"
    md.write_text("# Long\n\n" + "\n\n".join(f"paragraph {i} " + "word " * 60 for i in range(20)))
    recs = markdown_records(md)
    assert len(recs) > 1 and all(len(r.text) <= 1600 for r in recs)
    assert len({r.id for r in recs}) == len(recs)


def test_slack_threads_across_days() -> None:
    recs = {r.id: r for r in slack_records(DATA / "slack", services=["mailer", "checkout"])}
    thread = recs["slack:incidents:1762247520.000100"]
    assert thread.kind == "slack" and thread.source == "slack:#incidents"
    lines = thread.text.splitlines()
    assert lines[1] == "alice: mailer pods are OOMKilled again, @Bob Chen did 4.5.0 go out?"
    assert "memory is flat since the rollback" in thread.text  # reply from the next day's file
    assert "mailer dashboard (https://grafana.example.com/d/mailer)" in thread.text
    assert "has joined the channel" not in thread.text
    assert thread.services == ["mailer"]
    assert thread.started_at is not None and thread.started_at.year == 2025
    assert "slack:incidents:1762250000.000300" in recs  # a lone message is its own thread
    assert recs["slack:deploys:1762240000.000100"].text.endswith("ci: deployed checkout 8.3.0 to production")
    alert = recs["slack:deploys:1762416000.000100"]  # a bot message whose content is in attachments
    assert "grafana: Mailer memory above 90% of its limit" in alert.text


def test_collect_folder_and_zip(tmp_path: Path) -> None:
    recs, origins = collect(DATA / "runbooks")
    assert {r.kind for r in recs} == {"runbook"} and len(origins) == 2
    z = tmp_path / "export.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in (DATA / "slack").rglob("*.json"):
            zf.write(p, "My Workspace Slack export/" + str(p.relative_to(DATA / "slack")))
    recs, origins = collect(z)
    assert {r.kind for r in recs} == {"slack"} and origins == {"slack:incidents", "slack:deploys"}


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(ImportProblem, match="no such file"):
        collect(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ImportProblem, match=r"notes.txt: unsupported file type \.txt"):
        collect(tmp_path / "notes.txt")
    with pytest.raises(ImportProblem, match="nothing to import"):
        collect(tmp_path)
    export = tmp_path / "export"
    shutil.copytree(DATA / "slack", export)
    (export / "incidents" / "2025-11-06.json").write_text("{not json")
    with pytest.raises(ImportProblem, match=r"2025-11-06.json: not valid JSON"):
        collect(export)
    (export / "incidents" / "2025-11-06.json").write_text(json.dumps([{"text": "no ts"}]))
    with pytest.raises(ImportProblem, match="message 0: ts: missing"):
        collect(export)
