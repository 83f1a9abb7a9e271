"""Scenario files (../shared/specs/drill-scenario.md, version 1): YAML in, validated pydantic models out.

Every error names the file and the field's path (`timeline[3].alert.sevrity`), unknown fields
included, so a scenario author fixes a file in one look. Nothing here reads `truth` beyond
validating it: only `simulations.scorer` uses it.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from firebreak.agent.actions import ACTION_FIELDS
from firebreak.kinds import SuspectKind
from firebreak.simulations.units import format_duration, parse_duration, parse_rate, parse_timestamp


def _to_str(value: object) -> object:
    """Versions, refs and label values may be written unquoted (`version: 2`): keep them as text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value


def _level(value: object) -> object:
    if isinstance(value, str):
        up = value.strip().upper()
        return {"WARNING": "WARN", "CRITICAL": "FATAL", "ERR": "ERROR"}.get(up, up)
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Rate = Annotated[float, BeforeValidator(parse_rate)]
Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp)]
Text = Annotated[str, BeforeValidator(_to_str)]
Level = Annotated[Literal["DEBUG", "INFO", "WARN", "ERROR", "FATAL"], BeforeValidator(_level)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LineTemplate(_Strict):
    weight: float = Field(default=1.0, gt=0)
    level: Level = "INFO"
    text: str = Field(min_length=1)


class LogSpec(_Strict):
    rate: Rate
    lines: list[LineTemplate] = Field(min_length=1)


class MetricSpec(_Strict):
    name: str = Field(min_length=1)
    every: Duration = timedelta(seconds=15)
    value: float
    noise: float = Field(default=0.0, ge=0)

    @field_validator("every")
    @classmethod
    def _positive(cls, v: timedelta) -> timedelta:
        if v.total_seconds() <= 0:
            raise ValueError("must be longer than 0s")
        return v


class Service(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
    kind: Literal["service", "database", "cache", "queue", "external"] = "service"
    version: Text | None = None
    depends_on: list[str] = Field(default_factory=list)
    logs: LogSpec | None = None
    metrics: list[MetricSpec] = Field(default_factory=list)


class Panel(_Strict):
    title: str
    service: str
    metric: str


class Dashboard(_Strict):
    uid: str = Field(min_length=1)
    title: str
    panels: list[Panel] = Field(default_factory=list)


def _numeric(value: object) -> object:
    """Variant values lose their number type in our YAML loader (floats stay text): restore it."""
    if isinstance(value, str) and re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", value.strip()):
        return float(value)
    return value


class FlagDef(_Strict):
    """flagd's flag definition shape."""

    state: Literal["ENABLED", "DISABLED"] = "ENABLED"
    variants: dict[str, Any] = Field(min_length=1)
    defaultVariant: Text  # noqa: N815 - flagd's own field name
    targeting: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("variants")
    @classmethod
    def _variant_values(cls, v: dict[str, Any]) -> dict[str, Any]:
        return {str(k): _numeric(val) for k, val in v.items()}

    def flagd(self) -> dict[str, Any]:
        """The definition as flagd's JSON wants it."""
        out: dict[str, Any] = {"state": self.state, "variants": dict(self.variants),
                               "defaultVariant": self.defaultVariant}
        if self.targeting is not None:
            out["targeting"] = self.targeting
        if self.metadata is not None:
            out["metadata"] = self.metadata
        return out


class HistoryIncident(_Strict):
    id: str = Field(min_length=1)
    title: str = Field(min_length=1)
    service: str
    started: Timestamp
    ended: Timestamp | None = None
    severity: Literal["minor", "major", "critical"] = "major"
    symptoms: str = ""
    root_cause: str = ""
    countermeasures: str = ""
    remediation: str | None = None


class DeployEvent(_Strict):
    service: str
    version: Text
    note: str = ""
    author: str | None = None


class FlagEvent(_Strict):
    flag: str
    variant: Text | None = None
    state: Literal["ENABLED", "DISABLED"] | None = None
    note: str = ""
    author: str | None = None


class ConfigEvent(_Strict):
    service: str
    key: str
    from_: Any = Field(default=None, alias="from")
    to: Any = None
    note: str = ""
    author: str | None = None


class InfraEvent(_Strict):
    service: str | None = None
    note: str = Field(min_length=1)
    author: str | None = None


class LogsEvent(_Strict):
    service: str
    for_: Duration | None = Field(default=None, alias="for")
    rate: Rate
    lines: list[LineTemplate] = Field(min_length=1)


class MetricEvent(_Strict):
    service: str
    name: str
    shape: Literal["step", "ramp", "spike", "drop"]
    to: float
    over: Duration | None = None
    for_: Duration | None = Field(default=None, alias="for")
    then: Literal["hold", "recover"] = "hold"


class AlertEvent(_Strict):
    source: Literal["grafana", "alertmanager", "sentry"]
    name: str = Field(min_length=1)
    service: str
    severity: Literal["info", "warning", "critical"] | None = None
    summary: str | None = None
    labels: dict[str, Text] = Field(default_factory=dict)
    resolve_at: Duration | None = None
    exception: str | None = None
    message: str | None = None
    culprit: str | None = None
    release: Text | None = None
    level: Literal["debug", "info", "warning", "error", "fatal"] | None = None
    count: int | None = Field(default=None, ge=0)


EVENT_KINDS = ("deploy", "flag", "config", "infra", "logs", "metric", "alert")


class TimelineEvent(_Strict):
    at: Duration
    deploy: DeployEvent | None = None
    flag: FlagEvent | None = None
    config: ConfigEvent | None = None
    infra: InfraEvent | None = None
    logs: LogsEvent | None = None
    metric: MetricEvent | None = None
    alert: AlertEvent | None = None

    @property
    def kind(self) -> str:
        return next(k for k in EVENT_KINDS if getattr(self, k) is not None)

    @property
    def body(self) -> Any:
        return getattr(self, self.kind)


class SuspectRef(_Strict):
    kind: SuspectKind
    service: str | None = None
    ref: Text


class Mitigation(BaseModel):
    """One acceptable fix: an action of the catalog and the fields that must match."""

    model_config = ConfigDict(extra="allow", frozen=True)

    action: Literal[
        "rollback", "disable_flag", "enable_flag", "set_flag_variant", "revert_config", "restart",
        "scale", "failover", "block_traffic", "renew_certificate", "restore_data",
    ]

    def fields(self) -> dict[str, str]:
        return {k: str(_to_str(v)) for k, v in (self.model_extra or {}).items()}


class Truth(_Strict):
    culprit: SuspectRef
    also_accept: list[SuspectRef] = Field(default_factory=list)
    root_cause: str = Field(min_length=1)
    severity: Literal["minor", "major", "critical"] | None = None
    mitigations: list[Mitigation] = Field(min_length=1)


class Scenario(_Strict):
    version: Literal[1]
    id: str = Field(pattern=r"^[a-z0-9-]+$")
    title: str = Field(min_length=1)
    summary: str = ""
    seed: int = 0
    start: Timestamp
    duration: Duration
    triage_at: Duration | None = None
    services: list[Service] = Field(min_length=1)
    dashboards: list[Dashboard] = Field(default_factory=list)
    flags: dict[str, FlagDef] = Field(default_factory=dict)
    history: list[HistoryIncident] = Field(default_factory=list)
    timeline: list[TimelineEvent] = Field(default_factory=list)
    truth: Truth

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    @property
    def end(self) -> datetime:
        return self.start + self.duration


class ScenarioError(ValueError):
    """A scenario file that does not follow the format: one `file: path: message` line per problem."""

    def __init__(self, file: str, problems: list[tuple[str, str]]) -> None:
        self.file = file
        self.problems = problems
        super().__init__("\n".join(f"{file}: {p}: {m}" if p else f"{file}: {m}" for p, m in problems))


# YAML 1.2-like plain scalars: `on`/`off`/`yes`/`no` stay text (flag variants are often named so), and
# floats/timestamps stay text so `version: 4.10` is not turned into 4.1; pydantic converts typed fields.
class _ScenarioLoader(yaml.SafeLoader):
    pass


_DROP = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"}
_ScenarioLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in _DROP]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_ScenarioLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # pydantic adds the name of function validators / union members; keep only real field names.
    return tuple(p for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-"))))


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    msg = str(err.get("msg", "invalid value"))
    return msg.removeprefix("Value error, ")


def _cross_checks(sc: Scenario) -> list[tuple[str, str]]:
    """Checks that span fields: times inside the run, unique names, ramp lengths, mitigation fields."""
    problems: list[tuple[str, str]] = []
    if sc.duration.total_seconds() <= 0:
        problems.append(("duration", "must be longer than 0s"))
    if sc.triage_at is not None and sc.triage_at > sc.duration:
        problems.append(("triage_at", f"{format_duration(sc.triage_at)} is after the end of the run "
                                      f"({format_duration(sc.duration)})"))
    seen: set[str] = set()
    for i, svc in enumerate(sc.services):
        if svc.name in seen:
            problems.append((f"services[{i}].name", f"duplicate service {svc.name!r}"))
        seen.add(svc.name)
        names = [m.name for m in svc.metrics]
        for j, name in enumerate(names):
            if name in names[:j]:
                problems.append((f"services[{i}].metrics[{j}].name", f"duplicate metric {name!r}"))
    for key, fl in sc.flags.items():
        if fl.defaultVariant not in fl.variants:
            problems.append((f"flags.{key}.defaultVariant", f"{fl.defaultVariant!r} is not one of the variants "
                                                          f"{sorted(fl.variants)}"))
    hist_ids = [h.id for h in sc.history]
    for i, h in enumerate(sc.history):
        if h.id in hist_ids[:i]:
            problems.append((f"history[{i}].id", f"duplicate id {h.id!r}"))
        if h.ended is not None and h.ended < h.started:
            problems.append((f"history[{i}].ended", "is before started"))
    for i, ev in enumerate(sc.timeline):
        where = f"timeline[{i}]"
        if ev.at > sc.duration:
            problems.append((f"{where}.at", f"{format_duration(ev.at)} is after the end of the run "
                                            f"({format_duration(sc.duration)})"))
        if isinstance(ev.flag, FlagEvent):
            if ev.flag.variant is None and ev.flag.state is None:
                problems.append((f"{where}.flag", "give a variant or a state"))
            fdef = sc.flags.get(ev.flag.flag)
            if fdef is not None and ev.flag.variant is not None and ev.flag.variant not in fdef.variants:
                problems.append((f"{where}.flag.variant", f"{ev.flag.variant!r} is not a variant of "
                                                          f"{ev.flag.flag} ({sorted(fdef.variants)})"))
        if isinstance(ev.metric, MetricEvent):
            if ev.metric.shape == "ramp" and ev.metric.over is None:
                problems.append((f"{where}.metric.over", "a ramp needs `over` (time to reach `to`)"))
            if ev.metric.over is not None and ev.metric.over.total_seconds() <= 0:
                problems.append((f"{where}.metric.over", "must be longer than 0s"))
        if isinstance(ev.alert, AlertEvent) and ev.alert.resolve_at is not None:
            if ev.alert.resolve_at <= ev.at:
                problems.append((f"{where}.alert.resolve_at", "must be after the alert's `at`"))
            elif ev.alert.resolve_at > sc.duration:
                problems.append((f"{where}.alert.resolve_at", "is after the end of the run"))
    problems += _unknown_services(sc, seen)
    for i, mit in enumerate(sc.truth.mitigations):
        allowed = ACTION_FIELDS[mit.action]
        for key in mit.fields():
            if key not in allowed:
                problems.append((f"truth.mitigations[{i}].{key}",
                                 f"unknown field for {mit.action} (takes {', '.join(allowed) or 'nothing'})"))
    return problems


def _unknown_services(sc: Scenario, names: set[str]) -> list[tuple[str, str]]:
    """References to services the world does not have: a typo would otherwise run silently, with
    telemetry and alerts for a service nobody declared (issue 19)."""
    refs: list[tuple[str, str | None]] = []
    for i, dash in enumerate(sc.dashboards):
        refs += [(f"dashboards[{i}].panels[{j}].service", p.service) for j, p in enumerate(dash.panels)]
    refs += [(f"history[{i}].service", h.service) for i, h in enumerate(sc.history)]
    for i, ev in enumerate(sc.timeline):
        for kind in EVENT_KINDS:  # an event with no kind is reported by parse_scenario already
            if getattr(ev, kind, None) is not None:
                refs.append((f"timeline[{i}].{kind}.service", getattr(getattr(ev, kind), "service", None)))
    known = ", ".join(sorted(names))
    return [(where, f"unknown service {name!r} (services: {known})")
            for where, name in refs if name is not None and name not in names]


def parse_scenario(data: object, file: str = "<scenario>") -> Scenario:
    """Validate already-parsed YAML; raises ScenarioError naming every bad field."""
    if not isinstance(data, dict):
        raise ScenarioError(file, [("", "a scenario is a YAML mapping (version, id, title, ...)")])
    # An event must carry exactly one kind: checked before pydantic so the message is about the event.
    problems: list[tuple[str, str]] = []
    timeline = data.get("timeline")
    if isinstance(timeline, list):
        for i, ev in enumerate(timeline):
            if isinstance(ev, dict):
                kinds = [k for k in EVENT_KINDS if k in ev]
                if len(kinds) != 1 and not [k for k in ev if k != "at" and k not in EVENT_KINDS]:
                    problems.append((f"timeline[{i}]", "each event needs `at` and exactly one of "
                                     f"{', '.join(EVENT_KINDS)} (found {', '.join(kinds) or 'none'})"))
    try:
        sc = Scenario.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            problems.append((_path(_clean_loc(tuple(err["loc"]))), _message(dict(err))))
        raise ScenarioError(file, problems) from None
    problems += _cross_checks(sc)
    if problems:
        raise ScenarioError(file, problems)
    return sc


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate one scenario file."""
    p = Path(path)
    name = str(path)
    data: object
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(name, [("", f"cannot read the file: {exc.strerror or exc}")]) from None
    try:
        data = yaml.load(text, Loader=_ScenarioLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ScenarioError(name, [("", f"not valid YAML: {where}{problem}")]) from None
    return parse_scenario(data, name)


def find_scenarios(directory: str | Path) -> list[Path]:
    """Every `*.yaml` below a folder, in a stable order."""
    return sorted(p for p in Path(directory).rglob("*.yaml") if p.is_file())
