"""What the world holds before the first alert: past incidents, flags, dashboards, logs and metrics, and
the changes recorded as the timeline reaches them.

Everything goes in through the same services a real deployment uses (the incident log, the flag
store, the change log, the embedded log and metric stores), never as rows written behind their back.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from firebreak.context import ToolContext
from firebreak.simulations.generator import ChangeSpec, LogBlock, World
from firebreak.simulations.scenario import HistoryIncident, Scenario

log = logging.getLogger("firebreak.drill")


def write_history(ctx: ToolContext, history: list[HistoryIncident]) -> None:
    """Past incidents into the incident log, resolved, as the team recorded them."""
    from firebreak.memory import incident_log as il
    from firebreak.state.incidents import Incident

    with ctx.db.session() as s:
        for h in history:
            if s.get(Incident, h.id) is not None:
                continue  # a shared data dir that already has it (`--server` runs)
            ended = h.ended or h.started
            inc = il.open_incident(
                s, title=h.title, services=[h.service], severity=h.severity, at=h.started, actor="drill-history",
                started_at=h.started, detected_at=h.started, source="history", symptoms=h.symptoms,
                incident_id=h.id,
            )
            if h.root_cause:
                il.update_incident(s, inc, {"root_cause": h.root_cause}, at=ended, actor="drill-history")
            if h.countermeasures:
                il.add_countermeasure(s, inc, what=h.countermeasures, by="on-call", at=ended, worked=True)
            if h.remediation:
                il.add_remediation(s, inc, what=h.remediation, owner="team", due=None, at=ended,
                                   actor="drill-history")
            il.set_status(s, inc, "resolved", at=ended, actor="drill-history")
    # The memory index picks these up itself: `similar_incidents` syncs from the incident log.


def seed_flags(ctx: ToolContext, sc: Scenario) -> None:
    from firebreak.tools.flag_store import get_flag_store

    get_flag_store(ctx).seed({k: v.flagd() for k, v in sc.flags.items()})


def _apply_flag(ctx: ToolContext, change: ChangeSpec) -> bool:
    """Move the flag in the flag store; True when the store recorded the change itself."""
    assert change.flag is not None
    if change.state == "DISABLED":
        action, variant = "disable_flag", None
    elif change.variant is not None:
        action, variant = "set_flag_variant", change.variant
    else:
        action, variant = "enable_flag", None
    from firebreak.tools.flag_store import FlagError, get_flag_store

    store = get_flag_store(ctx)
    if change.flag not in store.flags():
        # A scenario may flip a flag it did not declare: it existed, as a plain on/off flag.
        store.seed({**store.flags(), change.flag: dict(UNDECLARED_FLAG)})
    try:
        result = store.apply(action, change.flag, variant, actor=change.author or "drill", at=change.at,
                             note=change.note, source="drill")
    except FlagError as exc:
        log.warning("flag change %s not applied: %s", change.flag, exc)
        return False
    return getattr(result, "change_id", None) is not None


UNDECLARED_FLAG: dict[str, Any] = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}


def write_dashboards(ctx: ToolContext, sc: Scenario) -> None:
    if not sc.dashboards:
        return
    from firebreak.tools.metric_store import Dashboard, Panel, get_metric_store

    store = get_metric_store(ctx)
    for d in sc.dashboards:
        store.upsert_dashboard(Dashboard(uid=d.uid, title=d.title, url=None, panels=[
            Panel(title=p.title, service=p.service, metric=p.metric, url=None) for p in d.panels]))


def write_logs(ctx: ToolContext, blocks: list[LogBlock], until_us: int | None = None,
               since_us: int | None = None) -> int:
    """Log lines with since < ts <= until (all of them by default) into the log store.

    Lines carry no attributes: serialising 50,000 attribute maps costs more than the rest of the
    ingest, and the service, level and message are what the scenario format describes.
    """
    from firebreak.tools.log_store import LogLine, get_log_store

    def lines() -> Any:
        for b in blocks:
            for us, level, message in zip(b.ts_us.tolist(), b.levels, b.messages, strict=True):
                if (until_us is not None and us > until_us) or (since_us is not None and us <= since_us):
                    continue
                yield LogLine(datetime.fromtimestamp(us / 1e6, tz=UTC), b.service, level, message)

    return get_log_store(ctx).ingest(lines())


def write_metrics(ctx: ToolContext, world: World, until_ms: int | None = None, since_ms: int | None = None) -> int:
    from firebreak.tools.metric_store import MetricPoint, get_metric_store

    def points() -> Any:
        for s in world.series:
            for ms, v in zip(s.ts_ms.tolist(), s.values.tolist(), strict=True):
                if (until_ms is not None and ms > until_ms) or (since_ms is not None and ms <= since_ms):
                    continue
                yield MetricPoint(datetime.fromtimestamp(ms / 1000, tz=UTC), s.service, s.name, float(v))

    return get_metric_store(ctx).ingest(points())


def record_change(ctx: ToolContext, change: ChangeSpec) -> None:
    """A deploy, config, flag or infra change, as CI/CD or a person would report it."""
    if change.kind == "flag" and _apply_flag(ctx, change):
        return
    from firebreak.tools.changes import ChangeIn
    from firebreak.tools.changes import record_change as store_change

    with ctx.db.session() as s:
        store_change(s, ChangeIn.model_validate(change.payload()), source="drill", now=change.at)


def seed_world(ctx: ToolContext, sc: Scenario, world: World, *, telemetry: bool = True) -> dict[str, int]:
    """History, flags, dashboards and (unless practising) the whole run's telemetry."""
    write_history(ctx, sc.history)
    seed_flags(ctx, sc)
    write_dashboards(ctx, sc)
    counts = {"log_lines": 0, "metric_points": 0}
    if telemetry:
        counts["log_lines"] = write_logs(ctx, world.logs)
        counts["metric_points"] = write_metrics(ctx, world)
    return counts
