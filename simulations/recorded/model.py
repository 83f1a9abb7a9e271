"""`incident.yaml` of a recorded incident: YAML in, validated pydantic models out.

Errors name the folder's `incident.yaml` and the field's path (`alerts[0].sevrity: unknown field`),
like scenario files, so the CLI prints one line per problem. Nothing here reads `truth` beyond
validating it: only `simulations.scorer` uses it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from firebreak.agent.actions import ACTION_FIELDS
from firebreak.simulations.recorded import INCIDENT_FILE
from firebreak.simulations.scenario import (
    Mitigation,
    ScenarioError,
    SuspectRef,
    Text,
    _clean_loc,
    _message,
    _path,
    _ScenarioLoader,
)
from firebreak.simulations.units import parse_timestamp

_EPOCH_MS = re.compile(r"^-?\d+$")


def parse_instant(value: object) -> datetime:
    """RFC 3339 with a zone, or integer epoch milliseconds (the two forms the format allows)."""
    if isinstance(value, bool):
        raise ValueError(f"expected an RFC 3339 timestamp or epoch milliseconds, got {value!r}")
    if isinstance(value, int) or (isinstance(value, str) and _EPOCH_MS.match(value.strip())):
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    return parse_timestamp(value)


Instant = Annotated[datetime, BeforeValidator(parse_instant)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Window(_Strict):
    since: Instant
    until: Instant


class Edge(_Strict):
    """A caller -> callee edge: `service` calls `depends_on`."""

    service: Name
    depends_on: Name


class RecordedAlert(_Strict):
    """What paged; delivered through the real intake as an Alertmanager notification."""

    service: Name
    title: str = Field(min_length=1)
    severity: Literal["minor", "major", "critical"] = "major"
    at: Instant
    labels: dict[str, Text] = Field(default_factory=dict)


class RecordedTruth(_Strict):
    """Read by the scorer only. `level: service` scores the blamed service; `suspect` scores like a drill."""

    level: Literal["service", "suspect"]
    culprit: SuspectRef
    also_accept: list[SuspectRef] = Field(default_factory=list)
    fault: Text = Field(min_length=1)
    mitigations: list[Mitigation] = Field(default_factory=list)
    root_cause: str = ""
    severity: Literal["minor", "major", "critical"] | None = None


class RecordedIncident(_Strict):
    version: Literal[1]
    kind: Literal["recorded-incident"]
    id: str = Field(pattern=r"^[a-z0-9-]+$")
    source: str = Field(min_length=1)
    window: Window
    onset: Instant
    triage_at: Instant
    services: list[Name] | None = None
    dependencies: list[Edge] = Field(default_factory=list)
    alerts: list[RecordedAlert] = Field(min_length=1)
    truth: RecordedTruth

    def dependency_map(self) -> dict[str, list[str]]:
        """Settings' shape: caller -> its callees, in file order."""
        out: dict[str, list[str]] = {}
        for e in self.dependencies:
            callees = out.setdefault(e.service, [])
            if e.depends_on not in callees:
                callees.append(e.depends_on)
        return out


class RecordedError(ScenarioError):
    """A recorded-incident folder that does not follow the format: `file: where: message` lines."""


def _cross_checks(inc: RecordedIncident) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if inc.window.until <= inc.window.since:
        problems.append(("window.until", "must be after window.since"))
    if inc.triage_at <= inc.window.since:
        problems.append(("triage_at", "must be after window.since (the investigator would see nothing)"))
    if inc.onset > inc.triage_at:
        problems.append(("onset", "is after triage_at"))
    for i, alert in enumerate(inc.alerts):
        if alert.at > inc.triage_at:
            problems.append((f"alerts[{i}].at", "is after triage_at (it could not have paged yet)"))
    if inc.services is not None:
        for i, name in enumerate(inc.services):
            if name in inc.services[:i]:
                problems.append((f"services[{i}]", f"duplicate service {name!r}"))
    if inc.truth.level == "service" and not inc.truth.culprit.service:
        problems.append(("truth.culprit.service", "level: service needs the culprit's service"))
    for i, mit in enumerate(inc.truth.mitigations):
        allowed = ACTION_FIELDS[mit.action]
        for key in mit.fields():
            if key not in allowed:
                problems.append((f"truth.mitigations[{i}].{key}",
                                 f"unknown field for {mit.action} (takes {', '.join(allowed) or 'nothing'})"))
    return problems


def parse_incident(data: object, file: str) -> RecordedIncident:
    """Validate already-parsed YAML; raises RecordedError naming every bad field."""
    if not isinstance(data, dict):
        raise RecordedError(file, [("", "incident.yaml is a YAML mapping (version, kind, id, ...)")])
    try:
        inc = RecordedIncident.model_validate(data)
    except ValidationError as exc:
        problems = [(_path(_clean_loc(tuple(e["loc"]))), _message(dict(e))) for e in exc.errors()]
        raise RecordedError(file, problems) from None
    problems = _cross_checks(inc)
    if problems:
        raise RecordedError(file, problems)
    return inc


def is_recorded(path: str | Path) -> bool:
    """A recorded-incident folder: a folder holding `incident.yaml`."""
    p = Path(path)
    return p.is_dir() and (p / INCIDENT_FILE).is_file()


def load_incident(folder: str | Path) -> RecordedIncident:
    """Read and check `incident.yaml` of one folder (the telemetry files are read by `readers`)."""
    path = Path(folder) / INCIDENT_FILE
    name = str(path)
    if not Path(folder).is_dir():
        raise RecordedError(str(folder), [("", "not a folder")])
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecordedError(str(folder), [("", f"no {INCIDENT_FILE} in this folder")]) from None
    except OSError as exc:
        raise RecordedError(name, [("", f"cannot read the file: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError as exc:
        raise RecordedError(name, [("", f"cannot read as UTF-8 text ({exc.reason} at byte {exc.start})")]) from None
    try:
        data = yaml.load(text, Loader=_ScenarioLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise RecordedError(name, [("", f"not valid YAML: {where}{getattr(exc, 'problem', None) or exc}")]) from None
    return parse_incident(data, name)


def find_incidents(directory: str | Path) -> list[Path]:
    """Every recorded-incident folder below a folder (itself included), in a stable order."""
    root = Path(directory)
    return sorted(p.parent for p in root.rglob(INCIDENT_FILE) if p.is_file())
