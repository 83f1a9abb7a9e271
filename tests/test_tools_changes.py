"""Changes: the webhook shape, recording, and ranking by closeness to the onset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from firebreak.context import ToolContext
from firebreak.state.changes import Change
from firebreak.tools.changes import ChangeIn, record_change
from firebreak.tools.registry import ToolError, call_tool

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _record(ctx: ToolContext, payloads: list[dict[str, object]], source: str = "drill") -> list[int]:
    ids = []
    with ctx.db.session() as s:
        for p in payloads:
            ids.append(record_change(s, ChangeIn.model_validate(p), source=source, now=ctx.clock.now()).id)
    return ids


def test_webhook_example_parses_with_aliases() -> None:
    c = ChangeIn.model_validate(
        {"kind": "deploy", "service": "checkout", "version": "8.3.0", "previous_version": "8.2.0",
         "at": "2026-05-14T13:12:00Z", "author": "ci", "note": "..."}
    )
    assert c.at == datetime(2026, 5, 14, 13, 12, tzinfo=UTC)
    cfg = ChangeIn.model_validate({"kind": "config", "service": "api", "key": "db.pool_size", "from": 50, "to": 5})
    assert (cfg.from_value, cfg.to_value) == (50, 5)
    flag = ChangeIn.model_validate({"kind": "flag", "flag": "mailer-retry-v2", "state": "disabled"})
    assert flag.state == "DISABLED"
    assert ChangeIn.model_validate({"kind": "deploy", "service": "x", "version": 4.6}).version == "4.6"


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"kind": "deploy", "service": "x"}, "a deploy change needs version"),
        ({"kind": "deploy", "version": "1"}, "needs service"),
        ({"kind": "config", "service": "api"}, "a config change needs key"),
        ({"kind": "flag", "flag": "f"}, "variant or state"),
        ({"kind": "flag", "variant": "on"}, "needs flag"),
        ({"kind": "infra", "service": "db"}, "needs note"),
        ({"kind": "release", "service": "x"}, "kind"),
        ({"kind": "flag", "flag": "f", "state": "paused"}, "unknown flag state"),
        ({"kind": "deploy", "service": "x", "version": "1", "at": "2026-03-02T08:00:00"}, "no timezone"),
        ({"kind": "deploy", "service": "x", "version": "1", "verison": "2"}, "verison"),
    ],
)
def test_bad_changes_name_the_problem(payload: dict[str, object], needle: str) -> None:
    with pytest.raises(ValidationError) as exc:
        ChangeIn.model_validate(payload)
    assert needle in str(exc.value)


def test_record_change_defaults_at_to_now(ctx: ToolContext) -> None:
    (cid,) = _record(ctx, [{"kind": "infra", "service": "postgres", "note": "failover to db-2"}], source="webhook")
    with ctx.db.session() as s:
        row = s.get(Change, cid)
        assert row is not None
        assert row.at == ctx.clock.now() and row.source == "webhook" and row.note == "failover to db-2"


def _world(ctx: ToolContext) -> None:
    ctx.settings.dependencies = {"mailer": ["postgres", "smtp-relay"]}
    _record(ctx, [
        {"kind": "deploy", "service": "mailer", "version": "4.6.2", "previous_version": "4.6.1",
         "at": (T0 + timedelta(minutes=10)).isoformat(), "author": "ci", "note": "retry policy rewrite"},
        {"kind": "deploy", "service": "billing", "version": "2.0.0", "at": (T0 + timedelta(minutes=5)).isoformat()},
        {"kind": "flag", "flag": "mailer-retry-v2", "variant": "on", "at": (T0 + timedelta(minutes=10)).isoformat()},
        {"kind": "config", "service": "postgres", "key": "max_connections", "from": 100, "to": 50,
         "at": (T0 - timedelta(hours=3)).isoformat()},
        {"kind": "deploy", "service": "mailer", "version": "4.6.1", "at": (T0 - timedelta(days=5)).isoformat()},
        {"kind": "deploy", "service": "mailer", "version": "4.6.3", "at": (T0 + timedelta(minutes=50)).isoformat()},
    ])


def test_recent_changes_ranked_by_closeness_to_onset(ctx: ToolContext) -> None:
    _world(ctx)
    onset = T0 + timedelta(minutes=12)
    out = call_tool(ctx, "recent_changes", {"service": "mailer", "around": onset.isoformat()})
    got = [(c["kind"], c.get("version") or c.get("flag") or c.get("key")) for c in out["changes"]]
    # 4.6.3 is 38 min after, within the window (until = now = 08:45); 4.6.1 was 5 days ago, outside 48 h.
    assert got[0] in {("deploy", "4.6.2"), ("flag", "mailer-retry-v2")}
    assert set(got[:2]) == {("deploy", "4.6.2"), ("flag", "mailer-retry-v2")}
    assert ("deploy", "2.0.0") not in got  # billing: not mailer, not a dependency
    assert ("config", "max_connections") in got  # postgres is a dependency of mailer
    first = next(c for c in out["changes"] if c.get("version") == "4.6.2")
    assert first["minutes_from_onset"] == -2.0 and first["relation"] == "service"
    flag = next(c for c in out["changes"] if c["kind"] == "flag")
    assert flag["relation"] == "global"
    dep = next(c for c in out["changes"] if c["kind"] == "config")
    assert dep["relation"] == "dependency" and dep["from_value"] == 100 and dep["to_value"] == 50
    assert out["truncated"] is False and out["total"] == len(out["changes"])


def test_recent_changes_limit_kind_and_window(ctx: ToolContext) -> None:
    _world(ctx)
    out = call_tool(ctx, "recent_changes", {"limit": 2, "around": (T0 + timedelta(minutes=12)).isoformat()})
    assert len(out["changes"]) == 2 and out["truncated"] is True and out["total"] >= 4
    deploys = call_tool(ctx, "recent_changes", {"kind": "deploy", "since": (T0 - timedelta(days=10)).isoformat()})
    versions = [c["version"] for c in deploys["changes"]]
    assert "4.6.1" in versions and all(c["kind"] == "deploy" for c in deploys["changes"])
    # default `around` is now (08:45): the 08:50 deploy is outside the default window (until = now)
    assert "4.6.3" not in versions
    assert versions[0] == "4.6.2"


def test_recent_changes_bad_input(ctx: ToolContext) -> None:
    with pytest.raises(ToolError) as exc:
        call_tool(ctx, "recent_changes", {"since": "2026-03-02T09:00:00Z", "until": "2026-03-02T08:00:00Z"})
    assert exc.value.field == "since" and "before until" in exc.value.message
    with pytest.raises(ToolError) as exc:
        call_tool(ctx, "recent_changes", {"limit": 0})
    assert exc.value.status == 422 and exc.value.field == "limit"
    with pytest.raises(ToolError) as exc:
        call_tool(ctx, "recent_changes", {"until": "2026-03-02T08:00:00"})
    assert "timezone" in exc.value.message


def test_unknown_service_gets_a_note(ctx: ToolContext) -> None:
    _world(ctx)
    out = call_tool(ctx, "recent_changes", {"service": "mailr"})
    assert "no change recorded for service 'mailr'" in out["note"]
    assert "mailer" in out["note"]


def test_outputs_are_redacted(ctx: ToolContext) -> None:
    _record(ctx, [{"kind": "config", "service": "api", "key": "db.url",
                   "from": "postgresql://app:oldpass1@db/x", "to": "postgresql://app:newpass2@db/x",
                   "note": "rotated, ping ops@example.com", "at": T0.isoformat()}])
    out = call_tool(ctx, "recent_changes", {})
    c = out["changes"][0]
    assert "oldpass1" not in str(c) and "newpass2" not in str(c) and "ops@example.com" not in c["note"]


def test_secret_config_values_are_masked(ctx: ToolContext) -> None:
    _record(ctx, [{"kind": "config", "service": "api", "key": "smtp.password", "from": "Winter2025",
                   "to": "Spring2026", "at": T0.isoformat()}])
    c = call_tool(ctx, "recent_changes", {})["changes"][0]
    assert c["key"] == "smtp.password"
    assert c["from_value"] == c["to_value"] == "[REDACTED:password]"

