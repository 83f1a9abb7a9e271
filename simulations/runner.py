"""Run one drill: build the world, feed the stores, deliver signed alerts, triage, score.

The investigator sees only what a real on-call would: telemetry in the stores, changes, flags, past
incidents and alerts arriving through the real intake, all on the drill's simulated clock. The
scenario's `truth`, `summary`, `title` and `id` never enter a store, a setting or a transcript; only
`simulations.scorer` reads `truth`, after the investigation is over.
"""

from __future__ import annotations

import json
import logging
import secrets as pysecrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field, SecretStr
from sqlalchemy import func, select

from firebreak.clock import FixedClock
from firebreak.context import ToolContext
from firebreak.db import forget_database
from firebreak.settings import Settings
from firebreak.simulations.generator import ChangeSpec, LogBlock, World, build_world
from firebreak.simulations.render import Delivery, Secrets, render
from firebreak.simulations.scenario import HistoryIncident, Scenario, load_scenario
from firebreak.simulations.scorer import SuspectIn, score

log = logging.getLogger("firebreak.drill")
SEVERITY_RANK = {"critical": 3, "major": 2, "minor": 1}


class HypothesisOut(BaseModel):
    title: str
    suspect: dict[str, Any]
    confidence: float


class DrillResult(BaseModel):
    """One drill's outcome, exactly the JSON object the spec gives (`details` stays out of it)."""

    scenario: str
    investigator: str
    rank: int | None
    hit_at_1: bool
    hit_at_3: bool
    mitigation_ok: bool
    severity_ok: bool | None
    alerts_delivered: int
    incidents_opened: int
    hypotheses: list[HypothesisOut]
    proposed_fix: dict[str, Any] | None
    tool_calls: int
    wall_seconds: float
    details: dict[str, Any] = Field(default_factory=dict, exclude=True)

    def spec_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Transport(Protocol):
    def post(self, delivery: Delivery) -> tuple[int, Any]: ...
    def close(self) -> None: ...


class InProcessTransport:
    """The real FastAPI app around the drill's context, called through Starlette's TestClient."""

    def __init__(self, ctx: ToolContext) -> None:
        from fastapi.testclient import TestClient

        from firebreak.server.app import create_app

        self.client = TestClient(create_app(ctx, start_worker=False), raise_server_exceptions=False)

    def post(self, delivery: Delivery) -> tuple[int, Any]:
        resp = self.client.post(delivery.path, content=delivery.body, headers=delivery.headers)
        return resp.status_code, _json_or_text(resp.text)

    def close(self) -> None:
        self.client.close()


class HttpTransport:
    """A running `firebreak serve` (or the demo's server) over HTTP."""

    def __init__(self, base_url: str) -> None:
        import httpx

        self.client = httpx.Client(base_url=base_url.rstrip("/"), timeout=30.0)

    def post(self, delivery: Delivery) -> tuple[int, Any]:
        for _ in range(5):
            resp = self.client.post(delivery.path, content=delivery.body, headers=delivery.headers)
            if resp.status_code != 429:
                break
            time.sleep(min(5.0, float(resp.headers.get("retry-after", "1") or 1)))
        return resp.status_code, _json_or_text(resp.text)

    def close(self) -> None:
        self.client.close()


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass
class DrillEnv:
    """The drill's own world: settings over a data dir, the simulated clock, the context."""

    settings: Settings
    clock: FixedClock
    ctx: ToolContext
    secrets: Secrets
    data_dir: Path
    owns_dir: bool = False

    def close(self) -> None:
        self.ctx.close()
        forget_database(self.settings)
        if self.owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def dependencies_of(sc: Scenario) -> dict[str, list[str]]:
    return {s.name: list(s.depends_on) for s in sc.services if s.depends_on}


