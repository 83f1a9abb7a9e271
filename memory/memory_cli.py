"""`firebreak memory ...`: import runbooks and Slack exports, search the memory, rebuild the index."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from firebreak.context import ToolContext

app = typer.Typer(help="Searchable memory: past incidents, runbooks/FAQ, Slack threads.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def fail(message: str, code: int = 2) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    raise typer.Exit(code)


def _ctx() -> ToolContext:
    """Settings read now (not the process-wide cached ones): one command, one environment."""
    from firebreak.settings import Settings

    try:
        return ToolContext(settings=Settings())
    except ValueError as exc:  # pydantic ValidationError: a bad FIREBREAK_* variable
        fail(f"settings: {exc}".splitlines()[0] + " " + " ".join(str(exc).splitlines()[1:3]))


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


@contextlib.contextmanager
def _progress(index: Any, what: str) -> Iterator[None]:
    """A progress bar on stderr while `index` embeds more than a few records, for a person at a terminal.
    Silent when stderr is not a terminal (scripts, --json readers) and for small batches."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(f"embedding {what}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True)
    task: list[Any] = []

    def update(done: int, total: int) -> None:
        if total < 200:
            return
        if not task:
            bar.start()
            task.append(bar.add_task(what, total=total))
        bar.update(task[0], completed=done, total=total)

    index.on_progress = update
    try:
        yield
    finally:
        index.on_progress = None
        if task:
            bar.stop()


def _known_services(ctx: ToolContext) -> set[str]:
    """Service names from the incident log and settings, used to tag imported sections and threads."""
    from sqlalchemy import select

    from firebreak.state.incidents import Incident

    names: set[str] = set(ctx.settings.dependencies)
    for deps in ctx.settings.dependencies.values():
        names.update(deps)
    names.update(ctx.settings.service_map.values())
    with ctx.db.session() as s:
        for services in s.scalars(select(Incident.services)):
            names.update(str(x) for x in services or [])
    return {n for n in names if n and len(n) > 2}


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="A Markdown file or folder, or a Slack export (folder or .zip).")],
    as_json: JsonOpt = False,
) -> None:
    """Import runbooks/FAQ (split by heading) or Slack threads; re-importing a file replaces its sections."""
    from firebreak.memory.embeddings import EmbeddingError
    from firebreak.memory.importers import ImportProblem, collect
    from firebreak.memory.index import get_index
    from firebreak.memory.search_records import MemoryError_

    ctx = _ctx()
    try:
        try:
            records, origins = collect(path, services=_known_services(ctx))
        except ImportProblem:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:  # a field of an odd shape
            fail(f"{path}: cannot read this export ({type(exc).__name__}: {exc}); nothing was imported")
        index = get_index(ctx)
        with _progress(index, "runbooks and threads"):
            changed = index.add_documents(records, replace_origins=origins)
    except ImportProblem as exc:
        fail(str(exc))
    except (MemoryError_, EmbeddingError) as exc:
        fail(str(exc), 1)
    kinds: dict[str, int] = {}
    for r in records:
        kinds[r.kind] = kinds.get(r.kind, 0) + 1
    result = {"path": str(path), "records": len(records), "embedded": changed, "by_kind": kinds}
    if as_json:
        _print_json(result)
    else:
        label = {"runbook": "runbook/FAQ sections", "slack": "Slack threads"}
        parts = ", ".join(f"{n} {label.get(k, k)}" for k, n in sorted(kinds.items())) or "nothing"
        sys.stdout.write(f"imported {parts} from {path} ({changed} new or changed)\n")


KINDS = ("incident", "runbook", "slack")
KIND_LABEL = {"incident": "incident", "runbook": "runbook", "slack": "Slack thread"}


