"""Per-kind measurements the suspect generators record (resource rise against its own history, a
traffic source's share of the lines, damage words and tables, dependency naming), exposed as named
features so the ranking can weigh them."""

from __future__ import annotations

import math

from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.features import feature
from firebreak.agent.triage.observe import parse_time
from firebreak.agent.triage.vocab import CHANGE_WRITES_DATA


def _fact(name: str, kind: str, doc: str) -> None:
    def fn(cand: Candidate, ctx: Context) -> float:
        return float(cand.facts.get(name, 0.0))

    fn.__doc__ = doc
    feature(f"{kind}_{name}", (kind,))(fn)


for _name, _kind, _doc in (
    ("rise", "resource", "Size of the service's own resource rise in noise sigmas, log-scaled to 0..1."),
    ("ratio", "resource", "|log(after / before)| of that rise, /2, capped at 1."),
    ("first_own", "resource", "1 when the resource rise is the service's own first signal."),
    ("at_limit", "resource", "Logs say the resource hit a hard limit (OOM, no space left, pool exhausted)."),
    ("share", "traffic", "The source's share of sampled lines that name any source (or alert label)."),
    ("surge", "traffic", "Request-rate rise on the flooded service, log-scaled."),
    ("rate_first", "traffic", "1 when the request-rate rise was the service's first signal."),
    ("throttled", "traffic", "1 when the lines naming the source speak of rate limits or throttling."),
    ("damage", "data", "Damage words in new lines: 1 strong (NULL, corrupt, constraint), 0.5 weak."),
    ("table_sure", "data", "How surely the text names a table (explicit 1.0, snake_case 0.7, bare 0.5)."),
    ("rows_lost", "data", "A row-count metric of the table fell (share lost, capped at 1)."),
    ("readers_agree", "data", "Other services report bad values in the same table."),
    ("write_rejected", "data", "The lines are a constraint refusing writes (the table is protected)."),
    ("mention", "dependency", "How strongly a caller's new errors name the dependency."),
    ("named_failing", "dependency", "The naming lines say it fails (timeout, refused, 503, throttled)."),
    ("edge", "dependency", "A dependency edge (settings or traces) leads from the caller to it."),
    ("own_affected", "dependency", "The dependency shows trouble of its own."),
    ("dep_earlier", "dependency", "Its own trouble began no later than its caller's."),
    ("caller_root", "dependency", "The caller's trouble follows no other dependency."),
    ("third_party", "dependency", "No telemetry of its own: a third party or unmonitored."),
    ("cert_lines", "certificate", "Strength of the TLS or certificate error lines naming the host."),
    ("expiry", "certificate", "The lines say the certificate itself is bad (expired, untrusted, verify failed)."),
):
    _fact(_name, _kind, _doc)


@feature("dependency_callers", ("dependency",))
def dependency_callers(cand: Candidate, ctx: Context) -> float:
    """How many services in trouble fail on it, squashed (0.5 for one, 0.67 for two...)."""
    n = cand.facts.get("callers", 1.0)
    return n / (n + 1.0)


@feature("resource_is_earliest", ("resource",))
def resource_is_earliest(cand: Candidate, ctx: Context) -> float:
    """exp(-minutes/3) from the earliest trouble to the resource's rise (1.0 when it came first)."""
    first = ctx.earliest_onset
    if cand.at is None or first is None:
        return 0.0
    late = (cand.at - first).total_seconds() / 60.0
    return 1.0 if late <= 0.25 else math.exp(-late / 3.0)


@feature("data_writer_change", ("data",))
def data_writer_change(cand: Candidate, ctx: Context) -> float:
    """1 when a change that writes data (migration, backfill, import, purge) landed in the 2 h before trouble."""
    onset = ctx.earliest_onset or ctx.f.incident_start()
    for c in ctx.f.changes:
        t = parse_time(c.get("at"))
        text = f"{c.get('note') or ''} {c.get('key') or ''}".lower()
        if t is not None and 0 <= (onset - t).total_seconds() <= 7200 and any(w in text for w in CHANGE_WRITES_DATA):
            return 1.0
    return 0.0