def drill_settings(sc: Scenario | None, data_dir: Path, secrets: Secrets, **extra: Any) -> Settings:
    """Environment settings (model, budgets) with everything that would reach outside the drill cut off.

    `sc` gives the dependencies of a scenario; a recorded incident passes None and its own `dependencies`.
    """
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": None,
        "flags_file": None,
        "chroma_url": None,
        "loki_url": None,
        "prometheus_url": None,
        "grafana_url": None,
        "grafana_token": None,
        "sentry_api_url": None,
        "sentry_api_token": None,
        "slack_bot_token": None,
        "slack_signing_secret": None,
        "slack_channel": None,
        "service_map": {},
        "group_wait_seconds": 0.0,
        "dependencies": dependencies_of(sc) if sc is not None else {},
        "sentry_client_secret": SecretStr(secrets.sentry_client_secret),
        "grafana_hmac_secret": SecretStr(secrets.grafana_hmac_secret),
        "webhook_token": SecretStr(secrets.webhook_token),
        "api_token": None,
    }
    overrides.update(extra)
    return Settings(**overrides)


def new_secrets() -> Secrets:
    return Secrets(pysecrets.token_hex(16), pysecrets.token_hex(16), pysecrets.token_hex(16))


def make_env(sc: Scenario, data_dir: Path | None = None, **settings_extra: Any) -> DrillEnv:
    """A fresh world for one drill; a temp data dir (removed on close) unless one is given."""
    owns = data_dir is None
    path = Path(tempfile.mkdtemp(prefix="firebreak-drill-")) if data_dir is None else data_dir
    secrets = new_secrets()
    settings = drill_settings(sc, path, secrets, **settings_extra)
    clock = FixedClock(sc.start)
    ctx = ToolContext(settings=settings, clock=clock)
    return DrillEnv(settings, clock, ctx, secrets, path, owns)


# ------------------------------------------------------------------------------------------- seeding


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
    from firebreak.tools.flags import get_flag_store

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
    from firebreak.tools.flags import FlagError, get_flag_store

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


# ------------------------------------------------------------------------------------------- running


@dataclass
class Progress:
    """What happened so far: deliveries, refusals, incidents, when triage ran."""

    alerts_delivered: int = 0
    deliveries: int = 0
    refused: list[str] = field(default_factory=list)
    triaged_at: datetime | None = None
    triage_error: str | None = None
    triage_seconds: float = 0.0


def count_drill_incidents(ctx: ToolContext) -> int:
    from firebreak.state.incidents import Incident

    with ctx.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Incident).where(Incident.source != "history")) or 0)


def deliver(transport: Transport, deliveries: list[Delivery], progress: Progress) -> bool:
    ok = True
    for d in deliveries:
        status, body = transport.post(d)
        progress.deliveries += 1
        if status >= 300:
            ok = False
            detail = body.get("detail") if isinstance(body, dict) else body
            progress.refused.append(f"{d.path} ({d.resource or d.source}): HTTP {status}: {detail}")
    return ok


def run_triage(ctx: ToolContext, progress: Progress) -> None:
    """Run the investigations that are due now (the worker's job in `firebreak serve`)."""
    progress.triaged_at = ctx.clock.now()
    began = time.perf_counter()
    from firebreak.agent.worker import run_due

    try:
        run_due(ctx)
    except Exception as exc:  # a crash of the investigator is a failed drill, reported, not a traceback
        log.exception("investigation failed")
        progress.triage_error = f"investigation failed: {type(exc).__name__}: {exc}"
    finally:
        progress.triage_seconds += time.perf_counter() - began


