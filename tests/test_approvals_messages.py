"""Customer and internal message templates: editable files, rendered by scenario."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from firebreak.agent.messages import (
    TEMPLATE_NAMES,
    TEMPLATES_DIR,
    MessageTemplateError,
    render_fields,
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
    rep.hypotheses[0].confidence, rep.hypotheses[0].status = 0.3, "suspected"
    assert scenario_for(rep) == "investigating"  # a weak lead names no cause
    rep.hypotheses = []
    assert scenario_for(rep) == "investigating" and scenario_for(None) == "investigating"


def _fields(rep: object) -> dict[str, object]:
    return report_fields(incident_id="INC-2026-009", title="Checkout failing", severity="major", status="open",
                         services=["checkout"], started_at=AT, user_impact="Part of the customers cannot pay",
                         report=rep, next_update=AT)  # type: ignore[arg-type]


@pytest.mark.parametrize("template", TEMPLATE_NAMES)
def test_no_cause_means_investigating_with_the_impact(template: str) -> None:
    """Whatever scenario a caller picked, a report with no supported cause claims none."""
    rep = sample_report()
    rep.hypotheses = []
    customer = render_fields("customer", template, _fields(rep))
    internal = render_fields("internal", template, _fields(rep))
    for text in (customer, internal):
        assert "investigating" in text and "Part of the customers cannot pay" in text
        assert "cause in our application" not in text and "application bug" not in text
    assert "Cause: not identified yet" in internal and "Likely cause" not in internal
    assert "recent change" not in customer and "found the likely cause" not in customer


def test_cause_category_comes_from_the_supporting_hypothesis() -> None:
    rep = sample_report()
    rep.hypotheses[0].suspect.kind = "dependency"
    internal = render_fields("internal", scenario_for(rep), _fields(rep))
    assert "Likely cause (a failing dependency): Flag checkout-new-pricing saturates pricing" in internal
    assert "application bug" not in internal
