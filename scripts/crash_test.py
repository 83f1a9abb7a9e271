"""Crash test: kill -9 `firebreak serve` at random points and count what was lost, stranded, stuck or doubled.

Starts real `firebreak serve` processes (1 on SQLite, or `--replicas 2` on one PostgreSQL) with a slow
action command for every catalog action, then for `--rounds` rounds: sends an alert storm for new
services (new incidents, so new investigations), approves every pending approval as it appears (the
same `decide` the CLI uses: a durable message to the waiting workflow), and kills a random replica with
SIGKILL at a random moment of one phase, taken in turn: during the storm, while an investigation runs,
or while an approved action's command runs; then restarts it (with several replicas, every fifth
victim stays down long enough for another replica to recover its workflows). Afterwards it lets the
replicas settle and prints:

    acknowledged alerts lost   alerts answered 202 whose row is not in the database
    investigations stranded    queued-and-due / running / resuming after settling, or an incident with
                               alerts and no investigation at all
    approvals stuck            approved / executing after settling (outcome_unknown is NOT stuck: it is
                               shown to people, who mark it done or retry; it is counted apart)
    duplicate executions       idempotency keys the action command saw start more than once

    python scripts/crash_test.py --rounds 50                          # SQLite, one replica
    python scripts/crash_test.py --rounds 50 --postgres --replicas 2  # throwaway PostgreSQL, two replicas
    python scripts/crash_test.py --rounds 50 --database-url postgresql://... --replicas 2

Exit status 1 when any of the four counters is not zero. `--json` prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
TOKEN = "crash-webhook-token"
ACTION_SCRIPT = """\
import os, sys, time
key = os.environ["FIREBREAK_IDEMPOTENCY_KEY"]
log = os.environ["CRASH_ACTION_LOG"]
def note(what):
    with open(log, "a") as fh:
        fh.write(f"{what} {key}\\n")
        fh.flush()
        os.fsync(fh.fileno())
