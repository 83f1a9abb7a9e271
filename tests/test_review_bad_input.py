"""Regressions from the hostile-user review: bad files and paths give one line, secrets never reach API callers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from firebreak.cli import app
from firebreak.context import ToolContext
from firebreak.settings import Settings
from firebreak.tools.registry import ToolError, call_tool
from tests.test_intake_common import API_TOKEN, bearer, client, configure

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
    line = _one_line_error(["incidents", "stats", "--chart", str(tmp_path / "missing" / "chart.svg")])
    assert "--chart" in line and "cannot write" in line


def test_incidents_stats_chart_in_another_format_is_one_line(env: Settings, tmp_path: Path) -> None:
    line = _one_line_error(["incidents", "stats", "--chart", str(tmp_path / "chart.png")])
    assert "--chart" in line and "SVG" in line


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


def test_incident_api_redacts_alert_text_and_never_stores_it(ctx: ToolContext) -> None:
    from firebreak.state.alerts import Alert

    c, inc_id = _leaky_incident(ctx)
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    listing = c.get("/api/incidents", headers=auth)  # type: ignore[attr-defined]
    detail = c.get(f"/api/incidents/{inc_id}?include_raw=true", headers=auth)  # type: ignore[attr-defined]
    assert listing.status_code == 200 and detail.status_code == 200
    assert detail.json()["id"] == inc_id and detail.json()["alert_count"] == 1
    for text in (listing.text, detail.text):
        assert "[REDACTED:" in text
        assert not [s for s in SECRETS if s in text]
    with ctx.db.session() as s:  # secrets from outside are redacted before they are stored (issue 15)
        stored = [json.dumps(a.raw) + a.summary for a in s.query(Alert).all()]
        assert stored and not any("hunter2" in t for t in stored) and "[REDACTED:" in stored[0]


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


def test_static_route_odd_names_are_404(ctx: ToolContext) -> None:
    c = client(configure(ctx))
    for name in ("%00", "x" * 3000, "..%2F..%2Fpyproject.toml"):
        r = c.get(f"/static/{name}")
        assert r.status_code == 404 and r.json()["detail"], name


def test_incident_update_and_remediation_refuse_blank_values(env: Settings) -> None:
    res = runner.invoke(app, ["incidents", "new", "--title", "Mail late", "--service", "mailer", "--severity",
                              "major", "--started", "2026-03-02T08:10:00Z", "--by", "alice"])
    assert res.exit_code == 0, res.output
    inc_id = res.stdout.split()[1].rstrip(":")
    assert "--add-service" in _one_line_error(["incidents", "update", inc_id, "--add-service", " "])
    assert "--tag" in _one_line_error(["incidents", "update", inc_id, "--tag", ""])
    assert "--countermeasure" in _one_line_error(["incidents", "update", inc_id, "--worked"])
    assert "--what" in _one_line_error(["incidents", "remediation", "add", inc_id, "--what", "", "--owner", "bob"])
    assert "--owner" in _one_line_error(["incidents", "remediation", "add", inc_id, "--what", "x", "--owner", " "])
    res = runner.invoke(app, ["incidents", "update", inc_id, "--link", "https://chat/thread/1"])
    assert res.exit_code == 0 and "1 link(s) added" in res.stdout
    shown = json.loads(runner.invoke(app, ["incidents", "show", inc_id, "--json"]).stdout)
    assert shown["services"] == ["mailer"] and not shown["remediations"]


def test_serve_refuses_broken_database_settings_and_host(env: Settings, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server must not start"))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "firebreak.db").write_bytes(b"not a database at all")
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(corrupt))
    line = _one_line_error(["serve", "--port", "8799", "--no-worker"])
    assert line.startswith("error: database:") and "not a database" in line
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(env.data_dir))
    monkeypatch.setenv("FIREBREAK_DATABASE_URL", "postgresql://u:pw-s3cret@127.0.0.1:9/x")
    line = _one_line_error(["serve", "--port", "8799", "--no-worker"])
    assert line.startswith("error: database:") and "pw-s3cret" not in line
    monkeypatch.delenv("FIREBREAK_DATABASE_URL")
    monkeypatch.setenv("FIREBREAK_GROUP_WAIT_SECONDS", "soon")
    assert "FIREBREAK_GROUP_WAIT_SECONDS" in _one_line_error(["serve", "--port", "8799", "--no-worker"])
    monkeypatch.delenv("FIREBREAK_GROUP_WAIT_SECONDS")
    line = _one_line_error(["serve", "--port", "8799", "--host", "999.1.1.1", "--no-worker"])
    assert line.startswith("error: --host:") and "in use" not in line


def test_serve_starts_on_a_fresh_data_dir(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    started: list[int] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **k: started.append(k["port"]))
    res = runner.invoke(app, ["serve", "--port", "8799", "--no-worker"])
    assert res.exit_code == 0 and started == [8799], res.output


@pytest.mark.parametrize(("flags", "where"), [
    ({"a": {"state": "ENABLED", "variants": 5}}, "flags.a.variants"),
    ({"a": 3}, "flags.a:"),
])
def test_misshapen_flag_file_names_the_flag(ctx: ToolContext, flags: dict[str, object], where: str) -> None:
    ctx.settings.resolved_flags_file.parent.mkdir(parents=True, exist_ok=True)
    ctx.settings.resolved_flags_file.write_text(json.dumps({"flags": flags}), encoding="utf-8")
    for name, args in (("list_flags", {}), ("evaluate_flag", {"flag": "a"})):
        with pytest.raises(ToolError) as info:
            call_tool(ctx, name, args)
        assert where in info.value.message and info.value.status == 503


def test_memory_import_odd_slack_export_is_one_line(env: Settings, tmp_path: Path) -> None:
    export = tmp_path / "slack"
    (export / "incidents").mkdir(parents=True)
    (export / "incidents" / "2026-03-02.json").write_text(json.dumps([{"text": "db down", "ts": "soon"}]))
    line = _one_line_error(["memory", "import", str(export)])
    assert "slack" in line and "nothing was imported" in line
