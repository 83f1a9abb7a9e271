"""The trainee's answer: parsed from the command line (`kind:ref@service`, `action key=value`), scored,
kept on the open practice run, and set beside the investigator's own run of the same scenario.
"""

from __future__ import annotations

import logging
import shlex
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from firebreak.agent.actions import ACTION_FIELDS
from firebreak.kinds import SEVERITIES, SUSPECT_KINDS
from firebreak.simulations.practice_debrief import Debrief, Side
from firebreak.simulations.practice_runs import PracticeError, default_person, open_run, team_ctx
from firebreak.simulations.scenario import Scenario, load_scenario
from firebreak.simulations.scorer import Score, SuspectIn, describe_truth, score
from firebreak.state.drills import DrillRun

log = logging.getLogger("firebreak.drill")


class Answer(BaseModel):
    suspects: list[SuspectIn] = Field(min_length=1)
    fix: dict[str, Any] | None = None
    severity: str | None = None
    note: str = ""


def parse_suspect(text: str) -> SuspectIn:
    """`kind:ref` or `kind:ref@service` (e.g. `deploy:4.6.2@mailer`, `config:db.pool_size@api`)."""
    kind, sep, rest = text.partition(":")
    kind = kind.strip().lower()
    if not sep or not rest.strip():
        raise ValueError(f"--suspect {text!r}: write kind:ref or kind:ref@service, e.g. deploy:4.6.2@mailer")
    if kind not in SUSPECT_KINDS:
        raise ValueError(f"--suspect {text!r}: unknown kind {kind!r} ({', '.join(SUSPECT_KINDS)})")
    ref, service = rest.strip(), None
    if "@" in ref:
        head, _, tail = ref.rpartition("@")
        if head and tail and all(c.isalnum() or c in "-_." for c in tail):
            ref, service = head.strip(), tail.strip()
    return SuspectIn(kind=kind, ref=ref, service=service)


def parse_fix(text: str) -> dict[str, Any]:
    """`rollback service=mailer to=4.6.1` -> {"action": "rollback", "service": "mailer", "to": "4.6.1"}."""
    parts = shlex.split(text)
    if not parts:
        raise ValueError("--fix: give an action, e.g. \"rollback service=mailer to=4.6.1\"")
    action = parts[0]
    if action not in ACTION_FIELDS:
        raise ValueError(f"--fix: unknown action {action!r} ({', '.join(ACTION_FIELDS)})")
    fix: dict[str, Any] = {"action": action}
    for part in parts[1:]:
        key, eq, value = part.partition("=")
        if not eq:
            raise ValueError(f"--fix: {part!r} is not key=value")
        if key not in ACTION_FIELDS[action]:
            raise ValueError(f"--fix: {action} takes {', '.join(ACTION_FIELDS[action])}, not {key!r}")
        fix[key] = value
    missing = [k for k, required in ACTION_FIELDS[action].items() if required and k not in fix]
    if missing:
        raise ValueError(f"--fix: {action} needs {', '.join(missing)}")
    return fix


def parse_answer(suspects: list[str], fix: str | None, severity: str | None, note: str = "") -> Answer:
    if not suspects:
        raise ValueError("give at least one --suspect")
    if severity is not None and severity not in SEVERITIES:
        raise ValueError(f"--severity: {severity!r} is not minor, major or critical")
    return Answer(suspects=[parse_suspect(s) for s in suspects], fix=parse_fix(fix) if fix else None,
                  severity=severity, note=note)


def _side(answer_suspects: list[SuspectIn], fix: dict[str, Any] | None, severity: str | None, sc: Scenario) -> Side:
    sco = score(answer_suspects, fix, severity, sc.truth)
    return Side(suspects=answer_suspects, fix=fix, severity=severity, **sco.model_dump())


def investigator_side(sc: Scenario) -> Side | None:
    """The investigator on the same scenario, in a world of its own (so the trainee's is never spoiled)."""
    from firebreak.simulations.runner import run_drill

    try:
        res = run_drill(sc)
    except Exception:  # the trainee still gets a debrief, with the investigator's column "n/a"
        log.exception("the investigator's run of %s failed", sc.id)
        return None
    suspects = [SuspectIn(kind=str(h.suspect.get("kind")), service=h.suspect.get("service"),
                          ref=str(h.suspect.get("ref"))) for h in res.hypotheses]
    return Side(suspects=suspects, fix=res.proposed_fix, severity=res.details.get("severity"),
                **res.model_dump(include=set(Score.model_fields)))


def submit_answer(answer: Answer, *, person: str | None = None, run_id: str | None = None,
                  with_investigator: bool = True) -> Debrief:
    """Record the answer on the open practice run, score it, and keep the debrief with the run."""
    ctx = team_ctx()
    try:
        row = open_run(ctx, person or (None if run_id else default_person()), run_id)
        if row.finished_at is not None and row.answer is not None:
            raise PracticeError(f"drill run {row.id} was already answered")
        info = dict(row.result or {})
        sc = load_scenario(info["file"])
        now = datetime.now(UTC)
        elapsed = (now - row.started_at).total_seconds()
        debrief = Debrief(
            run_id=row.id, scenario=sc.id, title=sc.title, person=row.person, summary=sc.summary.strip(),
            truth=describe_truth(sc.truth), trainee=_side(answer.suspects, answer.fix, answer.severity, sc),
            investigator=investigator_side(sc) if with_investigator else None, answer_seconds=round(elapsed, 1),
            simulated_minutes=round(elapsed * float(info.get("speed", 1.0)) / 60.0, 1), note=answer.note,
        )
        t = debrief.trainee
        with ctx.db.session() as s:
            fresh = s.get(DrillRun, row.id)
            assert fresh is not None
            fresh.answer = answer.model_dump(mode="json")
            fresh.finished_at = now
            fresh.result = {**info, "status": "answered", "rank": t.rank, "hit_at_1": t.hit_at_1,
                            "hit_at_3": t.hit_at_3, "mitigation_ok": t.mitigation_ok,
                            "severity_ok": t.severity_ok, "wall_seconds": debrief.answer_seconds,
                            "debrief": debrief.model_dump(mode="json")}
        return debrief
    finally:
        ctx.close()
