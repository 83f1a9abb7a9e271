"""`firebreak logs|metrics|changes|flags|sentry ...`: one command per registered tool, generated.

Each family's Typer app is built from the registry (`tools.registry.load_tools()`): a command per tool,
named after it (`search_logs` -> `search-logs`), its options read from the tool's input JSON schema
(required fields are positional arguments). A command runs the tool through `call_tool` (validation,
redaction) with a default `ToolContext`, prints a table, or the JSON with `--json`. Adding a tool to
the registry adds its command; nothing here names a tool.

Flag actions (disable/enable/set variant) are not tools and have no command: they run only after an
approval. `firebreak changes record` records a change by hand.
"""

from __future__ import annotations

import inspect
import json
import os
import re
from collections.abc import Callable
from typing import Any, NoReturn

import typer
from pydantic import ValidationError

from firebreak.context import ToolContext, default_context
from firebreak.tools.registry import ToolError, ToolSpec, call_tool, load_tools

# Resolved at call time so tests and drills can point the CLI at their own context.
CONTEXT_FACTORY: Callable[[], ToolContext] = default_context

FAMILIES: dict[str, str] = {
    "logs": "Search logs and see which log patterns appeared around an onset.",
    "metrics": "Query metric series, find anomalies, list dashboards.",
    "changes": "Deploys, config changes, flag flips and infra events, nearest to an onset first.",
    "flags": "Feature flags (flagd file through OpenFeature): list, evaluate, history. Read-only.",
    "sentry": "Sentry issues from stored webhooks or the Sentry API.",
    "incidents": "Incident-log tools: details with alerts, listing, service dependencies.",
    "traces": "Service map, error spans, self-time breakdown and sample traces (embedded, Tempo or Jaeger).",
    "memory": "Similar past incidents and runbooks.",
}
MAX_CELL = 120


class CliInputError(ValueError):
    """A value typed at the terminal that cannot be turned into tool input."""


# ---------------------------------------------------------------------------------- schema -> options