note("start")
time.sleep(float(os.environ.get("CRASH_ACTION_SECONDS", "1.5")))
note("end")
print("applied", key)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def throwaway_postgres(root: Path) -> Iterator[str]:
    """A PostgreSQL cluster on 127.0.0.1 for this run (needs the Debian postgresql package)."""
    bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bins:
        raise SystemExit("error: --postgres: no /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    pgbin = bins[-1]
    data = root / "pg"
    data.mkdir()
    port = _free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(data, "postgres")
        os.chmod(root, 0o755)
        run_as = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*run_as, str(pgbin / "initdb"), "-D", str(data), "-A", "trust", "-U", "fb"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run([*run_as, str(pgbin / "pg_ctl"), "-D", str(data), "-o", f"-h 127.0.0.1 -p {port} -k /tmp",
                    "-l", str(data / "log"), "-w", "start"], check=True, stdout=subprocess.DEVNULL)
    try:
        yield f"postgresql://fb@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(pgbin / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       check=False, stdout=subprocess.DEVNULL)


class Replica:
    """One `firebreak serve` process; `kill()` is SIGKILL, nothing is flushed or closed."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.name, self.env, self.logs = name, {**env, "FIREBREAK_REPLICA_ID": name}, logs
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self, timeout: float = 90.0) -> None:
        exe = Path(sys.executable).parent / "firebreak"
        cmd = [str(exe), "serve", "--port", str(self.port), "--log-level", "warning"]
        log = (self.logs / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, cwd=self.env["FIREBREAK_DATA_DIR"])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.logs / f"{self.name}.log").read_text(errors="replace").strip().splitlines()[-8:]
                raise SystemExit(f"error: replica {self.name} exited {self.proc.returncode}; see {log.name}:\n"
                                 + "\n".join(tail))
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise SystemExit(f"error: replica {self.name} did not answer /healthz within {timeout:g}s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _storm(port: int, run: str, services: list[str], alerts: int, acked: set[str], lock: threading.Lock,
           first: threading.Event | None = None) -> None:
    """Deliveries of 10 Alertmanager alerts; a fingerprint counts as acknowledged only on a 202.
    `first` is set once the first delivery was answered (or failed)."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for start in range(0, alerts, 10):
        batch = []
        for i in range(start, min(start + 10, alerts)):
            service = services[i % len(services)]
            fp = hashlib.sha256(f"{run}-{i}".encode()).hexdigest()[:16]
            batch.append({"status": "firing", "labels": {"alertname": "HighErrorRate", "service": service,
                                                           "severity": "critical"},
                          "annotations": {"summary": f"5xx ratio above 5% for {service}"},
                          "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
                          "generatorURL": "http://prometheus.example.internal/graph", "fingerprint": fp})
        payload = {"receiver": "firebreak", "status": "firing", "alerts": batch, "groupLabels": {},
                   "commonLabels": {}, "commonAnnotations": {}, "externalURL": "http://am.example.internal",
                   "version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0}
        try:
            r = httpx.post(f"http://127.0.0.1:{port}/webhooks/alertmanager", json=payload, timeout=10,
                           headers={"Authorization": f"Bearer {TOKEN}"})
        except httpx.HTTPError:
            continue  # not acknowledged: Alertmanager would send it again
        finally:
            if first is not None:
                first.set()
        if r.status_code == 202:
            with lock:
                acked.update(str(a["fingerprint"]) for a in batch)


def _deploys(port: int, services: list[str]) -> None:
    """A deploy of each service two minutes ago, so each investigation proposes a rollback to approve."""
    at = datetime.fromtimestamp(time.time() - 120, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for service in services:
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"http://127.0.0.1:{port}/webhooks/changes", timeout=10,
                       headers={"Authorization": f"Bearer {TOKEN}"},
                       json={"kind": "deploy", "service": service, "version": "2.0.1", "previous_version": "2.0.0",
                             "at": at, "author": "ci"})


class Approver(threading.Thread):
    """Approves every pending approval, as a person at the CLI would (the decision is a durable message)."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(daemon=True)
        self.ctx = ctx
        self.stop = threading.Event()
        self.decided = 0

    def run(self) -> None:
        from sqlalchemy import select

        from firebreak.state.approvals import Approval
        from firebreak.statuses import ApprovalStatus
        from firebreak.workflows.approvals import decide

        while not self.stop.is_set():
            try:
                with self.ctx.db.session() as s:
                    ids = list(s.scalars(select(Approval.id).where(Approval.status == ApprovalStatus.PENDING)))
                for aid in ids:
                    out = decide(self.ctx, aid, user="alice", decision="approve", via="cli", wait_seconds=0)
                    self.decided += int(out.ok)
            except Exception as exc:  # noqa: BLE001 - the database may be restarting; try again
                print(f"approver: {type(exc).__name__}: {exc}", file=sys.stderr)
            self.stop.wait(0.2)


PHASES = ("storm", "investigation", "action")
DEAD_AFTER_SECONDS = 10.0  # workflows.status.DEAD_AFTER_SECONDS: when the other replicas take over


def started_actions(action_log: Path) -> int:
    return action_log.read_text().count("start ") if action_log.exists() else 0


def _wait_for_phase(ctx: Any, phase: str, action_log: Path, actions_before: int, rng: random.Random,
                    args: argparse.Namespace) -> bool:
    """Sleep until the round is in `phase` (alerts arriving, an investigation running, an approved action's
    command running), then a random bit more; False when it did not happen within 30 s (kill anyway)."""
    from sqlalchemy import func, select

    from firebreak.state.investigations import Investigation
    from firebreak.statuses import InvestigationStatus

    if phase == "storm":
        time.sleep(rng.uniform(0.0, 1.0))
        return True
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if phase == "investigation":
            with ctx.db.session() as s:
                running = s.scalar(select(func.count()).select_from(Investigation).where(
                    Investigation.status == InvestigationStatus.RUNNING)) or 0
            if running:
                time.sleep(rng.uniform(0.0, 0.3))
                return True
        elif started_actions(action_log) > actions_before:
            time.sleep(rng.uniform(0.0, args.action_seconds * 0.8))
            return True
        time.sleep(0.05)
    return False


def _settled(ctx: Any) -> dict[str, int]:
    """What is still in flight (zero everywhere means settled)."""
    from sqlalchemy import func, select

    from firebreak.state.alerts import Alert
    from firebreak.state.approvals import Approval
    from firebreak.state.incidents import Incident
    from firebreak.state.investigations import Investigation
    from firebreak.statuses import ApprovalStatus, InvestigationStatus

    now = datetime.now(UTC)
    with ctx.db.session() as s:
        due = s.scalar(select(func.count()).select_from(Investigation).where(
            Investigation.status == InvestigationStatus.QUEUED, Investigation.not_before <= now)) or 0
        busy = s.scalar(select(func.count()).select_from(Investigation).where(Investigation.status.in_(
            [InvestigationStatus.RUNNING, InvestigationStatus.RESUMING]))) or 0
        orphans = s.scalar(select(func.count()).select_from(Incident).where(
            Incident.id.in_(select(Alert.incident_id)), Incident.id.not_in(select(Investigation.incident_id)))) or 0
        pending = s.scalar(select(func.count()).select_from(Approval).where(
            Approval.status == ApprovalStatus.PENDING)) or 0
        stuck = s.scalar(select(func.count()).select_from(Approval).where(Approval.status.in_(
            [ApprovalStatus.APPROVED, ApprovalStatus.EXECUTING]))) or 0
    from firebreak.workflows.status import workflow_counts

    flows = workflow_counts(ctx)
    return {"due": due, "busy": busy, "orphans": orphans, "pending": pending, "stuck": stuck,
            "workflows": flows.get("PENDING", 0) + flows.get("ENQUEUED", 0)}


def run(args: argparse.Namespace, database_url: str | None, root: Path) -> dict[str, Any]:
    from pydantic import SecretStr

    from firebreak.agent.actions import ACTION_FIELDS
    from firebreak.context import ToolContext
    from firebreak.settings import Settings

    data = root / "data"
    data.mkdir()
    logs = root / "logs"
    logs.mkdir()
    action = root / "action.py"
    action.write_text(ACTION_SCRIPT)
    action_log = root / "actions.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")}
    env.update({
        "FIREBREAK_DATA_DIR": str(data), "FIREBREAK_WEBHOOK_TOKEN": TOKEN, "FIREBREAK_APPROVERS": "alice",
        "FIREBREAK_GROUP_WAIT_SECONDS": "0.3", "FIREBREAK_ACTION_TIMEOUT_SECONDS": "30",
        "CRASH_ACTION_LOG": str(action_log), "CRASH_ACTION_SECONDS": str(args.action_seconds),
        "FIREBREAK_EMBEDDING_MODEL": os.environ.get("FIREBREAK_EMBEDDING_MODEL", "local"),
    })
    if database_url:
        env["FIREBREAK_DATABASE_URL"] = database_url
    for name in ACTION_FIELDS:
        env[f"FIREBREAK_ACTION_COMMAND_{name.upper()}"] = f"{sys.executable} {action}"
    settings = Settings(_env_file=None, data_dir=data, database_url=database_url,  # type: ignore[call-arg]
                        webhook_token=SecretStr(TOKEN), approvers=["alice"], action_timeout_seconds=30)
    ctx = ToolContext(settings=settings)
    replicas = [Replica(f"r{i + 1}", env, logs) for i in range(args.replicas)]
    rng = random.Random(args.seed)
    phases: Counter[str] = Counter()
    acked: set[str] = set()
    lock = threading.Lock()
    approver = Approver(ctx)
    started = time.monotonic()
    try:
        for r in replicas:
            r.start()
        approver.start()
        for rnd in range(args.rounds):
            services = [f"svc-{rnd:03d}-{k}" for k in range(args.incidents)]
            live = [r for r in replicas if r.alive]
            _deploys(live[0].port, services)
            first = threading.Event()
            storms = [threading.Thread(target=_storm, args=(live[i % len(live)].port, f"{args.seed}-{rnd}-{i}",
                                                              services, args.alerts, acked, lock, first))
                      for i in range(len(live))]
            for t in storms:
                t.start()
            phase = PHASES[rnd % len(PHASES)]
            first.wait(30)
            landed = _wait_for_phase(ctx, phase, action_log, started_actions(action_log), rng, args)
            victim = rng.choice(replicas)
            victim.kill()
            phases[f"{phase}{'' if landed else ' (timed out)'}"] += 1
            for t in storms:
                t.join()
            if len(replicas) > 1 and rnd % 5 == 4:
                # Down for good (as far as the others can tell): a surviving replica recovers its work.
                time.sleep(DEAD_AFTER_SECONDS + 6)
                phases["left down (another replica recovers)"] += 1
            else:
                time.sleep(rng.uniform(0.1, 1.0))
            victim.start()
            if not args.json:
                print(f"round {rnd + 1}/{args.rounds}: killed {victim.name}; "
                      f"{len(acked)} alerts acknowledged so far", file=sys.stderr)
        deadline = time.monotonic() + args.settle
        state = _settled(ctx)
        while time.monotonic() < deadline and any(state.values()):
            time.sleep(1.0)
            state = _settled(ctx)
        result = _count(ctx, acked, action_log, state, replicas, time.monotonic() - started, approver.decided)
        result["kills_by_phase"] = dict(phases)
        return result
    finally:
        approver.stop.set()
        if approver.is_alive():
            approver.join(10)
        for r in replicas:
            r.stop()


def _count(ctx: Any, acked: set[str], action_log: Path, state: dict[str, int], replicas: list[Replica],
           seconds: float, decided: int) -> dict[str, Any]:
    from sqlalchemy import func, select

    from firebreak.state.alerts import Alert
    from firebreak.state.approvals import Approval
    from firebreak.state.investigations import Investigation
    from firebreak.statuses import ApprovalStatus

    with ctx.db.session() as s:
        stored = set(s.scalars(select(Alert.fingerprint)))
        by_status = dict(s.execute(select(Approval.status, func.count()).group_by(Approval.status)).all())
        inv_status = dict(s.execute(select(Investigation.status, func.count()).group_by(Investigation.status)).all())
    starts = Counter(line.split()[1] for line in action_log.read_text().splitlines()
                     if line.startswith("start ")) if action_log.exists() else Counter()
    return {
        "acknowledged_alerts_lost": len(acked - stored),
        "investigations_stranded": state["due"] + state["busy"] + state["orphans"],
        "approvals_stuck": state["stuck"],
        "duplicate_executions": sum(1 for n in starts.values() if n > 1),
        "outcome_unknown": by_status.get(ApprovalStatus.OUTCOME_UNKNOWN.value, 0),
        "alerts_acknowledged": len(acked),
        "kills": sum(r.kills for r in replicas),
        "approvals_decided": decided,
        "actions_started": sum(starts.values()),
        "approvals_by_status": by_status,
        "investigations_by_status": inv_status,
        "pending_approvals_left": state["pending"],
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=50)
    p.add_argument("--replicas", type=int, default=1)
    p.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL for the run")
    p.add_argument("--database-url", help="an existing (empty) PostgreSQL database")
    p.add_argument("--alerts", type=int, default=30, help="alerts per storm and replica")
    p.add_argument("--incidents", type=int, default=2, help="new services (incidents) per round")
    p.add_argument("--action-seconds", type=float, default=1.5, help="how long each action command runs")
    p.add_argument("--settle", type=float, default=120.0, help="seconds allowed to settle after the last round")
    p.add_argument("--seed", type=int, default=int(time.time()))
    p.add_argument("--keep", action="store_true", help="keep the data dir and logs")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="fb-crash-"))
    try:
        if args.postgres and not args.database_url:
            with throwaway_postgres(root) as url:
                result = run(args, url, root)
        else:
            result = run(args, args.database_url, root)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    result["database"] = "postgresql" if (args.postgres or args.database_url) else "sqlite"
    result["replicas"] = args.replicas
    result["rounds"] = args.rounds
    if args.json:
        print(json.dumps(result, default=str))
    else:
        for key in ("acknowledged_alerts_lost", "investigations_stranded", "approvals_stuck", "duplicate_executions"):
            print(f"{key.replace('_', ' ')}: {result[key]}")
        rest = {k: v for k, v in result.items() if not k.startswith(("acknowledged", "investigations_s",
                                                                         "approvals_s", "duplicate"))}
        print(json.dumps(rest, default=str))
    bad = [result[k] for k in ("acknowledged_alerts_lost", "investigations_stranded", "approvals_stuck",
                                "duplicate_executions")]
    return 1 if any(bad) else 0


if __name__ == "__main__":
    sys.exit(main())
