"""Red herrings: ordinary events that look like causes and are not.

Each one stays clear of what the culprit family touched (no deploy of the culprit's service, no
flip of its flag), so the truth stays the only cause; they still sit close to the onset, on the
impacted path or on healthy services, because that is where real ones are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from firebreak.simulations.worlds.builder import NOISY_WARNS, World, camel
from firebreak.simulations.worlds.deploy import UNRELATED_NOTES
from firebreak.simulations.worlds.topology import brand

_HISTORY_CAUSES = [
    ("memory leak in the {stem} image resizer", "restarted {svc}", "resource"),
    ("bad deploy of {svc} (serializer change)", "rolled back {svc}", "deploy"),
    ("{db} failover during maintenance", "waited for replica catch-up", "infra"),
    ("partner scraper without rate limit", "blocked the client", "traffic"),
    ("expired certificate on an internal endpoint", "renewed the certificate", "certificate"),
]


def _free(w: World, *roles: str) -> list[str]:
    return [n.name for n in w.services_of(*roles) if n.name not in w.touched]


def _when(w: World) -> float:
    """When a decoy change lands: often in the last minutes before the onset (closer than the real
    cause, so "blame the latest change" fails), sometimes well before, sometimes during the incident."""
    r = w.rng.random()
    if r < 0.5:
        return w.onset - w.rng.uniform(0.2, 3)
    if r < 0.85:
        return w.onset - w.rng.uniform(3, 12)
    return w.onset + w.rng.uniform(0.5, 4)


def unrelated_deploy(w: World) -> None:
    cands = _free(w, "api", "worker", "edge")
    if not cands:
        return
    s = w.rng.choice(cands)
    w.touched.add(s)
    at = _when(w)
    w.deploy(at, s, w.rng.choice(UNRELATED_NOTES + ["", "release train", "dependency bumps"]))
    if w.rng.random() < 0.3:  # a short, harmless burst of warnings while pods roll
        w.logs(at + 0.2, s, 20, [("WARN", "readiness probe failed during rollout, retrying")], for_=1.5)
    w.herrings.append(f"deploy of {s} just before the onset")


def unrelated_flag(w: World) -> None:
    stem = w.rng.choice([n.stem for n in w.topo.nodes.values() if n.kind == "service"])
    key = f"{stem}-{w.rng.choice(['dark-mode', 'new-onboarding', 'promo-banner', 'beta-export', 'csv-v2'])}"
    if key in w.flags:
        return
    w.flags[key] = {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off"}
    w.event(_when(w), {"flag": {"flag": key, "variant": "on"}})
    w.herrings.append(f"flag {key} switched on just before the onset")


def unrelated_config(w: World) -> None:
    cands = _free(w, "api", "worker", "edge")
    if not cands:
        return
    s = w.rng.choice(cands)
    key, old, new = w.rng.choice(
        [
            ("feature.banner_text", "Spring", "Summer"),
            ("metrics.push_interval", "30s", "15s"),
            ("email.footer", "v1", "v2"),
            ("ui.page_size", 20, 25),
        ]
    )
    w.event(_when(w), {"config": {"service": s, "key": key, "from": old, "to": new}})
    w.herrings.append(f"config {key} on {s}")


def replica_maintenance(w: World) -> None:
    db = w.rng.choice(w.services_of("db", "cache", "queue"))
    replica = f"{db.name}-replica-{w.rng.randint(2, 4)}"
    note = w.rng.choice(
        [
            f"maintenance on read replica {replica} (no primary traffic)",
            f"resize disk of replica {replica}",
            f"rebuild standby {replica} from snapshot",
        ]
    )
    w.event(_when(w), {"infra": {"service": db.name, "note": note}})
    w.herrings.append(f"infra: {note}")


def flapping_alert(w: World) -> None:
    cands = [n.name for n in w.services_of("api", "worker", "edge", "cache", "db") if n.name not in w.touched]
    if not cands:
        return
    s = w.rng.choice(cands)
    name = w.rng.choice([f"{camel(s)}LatencyWarning", f"{camel(s)}DiskIOHigh", f"{camel(s)}PodRestarts"])
    t = w.onset + w.rng.uniform(-2, 4)
    for i in range(w.rng.randint(1, 2)):
        start = t + i * 6
        w.alert(
            start,
            w.rng.choice(["grafana", "alertmanager"]),
            name,
            s,
            severity="warning",
            summary=f"{s} briefly over threshold",
            resolve_at=start + w.rng.uniform(1.5, 4),
        )
    w.herrings.append(f"flapping alert {name} on {s}")


def noisy_warns(w: World) -> None:
    for s in w.rng.sample([n.name for n in w.services_of("api", "worker", "edge")], k=1):
        w.add_base_line(s, "WARN", w.rng.choice(NOISY_WARNS), weight=w.rng.randint(1, 3))
        if w.rng.random() < 0.5:
            w.add_base_line(
                s,
                "ERROR",
                w.rng.choice(["failed to send metrics batch: timeout", "stale lock on {key} released"]),
                weight=1,
            )
        w.herrings.append(f"old noisy WARNs on {s}")


def past_incident(w: World) -> None:
    svc = w.rng.choice([n for n in w.topo.nodes.values() if n.kind != "external"])
    db = w.services_of("db")[0].name
    cause, fix, _ = w.rng.choice(_HISTORY_CAUSES)
    days = w.rng.randint(10, 200)
    started = w.start.replace(microsecond=0) - timedelta(days=days)
    w.history.append(
        {
            "id": f"INC-{started.year}-{w.rng.randint(10, 400):03d}",
            "title": f"{svc.name} degraded",
            "service": svc.name,
            "started": started.isoformat().replace("+00:00", "Z"),
            "severity": w.rng.choice(["minor", "major"]),
            "symptoms": f"errors and latency on {svc.name}",
            "root_cause": cause.format(stem=svc.stem, svc=svc.name, db=db),
            "countermeasures": fix.format(svc=svc.name),
        }
    )
    w.herrings.append(f"past incident on {svc.name}")


def unrelated_third_party_warn(w: World) -> None:
    s = w.rng.choice(w.services_of("api", "worker", "edge")).name
    w.add_base_line(s, "WARN", f"{brand(w.rng)} webhook delivery slow ({{ms}}ms)", weight=1)
    w.herrings.append(f"slow third-party warnings on {s}")


def idle_fallback_flag(w: World) -> None:
    """A fallback or kill-switch flag that exists, never moves, and belongs to something healthy."""
    cands = [n for n in w.topo.nodes.values() if n.name not in w.touched and n.kind in ("external", "cache")]
    if not cands:
        return
    node = w.rng.choice(cands)
    if node.kind == "external":
        key = f"{node.category}-{w.rng.choice(['fallback-provider', 'backup-route', 'use-secondary'])}"
        what = f"send {node.category} traffic to the backup provider instead of {node.name}"
    else:
        key = f"{node.name}-bypass"
        what = f"read from the database when {node.name} is unavailable"
    if key in w.flags:
        return
    w.flags[key] = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "metadata": {"description": what},
    }
    w.herrings.append(f"idle fallback flag {key}")


_KIND_CAUSES = {
    "deploy": ("a bad release of {svc}", "rolled back {svc}"),
    "config": ("a configuration change on {svc}", "reverted the setting"),
    "flag": ("a feature flag rolled out to everyone", "switched the flag off"),
    "dependency": ("{svc} unavailable", "failed over"),
    "resource": ("{svc} ran out of {ref}", "restarted and scaled {svc}"),
    "traffic": ("a surge from one client", "blocked the client"),
    "certificate": ("an expired certificate", "renewed the certificate"),
    "data": ("damaged rows after a manual job", "restored the table from backup"),
    "infra": ("a platform change ({ref})", "undid the change"),
}


def similar_past_incident(w: World) -> None:
    """A past incident with the same kind of cause on the same service: memory that helps, when it exists."""
    c = w.truth["culprit"]
    svc = c.get("service") or next((m["service"] for m in w.truth["mitigations"] if m.get("service")), None)
    if svc is None or svc not in w.topo.nodes:
        svc = w.topo.edge
    cause, fix = _KIND_CAUSES[c["kind"]]
    started = w.start - timedelta(days=w.rng.randint(20, 300))
    w.history.append(
        {
            "id": f"INC-{started.year}-{w.rng.randint(400, 900):03d}",
            "title": f"{svc} errors",
            "service": svc,
            "started": started.isoformat().replace("+00:00", "Z"),
            "severity": "major",
            "symptoms": f"errors on {svc} and its callers",
            "root_cause": cause.format(svc=svc, ref=c["ref"]),
            "countermeasures": fix.format(svc=svc),
        }
    )


HERRINGS: list[Callable[[World], None]] = [
    unrelated_deploy,
    unrelated_deploy,
    unrelated_flag,
    unrelated_config,
    replica_maintenance,
    flapping_alert,
    noisy_warns,
    past_incident,
    idle_fallback_flag,
    unrelated_third_party_warn,
]


def add_herrings(w: World) -> None:
    """Two to four red herrings; most worlds get a change shortly before the onset."""
    n = w.rng.randint(2, 4)
    picks = w.rng.sample(HERRINGS, k=n)
    if w.rng.random() < 0.6 and unrelated_deploy not in picks:
        picks.append(unrelated_deploy)
    for herring in picks:
        herring(w)
    if w.rng.random() < 0.3:
        similar_past_incident(w)
