"""The web page in a real browser: Playwright driving Debian's Chromium against a real uvicorn server."""

from __future__ import annotations

import importlib.util
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firebreak.context import ToolContext
from tests.test_web_pages import APPROVAL, INCIDENT, RUN, seed

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None,
                       reason="needs pip install -e '.[browser]' (CI installs it)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def base_url(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import uvicorn

    from firebreak.server.app import create_app

    seed(ctx)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(ctx, start_worker=False), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def chromium_browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _sign_in(page: Any, base_url: str, name: str, password: str) -> None:
    page.goto(f"{base_url}/incidents/{INCIDENT}")
    assert "/login" in page.url  # sent to sign in first, then back
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/incidents/{INCIDENT}")


def test_read_incident_and_transcript_then_refuse_non_approver(chromium_browser: Any, base_url: str) -> None:
    page = chromium_browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(base_url + "/")
    page.fill("input[name=name]", "bob")
    page.fill("input[name=password]", "bob-password!")
    page.click("button[type=submit]")
    page.wait_for_selector(f"text={INCIDENT}")
    page.screenshot(path=str(ARTIFACTS / "incident-list.png"), full_page=True)

    page.click(f"a[href='/incidents/{INCIDENT}'] >> nth=1")
    page.wait_for_url(f"**/incidents/{INCIDENT}")
    hyps = page.locator("[data-testid=hypothesis] .h-title").all_inner_texts()
    assert hyps == ["Deploy 4.6.2 broke the retry limit", "Memory leak in the template cache"]
    assert page.locator("[data-testid=hypothesis] .conf").first.inner_text() == "82%"
    page.screenshot(path=str(ARTIFACTS / "incident-page.png"), full_page=True)

    page.click(f"a[href='/transcripts/{RUN}']")
    page.wait_for_url(f"**/transcripts/{RUN}")
    tool_step = page.locator("[data-testid=step-tool]").first
    assert "recent_changes" in tool_step.inner_text()
    result = tool_step.locator("details.result")
    assert not result.locator("pre").is_visible()  # results are collapsed until asked for
    result.locator("summary").click()
    assert "4.6.2" in result.locator("pre").inner_text()
    page.check("input[name=verdict][value=right]")
    page.fill("textarea[name=note]", "found the deploy first")
    page.click("text=Save review")
    page.wait_for_selector("[data-testid=review-current]")
    assert "bob" in page.locator("[data-testid=review-current]").inner_text()
    page.screenshot(path=str(ARTIFACTS / "transcript.png"), full_page=True)

    page.goto(f"{base_url}/incidents/{INCIDENT}")
    page.locator(f"[data-testid=approval-{APPROVAL}] button[value=approve]").click()
    page.wait_for_selector("[data-testid=flash]")
    assert "not allowed to approve" in page.locator("[data-testid=flash]").inner_text()
    assert page.locator(f"[data-testid=approval-{APPROVAL}] [data-testid=approval-status]").inner_text() == "pending"
    page.screenshot(path=str(ARTIFACTS / "approval-refused.png"), full_page=True)


def test_approver_approves_and_sees_state_change(chromium_browser: Any, base_url: str) -> None:
    page = chromium_browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _sign_in(page, base_url, "alice", "alice-password")
    card = page.locator(f"[data-testid=approval-{APPROVAL}]")
    assert card.locator("[data-testid=approval-status]").inner_text() == "pending"
    card.locator("button[value=approve]").click()
    page.wait_for_selector("[data-testid=flash]")
    flash = page.locator("[data-testid=flash]").inner_text()
    assert not flash.startswith("error"), flash
    status = card.locator("[data-testid=approval-status]").inner_text()
    assert status != "pending" and status != "rejected"
    assert "by alice" in card.locator("[data-testid=approval-decision]").inner_text()
    assert card.locator("button[value=approve]").count() == 0  # decided: no more buttons
    page.screenshot(path=str(ARTIFACTS / "approval-approved.png"), full_page=True)
    page.goto(f"{base_url}/indicators")
    page.wait_for_selector("svg.chart")
    page.screenshot(path=str(ARTIFACTS / "indicators.png"), full_page=True)