def play(
    sc: Scenario,
    world: World,
    env: DrillEnv,
    transport: Transport,
    progress: Progress,
    *,
    sent_at: Callable[[datetime], datetime] | None = None,
    on_step: Callable[[str], None] | None = None,
    triage: bool = True,
) -> None:
    """Walk the timeline: record changes, deliver alerts at their time, triage at `triage_at`."""
    triage_time = sc.start + sc.triage_at if sc.triage_at is not None else None
    base_incidents = count_drill_incidents(env.ctx)

    def maybe_triage_before(at: datetime) -> None:
        if triage and triage_time is not None and progress.triaged_at is None and at > triage_time:
            env.clock.set(triage_time)
            run_triage(env.ctx, progress)

    for step in world.steps:
        maybe_triage_before(step.at)
        env.clock.set(step.at)
        if step.change is not None:
            record_change(env.ctx, step.change)
            if on_step:
                on_step(describe_change(step.change))
        elif step.notice is not None:
            notice = step.notice
            stamp = sent_at(step.at) if sent_at else step.at
            ok = deliver(transport, render(notice, list(sc.dashboards), env.secrets, stamp), progress)
            if ok and notice.status == "firing":
                progress.alerts_delivered += 1
            if on_step:
                on_step(describe_alert(notice.alert.source, notice.alert.name, notice.alert.service,
                                        notice.alert.severity, notice.alert.summary, notice.status))
            if (triage and triage_time is None and progress.triaged_at is None
                    and count_drill_incidents(env.ctx) > base_incidents):
                run_triage(env.ctx, progress)
    if triage and triage_time is not None and progress.triaged_at is None:
        env.clock.set(triage_time)
        run_triage(env.ctx, progress)


def describe_change(c: ChangeSpec) -> str:
    if c.kind == "deploy":
        return f"deploy {c.service} {c.previous_version or '?'} -> {c.version}" + (f" ({c.note})" if c.note else "")
    if c.kind == "config":
        return f"config {c.service} {c.key}: {c.from_value} -> {c.to_value}"
    if c.kind == "flag":
        return f"flag {c.flag} -> {c.variant or c.state}"
    return f"infra {c.service or ''}: {c.note}".strip()


def describe_alert(source: str, name: str, service: str, severity: str | None, summary: str | None,
                    status: str) -> str:
    word = "ALERT" if status == "firing" else "RESOLVED"
    sev = f" [{severity}]" if severity else ""
    return f"{word}{sev} {source}: {name} ({service})" + (f": {summary}" if summary and status == "firing" else "")


@dataclass
class Triage:
    """The report the drill is scored on and where it came from."""

    incident_id: str | None = None
    investigation_id: str | None = None
    report: dict[str, Any] | None = None
    tool_calls: int = 0
    investigator: str | None = None


def read_triage(ctx: ToolContext) -> Triage:
    """The drill's incident: the most severe one with a finished report, then most alerts, then earliest."""
    from firebreak.state.alerts import Alert
    from firebreak.state.incidents import Incident
    from firebreak.state.investigations import Investigation

    with ctx.db.session() as s:
        rows = list(s.execute(
            select(Investigation, Incident).join(Incident, Incident.id == Investigation.incident_id)
            .where(Investigation.report.is_not(None), Incident.source != "history")
        ))
        if not rows:
            return Triage()
        alert_counts = dict(s.execute(
            select(Alert.incident_id, func.count()).where(Alert.incident_id.is_not(None)).group_by(Alert.incident_id)
        ).tuples().all())

        def key(row: Any) -> tuple[int, int, float]:
            inv, inc = row
            return (-SEVERITY_RANK.get(str((inv.report or {}).get("severity") or inc.severity), 0),
                    -int(alert_counts.get(inc.id, 0)), (inc.created_at or inv.queued_at).timestamp())

        inv, inc = min(rows, key=key)
        return Triage(inc.id, inv.id, dict(inv.report or {}), len(inv.tool_calls or []), inv.model)


def suspects_of(report: dict[str, Any] | None) -> list[SuspectIn]:
    out = []
    for h in (report or {}).get("hypotheses") or []:
        sus = h.get("suspect") or {}
        if sus.get("kind") and sus.get("ref") is not None:
            out.append(SuspectIn(kind=str(sus["kind"]), service=sus.get("service"), ref=str(sus["ref"])))
    return out


def flat_fix(fix: dict[str, Any] | None) -> dict[str, Any] | None:
    """A report's ProposedFix as the spec's flat object {"action", ...parameters}."""
    if not fix:
        return None
    return {"action": fix.get("action"), **(fix.get("parameters") or {})}


