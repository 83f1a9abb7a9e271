"""The kinds every area shares, defined once: what a hypothesis can blame, and incident severities.

They are `Literal` types (JSON and pydantic see plain strings, as the drill and recorded-incident formats
write them); the tuples list the values for code that iterates over them.
"""

from __future__ import annotations

from typing import Literal, get_args

# What a hypothesis blames (drill-scenario.md "Suspects"): also the culprit kinds of scenarios.
SuspectKind = Literal["deploy", "config", "flag", "dependency", "resource", "traffic", "certificate", "data", "infra"]
SUSPECT_KINDS: tuple[str, ...] = get_args(SuspectKind)

Severity = Literal["minor", "major", "critical"]
SEVERITIES: tuple[str, ...] = get_args(Severity)