def _resolve(prop: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of a property schema, with `$ref`s followed."""
    if "$ref" in prop:
        return _resolve(defs.get(prop["$ref"].rsplit("/", 1)[-1], {}), defs)
    for key in ("anyOf", "oneOf"):
        if key in prop:
            branches = [b for b in prop[key] if b.get("type") != "null"]
            if len(branches) == 1:
                merged = {k: v for k, v in prop.items() if k != key}
                return {**_resolve(branches[0], defs), **merged}
            return {"type": "json"}
    return prop


def _kind(prop: dict[str, Any]) -> str:
    if "enum" in prop or "const" in prop:
        return "choice"
    t = prop.get("type")
    if t == "string":
        return "datetime" if prop.get("format") == "date-time" else "string"
    if t == "array":
        item = prop.get("items") or {}
        return "list" if item.get("type") in ("string", "integer", "number") else "json"
    if t in ("integer", "number", "boolean"):
        return str(t)
    return "json"


_PY_TYPES: dict[str, Any] = {
    "string": str, "datetime": str, "choice": str, "json": str, "integer": int, "number": float,
    "boolean": bool, "list": list[str],
}


def _help(prop: dict[str, Any], kind: str, required: bool) -> str:
    parts = [prop.get("description") or prop.get("title") or ""]
    if kind == "choice":
        parts.append("One of: " + ", ".join(str(v) for v in prop.get("enum", [prop.get("const")])) + ".")
    if kind == "datetime":
        parts.append("ISO 8601 with a zone (2026-03-02T08:00:00Z), 'now', -30m, 2h ago, yesterday 14:00, "
                     "last tuesday (UTC).")
    if kind == "json":
        parts.append('JSON, or key=value pairs separated by commas (email=a@b.com,region=eu).')
    if not required and "default" in prop and prop["default"] not in (None, [], {}):
        parts.append(f"[default: {prop['default']}]")
    return _plain(" ".join(p for p in parts if p).strip())


def _plain(text: str) -> str:
    """Help text shown as written: Typer renders Rich markup, which would eat `[ts, value]`."""
    from rich.markup import escape

    return escape(text)


def _to_datetime(value: str, ctx: ToolContext, name: str = "") -> str:
    """ISO 8601, `now`, `-2h`, `yesterday 14:00`, `last tuesday` (firebreak.timeparse); else one line."""
    from firebreak.timeparse import TimeParseError, parse_when

    try:
        return parse_when(value, ctx.clock.now()).isoformat()
    except TimeParseError as exc:
        raise CliInputError(f"--{name.replace('_', '-')}: {exc}" if name else str(exc)) from None


def _to_json(name: str, value: str) -> Any:
    text = value.strip()
    if text[:1] in "{[\"" or text in ("null", "true", "false"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise CliInputError(f"--{name.replace('_', '-')}: not valid JSON ({exc})") from None
    out: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in text.split(","))):
        if "=" not in pair:
            raise CliInputError(f"--{name.replace('_', '-')}: expected JSON or key=value pairs, got {pair!r}")
        key, val = pair.split("=", 1)
        try:
            out[key.strip()] = json.loads(val)
        except ValueError:
            out[key.strip()] = val
    return out


def _fields(spec: ToolSpec) -> list[tuple[str, dict[str, Any], str, bool]]:
    schema = spec.input_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    out = []
    for name, raw in (schema.get("properties") or {}).items():
        prop = _resolve(raw, defs)
        out.append((name, {**prop, **{k: raw[k] for k in ("description", "default") if k in raw}},
                    _kind(prop), name in required))
    return out


def _build_command(spec: ToolSpec) -> Callable[..., None]:
    fields = _fields(spec)
    params: list[inspect.Parameter] = []
    for name, prop, kind, required in fields:
        py_type = _PY_TYPES[kind]
        text = _help(prop, kind, required)
        if required and kind != "list":
            default: Any = typer.Argument(..., help=text, show_default=False)
        else:
            decls = [f"--{name.replace('_', '-')}"]
            if kind == "boolean":
                decls = [f"--{name.replace('_', '-')}/--no-{name.replace('_', '-')}"]
            default = typer.Option(None, *decls, help=text, show_default=False)
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=py_type))
    params.append(inspect.Parameter(
        "as_json", inspect.Parameter.KEYWORD_ONLY, annotation=bool,
        default=typer.Option(False, "--json", help="Print the tool's JSON output."),
    ))
    kinds = {name: kind for name, _, kind, _ in fields}

    def command(**kwargs: Any) -> None:
        as_json = bool(kwargs.pop("as_json", False))
        ctx = CONTEXT_FACTORY()
        try:
            args: dict[str, Any] = {}
            for key, value in kwargs.items():
                if value is None or (kinds.get(key) == "list" and not value):
                    continue
                kind = kinds.get(key)
                if kind == "datetime":
                    value = _to_datetime(value, ctx, key)
                elif kind == "json":
                    value = _to_json(key, value)
                args[key] = value
            out = call_tool(ctx, spec.name, args)
        except (ToolError, CliInputError) as exc:
            _fail(exc.message if isinstance(exc, ToolError) else str(exc))
        except Exception as exc:  # one line for a person at a terminal, never a traceback
            if os.environ.get("FIREBREAK_DEBUG"):
                raise
            _fail(f"{spec.name} failed: {type(exc).__name__}: {exc}")
        finally:
            ctx.close()
        emit(out, as_json=as_json, title=spec.name)

    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__name__ = spec.name
    command.__doc__ = spec.description
    return command


def _fail(message: str) -> NoReturn:
    from firebreak.redact import redact_text

    typer.echo(f"error: {redact_text(' '.join(message.split()))}", err=True)
    raise typer.Exit(1)


# ------------------------------------------------------------------------------------------ output


_ISO = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(?:\.\d+)?(?:Z|\+00:00)$")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str) and (m := _ISO.match(value)):
        return f"{m.group(1)} {m.group(2)}"  # UTC, seconds: what a person reads in a table
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    text = " ".join(text.split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def emit(out: dict[str, Any], *, as_json: bool, title: str = "") -> None:
    """JSON on request; otherwise scalars as `key: value` lines and each list as a rich table."""
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False)
    scalars = {k: v for k, v in out.items() if not isinstance(v, list)}
    lists = {k: v for k, v in out.items() if isinstance(v, list)}
    for key, value in scalars.items():
        if value in (None, "", {}):
            continue
        console.print(f"[bold]{key}[/bold]: {_cell(value)}", highlight=False)
    for key, rows in lists.items():
        if not rows:
            console.print(f"[bold]{key}[/bold]: (none)", highlight=False)
            continue
        if all(isinstance(r, dict) for r in rows):
            columns: list[str] = []
            for r in rows:
                columns.extend(c for c in r if c not in columns)
            columns = [c for c in columns if any(r.get(c) not in (None, "", [], {}) for r in rows)]
            from firebreak.tables import Col, humanize, table_or_blocks

            # ids whole (the next command needs them), human headers; too many fields: one block per row
            cols = [Col(humanize(c), "id" if c == "id" or c.endswith("_id") else "text") for c in columns]
            console.print(table_or_blocks(cols, [[_cell(r.get(c)) for c in columns] for r in rows], title=key,
                                          console=console))
        elif all(isinstance(r, list) for r in rows):
            width = max(len(r) for r in rows)
            table = Table(title=key, title_justify="left")
            for i in range(width):
                table.add_column(str(i))
            for r in rows:
                table.add_row(*(_cell(v) for v in r), *([""] * (width - len(r))))
            console.print(table)
        else:
            console.print(f"[bold]{key}[/bold]: {', '.join(_cell(v) for v in rows)}", highlight=False)


# ------------------------------------------------------------------------------------------- apps


def make_family_app(family: str) -> typer.Typer:
    """A Typer app with one command per registered tool of `family` (kind "query" only)."""
    app = typer.Typer(name=family, help=FAMILIES.get(family, f"{family} tools"), no_args_is_help=True,
                      pretty_exceptions_enable=False)
    specs = sorted((s for s in load_tools().values() if s.family == family and s.kind == "query"),
                   key=lambda s: s.name)
    for spec in specs:
        paragraphs = [" ".join(p.split()) for p in spec.description.split("\n\n") if p.strip()]
        app.command(
            spec.name.replace("_", "-"), help=_plain("\n\n".join(paragraphs)),
            short_help=_plain(paragraphs[0]) if paragraphs else "",
        )(_build_command(spec))
    if not specs:
        @app.callback(invoke_without_command=True)
        def _none() -> None:
            typer.echo(f"no {family} tools are registered in this installation", err=True)
    return app


logs_app = make_family_app("logs")
metrics_app = make_family_app("metrics")
changes_app = make_family_app("changes")
flags_app = make_family_app("flags")
sentry_app = make_family_app("sentry")
incident_tools_app = make_family_app("incidents")
traces_app = make_family_app("traces")


@changes_app.command("record")
def record(
    kind: str = typer.Option(..., "--kind", help="deploy, config, flag or infra."),
    service: str | None = typer.Option(None, "--service"),
    version: str | None = typer.Option(None, "--version", help="deploy: the version now running."),
    previous_version: str | None = typer.Option(None, "--previous-version"),
    at: str | None = typer.Option(None, "--at", help="When (ISO 8601 with a zone, or -15m); default now."),
    author: str | None = typer.Option(None, "--author", help="Who; default $USER."),
    note: str = typer.Option("", "--note"),
    key: str | None = typer.Option(None, "--key", help="config: the key changed."),
    from_value: str | None = typer.Option(None, "--from", help="config: old value (JSON or text)."),
    to_value: str | None = typer.Option(None, "--to", help="config: new value (JSON or text)."),
    flag: str | None = typer.Option(None, "--flag", help="flag: the flag key."),
    variant: str | None = typer.Option(None, "--variant", help="flag: the variant now served."),
    state: str | None = typer.Option(None, "--state", help="flag: ENABLED or DISABLED."),
    as_json: bool = typer.Option(False, "--json", help="Print the recorded change as JSON."),
) -> None:
    """Record a change by hand (a deploy done outside CI, a config edit, an infra event)."""
    from firebreak.tools.changes import ChangeIn, change_out, record_change

    def scalar(value: str | None) -> Any:
        if value is None:
            return None
        try:
            return json.loads(value)
        except ValueError:
            return value

    ctx = CONTEXT_FACTORY()
    try:
        payload: dict[str, Any] = {
            "kind": kind, "service": service, "version": version, "previous_version": previous_version,
            "author": author or os.environ.get("USER") or "cli", "note": note, "key": key,
            "from": scalar(from_value), "to": scalar(to_value), "flag": flag, "variant": variant, "state": state,
        }
        if at:
            payload["at"] = _to_datetime(at, ctx)
        try:
            change = ChangeIn.model_validate({k: v for k, v in payload.items() if v is not None})
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            msg = str(err["msg"]).removeprefix("Value error, ")
            _fail(f"{loc}: {msg}" if loc else msg)
        now = ctx.clock.now()
        with ctx.db.session() as s:
            row = record_change(s, change, source="cli", now=now)
            out = change_out(row, now).model_dump(mode="json", exclude={"minutes_from_onset", "relation"})
    finally:
        ctx.close()
    from firebreak.redact import redact_obj

    out = redact_obj(out)
    if as_json:
        emit(out, as_json=True)
    else:
        what = out.get("version") or out.get("key") or out.get("flag") or out.get("note")
        typer.echo(f"recorded change #{out['id']}: {out['kind']} {out.get('service') or ''} {what} at {out['at']}")

