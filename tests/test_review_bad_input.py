"""Regressions from the hostile-user review: bad files and paths give one line, secrets never reach API callers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from firebreak.cli import app
from firebreak.settings import Settings
from tests.test_intake_common import API_TOKEN, bearer, client, configure
from tools.context import ToolContext
from tools.registry import ToolError, call_tool

runner = CliRunner()
NOT_UTF8 = b"\xff\xfe\x00binary"
SECRETS = ("hunter2", "sk-abcdefabcdefabcdefabcdef", "s3cretpw", "AKIAIOSFODNN7EXAMPLE")
LEAKY = ("password=hunter2 api_key=sk-abcdefabcdefabcdefabcdef "
         "postgres://user:s3cretpw@db:5432/x AKIAIOSFODNN7EXAMPLE")


@pytest.fixture
def env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(settings.data_dir))
    return settings


def _one_line_error(args: list[str]) -> str:
    res = runner.invoke(app, args)
    assert res.exit_code != 0, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    text = (res.stderr or res.stdout).strip()
    assert "Traceback" not in res.output and len(text.splitlines()) == 1, res.output
    return text


# --- CLI: files that are not text, outputs that cannot be written ------------------------------------

def test_incidents_import_binary_file_is_one_line(env: Settings, tmp_path: Path) -> None:
    for name in ("bin.csv", "bin.json"):
        f = tmp_path / name
        f.write_bytes(NOT_UTF8)
        line = _one_line_error(["incidents", "import", str(f)])
        assert name in line and "UTF-8" in line


def test_incidents_export_to_unwritable_path_is_one_line(env: Settings, tmp_path: Path) -> None:
    line = _one_line_error(["incidents", "export", "-o", str(tmp_path)])  # a folder
    assert "--output" in line and "cannot write" in line
    line = _one_line_error(["incidents", "export", "-o", str(tmp_path / "missing" / "x.json")])
    assert "--output" in line


def test_incidents_stats_chart_to_missing_folder_is_one_line(env: Settings, tmp_path: Path) -> None:
    line = _one_line_error(["incidents", "stats", "--chart", str(tmp_path / "missing" / "chart.png")])
    assert "--chart" in line and "cannot write" in line


def test_drill_binary_scenario_is_one_line(env: Settings, tmp_path: Path) -> None:
    f = tmp_path / "bin.yaml"
    f.write_bytes(NOT_UTF8)
    line = _one_line_error(["drill", "run", str(f)])
    assert "bin.yaml" in line and "UTF-8" in line
    line = _one_line_error(["drill", "practice", str(f), "--data-dir", str(tmp_path / "w"), "--timeout", "1"])
    assert "bin.yaml" in line
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "x.yaml").write_bytes(NOT_UTF8)
    line = _one_line_error(["drill", "bench", str(lib)])
    assert "x.yaml" in line and "UTF-8" in line


# --- secrets never reach an API caller ---------------------------------------------------------------

def _leaky_incident(ctx: ToolContext) -> tuple[object, str]:
    c = client(configure(ctx))
    body = {
        "receiver": "r", "status": "firing", "version": "4", "groupKey": "k", "externalURL": "http://am",
        "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
        "alerts": [{"status": "firing", "fingerprint": "f1",
                    "labels": {"alertname": "HighErrors", "service": "checkout", "severity": "critical"},
                    "annotations": {"summary": "errors " + LEAKY, "description": LEAKY},
                    "startsAt": "2026-03-02T08:40:00Z", "endsAt": "0001-01-01T00:00:00Z"}],
    }
    r = c.post("/webhooks/alertmanager", content=json.dumps(body).encode(), headers=bearer())
    assert r.status_code == 202, r.text
    return c, r.json()["incidents_opened"][0]


def test_incident_api_redacts_alert_text_but_keeps_it_stored(ctx: ToolContext) -> None:
    from memory.models import Alert

    c, inc_id = _leaky_incident(ctx)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    listing = c.get("/api/incidents", headers=auth)  # type: ignore[attr-defined]
    detail = c.get(f"/api/incidents/{inc_id}?include_raw=true", headers=auth)  # type: ignore[attr-defined]
    assert listing.status_code == 200 and detail.status_code == 200
    assert detail.json()["id"] == inc_id and detail.json()["alert_count"] == 1
    for text in (listing.text, detail.text):
        assert "[REDACTED:" in text
        assert not [s for s in SECRETS if s in text]
    with ctx.db.session() as s:  # nothing is lost: the stored alert keeps what the vendor sent
        assert any("hunter2" in json.dumps(a.raw) for a in s.query(Alert).all())


def test_backend_error_messages_are_redacted(ctx: ToolContext) -> None:
    ctx.settings.loki_url = "http://admin:s3cretLokiPw@127.0.0.1:9"
    with pytest.raises(ToolError) as info:
        call_tool(ctx, "search_logs", {"until": "2026-03-02T08:45:00Z"})
    assert "s3cretLokiPw" not in info.value.message and "[REDACTED:" in info.value.message
    assert info.value.status == 502
    c = client(configure(ctx))
    r = c.post("/api/tools/search_logs", json={"until": "2026-03-02T08:45:00Z"},
               headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert r.status_code == 502 and "s3cretLokiPw" not in r.text and "Loki" in r.json()["detail"]
