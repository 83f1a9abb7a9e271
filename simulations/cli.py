"""`firebreak drill ...`: run and bench scenarios for the investigator; practise them as a person."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from firebreak.simulations.scenario import ScenarioError, load_scenario

app = typer.Typer(help="Drills: replay blank incidents from scenario files.", no_args_is_help=True)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(message, markup=False, highlight=False)
    return typer.Exit(code)


def _quiet_logs() -> None:
    # Library warnings go to stderr, never into the JSON on stdout.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


def _yes(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "no")


def print_result(result: Any) -> None:
    """The readable report of one drill."""
    d = result.details
    out.print(f"[bold]Drill {result.scenario}[/bold]  investigator {result.investigator}  "
              f"{result.wall_seconds:.2f} s wall")
    spans = f"{d['spans']:,} spans, " if d.get("spans") else ""
    out.print(f"  {d.get('log_lines', 0):,} log lines, {d.get('metric_points', 0):,} metric points, {spans}"
              f"{result.alerts_delivered} alerts delivered, {result.incidents_opened} incident(s) opened, "
              f"triage at {d.get('triaged_at') or ('the server' if d.get('server') else 'never')}", highlight=False)
    for line in d.get("refused") or []:
        out.print(f"  [yellow]refused:[/yellow] {line}", highlight=False)
    if d.get("triage_error"):
        out.print(f"  [red]{d['triage_error']}[/red]", highlight=False)
    if d.get("incident"):
        out.print(f"  incident {d['incident']}: {d.get('summary') or ''}", highlight=False)
    if result.hypotheses:
        out.print("  hypotheses (✓ = the culprit):")
    for i, h in enumerate(result.hypotheses, start=1):
        s = h.suspect
        mark = "✓" if result.rank == i else " "
        where = f" ({s.get('service')})" if s.get("service") else ""
        out.print(f"    {i} {mark} {s.get('kind')}: {s.get('ref')}{where}  {h.confidence:.2f}  {h.title}",
                  highlight=False, markup=False)
    fix = result.proposed_fix
    fix_text = ", ".join(f"{k}={v}" for k, v in fix.items() if k != "action") if fix else ""
    out.print(f"  proposed fix: {fix['action'] + '(' + fix_text + ')' if fix else 'none'}", highlight=False)
    out.print(f"  rank {result.rank if result.rank is not None else '–'}   hit@1 {_yes(result.hit_at_1)}   "
              f"hit@3 {_yes(result.hit_at_3)}   right fix {_yes(result.mitigation_ok)}   "
              f"severity {_yes(result.severity_ok)} ({d.get('severity') or '–'})   tool calls {result.tool_calls}",
              highlight=False)
    if d.get("baselines"):
        parts = [f"{name} rank {b['rank'] if b.get('rank') is not None else '–'}, fix {_yes(b.get('mitigation_ok'))}"
                 for name, b in d["baselines"].items()]
        out.print("  baselines: " + "; ".join(parts), highlight=False, markup=False)


def _not_utf8(file: Path, exc: UnicodeDecodeError) -> str:
    """One line for a scenario file that is not text (the loader only turns OSError into ScenarioError)."""
    return f"{file}: cannot read as UTF-8 text ({exc.reason} at byte {exc.start})"


@app.command("run")
def run_cmd(
    file: Annotated[Path, typer.Argument(
        help="Scenario YAML file, or recorded-incident folder (one holding incident.yaml).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the spec's JSON object.")] = False,
    server: Annotated[str | None, typer.Option(
        "--server", help="Deliver to a running `firebreak serve` at this URL (same data dir and secrets).")] = None,
    keep: Annotated[Path | None, typer.Option(
        "--keep", help="Build the drill's world in this folder and keep it (default: a temp dir, removed).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print each timeline step.")] = False,
) -> None:
    """Run one scenario file or recorded-incident folder with the configured investigator; score it."""
    from firebreak.simulations.recorded.model import load_incident
    from firebreak.simulations.recorded.readers import read_folder
    from firebreak.simulations.runner import DrillSetupError, preload, run_drill

    _quiet_logs()
    recorded = file.is_dir()
    try:
        if recorded:
            incident = load_incident(file)
            telemetry = read_folder(file, incident.triage_at)
            if server is not None:
                raise _fail(f"{file}: --server takes scenario files only (a recorded incident runs in process)", 2)
        else:
            load_scenario(file)
    except ScenarioError as exc:
        raise _fail(str(exc), 2) from None
    except UnicodeDecodeError as exc:
        raise _fail(_not_utf8(file, exc), 2) from None
    preload()
    if keep is not None:
        try:
            keep.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _fail(f"--keep: cannot create {keep} ({exc.strerror or exc})", 2) from None
    try:
        step = (lambda line: err.print(f"  {line}", markup=False)) if verbose else None
        from firebreak.simulations.kept import recorder

        on_done, kept_ids = recorder(file) if server is None else (None, [])
        debriefs: list[str] = []
        if not recorded and not as_json and on_done is not None:
            on_done = _with_debrief(file, on_done, debriefs)
        if recorded:
            from firebreak.simulations.recorded.run import run_recorded

            result = run_recorded(file, keep_dir=keep, on_step=step, incident=incident, telemetry=telemetry,
                                  on_done=on_done)
        else:
            result = run_drill(file, server=server, keep_dir=keep, on_step=step, on_done=on_done)
    except ScenarioError as exc:
        raise _fail(str(exc), 2) from None
    except DrillSetupError as exc:
        raise _fail(f"{file}: {exc}", 1) from None
    except Exception as exc:  # an error in the machinery: one line, not a traceback
        logging.getLogger("firebreak.drill").debug("drill failed", exc_info=True)
        raise _fail(f"{file}: the drill could not run: {type(exc).__name__}: {exc}", 1) from None
    if as_json:
        print(json.dumps(result.spec_json(), separators=(',', ':')))
    else:
        print_result(result)
        if keep is not None:
            out.print(f"  world kept in {keep} (FIREBREAK_DATA_DIR={keep} firebreak logs ...)", highlight=False)
        if kept_ids:
            out.print(f"  kept as {kept_ids[0]}: `firebreak transcripts show {kept_ids[0]}`, "
                      "`firebreak drill history`, the drills page", highlight=False)
        for text in debriefs:
            out.print("\n" + text, highlight=False, markup=False)


def _with_debrief(file: Path, keep: Callable[[Any, Any], None], sink: list[str]) -> Callable[[Any, Any], None]:
    """Also write the drill's debrief (post-mortem shaped) while its world still exists."""

    def done(world: Any, result: Any) -> None:
        keep(world, result)
        from firebreak.memory.postmortem.render import markdown
        from firebreak.simulations.debrief import debrief

        try:
            pm = debrief(world, load_scenario(file), result.spec_json(), now=world.clock.now())
        except Exception as exc:  # the score stands without its debrief
            logging.getLogger("firebreak.drill").warning("debrief not written: %s", exc)
            return
        if pm is not None:
            sink.append(markdown(pm))

    return done


