"""The post-mortem page: signed-in only, CSRF-checked edits, blameless findings shown, publish gated on them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from firebreak.context import ToolContext
from firebreak.memory import incident_log
from tests.test_web_pages import INCIDENT, csrf_of, seed, sign_in


@pytest.fixture
def client(ctx: ToolContext) -> Iterator[TestClient]:
    from firebreak.server.app import create_app

    seed(ctx)
    with ctx.db.session() as s:
        inc = incident_log.get_incident(s, INCIDENT)
        incident_log.set_status(s, inc, "resolved", at=ctx.clock.now() + timedelta(minutes=1), actor="alice")
    with TestClient(create_app(ctx, start_worker=False)) as c:
        yield c


def test_page_needs_sign_in(client: TestClient) -> None:
    r = client.get(f"/incidents/{INCIDENT}/postmortem", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_edit_review_and_publish(client: TestClient) -> None:
    sign_in(client, "alice", "alice-password")
    assert f'href="/incidents/{INCIDENT}/postmortem"' in client.get(f"/incidents/{INCIDENT}").text
    page = client.get(f"/incidents/{INCIDENT}/postmortem")
    assert page.status_code == 200
    for heading in ("Impact", "Timeline", "5 Whys", "What went well", "Action items", "Customer version"):
        assert heading in page.text
    assert "Deploy 4.6.2 broke the retry limit" in page.text  # seeded from the top hypothesis
    token = csrf_of(page.text)
    r = client.post(f"/incidents/{INCIDENT}/postmortem", data={"csrf": "forged", "root_cause": "x"})
    assert r.status_code == 403
    r = client.post(f"/incidents/{INCIDENT}/postmortem",
                    data={"csrf": token, "root_cause": "Bob forgot to run the migration.",
                          "went_well": "Rollback took two minutes"})
    assert r.status_code == 200 and "blameless finding" in r.text
    assert "a person as the cause" in r.text
    r = client.post(f"/incidents/{INCIDENT}/postmortem/publish", data={"csrf": token})
    assert "error:" in r.text and "blameless" in r.text
    r = client.post(f"/incidents/{INCIDENT}/postmortem",
                    data={"csrf": token, "root_cause": "Release 4.6.2 dropped the retry limit; no test covered it."})
    r = client.post(f"/incidents/{INCIDENT}/postmortem/publish", data={"csrf": token})
    assert "Published" in r.text
    assert 'data-testid="pm-status">published<' in r.text


def test_unknown_incident_is_404(client: TestClient) -> None:
    sign_in(client, "alice", "alice-password")
    assert client.get("/incidents/INC-1999-0009/postmortem").status_code == 404
