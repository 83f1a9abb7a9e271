"""Damaged data: new error lines reporting impossible or damaged values (NULL, zero, corrupt, constraint)
and the table they name, or a table's row count falling sharply. Fix: restore the table."""

from __future__ import annotations

import re

from firebreak.agent.actions import ProposedFix
from firebreak.agent.report import Evidence, Suspect
from firebreak.agent.triage import fix_policy
from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.signals import table_mentions
from firebreak.agent.triage.vocab import BARE_TABLE_SURE, damage_strength, tables_in, write_rejected

KIND = "data"
READS = ("log_patterns", "metric_anomalies", "search_logs")
ROW_METRIC = re.compile(
    r"^(?:(?:rows|records|row_count|record_count)_(?:in_|of_)?([a-z][a-z0-9_]*)|"
    r"([a-z][a-z0-9_]*?)_(?:rows|records|row_count|record_count)(?:_total)?)$"
)
MISSING_ROW = re.compile(
    r"\b(?:no (?:[a-z_]+ )?(?:rows?|records?|entry|entries)|(?:row|record)s? (?:not found|missing)|"
    r"not found|0 rows|zero rows|purged|deleted \d+ rows|falling back to defaults?)\b",
    re.IGNORECASE,
)


def generate(ctx: Context) -> list[Candidate]:
    out: dict[str, Candidate] = {}
    mentions = table_mentions(ctx.states)

    def cand(table: str, origin: str | None) -> Candidate:
        if table not in out:
            out[table] = Candidate(
                suspect=Suspect(kind="data", service=None, ref=table),
                title=f"Data in {table} is damaged",
                confirm=f"Query {table} for the rows named in the errors; compare with the last backup.",
                rule_out=f"Rows in {table} are consistent.",
                origin=origin,
                text=table,
                facts={
                    "damage": 0.0,
                    "table_sure": 0.0,
                    "rows_lost": 0.0,
                    "readers_agree": 0.0,
                    "write_rejected": 0.0,
                    "strength": 0.0,
                },
            )
        return out[table]

    for svc, st in sorted(ctx.states.items()):
        for b in st.bad_patterns:
            strength = max(damage_strength(b.text), 1 if MISSING_ROW.search(b.text) else 0)
            if not b.new or not strength:
                continue
            for table, sure in tables_in(b.example) + tables_in(b.template):
                agree = len({s for s, _ in mentions.get(table, set())})
                if sure <= BARE_TABLE_SURE and agree < 2 and strength < 2:
                    continue
                c = cand(table, svc)
                c.facts["damage"] = max(c.facts["damage"], strength / 2.0)
                c.facts["table_sure"] = max(c.facts["table_sure"], sure)
                c.facts["readers_agree"] = max(c.facts["readers_agree"], min(1.0, (agree - 1) / 2.0))
                c.facts["write_rejected"] = max(c.facts["write_rejected"], float(write_rejected(b.text)))
                c.facts["strength"] = max(c.facts["strength"], sure * strength / 2.0)
                c.evidence.append(
                    Evidence(
                        tool="log_patterns",
                        ref=b.template[:200],
                        finding=f'{svc} reports bad data in {table}: "{b.example[:160] or b.template[:160]}"',
                    )
                )
    misses = [b for b in ctx.bads if b.new and MISSING_ROW.search(b.text)]
    for a in ctx.f.anomalies:
        m = ROW_METRIC.match(str(a.get("name") or "").lower())
        ratio = float(a.get("change_ratio") or 1.0)
        if not m or str(a.get("direction") or "") != "down" or ratio > 0.8:
            continue
        table = m.group(1) or m.group(2)
        c = cand(table, str(a.get("service") or "") or None)
        c.facts["rows_lost"] = max(c.facts["rows_lost"], min(1.0, (1.0 - max(ratio, 0.0)) / 0.5))
        c.facts["table_sure"] = 1.0
        c.facts["damage"] = max(c.facts["damage"], 0.5 + 0.5 * bool(misses))
        c.facts["strength"] = max(c.facts["strength"], c.facts["rows_lost"])
        c.title = f"Rows in {table} were deleted"
        c.evidence.append(
            Evidence(
                tool="metric_anomalies",
                finding=f"{a.get('service')}'s {a.get('name')} fell to {ratio:.0%} of its level",
            )
        )
    return list(out.values())


def fixes(cand: Candidate, ctx: Context) -> list[ProposedFix]:
    table = cand.suspect.ref
    return fix_policy.choose(
        cand,
        ctx,
        [
            (
                "restore_data",
                {"ref": table},
                f"Restore {table} from the last good backup or snapshot.",
                "Writes since the snapshot need replaying; stop whatever damaged it first.",
                f"keep the current copy of {table} aside before restoring",
            ),
        ],
    )
