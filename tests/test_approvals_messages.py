"""Customer and internal message templates: editable files, rendered by scenario."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.messages import (
    TEMPLATE_NAMES,
    TEMPLATES_DIR,
    MessageTemplateError,
    render_message,
    report_fields,
    scenario_for,
)
from tests.fake_slack import sample_report

AT = datetime(2026, 5, 14, 13, 12, tzinfo=UTC)


@pytest.mark.parametrize("kind", ["customer", "internal"])
@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_every_template_exists_and_fills(kind: str, template: str) -> None:
    assert (TEMPLATES_DIR / f"{kind}_{template}.txt").is_file()
    fields = report_fields(incident_id="INC-2026-001", title="Checkout failing", severity="major", status="open",
                           services=["checkout"], started_at=AT, user_impact="", report=sample_report(),
                           next_update=AT)
    text = render_message(kind, template, **fields)
    assert "{" not in text and "2026-05-14 13:12 UTC" in text
    assert "Part of the customers cannot pay" in text


def test_customer_message_says_no_internal_detail() -> None:
    text = render_message("customer", "traffic_surge", service="api", impact="slow pages", started_at=AT,
                          status="mitigating", next_update=AT)
    assert text.startswith("api is receiving far more traffic") and "INC-" not in text


def test_missing_field_stays_visible_and_unknowns_are_refused() -> None:
    assert "{next_update}" in render_message("customer", "application_bug", service="api")
    with pytest.raises(MessageTemplateError, match="template: unknown template 'outage'"):
        render_message("customer", "outage")
    with pytest.raises(MessageTemplateError, match="kind: unknown message kind"):
        render_message("press", "application_bug")


def test_override_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "customer_application_bug.txt").write_text("Hello {service}! {{braces}}\n")
    monkeypatch.setenv("FIREBREAK_MESSAGE_TEMPLATES_DIR", str(tmp_path))
    assert render_message("customer", "application_bug", service="shop") == "Hello shop! {braces}"
    (tmp_path / "customer_application_bug.txt").write_text("broken {service\n")
    with pytest.raises(MessageTemplateError, match="customer_application_bug.txt"):
        render_message("customer", "application_bug", service="shop")


def test_scenario_for_report() -> None:
    rep = sample_report()
    assert scenario_for(rep) == "deployment_error"
    rep.customer_template = "application_bug"
    assert scenario_for(rep) == "deployment_error"  # the top hypothesis is a flag change
    rep.hypotheses[0].suspect.kind = "traffic"
    assert scenario_for(rep) == "traffic_surge"
    rep.hypotheses = []
    assert scenario_for(rep) == "application_bug" and scenario_for(None) == "application_bug"
