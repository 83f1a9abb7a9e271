"""Two naive rankers computed on every drill, so each bench says what the investigator adds over them.

- `most_recent_change`: blame the changes recorded before triage, newest first, and propose the
  natural undo of the newest (roll the deploy back, revert the config key, switch the flag back).
- `alerting_service`: blame the service of the first alert, then the services of later alerts. At the
  service level that is the whole guess; as a drill suspect it is a resource of that service when the
  alert's words name one (memory, cpu, disk, connections, file-descriptors, threads), otherwise the
  service itself as a failing dependency; the fix is a restart of that service.

They read only what the investigator may read (the change log and the alerts the intake stored, up
to the moment triage ran), never the scenario or its truth; the caller scores them with the same
scorer as the investigator.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from firebreak.context import ToolContext
from firebreak.simulations.scorer import Score, SuspectIn


class BaselineName(StrEnum):
    MOST_RECENT_CHANGE = "most_recent_change"
    ALERTING_SERVICE = "alerting_service"


class BaselineGuess(BaseModel):
    """A baseline's ranked suspects and its fix, in the shapes the scorer takes."""

    suspects: list[SuspectIn]
    fix: dict[str, Any] | None


_RESOURCE_WORDS = [
    (re.compile(r"\b(memory|mem|oom|heap|rss)\b", re.I), "memory"),
    (re.compile(r"\b(cpu|throttl\w*)\b", re.I), "cpu"),
    (re.compile(r"\b(disk|volume|inodes?|filesystem)\b", re.I), "disk"),
    (re.compile(r"\b(file descriptors?|fds?|too many open files)\b", re.I), "file-descriptors"),
    (re.compile(r"\b(connections?|conn pool|pool)\b", re.I), "connections"),
    (re.compile(r"\bthreads?\b", re.I), "threads"),
]


def _undo(kind: str, service: str | None, version_before: str | None, key: str | None, flag: str | None,
          state: str | None) -> dict[str, Any] | None:
    """The catalog action that undoes one change (None for infra changes: there is no generic undo)."""
    if kind == "deploy" and service:
        return {"action": "rollback", "service": service, **({"to": version_before} if version_before else {})}
    if kind == "config" and service and key:
        return {"action": "revert_config", "service": service, "key": key}
    if kind == "flag" and flag:
        return {"action": "enable_flag" if (state or "").upper() == "DISABLED" else "disable_flag", "flag": flag}
    return None


def most_recent_change(ctx: ToolContext, until: datetime) -> BaselineGuess:
    from firebreak.state.changes import Change

    with ctx.db.session() as s:
        rows = list(s.scalars(select(Change).where(Change.at <= until).order_by(Change.at.desc(), Change.id.desc())))
        suspects: list[SuspectIn] = []
        for c in rows:
            ref = {"deploy": c.version, "config": c.key, "flag": c.flag, "infra": c.note}.get(c.kind)
            if ref:
                suspects.append(SuspectIn(kind=c.kind, service=c.service, ref=str(ref)))
        fix = None
        if rows:
            c = rows[0]
            fix = _undo(c.kind, c.service, c.previous_version, c.key, c.flag, c.state)
    return BaselineGuess(suspects=suspects, fix=fix)


def _resource_named(text: str) -> str | None:
    for rx, resource in _RESOURCE_WORDS:
        if rx.search(text):
            return resource
    return None


def alerting_service(ctx: ToolContext, until: datetime) -> BaselineGuess:
    from firebreak.state.alerts import Alert

    with ctx.db.session() as s:
        alerts = list(s.scalars(select(Alert).where(Alert.received_at <= until)
                                .order_by(Alert.started_at, Alert.received_at, Alert.id)))
        seen: list[str] = []
        suspects: list[SuspectIn] = []
        for a in alerts:
            if a.service in seen:
                continue
            seen.append(a.service)
            words = " ".join([a.title, a.summary or "", *(str(v) for v in (a.labels or {}).values())])
            resource = _resource_named(words)
            suspects.append(SuspectIn(kind="resource", service=a.service, ref=resource) if resource
                            else SuspectIn(kind="dependency", service=None, ref=a.service))
    fix = {"action": "restart", "service": seen[0]} if seen else None
    return BaselineGuess(suspects=suspects, fix=fix)


BASELINES: dict[BaselineName, Callable[[ToolContext, datetime], BaselineGuess]] = {
    BaselineName.MOST_RECENT_CHANGE: most_recent_change,
    BaselineName.ALERTING_SERVICE: alerting_service,
}


def run_baselines(ctx: ToolContext, until: datetime,
                  scorer: Callable[[list[SuspectIn], dict[str, Any] | None], Score]) -> dict[str, dict[str, Any]]:
    """Each baseline's score on this drill: {name: {rank, hit_at_1, hit_at_3, mitigation_ok}}."""
    out: dict[str, dict[str, Any]] = {}
    for name, guess_of in BASELINES.items():
        guess = guess_of(ctx, until)
        sc = scorer(guess.suspects, guess.fix)
        out[name.value] = {"rank": sc.rank, "hit_at_1": sc.hit_at_1, "hit_at_3": sc.hit_at_3,
                           "mitigation_ok": sc.mitigation_ok}
    return out


def aggregate_baselines(per_result: list[dict[str, dict[str, Any]]], recorded: list[bool]) -> dict[str, Any]:
    """Ratios over all results per baseline; AC@1, AC@3, Avg@5 over the recorded ones when there are some."""
    from firebreak.simulations.scorer import ac_at, avg_at

    n = len(per_result)
    out: dict[str, Any] = {}
    for name in BaselineName:
        rows = [r.get(name.value) or {} for r in per_result]

        def ratio(key: str, rows: list[dict[str, Any]] = rows) -> float:
            return round(sum(1 for r in rows if r.get(key)) / n, 3) if n else 0.0

        entry: dict[str, Any] = {"hit_at_1": ratio("hit_at_1"), "hit_at_3": ratio("hit_at_3"),
                                 "mitigation_ok": ratio("mitigation_ok")}
        ranks = [r.get("rank") for r, rec in zip(rows, recorded, strict=True) if rec]
        if ranks:
            entry.update({"ac_at_1": round(ac_at(ranks, 1), 3), "ac_at_3": round(ac_at(ranks, 3), 3),
                          "avg_at_5": round(avg_at(ranks, 5), 3)})
        out[name.value] = entry
    return out
