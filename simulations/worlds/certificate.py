"""Culprit: a certificate expired, on an internal mTLS endpoint or on a third party's host. Nothing
changed: the onset falls on a round clock time (when certificates expire) and the callers' TLS
errors name the host."""

from __future__ import annotations

from datetime import timedelta

from firebreak.simulations.worlds.builder import World

KIND = "certificate"

_ERRORS = [
    "x509: certificate has expired or is not yet valid: current time {now} is after {expiry} (host {host})",
    "SSL: CERTIFICATE_VERIFY_FAILED certificate verify failed: certificate has expired ({host})",
    "PKIX path validation failed for {host}: validity check failed, NotAfter: {expiry}",
    "TLS handshake with {host} failed: certificate expired",
]


def build(w: World) -> None:
    cands = [
        (c, n)
        for n in w.topo.nodes.values()
        for c in w.topo.callers(n.name)
        if n.kind in ("service", "external", "database") and w.node(c).kind == "service"
    ]
    caller, target = w.rng.choice(cands)
    w.touched.update({caller, target.name})
    corp = w.rng.choice(["corp", "acme", "internal", "svc", "prod"])
    if target.kind == "external":
        host = f"api.{target.name}.{w.rng.choice(['com', 'io', 'net'])}"
    else:
        host = w.rng.choice(
            [f"{target.name}.{corp}.local", f"{target.name}.internal.{corp}.net", f"{target.name}.svc.cluster.local"]
        )
    # The certificate expires at a round hour: move the start so the onset lands on it.
    onset_at = w.start + timedelta(minutes=w.onset)
    expiry = onset_at.replace(minute=0, second=0) + timedelta(hours=1)
    w.start = expiry - timedelta(minutes=w.onset)
    now = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
    text = w.rng.choice(_ERRORS).format(now=now, expiry=now, host=host)
    w.logs(w.onset, caller, w.rng.randint(30, 100), [("ERROR", text), ("ERROR", "request {req} failed with 502")])
    w.metric(w.onset, caller, w.err_metric, "step", round(w.rng.uniform(0.3, 0.9), 3))
    hit = w.fail_callers(caller, w.onset, [f"{caller} answered 502"])
    w.symptom_alerts(
        caller,
        w.onset,
        hit,
        origin_alert=True,
        exception=("SSLError", f"certificate verify failed for {host}") if w.rng.random() < 0.5 else None,
    )
    cause = f"the TLS certificate of {host} expired at {now}; {caller} refuses the connection"
    w.title = w.rng.choice(
        [f"{caller} cannot reach {target.name}", f"{w.topo.edge} errors", "Requests failing since the hour"]
    )
    w.summary = f"Certificate {host}: {cause}."
    w.set_truth({"kind": "certificate", "ref": host}, cause, [{"action": "renew_certificate", "ref": host}])