@app.command("search")
def search(
    text: Annotated[str, typer.Argument(help="What is happening, in plain words.")],
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="How many hits.")] = 5,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", help="Only this kind: incident, runbook or slack (repeat for several)."),
    ] = None,
    service: Annotated[str | None, typer.Option("--service", help="Only this service.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Only incidents started after (RFC 3339, -2h, yesterday 14:00); "
                           "runbooks and threads have no date.")
    ] = None,
    docs: Annotated[bool, typer.Option("--docs", hidden=True, help="Same as --kind runbook --kind slack.")] = False,
    mode: Annotated[str, typer.Option("--mode", help="hybrid | dense | lexical")] = "hybrid",
    as_json: JsonOpt = False,
) -> None:
    """Search everything the team knows: past incidents, runbooks and Slack threads, in one ranked list."""
    from firebreak.memory.embeddings import EmbeddingError
    from firebreak.memory.index import get_index
    from firebreak.memory.search_records import MemoryError_

    if not text.strip():
        fail("text: must not be empty")
    if mode not in ("hybrid", "dense", "lexical"):
        fail(f"--mode: unknown value {mode!r} (hybrid, dense or lexical)")
    kinds = {x.strip().lower() for x in kind or []}
    if docs:
        kinds |= {"runbook", "slack"}
    for x in sorted(kinds):
        if x not in KINDS:
            fail(f"--kind: unknown value {x!r} (incident, runbook or slack)")
    since_dt: datetime | None = None
    ctx = _ctx()
    if since is not None:
        from firebreak.timeparse import TimeParseError, parse_when

        try:
            since_dt = parse_when(since, now=ctx.clock.now())
        except TimeParseError as exc:
            fail(f"--since: {exc}")
    try:
        index = get_index(ctx)
        if not kinds or "incident" in kinds:
            with _progress(index, "past incidents"):
                index.sync_incidents(ctx.db)
        hits = index.search_all(
            text, k=k, kinds=kinds or None, service=service, since=since_dt,
            mode=mode,  # type: ignore[arg-type]
        )
    except (MemoryError_, EmbeddingError) as exc:
        fail(str(exc), 1)
    if as_json:
        _print_json({"hits": [h.model_dump(mode="json") for h in hits]})
        return
    if not hits and (kinds or service or since_dt):
        sys.stdout.write("no matches with these filters (--kind, --service, --since); try without them\n")
        return
    if not hits:
        counts = index.counts()
        sys.stdout.write(
            f"no matches (the memory holds {counts['incidents']} incidents and {counts['documents']} runbook "
            "sections and Slack threads; `firebreak memory import DIR` adds runbooks)\n"
        )
        return
    for n, h in enumerate(hits, 1):
        when = f" {h.started_at:%Y-%m-%d}" if h.started_at else ""
        svc = f" [{', '.join(h.services)}]" if h.services else ""
        sys.stdout.write(f"{n}. {h.score:.2f}  {KIND_LABEL.get(h.kind, h.kind)}  {h.id}{when}{svc}  {h.title}\n")
        sys.stdout.write(f"     {h.excerpt}\n")
        if h.root_cause:
            sys.stdout.write(f"     root cause: {h.root_cause}\n")
        if h.countermeasures:
            sys.stdout.write(f"     countermeasures: {'; '.join(h.countermeasures)}\n")
        if h.matched_identifiers:
            sys.stdout.write(f"     matched: {', '.join(h.matched_identifiers)}\n")
        if h.kind != "incident":
            sys.stdout.write(f"     source: {h.source}\n")


@app.command("reindex")
def reindex(as_json: JsonOpt = False) -> None:
    """Rebuild the index from the incident log and the imported documents (safe to repeat)."""
    from firebreak.memory.embeddings import EmbeddingError
    from firebreak.memory.index import get_index
    from firebreak.memory.search_records import MemoryError_

    ctx = _ctx()
    try:
        index = get_index(ctx)
        with _progress(index, "incidents and documents"):
            stats = index.reindex(ctx.db)
    except (MemoryError_, EmbeddingError) as exc:
        fail(str(exc), 1)
    if as_json:
        _print_json(stats.model_dump())
    else:
        sys.stdout.write(
            f"reindexed {stats.incidents} incidents and {stats.documents} documents in {stats.seconds:.1f}s\n"
        )
