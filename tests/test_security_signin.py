"""Issue 15, items 2 and 3: sign-in throttling, server-side sessions, and CLI approvals that prove the person."""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from firebreak.cli import app as cli
from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.server.app import create_app
from firebreak.server.users import add_user
from firebreak.settings import Settings, get_settings
from firebreak.state.audit import AuditEvent
from firebreak.state.security import PersonalToken, SignInAttempt, WebSessionRow
from firebreak.state.users import User

PASSWORD = "correct horse battery"


@pytest.fixture
def web(ctx: ToolContext) -> TestClient:
    with ctx.db.session() as s:
        add_user(s, "alice", PASSWORD, at=ctx.clock.now())
        add_user(s, "bob", PASSWORD, at=ctx.clock.now())
    return TestClient(create_app(ctx, start_worker=False))


def _csrf(c: TestClient) -> str:
    return c.get("/login").text.split('name="csrf" value="')[1].split('"')[0]


def _login(c: TestClient, name: str, password: str) -> int:
    return c.post("/login", data={"name": name, "password": password, "csrf": _csrf(c), "next": "/"},
                  follow_redirects=False).status_code


def _events(ctx: ToolContext, event: str) -> list[AuditEvent]:
    with ctx.db.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.event == event)))


def test_two_hundred_wrong_passwords_then_the_right_one_is_refused(ctx: ToolContext, web: TestClient) -> None:
    codes = [_login(web, "alice", f"wrong-{i}") for i in range(200)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
    r = web.post("/login", data={"name": "alice", "password": PASSWORD, "csrf": _csrf(web), "next": "/"},
                 follow_redirects=False)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and "Too many failed sign-ins" in r.text
    assert len(_events(ctx, "web_login_failed")) == 5 and len(_events(ctx, "web_login_throttled")) == 196
    assert not _events(ctx, "web_login")


def test_backoff_grows_and_a_success_clears_it(ctx: ToolContext, web: TestClient) -> None:
    assert isinstance(ctx.clock, FixedClock)
    for i in range(5):
        assert _login(web, "alice", f"wrong-{i}") == 401
    r = web.post("/login", data={"name": "alice", "password": PASSWORD, "csrf": _csrf(web), "next": "/"},
                 follow_redirects=False)
    assert r.status_code == 429
    first_wait = int(r.headers["Retry-After"])
    ctx.clock.advance(timedelta(seconds=first_wait + 1))
    assert _login(web, "alice", "wrong-again") == 401  # allowed after the wait, and it failed again
    r = web.post("/login", data={"name": "alice", "password": PASSWORD, "csrf": _csrf(web), "next": "/"},
                 follow_redirects=False)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > first_wait  # the wait doubled (at least)
    ctx.clock.advance(timedelta(minutes=16))
    assert _login(web, "alice", PASSWORD) == 303
    assert _login(web, "alice", "one-typo") == 401  # the count started again from the success


def test_throttle_per_address_across_accounts(ctx: ToolContext, web: TestClient) -> None:
    for i in range(20):
        assert _login(web, f"user{i}", "guess") == 401  # 20 names, one address
    assert _login(web, "bob", PASSWORD) == 429  # the address is held, whoever it claims to be
    with ctx.db.session() as s:
        addresses = set(s.scalars(select(SignInAttempt.address)))
    assert addresses == {"testclient"}


def test_logout_ends_the_session_for_a_copied_cookie(ctx: ToolContext, web: TestClient) -> None:
    assert _login(web, "alice", PASSWORD) == 303
    stolen = dict(web.cookies)
    assert web.get("/", follow_redirects=False).status_code == 200
    page = web.get("/").text
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    assert web.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    other = TestClient(web.app)
    other.cookies.update(stolen)  # the cookie as it was before logout: still correctly signed
    r = other.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    with ctx.db.session() as s:
        (row,) = s.scalars(select(WebSessionRow))
        assert row.user == "alice" and row.revoked_reason == "logout" and row.revoked_at is not None


def test_password_change_signs_out_everywhere(ctx: ToolContext, web: TestClient) -> None:
    second = TestClient(web.app)
    assert _login(web, "alice", PASSWORD) == 303 and _login(second, "alice", PASSWORD) == 303
    assert web.get("/", follow_redirects=False).status_code == 200
    with ctx.db.session() as s:
        add_user(s, "alice", "a brand new password", at=ctx.clock.now(), replace=True)
    for c in (web, second):
        assert c.get("/", follow_redirects=False).status_code == 303
    assert _login(web, "alice", PASSWORD) == 401 and _login(web, "alice", "a brand new password") == 303


def test_session_expires_after_twelve_hours(ctx: ToolContext, web: TestClient) -> None:
    assert isinstance(ctx.clock, FixedClock)
    assert _login(web, "alice", PASSWORD) == 303
    ctx.clock.advance(timedelta(hours=12, minutes=1))
    assert web.get("/", follow_redirects=False).status_code == 303


def test_passwords_are_stored_as_scrypt_hashes(ctx: ToolContext, web: TestClient) -> None:
    with ctx.db.session() as s:
        user = s.get(User, "alice")
        assert user is not None and user.password_hash.startswith("scrypt$16384$8$1$")
        assert PASSWORD not in user.password_hash


# --- CLI: users sessions|revoke|token and approvals ----------------------------------------------------


@pytest.fixture
def env(settings: Settings, ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> Iterator[ToolContext]:
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("FIREBREAK_APPROVERS", "alice,U0SLACKAPPROVER")
    get_settings.cache_clear()
    with ctx.db.session() as s:
        add_user(s, "alice", PASSWORD, at=ctx.clock.now())
    yield ctx
    get_settings.cache_clear()


def test_users_sessions_and_revoke(env: ToolContext) -> None:
    live = ToolContext(settings=env.settings)  # the wall clock, as the CLI reads it
    web = TestClient(create_app(live, start_worker=False))
    assert _login(web, "alice", PASSWORD) == 303
    runner = CliRunner()
    r = runner.invoke(cli, ["users", "sessions", "--json"])
    (row,) = json.loads(r.output)
    assert row["user"] == "alice" and row["live"] and row["address"] == "testclient"
    r = runner.invoke(cli, ["users", "revoke", row["id"]])
    assert r.exit_code == 0 and "revoked" in r.output
    assert web.get("/", follow_redirects=False).status_code == 303
    assert runner.invoke(cli, ["users", "sessions", "--json"]).output.strip() == "[]"
    r = runner.invoke(cli, ["users", "revoke", row["id"]])
    assert r.exit_code == 2 and "no live session" in r.output
    assert runner.invoke(cli, ["users", "revoke"]).exit_code == 2
    assert _login(web, "alice", PASSWORD) == 303
    r = runner.invoke(cli, ["users", "revoke", "--user", "alice"])
    assert r.exit_code == 0 and "revoked 1 session(s)" in r.output
    assert web.get("/", follow_redirects=False).status_code == 303


def _pending(ctx: ToolContext) -> str:
    from firebreak.server.approvals import request_approval
    from tests.fake_slack import open_incident, sample_report, seed_flags

    seed_flags(ctx)
    rep = sample_report()
    inc = open_incident(ctx, report=rep)
    assert rep.proposed_fix is not None
    return request_approval(ctx, incident_id=inc, investigation_id=None, tool_call_id="c1",
                            fix=rep.proposed_fix, alternatives=[]).id


def _auth_events(ctx: ToolContext) -> list[dict[str, object]]:
    with ctx.db.session() as s:
        rows = s.scalars(select(AuditEvent).where(AuditEvent.event.in_(
            ("approver_authenticated", "approver_auth_failed"))).order_by(AuditEvent.id))
        return [{"actor": e.actor, "event": e.event, **e.detail} for e in rows]


def test_cli_approval_with_a_personal_token(env: ToolContext) -> None:
    runner = CliRunner()
    r = runner.invoke(cli, ["users", "token", "alice", "--password-stdin"], input="wrong password\n")
    assert r.exit_code == 1 and "wrong name or password" in r.output
    r = runner.invoke(cli, ["users", "token", "alice", "--password-stdin", "--label", "laptop"],
                      input=PASSWORD + "\n")
    assert r.exit_code == 0
    token = r.output.strip()
    assert token.startswith("fbp_") and len(token) > 40
    with env.db.session() as s:
        stored = s.scalar(select(PersonalToken.token_hash))
        assert stored and token not in stored
    aid = _pending(env)
    r = runner.invoke(cli, ["approvals", "approve", aid, "--as", "alice", "--token-stdin"], input="fbp_forged\n")
    assert r.exit_code == 1 and "not authenticated as 'alice'" in r.output
    r = runner.invoke(cli, ["approvals", "approve", aid, "--as", "alice", "--token-stdin"], input=token + "\n")
    assert r.exit_code == 0, r.output
    assert "Approved" in r.output
    events = _auth_events(env)
    assert [(e["event"], e["method"]) for e in events] == [
        ("approver_auth_failed", None), ("approver_authenticated", "personal_token")]
    (decided,) = _events(env, "approval_decided")
    assert decided.actor == "alice" and decided.detail["via"] == "cli" and decided.detail["auth"] == "personal_token"
    # A new password retires the old token.
    with env.db.session() as s:
        add_user(s, "alice", "another good password", at=env.clock.now(), replace=True)
    aid2 = _pending(env)
    r = runner.invoke(cli, ["approvals", "reject", aid2, "--as", "alice", "--token-stdin"], input=token + "\n")
    assert r.exit_code == 1 and "not authenticated" in r.output


def test_cli_approval_refuses_a_bare_name(env: ToolContext) -> None:
    """`--as` with an approver's Slack id and no proof decides nothing (the attack of the issue)."""
    aid = _pending(env)
    runner = CliRunner()
    r = runner.invoke(cli, ["approvals", "approve", aid, "--as", "U0SLACKAPPROVER"])  # stdin is not a terminal
    assert r.exit_code == 1 and "not authenticated" in r.output
    r = runner.invoke(cli, ["approvals", "approve", aid, "--as", "U0SLACKAPPROVER", "--password-stdin"],
                      input=PASSWORD + "\n")
    assert r.exit_code == 1 and "not authenticated" in r.output
    r = runner.invoke(cli, ["approvals", "approve", aid, "--as", "alice", "--password-stdin"], input="nope\n")
    assert r.exit_code == 1
    r = runner.invoke(cli, ["approvals", "list", "--json"])
    assert json.loads(r.output)[0]["status"] == "pending"
    assert [e["event"] for e in _auth_events(env)] == ["approver_auth_failed"] * 3


def test_cli_approval_by_mapped_os_user(env: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    me = getpass.getuser()
    monkeypatch.setenv("FIREBREAK_CLI_OS_USERS", json.dumps({me: "alice"}))
    aid = _pending(env)
    runner = CliRunner()
    r = runner.invoke(cli, ["approvals", "reject", aid, "--as", "alice", "--reason", "not now"])
    assert r.exit_code == 0, r.output
    assert _auth_events(env)[-1]["method"] == "os_user" and _auth_events(env)[-1]["os_user"] == me
    monkeypatch.setenv("FIREBREAK_CLI_OS_USERS", json.dumps({me: "someone-else"}))
    r = runner.invoke(cli, ["approvals", "reject", _pending(env), "--as", "alice"])
    assert r.exit_code == 1 and "not authenticated" in r.output


def test_cli_password_attempts_are_throttled(env: ToolContext) -> None:
    aid = _pending(env)
    runner = CliRunner()
    for _ in range(5):
        r = runner.invoke(cli, ["approvals", "approve", aid, "--as", "alice", "--password-stdin"], input="x\n")
        assert r.exit_code == 1
    r = runner.invoke(cli, ["approvals", "approve", aid, "--as", "alice", "--password-stdin"],
                      input=PASSWORD + "\n")
    assert r.exit_code == 1 and "not authenticated" in r.output  # held back, even with the right password
