"""Certificates: TLS or certificate errors that name a host. Fix: renew the certificate for that host."""

from __future__ import annotations

from firebreak.agent.actions import ProposedFix
from firebreak.agent.report import Evidence, Suspect
from firebreak.agent.triage import fix_policy
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.vocab import CERT_WORDS, extract_hosts

EXPIRY_WORDS = (
    "expired",
    "notafter",
    "not after",
    "verify failed",
    "unknown authority",
    "self-signed",
    "self signed",
    "x509",
    "pkix",
    "certificate has",
    "certificate_verify_failed",
    "untrusted",
    "hostname mismatch",
)
KIND = "certificate"
READS = ("log_patterns", "list_sentry_issues")


def generate(ctx: Context) -> list[Candidate]:
    out: dict[str, Candidate] = {}
    texts = [
        (svc, b.example or b.template, b.template, b.weight, b.new)
        for svc, st in ctx.states.items()
        for b in st.bad_patterns
    ]
    texts += [
        (str(i.get("service") or ""), f"{i.get('title', '')} {i.get('culprit', '')}", "", 0.5, True)
        for i in ctx.f.sentry
    ]
    for svc, example, template, weight, new in sorted(texts):
        if not any(w in f"{example} {template}".lower() for w in CERT_WORDS):
            continue
        for host in (extract_hosts(example) or extract_hosts(template))[:1]:
            strength = min(1.0, weight) * (1.0 if new else 0.5)
            c = out.get(host)
            if c is None:
                c = out[host] = Candidate(
                    suspect=Suspect(kind="certificate", service=None, ref=host),
                    title=f"TLS certificate for {host} failed",
                    confirm=f"openssl s_client -connect {host}:443 and read notAfter and the chain.",
                    rule_out=f"The certificate for {host} is valid and trusted.",
                    origin=svc,
                    text=host,
                    facts={"cert_lines": 0.0, "strength": 0.0, "services_naming": 0.0, "expiry": 0.0},
                )
            c.facts["cert_lines"] = max(c.facts["cert_lines"], strength)
            low = f"{example} {template}".lower()
            c.facts["expiry"] = max(c.facts["expiry"], float(any(w in low for w in EXPIRY_WORDS)))
            c.facts["strength"] = c.facts["cert_lines"]
            c.facts["services_naming"] += 1.0
            c.evidence.append(
                Evidence(
                    tool="log_patterns",
                    ref=template[:200],
                    finding=f'{svc} reports TLS/certificate errors for {host}: "{example[:160]}"',
                )
            )
    return list(out.values())


def fixes(cand: Candidate, ctx: Context) -> list[ProposedFix]:
    host = cand.suspect.ref
    return fix_policy.choose(
        cand,
        ctx,
        [
            (
                "renew_certificate",
                {"ref": host},
                f"Renew (or re-issue) the certificate served for {host}.",
                "Low, if the new chain is complete.",
                "restore the previous certificate",
            ),
        ],
    )
