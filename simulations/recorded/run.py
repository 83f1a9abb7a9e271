"""Triage one recorded incident like a drill: fresh data dir, replayed telemetry, real intake, score.

The settings carry the folder's dependencies; the clock stands at each alert's recorded time while
the intake receives it (Alertmanager webhooks, signed like drills' alerts) and at `triage_at` while
the configured investigator runs. `onset` and `truth` stay in this process: the scorer reads truth
after the investigation; onset is used by nothing (it exists for the people and reference rankers).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.simulations.drill_env import DrillEnv, drill_settings, new_secrets
from firebreak.simulations.drill_result import DrillResult, HypothesisOut, finish, flat_fix, read_triage, suspects_of
from firebreak.simulations.generator import AlertNotice
from firebreak.simulations.recorded.model import RecordedAlert, RecordedIncident, load_incident
from firebreak.simulations.recorded.readers import Telemetry, read_folder
from firebreak.simulations.recorded.replay import check_changes, replay
from firebreak.simulations.render import render
from firebreak.simulations.scenario import AlertEvent
from firebreak.simulations.scorer import score_recorded
from firebreak.simulations.timeline import Progress, count_drill_incidents, deliver, describe_alert, run_triage
from firebreak.simulations.transport import InProcessTransport, Transport

# The format's incident severities, as the Alertmanager `severity` label the intake maps back to them.
ALERT_SEVERITY = {"minor": "info", "major": "warning", "critical": "critical"}


def alert_notice(alert: RecordedAlert, index: int) -> AlertNotice:
    """A recorded alert as a firing Alertmanager notification (title as summary, `alertname` from labels)."""
    labels = {k: v for k, v in alert.labels.items() if k not in ("alertname", "service", "severity")}
    event = AlertEvent(source="alertmanager", name=alert.labels.get("alertname") or alert.title,
                       service=alert.service, severity=ALERT_SEVERITY[alert.severity],  # type: ignore[arg-type]
                       summary=alert.title, labels=labels)
    return AlertNotice(at=alert.at, index=index, alert=event, status="firing", started_at=alert.at)


def make_recorded_env(inc: RecordedIncident, data_dir: Path | None = None) -> DrillEnv:
    """A fresh world for one recorded incident; a temp data dir (removed on close) unless one is given."""
    owns = data_dir is None
    path = Path(tempfile.mkdtemp(prefix="firebreak-recorded-")) if data_dir is None else data_dir
    secrets = new_secrets()
    settings = drill_settings(None, path, secrets, dependencies=inc.dependency_map())
    clock = FixedClock(inc.triage_at)
    return DrillEnv(settings, clock, ToolContext(settings=settings, clock=clock), secrets, path, owns)


def play_alerts(inc: RecordedIncident, env: DrillEnv, transport: Transport, progress: Progress,
                on_step: Callable[[str], None] | None = None) -> None:
    """Deliver the alerts in time order at their recorded instants, then triage at `triage_at`."""
    for i, alert in sorted(enumerate(inc.alerts), key=lambda pair: (pair[1].at, pair[0])):
        env.clock.set(alert.at)
        notice = alert_notice(alert, i)
        if deliver(transport, render(notice, [], env.secrets, alert.at), progress):
            progress.alerts_delivered += 1
        if on_step:
            a = notice.alert
            on_step(describe_alert(a.source, a.name, a.service, a.severity, a.summary, "firing"))
    env.clock.set(inc.triage_at)
    run_triage(env.ctx, progress)


def result_of(inc: RecordedIncident, env: DrillEnv, progress: Progress, started: float) -> DrillResult:
    """The drill result shape, scored at the truth's level; baselines scored the same way in details."""
    from firebreak.simulations.baselines import run_baselines

    triage = read_triage(env.ctx)
    report = triage.report or {}
    fix = flat_fix(report.get("proposed_fix"))
    sc = score_recorded(suspects_of(report), fix, report.get("severity"), inc.truth)
    hyps = [HypothesisOut(title=str(h.get("title", "")), suspect=dict(h.get("suspect") or {}),
                          confidence=float(h.get("confidence") or 0.0)) for h in report.get("hypotheses") or []]
    investigator = str(report.get("investigator") or triage.investigator or env.settings.model)
    if report.get("fallback") and env.settings.model != investigator:
        investigator = f"{investigator} (fallback from {env.settings.model})"
    baselines = run_baselines(env.ctx, inc.triage_at,
                              lambda sus, f: score_recorded(sus, f, None, inc.truth))
    return DrillResult(
        scenario=inc.id, investigator=investigator, rank=sc.rank, hit_at_1=sc.hit_at_1, hit_at_3=sc.hit_at_3,
        mitigation_ok=sc.mitigation_ok, severity_ok=sc.severity_ok, alerts_delivered=progress.alerts_delivered,
        incidents_opened=count_drill_incidents(env.ctx), hypotheses=hyps, proposed_fix=fix,
        tool_calls=triage.tool_calls, wall_seconds=round(time.perf_counter() - started, 3),
        details={"incident": triage.incident_id, "investigation": triage.investigation_id,
                 "severity": report.get("severity"), "summary": report.get("summary"),
                 "refused": progress.refused, "triage_error": progress.triage_error,
                 "triaged_at": progress.triaged_at.isoformat() if progress.triaged_at else None,
                 "recorded": True, "fault": inc.truth.fault, "level": inc.truth.level, "baselines": baselines},
    )


def run_recorded(
    folder: str | Path,
    *,
    keep_dir: Path | None = None,
    on_step: Callable[[str], None] | None = None,
    incident: RecordedIncident | None = None,
    telemetry: Telemetry | None = None,
    on_done: Callable[[ToolContext, DrillResult], None] | None = None,
) -> DrillResult:
    """Folder to score. Every file is read and checked before the data dir is touched: a bad row
    raises RecordedError and nothing is written. `on_done(world, result)` runs while the world still
    exists, as for `run_drill`."""
    started = time.perf_counter()
    folder = Path(folder)
    inc = incident or load_incident(folder)
    t = time.perf_counter()
    tel = telemetry or read_folder(folder, inc.triage_at)
    changes = check_changes(tel)
    marks = {"read": time.perf_counter() - t}
    env = make_recorded_env(inc, keep_dir)
    transport: Transport | None = None
    try:
        t = time.perf_counter()
        counts = replay(env.ctx, tel, changes)
        marks["replay"] = time.perf_counter() - t
        t = time.perf_counter()
        transport = InProcessTransport(env.ctx)
        progress = Progress()
        play_alerts(inc, env, transport, progress, on_step)
        marks["intake"] = time.perf_counter() - t - progress.triage_seconds
        marks["investigate"] = progress.triage_seconds
        result = result_of(inc, env, progress, started)
        return finish(result, env, counts, marks, keep_dir=keep_dir, on_done=on_done)
    finally:
        if transport is not None:
            transport.close()
        env.close()