def result_of(sc: Scenario, env: DrillEnv, progress: Progress, triage: Triage, started: float) -> DrillResult:
    report = triage.report
    fix = flat_fix((report or {}).get("proposed_fix"))
    sc_score = score(suspects_of(report), fix, (report or {}).get("severity"), sc.truth)
    hyps = [HypothesisOut(title=str(h.get("title", "")), suspect=dict(h.get("suspect") or {}),
                          confidence=float(h.get("confidence") or 0.0))
            for h in (report or {}).get("hypotheses") or []]
    investigator = str((report or {}).get("investigator") or triage.investigator or env.settings.model)
    if (report or {}).get("fallback") and env.settings.model != investigator:
        investigator = f"{investigator} (fallback from {env.settings.model})"
    return DrillResult(
        scenario=sc.id, investigator=investigator, rank=sc_score.rank, hit_at_1=sc_score.hit_at_1,
        hit_at_3=sc_score.hit_at_3, mitigation_ok=sc_score.mitigation_ok, severity_ok=sc_score.severity_ok,
        alerts_delivered=progress.alerts_delivered, incidents_opened=count_drill_incidents(env.ctx),
        hypotheses=hyps, proposed_fix=fix, tool_calls=triage.tool_calls,
        wall_seconds=round(time.perf_counter() - started, 3),
        details={"incident": triage.incident_id, "investigation": triage.investigation_id,
                 "severity": (report or {}).get("severity"), "summary": (report or {}).get("summary"),
                 "refused": progress.refused, "triage_error": progress.triage_error,
                 "triaged_at": progress.triaged_at.isoformat() if progress.triaged_at else None,
                 "title": sc.title},
    )


def drill_baselines(sc: Scenario, env: DrillEnv, progress: Progress) -> dict[str, dict[str, Any]]:
    """The naive rankers of `simulations.baselines` on this drill, from the stores, by the same scorer."""
    from firebreak.simulations.baselines import run_baselines

    until = progress.triaged_at or env.clock.now()
    return run_baselines(env.ctx, until, lambda suspects, fix: score(suspects, fix, None, sc.truth))


def preload() -> None:
    """Import the intake, the app and the investigator once, before any drill's clock starts.

    A drill's `wall_seconds` measures the drill (file to score), not the one-time cost of importing
    the libraries into a fresh process; scripts/bench_drill.py reports the fresh-process time too.
    """
    import fastapi.testclient  # noqa: F401

    import firebreak.agent.investigator  # noqa: F401
    import firebreak.agent.worker  # noqa: F401
    import firebreak.server.app  # noqa: F401  (imports every router)
    import firebreak.tools.log_store  # noqa: F401
    import firebreak.tools.metric_store  # noqa: F401
    from firebreak.tools.registry import load_tools

    load_tools()


def failed_result(sc: Scenario, error: str) -> DrillResult:
    """A drill the machinery could not finish: scored as a miss, the error kept in the details."""
    return DrillResult(scenario=sc.id, investigator="none", rank=None, hit_at_1=False, hit_at_3=False,
                       mitigation_ok=False, severity_ok=None if sc.truth.severity is None else False,
                       alerts_delivered=0, incidents_opened=0, hypotheses=[], proposed_fix=None, tool_calls=0,
                       wall_seconds=0.0, details={"error": error})


def finish(result: DrillResult, env: DrillEnv, counts: dict[str, int], marks: dict[str, float], *,
           keep_dir: Path | None, on_done: Callable[[ToolContext, DrillResult], None] | None) -> DrillResult:
    """The common end of a drill or a recorded incident: counts, timings, where it was kept, the hook."""
    result.details.update(counts)
    result.details["timings"] = {k: round(v, 3) for k, v in marks.items()}
    result.details["data_dir"] = str(env.data_dir) if keep_dir else None
    if on_done is not None:
        on_done(env.ctx, result)
    return result


