"""A scenario that refers to a service its world does not declare is refused, naming the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from firebreak.simulations.scenario import ScenarioError, _ScenarioLoader, parse_scenario


@pytest.fixture
def mailer(shared_dir: Path) -> dict[str, Any]:
    data = yaml.load((shared_dir / "scenarios" / "mailer-retry-loop.yaml").read_text(), Loader=_ScenarioLoader)  # noqa: S506
    assert isinstance(data, dict)
    return data


def _problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ScenarioError) as err:
        parse_scenario(data, "typo.yaml")
    return err.value.problems


def test_alert_on_a_misspelt_service_names_the_field(mailer: dict[str, Any]) -> None:
    data = copy.deepcopy(mailer)
    i = next(n for n, ev in enumerate(data["timeline"]) if "alert" in ev)
    data["timeline"][i]["alert"]["service"] = "mailr"
    problems = _problems(data)
    assert [p for p, _ in problems] == [f"timeline[{i}].alert.service"]
    assert "unknown service 'mailr'" in problems[0][1] and "mailer" in problems[0][1]


def test_deploy_history_and_panel_references_are_checked(mailer: dict[str, Any]) -> None:
    data = copy.deepcopy(mailer)
    i = next(n for n, ev in enumerate(data["timeline"]) if "deploy" in ev)
    data["timeline"][i]["deploy"]["service"] = "ghost"
    data["history"] = [{"id": "INC-1", "title": "t", "service": "ghost2", "started": "2025-01-01T00:00:00Z",
                        "severity": "minor"}]
    data["dashboards"] = [{"uid": "d", "title": "D", "panels": [{"title": "p", "service": "ghost3", "metric": "m"}]}]
    fields = {p for p, _ in _problems(data)}
    assert fields == {f"timeline[{i}].deploy.service", "history[0].service", "dashboards[0].panels[0].service"}


def test_known_services_and_service_less_infra_pass(mailer: dict[str, Any]) -> None:
    data = copy.deepcopy(mailer)
    data["timeline"].append({"at": "1m", "infra": {"note": "network maintenance"}})
    assert parse_scenario(data, "ok.yaml").id == "mailer-retry-loop"