class InvalidScenarios(ValueError):
    """Some files below the bench folder do not follow the format (one line per problem)."""


def aggregate(results: list[Any]) -> dict[str, Any]:
    """The bench JSON: ratios over all drills, the baselines, and for recorded incidents AC@k by fault."""
    from firebreak.simulations.bench import aggregate as bench_aggregate

    return bench_aggregate(results)


def bench_dir(directory: Path, progress: bool = True) -> dict[str, Any]:
    """Run every scenario file and recorded-incident folder below a folder; anything that does not follow
    its format stops the bench before any drill runs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from firebreak.simulations.bench import collect, run_item
    from firebreak.simulations.runner import preload

    items, problems = collect(directory)
    if problems:
        raise InvalidScenarios("\n".join(problems))
    preload()
    results = []
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, disable=not progress, transient=False) as bar:
        task = bar.add_task("drills", total=len(items))
        for item in items:
            bar.update(task, description=f"{item.id:<34}")
            results.append(run_item(item, lambda line: err.print(line, markup=False)))
            bar.advance(task)
    return aggregate(results)


@app.command("bench")
def bench_cmd(
    directory: Annotated[Path, typer.Argument(
        help="Folder: every *.yaml below it is a scenario, every folder holding incident.yaml a recorded incident.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the aggregate JSON with every result.")] = False,
) -> None:
    """Run every scenario below DIR and print hit@1, hit@3, right-fix rate and median wall time."""
    _quiet_logs()
    if not directory.is_dir():
        raise _fail(f"{directory}: not a folder", 2)
    try:
        agg = bench_dir(directory, progress=True)
    except InvalidScenarios as exc:
        raise _fail(str(exc), 2) from None
    if as_json:
        print(json.dumps(agg, separators=(',', ':')))
        return
    width = max([len(r["scenario"]) for r in agg["results"]] + [8])
    out.print(f"{'scenario':<{width}}  rank  hit@1  hit@3  fix   severity  alerts  incidents  tools  wall s",
              highlight=False)
    for r in agg["results"]:
        rank = str(r["rank"]) if r["rank"] is not None else "–"
        out.print(f"{r['scenario']:<{width}}  {rank:<4}  {_yes(r['hit_at_1']):<5}  {_yes(r['hit_at_3']):<5}  "
                  f"{_yes(r['mitigation_ok']):<4}  {_yes(r['severity_ok']):<8}  {r['alerts_delivered']:<6}  "
                  f"{r['incidents_opened']:<9}  {r['tool_calls']:<5}  {r['wall_seconds']:.2f}", highlight=False)
    out.print(f"scenarios {agg['scenarios']}  hit@1 {agg['hit_at_1']:.2f}  hit@3 {agg['hit_at_3']:.2f}  "
              f"right fix {agg['mitigation_ok']:.2f}  median wall {agg['median_wall_seconds']:.2f} s",
              highlight=False)
    from firebreak.simulations.bench import summary_lines

    for line in summary_lines(agg):
        out.print(line, highlight=False, markup=False)


@app.command("practice")
def practice_cmd(
    file: Annotated[Path, typer.Argument(help="Scenario YAML file.")],
    person: Annotated[str | None, typer.Option("--person", help="Who practises (default: $USER).")] = None,
    speed: Annotated[float, typer.Option("--speed", min=0.1, help="Simulated minutes per wall minute.")] = 10.0,
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="Where the practice world lives (default: under the data dir, removed at the end).")]
    = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Give up after this many wall seconds without an answer.")] = None,
) -> None:
    """Practise a blank incident: alerts arrive on an accelerated clock; answer with `firebreak drill answer`."""
    from firebreak.simulations.practice import practise
    from firebreak.simulations.practice_runs import PracticeError

    _quiet_logs()
    try:
        practise(file, person=person, speed=speed, data_dir=data_dir, timeout=timeout, console=out)
    except ScenarioError as exc:
        raise _fail(str(exc), 2) from None
    except UnicodeDecodeError as exc:
        raise _fail(_not_utf8(file, exc), 2) from None
    except PracticeError as exc:
        raise _fail(str(exc), 1) from None


@app.command("answer")
def answer_cmd(
    suspect: Annotated[list[str], typer.Option(
        "--suspect", "-s", help="kind:ref or kind:ref@service, most likely first (repeat for more).")],
    fix: Annotated[str | None, typer.Option(
        "--fix", help='The fix: "rollback service=mailer to=4.6.1".')] = None,
    severity: Annotated[str | None, typer.Option("--severity", help="minor, major or critical.")] = None,
    person: Annotated[str | None, typer.Option("--person", help="Who answers (default: $USER).")] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="The practice run (default: your latest open one).")]
    = None,
    note: Annotated[str, typer.Option("--note", help="Your reasoning, kept with the answer.")] = "",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Submit your hypotheses and fix for the running practice drill; get the score and the debrief."""
    from firebreak.simulations.practice_answer import parse_answer, submit_answer
    from firebreak.simulations.practice_runs import PracticeError

    try:
        answer = parse_answer(suspect, fix, severity, note)
        debrief = submit_answer(answer, person=person, run_id=run_id)
    except (PracticeError, ValueError) as exc:
        raise _fail(f"answer: {exc}", 2) from None
    if as_json:
        print(json.dumps(debrief.model_dump(mode="json")))
    else:
        from firebreak.simulations.practice_debrief import print_debrief

        print_debrief(debrief, out)


@app.command("history")
def history_cmd(
    days: Annotated[int, typer.Option("--days", min=1, help="'Not practised lately' means in this many days.")] = 30,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Each person's drills, and who has not practised lately."""
    from firebreak.simulations.history import drill_history, print_history

    hist = drill_history(days=days)
    if as_json:
        print(json.dumps(hist.model_dump(mode="json")))
    else:
        print_history(hist, out)


@app.command("generate")
def generate_cmd(
    count: Annotated[int, typer.Option("--count", min=1, help="How many worlds.")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same worlds.")] = 1,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the YAML files (created if needed).")]
    = Path("generated-worlds"),
) -> None:
    """Write generated training worlds (random culprit kinds, topologies and red herrings) as scenario files."""
    from firebreak.simulations.worlds import write_worlds

    try:
        paths = write_worlds(count, seed, out_dir)
    except OSError as exc:
        raise _fail(f"--out: cannot write to {out_dir} ({exc.strerror or exc})", 2) from None
    out.print(f"{len(paths)} worlds written to {out_dir}", highlight=False)