def run_drill(
    path: str | Path | Scenario,
    *,
    server: str | None = None,
    keep_dir: Path | None = None,
    on_step: Callable[[str], None] | None = None,
    on_done: Callable[[ToolContext, DrillResult], None] | None = None,
) -> DrillResult:
    """File to score. In process by default; `server` delivers over HTTP to a running Firebreak that
    shares this process's configured data dir and database (its worker runs the investigation).
    `on_done(world, result)` runs while the world still exists (simulations/kept.py keeps the drill)."""
    started = time.perf_counter()
    sc = path if isinstance(path, Scenario) else load_scenario(path)
    if server:
        return _run_against_server(sc, server, started, on_step)
    env = make_env(sc, keep_dir)
    transport: Transport | None = None
    marks = {"load": time.perf_counter() - started}
    try:
        t = time.perf_counter()
        world = build_world(sc)
        marks["generate"] = time.perf_counter() - t
        t = time.perf_counter()
        counts = seed_world(env.ctx, sc, world)
        marks["seed"] = time.perf_counter() - t
        t = time.perf_counter()
        transport = InProcessTransport(env.ctx)
        progress = Progress()
        play(sc, world, env, transport, progress, on_step=on_step)
        marks["intake"] = time.perf_counter() - t - progress.triage_seconds
        marks["investigate"] = progress.triage_seconds
        t = time.perf_counter()
        result = result_of(sc, env, progress, read_triage(env.ctx), started)
        marks["score"] = time.perf_counter() - t
        result.details["baselines"] = drill_baselines(sc, env, progress)
        return finish(result, env, counts, marks, keep_dir=keep_dir, on_done=on_done)
    finally:
        if transport is not None:
            transport.close()
        env.close()


def _run_against_server(sc: Scenario, server: str, started: float,
                        on_step: Callable[[str], None] | None) -> DrillResult:
    """Deliver to a running server that reads the same data dir; wait for its worker's report."""
    from firebreak.settings import get_settings

    base = get_settings()
    missing = [name for name, val in (("FIREBREAK_SENTRY_CLIENT_SECRET", base.sentry_client_secret),
                                      ("FIREBREAK_GRAFANA_HMAC_SECRET", base.grafana_hmac_secret),
                                      ("FIREBREAK_WEBHOOK_TOKEN", base.webhook_token))
               if val is None or not val.get_secret_value()]
    if missing:
        raise DrillSetupError("--server needs the server's webhook secrets in this environment too: set "
                              + ", ".join(missing))
    assert base.sentry_client_secret and base.grafana_hmac_secret and base.webhook_token
    secrets = Secrets(base.sentry_client_secret.get_secret_value(), base.grafana_hmac_secret.get_secret_value(),
                      base.webhook_token.get_secret_value())
    clock = FixedClock(sc.start)
    ctx = ToolContext(settings=base, clock=clock)
    env = DrillEnv(base, clock, ctx, secrets, base.data_dir, owns_dir=False)
    transport = HttpTransport(server)
    try:
        world = build_world(sc)
        before = _investigation_ids(ctx)
        counts = seed_world(ctx, sc, world)
        progress = Progress()
        play(sc, world, env, transport, progress, sent_at=lambda _at: datetime.now(UTC), on_step=on_step,
             triage=False)
        triage = _wait_for_report(ctx, before, timeout=max(60.0, base.max_wall_seconds + 30))
        result = result_of(sc, env, progress, triage, started)
        result.details.update(counts)
        result.details["server"] = server
        return result
    finally:
        transport.close()
        ctx.close()


class DrillSetupError(RuntimeError):
    """The drill cannot start (missing secret, unreachable server): one line for the CLI."""


def _investigation_ids(ctx: ToolContext) -> set[str]:
    from firebreak.state.investigations import Investigation

    with ctx.db.session() as s:
        return set(s.scalars(select(Investigation.id)))


def _wait_for_report(ctx: ToolContext, before: set[str], timeout: float) -> Triage:
    from firebreak.state.investigations import Investigation

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with ctx.db.session() as s:
            rows = [r for r in s.scalars(select(Investigation)) if r.id not in before]
        if rows and all(r.status not in ("queued", "running") for r in rows):
            break
        time.sleep(0.5)
    with ctx.db.session() as s:
        done = [r for r in s.scalars(select(Investigation).where(Investigation.report.is_not(None)))
                if r.id not in before]
    if not done:
        return Triage()
    inv = min(done, key=lambda r: r.queued_at)
    return Triage(inv.incident_id, inv.id, dict(inv.report or {}), len(inv.tool_calls or []), inv.model)
