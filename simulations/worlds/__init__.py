"""Generated training worlds: drill scenarios drawn from randomised families, one module per culprit kind.

`generate_worlds(count, seed)` yields scenario dicts that follow ../shared/specs/drill-scenario.md
(they load with `simulations.scenario.parse_scenario`), each with its truth and accepted fixes, with
random service names, topologies and red herrings. They exist to fit and check the investigator's
ranking on incidents unlike the hand-written library, so nothing here looks at the investigator.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from firebreak.simulations.worlds import (
    certificate,
    config,
    data,
    dependency,
    deploy,
    flag,
    infra,
    quiet,
    resource,
    traffic,
)
from firebreak.simulations.worlds.builder import World
from firebreak.simulations.worlds.herrings import add_herrings

# Explicit registry: a new culprit kind is a new module added here.
FAMILIES: dict[str, ModuleType] = {
    m.KIND: m for m in (deploy, config, flag, dependency, resource, traffic, certificate, data, infra)
}
KINDS: tuple[str, ...] = tuple(FAMILIES)
# Metrics-only variants (simulations/worlds/quiet.py): (kind, builder), taking turns after the families.
METRICS_ONLY: tuple[tuple[str, Callable[[World], None]], ...] = (
    ("resource", quiet.build_resource),
    ("resource", quiet.build_resource),
    ("dependency", quiet.build_delay),
)
ROTATION = len(KINDS) + len(METRICS_ONLY)


def generate_world(index: int, seed: int, kind: str | None = None) -> dict[str, Any]:
    """World number `index` of the set drawn with `seed`: the families take turns, then the
    metrics-only variants; `kind` asks for that family (with its normal telemetry)."""
    slot = index % ROTATION
    quiet_build = METRICS_ONLY[slot - len(KINDS)][1] if kind is None and slot >= len(KINDS) else None
    if kind is None:
        kind = KINDS[slot] if quiet_build is None else METRICS_ONLY[slot - len(KINDS)][0]
    if kind not in FAMILIES:
        raise ValueError(f"unknown culprit kind {kind!r} (known: {', '.join(KINDS)})")
    rng = random.Random(f"firebreak-world:{seed}:{index}")
    suffix = "-metrics" if quiet_build is not None else ""
    w = World(rng, f"gen-{seed}-{index:05d}-{kind}{suffix}", kind, seed=rng.randint(1, 10**6))
    if quiet_build is not None:
        quiet_build(w)  # brings its own metric noise and few changes; no log-borne herrings
    else:
        FAMILIES[kind].build(w)
        add_herrings(w)
    if w.herrings:
        w.summary += " Red herrings: " + "; ".join(w.herrings) + "."
    return w.to_dict()


def generate_worlds(count: int, seed: int) -> Iterator[dict[str, Any]]:
    """`count` worlds, the culprit kinds in turn; the same seed gives the same worlds."""
    if count < 0:
        raise ValueError("count must be 0 or more")
    for i in range(count):
        yield generate_world(i, seed)


class _Dumper(yaml.SafeDumper):
    """Leaf mappings (a log line, a metric, an event body of scalars) on one line, as people write them."""


def _represent_dict(dumper: yaml.SafeDumper, data: dict[str, Any]) -> yaml.Node:
    leaf = all(not isinstance(v, dict | list) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=leaf)


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    leaf = all(not isinstance(v, dict | list) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=leaf)


_Dumper.add_representer(dict, _represent_dict)
_Dumper.add_representer(list, _represent_list)


def to_yaml(world: dict[str, Any]) -> str:
    return yaml.dump(world, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def write_worlds(count: int, seed: int, out: Path) -> list[Path]:
    """Write the worlds as YAML files into `out` (created if needed); returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for world in generate_worlds(count, seed):
        path = out / f"{world['id']}.yaml"
        path.write_text(to_yaml(world), encoding="utf-8")
        paths.append(path)
    return paths
