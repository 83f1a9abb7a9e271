"""Shared fixtures: an isolated data dir, settings, a fixed clock and a ToolContext per test."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.db import reset_databases
from firebreak.settings import Settings
from firebreak.workflows import install as install_workflows
from tests.shared_guard import install as refuse_shared_reads

REPO = Path(__file__).resolve().parent.parent
# Everything the tests read lives inside the repository (a user's clone has no ../shared).
FIXTURES = REPO / "tests" / "fixtures" / "vendor"
SHARED = REPO / "tests" / "fixtures"  # holds `scenarios/`, copied from the project's shared contracts
refuse_shared_reads()  # any open under ../shared fails (tests/test_repo_stands_alone.py)
install_workflows()  # the agent asks for approvals through the approval service, as the app and CLI wire it


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture
def shared_dir() -> Path:
    return SHARED


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    # Nothing from the developer's environment leaks into a test.
    import os

    for key in list(os.environ):
        if key.startswith("FIREBREAK_") and key != "FIREBREAK_TEST_POSTGRES_URL":
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path)
    s = Settings(data_dir=tmp_path / ".firebreak", _env_file=None)  # type: ignore[call-arg]
    yield s
    reset_databases()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 3, 2, 8, 45, tzinfo=UTC))


@pytest.fixture
def ctx(settings: Settings, clock: FixedClock) -> Iterator[ToolContext]:
    c = ToolContext(settings=settings, clock=clock)
    yield c
    c.close()


@pytest.fixture(params=["sqlite", "postgres"])
def storage_ctx(
    request: pytest.FixtureRequest, tmp_path: Path, settings: Settings, clock: FixedClock
) -> Iterator[ToolContext]:
    """A ToolContext over SQLite and over a real PostgreSQL (when FIREBREAK_TEST_POSTGRES_URL is set)."""
    from tests.storage import POSTGRES_URL, fresh_database_url

    if request.param == "postgres" and not POSTGRES_URL:
        pytest.skip("FIREBREAK_TEST_POSTGRES_URL not set (.ci/run starts PostgreSQL and sets it)")
    with fresh_database_url(request.param, str(tmp_path)) as url:
        s = settings.model_copy(update={"database_url": url})
        c = ToolContext(settings=s, clock=clock)
        yield c
        c.close()
        reset_databases()


@pytest.fixture
def fake_slack() -> Iterator[Any]:
    """A local server speaking Slack's Web API (tests/fake_slack.py), recording every call."""
    from tests.fake_slack import FakeSlack

    with FakeSlack() as f:
        yield f


@pytest.fixture
def slack_ctx(ctx: ToolContext, fake_slack: Any) -> ToolContext:
    """The test's ToolContext with Slack configured against the fake (channel C0INC)."""
    from pydantic import SecretStr

    ctx.settings.slack_bot_token = SecretStr(fake_slack.token)
    ctx.settings.slack_channel = "C0INC"
    ctx.settings.slack_api_url = fake_slack.api_url
    return ctx
