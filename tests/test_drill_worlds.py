"""Generated training worlds: valid scenarios, reproducible, every kind present, truths that point at
things that exist in the world, and red herrings that never contradict the truth."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from firebreak.simulations.scenario import Scenario, load_scenario, parse_scenario
from firebreak.simulations.worlds import KINDS, METRICS_ONLY, ROTATION, generate_world, generate_worlds

N = 4 * ROTATION
FAMILY_N = 4 * len(KINDS)


@pytest.fixture(scope="module")
def everything() -> list[tuple[dict[str, Any], Scenario]]:
    return [(d, parse_scenario(d, d["id"])) for d in generate_worlds(N, seed=3)]


@pytest.fixture(scope="module")
def worlds(everything: list[tuple[dict[str, Any], Scenario]]) -> list[tuple[dict[str, Any], Scenario]]:
    """The worlds drawn from the culprit families (with logs, changes and log-borne red herrings)."""
    return [(d, sc) for d, sc in everything if not d["id"].endswith("-metrics")]


@pytest.fixture(scope="module")
def quiet(everything: list[tuple[dict[str, Any], Scenario]]) -> list[tuple[dict[str, Any], Scenario]]:
    """The metrics-only worlds (simulations/worlds/quiet.py)."""
    return [(d, sc) for d, sc in everything if d["id"].endswith("-metrics")]


def _changes(sc: Scenario, kind: str) -> list[Any]:
    return [ev for ev in sc.timeline if ev.kind == kind]


def test_every_world_is_a_valid_scenario_and_kinds_take_turns(worlds: list[tuple[dict[str, Any], Scenario]]) -> None:
    kinds = Counter(sc.truth.culprit.kind for _, sc in worlds)
    assert set(kinds) == set(KINDS)
    assert max(kinds.values()) - min(kinds.values()) <= 1
    assert len({sc.id for _, sc in worlds}) == FAMILY_N


def test_metrics_only_worlds_take_their_turn_and_see_only_metrics(
    quiet: list[tuple[dict[str, Any], Scenario]],
) -> None:
    assert len(quiet) == 4 * len(METRICS_ONLY)
    kinds = Counter(sc.truth.culprit.kind for _, sc in quiet)
    # A delay needs a slow service with callers; without one the world falls back to a resource fault.
    assert set(kinds) == {"resource", "dependency"} and kinds["resource"] >= 8
    logless = 0
    for _, sc in quiet:
        assert not [ev for ev in sc.timeline if ev.kind in ("logs", "flag", "config", "infra")], sc.id
        assert sum(1 for ev in sc.timeline if ev.kind == "deploy") <= 1
        logless += all(s.logs is None for s in sc.services)
        internal = [s for s in sc.services if s.kind != "external"]
        assert all(s.metrics for s in internal), sc.id  # every service has its own cpu and memory
        c = sc.truth.culprit
        culprit = c.service or c.ref
        assert culprit in {s.name for s in internal}
        assert any(ev.kind == "metric" and ev.metric and ev.metric.service == culprit for ev in sc.timeline), sc.id
        assert sc.triage_at is not None and sc.triage_at <= sc.duration
    assert logless >= len(quiet) // 2


def test_metrics_only_alerts_rarely_name_the_culprit(quiet: list[tuple[dict[str, Any], Scenario]]) -> None:
    on_culprit = 0
    for _, sc in quiet:
        c = sc.truth.culprit
        firing = [ev for ev in sc.timeline if ev.kind == "alert" and ev.alert and ev.alert.resolve_at is None]
        assert firing, sc.id
        on_culprit += any(ev.alert and ev.alert.service == (c.service or c.ref) for ev in firing)
    assert on_culprit <= len(quiet) // 3


def test_same_seed_same_worlds_other_seed_other_worlds() -> None:
    a = list(generate_worlds(6, seed=11))
    assert a == list(generate_worlds(6, seed=11))
    b = list(generate_worlds(6, seed=12))
    assert [w["services"] for w in a] != [w["services"] for w in b]


def test_names_and_topologies_vary() -> None:
    names = [tuple(s["name"] for s in w["services"]) for w in generate_worlds(30, seed=5)]
    assert len(set(names)) >= 28
    assert len({n for ns in names for n in ns}) > 60


def test_worlds_stay_small(worlds: list[tuple[dict[str, Any], Scenario]]) -> None:
    for _, sc in worlds:
        assert 40 <= sc.duration.total_seconds() / 60 <= 60
        assert 4 <= len(sc.services) <= 12
        assert all(s.logs is None or s.logs.rate <= 200 / 60 for s in sc.services)
        assert sc.triage_at is not None and sc.triage_at <= sc.duration


def test_truth_points_at_what_the_world_contains(worlds: list[tuple[dict[str, Any], Scenario]]) -> None:
    for _, sc in worlds:
        c = sc.truth.culprit
        names = {s.name for s in sc.services}
        if c.service is not None:
            assert c.service in names, sc.id
        if c.kind == "deploy":
            deploys = [ev.deploy for ev in _changes(sc, "deploy") if ev.deploy and ev.deploy.version == c.ref]
            assert [d.service for d in deploys] == [c.service], sc.id
            svc = sc.service(c.service or "")
            assert svc is not None
            before = [
                ev.deploy.version for ev in _changes(sc, "deploy") if ev.deploy and ev.deploy.service == c.service
            ]
            previous = before[before.index(c.ref) - 1] if before.index(c.ref) else svc.version
            rollback = next(m for m in sc.truth.mitigations if m.action == "rollback")
            assert rollback.fields() == {"service": c.service, "to": previous}, sc.id
        elif c.kind == "config":
            keys = [(ev.config.service, ev.config.key) for ev in _changes(sc, "config") if ev.config]
            assert (c.service, c.ref) in keys, sc.id
        elif c.kind == "flag":
            assert c.ref in sc.flags, sc.id
            assert c.ref in [ev.flag.flag for ev in _changes(sc, "flag") if ev.flag], sc.id
        elif c.kind == "dependency":
            assert c.ref in names, sc.id
        elif c.kind == "resource":
            assert c.ref in {"memory", "cpu", "disk", "connections", "file-descriptors", "threads"}
            ramps = [
                ev.metric
                for ev in _changes(sc, "metric")
                if ev.metric and ev.metric.service == c.service and ev.metric.shape == "ramp"
            ]
            assert ramps, sc.id
        elif c.kind == "infra":
            notes = [(ev.infra.service, ev.infra.note) for ev in _changes(sc, "infra") if ev.infra]
            assert (c.service, c.ref) in notes, sc.id
        else:  # traffic, certificate, data: the ref is named in the logs the world writes
            assert any(c.ref in line.text for ev in _changes(sc, "logs") if ev.logs for line in ev.logs.lines), sc.id


def test_the_culprit_is_the_only_change_of_its_kind_on_its_target(
    worlds: list[tuple[dict[str, Any], Scenario]],
) -> None:
    """Herrings never deploy the culprit's service nor flip the culprit's flag: the truth stays unique."""
    for _, sc in worlds:
        c = sc.truth.culprit
        if c.kind == "deploy":
            assert sum(1 for ev in _changes(sc, "deploy") if ev.deploy and ev.deploy.version == c.ref) == 1
        if c.kind == "flag":
            assert sum(1 for ev in _changes(sc, "flag") if ev.flag and ev.flag.flag == c.ref) == 1


def test_worlds_carry_red_herrings(worlds: list[tuple[dict[str, Any], Scenario]]) -> None:
    with_decoy_change = 0
    for d, sc in worlds:
        assert "Red herrings:" in d["summary"], sc.id
        c = sc.truth.culprit
        decoys = [
            ev
            for ev in sc.timeline
            if ev.kind in ("deploy", "flag", "config", "infra")
            and not (
                ev.kind == c.kind
                and (
                    getattr(ev.body, "version", None) == c.ref
                    or getattr(ev.body, "key", None) == c.ref
                    or getattr(ev.body, "flag", None) == c.ref
                )
            )
        ]
        with_decoy_change += bool(decoys)
    assert with_decoy_change >= N * 0.6


def test_dependency_fixes_follow_the_policy() -> None:
    """A third party with a fallback flag: the flag only. Without one: fail over. Internal: act on it."""
    seen: Counter[str] = Counter()
    for i in range(200):
        d = generate_world(i, seed=9, kind="dependency")
        sc = parse_scenario(d, d["id"])
        ref = sc.truth.culprit.ref
        dep = sc.service(ref)
        assert dep is not None
        named = re.compile(rf"(?<![\w-]){re.escape(ref)}(?![\w-])")
        fallback = [
            k
            for k, f in sc.flags.items()
            if ref in f.variants or (f.metadata and named.search(str(f.metadata["description"])))
        ]
        actions = [m.action for m in sc.truth.mitigations]
        if dep.kind == "external" and fallback:
            seen["third party, fallback flag"] += 1
            assert set(actions) <= {"enable_flag", "set_flag_variant"}
            assert {m.fields()["flag"] for m in sc.truth.mitigations} == {fallback[0]}
        elif dep.kind == "external":
            seen["third party"] += 1
            assert set(actions) == {"failover"}
        else:
            seen["internal"] += 1
            assert actions[:2] == ["failover", "restart"]
            assert all(m.fields().get("service") == ref for m in sc.truth.mitigations[:2])
            if fallback:
                seen["internal, degraded mode"] += 1
                assert sc.truth.mitigations[2].fields() == {"flag": fallback[0]}
    assert min(seen.values()) >= 5 and len(seen) == 4


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown culprit kind"):
        generate_world(0, seed=1, kind="gremlins")


def test_cli_generate_writes_loadable_files(tmp_path: Path) -> None:
    from firebreak.cli import app

    result = CliRunner().invoke(app, ["drill", "generate", "--count", "7", "--seed", "4", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("*.yaml"))
    assert len(files) == 7
    assert {load_scenario(f).truth.culprit.kind for f in files} >= set(KINDS[:4])


def test_written_files_hold_exactly_the_generated_worlds(tmp_path: Path) -> None:
    from firebreak.simulations.worlds import write_worlds

    paths = write_worlds(len(KINDS), seed=21, out=tmp_path)
    for path, world in zip(paths, generate_worlds(len(KINDS), seed=21), strict=True):
        assert load_scenario(path) == parse_scenario(world, world["id"])


def test_rollback_goes_to_the_release_before_the_bad_one() -> None:
    """Some deploy worlds ship a healthy release of the same service earlier in the run."""
    twice = 0
    for i in range(80):
        sc = parse_scenario(generate_world(i, seed=2, kind="deploy"))
        c = sc.truth.culprit
        versions = [ev.deploy.version for ev in _changes(sc, "deploy") if ev.deploy and ev.deploy.service == c.service]
        if len(versions) == 2:
            twice += 1
            assert versions[1] == c.ref
            assert sc.truth.mitigations[0].fields() == {"service": c.service, "to": versions[0]}
    assert twice >= 5


def test_topologies_are_acyclic_and_reached_from_one_entry_point() -> None:
    import random
    from graphlib import CycleError, TopologicalSorter

    from firebreak.simulations.worlds.topology import build_topology

    for i in range(200):
        topo = build_topology(random.Random(i))
        graph = {n.name: set(n.depends_on) for n in topo.nodes.values()}
        try:
            tuple(TopologicalSorter(graph).static_order())
        except CycleError as exc:  # pragma: no cover - the failure message
            pytest.fail(f"call cycle {exc.args[1]}")
        assert not topo.callers(topo.edge)
        for node in topo.nodes.values():
            assert all(d in topo.nodes for d in node.depends_on)
            if node.kind == "service" and node.name != topo.edge:
                assert topo.edge in {c for c, _ in topo.upstream(node.name)}, f"{node.name} unreachable"
