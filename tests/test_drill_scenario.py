"""Scenario loader: every shared and library file loads; bad files name the file and the field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from firebreak.simulations.scenario import ScenarioError, _ScenarioLoader, find_scenarios, load_scenario, parse_scenario

LIBRARY = Path(__file__).resolve().parent.parent / "simulations" / "scenarios"
TINY = Path(__file__).resolve().parent / "drill_data" / "tiny.yaml"


def _raw(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=_ScenarioLoader)  # noqa: S506
    assert isinstance(data, dict)
    return data


def test_shared_scenarios_load_unchanged(shared_dir: Path) -> None:
    # The example scenarios of the shared contract load as written, culprits and all.
    culprits = {sc.id: (sc.truth.culprit.kind, sc.truth.culprit.ref)
                for sc in map(load_scenario, find_scenarios(shared_dir / "scenarios"))}
    assert culprits == {"checkout-flag-timeouts": ("flag", "checkout-new-pricing"),
                        "mailer-retry-loop": ("deploy", "4.6.2")}


def test_library_covers_every_culprit_kind_with_twenty_scenarios() -> None:
    scenarios = [load_scenario(f) for f in find_scenarios(LIBRARY)]
    assert len(scenarios) >= 20
    assert len({s.id for s in scenarios}) == len(scenarios)
    kinds = {s.truth.culprit.kind for s in scenarios}
    assert kinds == {"deploy", "config", "flag", "dependency", "resource", "traffic", "certificate", "data", "infra"}
    assert "mailer-retry-loop" in {s.id for s in scenarios}


def test_plain_on_off_and_versions_stay_text() -> None:
    sc = load_scenario(TINY)
    assert sc.flags["web-banner"].defaultVariant == "off"
    assert sc.flags["web-banner"].variants == {"on": True, "off": False}
    assert sc.timeline[1].flag is not None and sc.timeline[1].flag.variant == "on"
    data = _raw(TINY)
    data["services"][0]["version"] = 4.10
    assert parse_scenario(data).services[0].version == "4.1"  # a YAML float: quote versions
    text = TINY.read_text().replace("version: 1.0.0", "version: 4.10")
    assert parse_scenario(yaml.load(text, Loader=_ScenarioLoader)).services[0].version == "4.10"  # noqa: S506


def _error(mutate: Any) -> str:
    data = copy.deepcopy(_raw(TINY))
    mutate(data)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "tiny.yaml")
    return str(info.value)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d["timeline"][4]["alert"].update(sevrity="critical"),
         "tiny.yaml: timeline[4].alert.sevrity: unknown field"),
        (lambda d: d.update(colour="red"), "tiny.yaml: colour: unknown field"),
        (lambda d: d["timeline"][0].update(at="five minutes"), "tiny.yaml: timeline[0].at: expected a duration"),
        (lambda d: d["services"][0]["logs"].update(rate="40 a minute"), "services[0].logs.rate: expected a rate"),
        (lambda d: d["timeline"][2]["logs"]["lines"][0].update(level="LOUD"), "timeline[2].logs.lines[0].level"),
        (lambda d: d["timeline"][3]["metric"].update(shape="wave"), "timeline[3].metric.shape"),
        (lambda d: d["timeline"][4]["alert"].update(source="pagerduty"), "timeline[4].alert.source"),
        (lambda d: d.pop("truth"), "tiny.yaml: truth: required field is missing"),
        (lambda d: d["truth"].update(mitigations=[]), "truth.mitigations"),
        (lambda d: d["truth"]["mitigations"][0].update(version="1"), "truth.mitigations[0].version: unknown field"),
        (lambda d: d["truth"]["culprit"].update(kind="gremlins"), "truth.culprit.kind"),
        (lambda d: d.update(start="2026-03-02T08:00:00"), "start: timestamp 2026-03-02T08:00:00 has no zone"),
        (lambda d: d.update(id="Tiny Drill"), "tiny.yaml: id:"),
        (lambda d: d.update(version=2), "tiny.yaml: version:"),
        (lambda d: d["timeline"][0].update(flag={"flag": "web-banner", "variant": "on"}), "timeline[0]: each event"),
        (lambda d: d["timeline"][0].pop("deploy"), "timeline[0]: each event needs"),
        (lambda d: d["timeline"][0].update(at="45m"), "timeline[0].at: 45m is after the end of the run (30m)"),
        (lambda d: d["timeline"][1]["flag"].update(variant="maybe"), "timeline[1].flag.variant"),
        (lambda d: d["timeline"][4]["alert"].update(resolve_at="1m"), "timeline[4].alert.resolve_at"),
        (lambda d: d["history"][0].update(severity="huge"), "history[0].severity"),
        (lambda d: d["flags"]["web-banner"].update(defaultVariant="maybe"), "flags.web-banner.defaultVariant"),
    ],
)
def test_bad_fields_are_named(mutate: Any, expected: str) -> None:
    assert expected in _error(mutate)


def test_ramp_needs_over() -> None:
    def mutate(d: dict[str, Any]) -> None:
        d["timeline"][3]["metric"].update(shape="ramp")

    assert "timeline[3].metric.over: a ramp needs `over`" in _error(mutate)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read"):
        load_scenario(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nid: [unclosed\n")
    with pytest.raises(ScenarioError, match=r"bad.yaml: not valid YAML: line \d+"):
        load_scenario(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ScenarioError, match="a scenario is a YAML mapping"):
        load_scenario(bad)
