"""`firebreak serve` and `firebreak users`: real process start, clear errors, users saved hashed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from typer.testing import CliRunner

from firebreak.context import ToolContext
from firebreak.server.users import app as users_app
from firebreak.server.users import authenticate, hash_password, verify_password
from firebreak.settings import Settings

REPO = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")}
    env["FIREBREAK_DATA_DIR"] = str(tmp_path / "data")
    return env


def test_password_hashing() -> None:
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("wrong horse", stored)
    assert not verify_password("x", "garbage")
    assert hash_password("same") != hash_password("same")  # salted


def test_users_cli(settings: Settings, ctx: ToolContext, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import firebreak.server.users as users

    monkeypatch.setattr(users, "_ctx", lambda: ctx)
    ctx.settings.approvers = ["alice"]
    runner = CliRunner()
    r = runner.invoke(users_app, ["add", "alice", "--password-stdin"], input="s3cret-pass\n")
    assert r.exit_code == 0, r.output
    r = runner.invoke(users_app, ["add", "bob", "--password-stdin"], input="another-pass\n")
    assert r.exit_code == 0 and "not in FIREBREAK_APPROVERS" in r.output
    r = runner.invoke(users_app, ["add", "alice", "--password-stdin"], input="s3cret-pass\n")
    assert r.exit_code == 2 and "already exists" in r.output
    r = runner.invoke(users_app, ["add", "carol", "--password-stdin"], input="short\n")
    assert r.exit_code == 2 and "password" in r.output
    r = runner.invoke(users_app, ["add", "bad name!", "--password-stdin"], input="long-enough-pass\n")
    assert r.exit_code == 2 and "name:" in r.output
    r = runner.invoke(users_app, ["list", "--json"])
    assert '"name": "alice"' in r.output and '"approver": true' in r.output
    with ctx.db.session() as s:
        assert authenticate(s, "alice", "s3cret-pass") == "alice"
        assert authenticate(s, "alice", "nope") is None and authenticate(s, "nobody", "x") is None
    assert runner.invoke(users_app, ["remove", "bob"]).exit_code == 0
    assert runner.invoke(users_app, ["remove", "bob"]).exit_code == 2


def test_serve_starts_and_refuses_busy_port(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "firebreak.cli", "serve", "--port", str(port), "--no-worker",
           "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
        assert r.json() == {"status": "ok"}
        login = httpx.get(f"http://127.0.0.1:{port}/login")
        assert login.status_code == 200 and "firebreak users add" in login.text
        busy = subprocess.run(cmd, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=60)
        assert busy.returncode == 2 and "already in use" in busy.stderr
        assert "Traceback" not in busy.stderr
    finally:
        proc.terminate()
        proc.wait(15)
