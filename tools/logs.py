"""Log tools: `search_logs` and `log_patterns` over the embedded store, or Loki when `loki_url` is set."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, field_validator

from firebreak.clock import ensure_aware
from firebreak.context import ToolContext
from firebreak.tools.log_store import LEVELS, LogLine, from_us, get_log_store, normalize_level, to_us
from firebreak.tools.registry import ToolError, tool
from firebreak.tools.time_range import ZonedRange, resolve_range

DEFAULT_SEARCH_WINDOW = timedelta(hours=1)
MAX_MESSAGE_CHARS = 1000
MAX_ATTRIBUTE_CHARS = 500
MAX_PATTERN_LINES = 500_000
LOKI_PATTERN_LINES = 5_000


def _level(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    lv = normalize_level(value)
    if lv not in LEVELS:
        raise ValueError(f"unknown level {value!r}; use one of {', '.join(LEVELS)}")
    return lv


class SearchLogsInput(ZonedRange):
    service: str | None = Field(default=None, description="Service name, e.g. 'checkout'. Omit for all services.")
    level: str | None = Field(default=None, description="Exact level: TRACE, DEBUG, INFO, WARN, ERROR or FATAL.")
    text: str | None = Field(default=None, description="Substring to find in the message (case-insensitive).")
    regex: bool = Field(default=False, description="Treat `text` as a Python/RE2-style regular expression.")
    since: datetime | None = Field(default=None, description="Start, ISO 8601 with zone; default: until - 1 h.")
    until: datetime | None = Field(default=None, description="End (ISO 8601 with zone). Default: now.")
    limit: int = Field(default=50, ge=1, le=500, description="Most lines returned, newest first.")

    @field_validator("level")
    @classmethod
    def _lv(cls, v: str | None) -> str | None:
        return _level(v)


class LogLineOut(BaseModel):
    ts: datetime
    service: str
    level: str
    message: str
    attributes: dict[str, Any] = Field(default_factory=dict)


class SearchLogsOutput(BaseModel):
    lines: list[LogLineOut]
    total: int = Field(description="Matching lines in the range (see total_exact).")
    total_exact: bool = Field(
        default=True, description="False when only the newest 200,000 lines of a huge range were counted."
    )
    truncated: bool = Field(description="True when more lines matched than were returned.")
    since: datetime
    until: datetime
    source: str = Field(description="'embedded' or 'loki'.")


class LogPatternsInput(BaseModel):
    pivot: datetime = Field(description="The point in time to compare around, e.g. the alert's start.")
    service: str | None = Field(default=None, description="Service name. Omit for all services.")
    level: str | None = Field(default=None, description="Only lines of this level (e.g. ERROR).")
    before_minutes: int = Field(default=30, ge=1, le=24 * 60, description="Minutes before the pivot to count.")
    after_minutes: int = Field(default=30, ge=1, le=24 * 60, description="Minutes after the pivot to count.")
    limit: int = Field(default=20, ge=1, le=200, description="Most patterns returned.")

    @field_validator("pivot")
    @classmethod
    def _zone(cls, v: datetime) -> datetime:
        return ensure_aware(v, "pivot")

    @field_validator("level")
    @classmethod
    def _lv(cls, v: str | None) -> str | None:
        return _level(v)


class LogPattern(BaseModel):
    template: str
    service: str
    level: str
    count_before: int
    count_after: int
    first_seen: datetime = Field(description="First line of this pattern in the window.")
    new: bool = Field(description="Absent before the pivot, present after it.")
    example: str


class LogPatternsOutput(BaseModel):
    patterns: list[LogPattern]
    total_patterns: int
    lines_before: int
    lines_after: int
    truncated: bool
    source: str


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _out_line(line: LogLine) -> LogLineOut:
    attrs = line.attributes
    if attrs and len(repr(attrs)) > MAX_ATTRIBUTE_CHARS:
        attrs = {k: _clip(str(v), 100) for k, v in list(attrs.items())[:10]}
    return LogLineOut(
        ts=line.ts,
        service=line.service,
        level=line.level,
        message=_clip(line.message, MAX_MESSAGE_CHARS),
        attributes=attrs,
    )


def _check_regex(text: str | None, regex: bool) -> None:
    if text and regex:
        try:
            re.compile(text)
        except re.error as exc:
            raise ToolError(f"text: invalid regular expression {text!r}: {exc}", status=422, field="text") from None


def _loki(ctx: ToolContext) -> Any:
    from firebreak.tools.loki import LokiClient

    url = ctx.settings.loki_url
    assert url
    return ctx.resource(f"loki:{url}", lambda: LokiClient(url))


def _unknown_service(service: str, known: list[str]) -> ToolError:
    shown = ", ".join(known[:30]) + (" ..." if len(known) > 30 else "")
    hint = f"known services: {shown}" if known else "no logs have been stored yet"
    return ToolError(f"unknown service {service!r} in logs; {hint}", status=404, field="service")


@tool("logs")
def search_logs(ctx: ToolContext, args: SearchLogsInput) -> SearchLogsOutput:
    """Find log lines by service, level, text (substring or regex) and time range, newest first.

    Use it to read the actual error messages around an incident, e.g. service='checkout', level='ERROR'
    since the alert started, or text='timeout'. Returns at most `limit` lines plus the total count.
    For "what changed in the logs" use log_patterns instead.
    """
    since, until = resolve_range(ctx, args.since, args.until, DEFAULT_SEARCH_WINDOW)
    _check_regex(args.text, args.regex)
    if ctx.settings.loki_url:
        from firebreak.tools.loki import SERVICE_LABEL, build_logql

        client = _loki(ctx)
        query = build_logql(service=args.service, level=args.level, text=args.text, regex=args.regex)
        got = client.query_range(query, start=since, end=until, limit=args.limit + 1, direction="backward")
        if not got and args.service:
            known = client.label_values(SERVICE_LABEL, start=since, end=until)
            if args.service not in known:
                raise _unknown_service(args.service, known)
        return SearchLogsOutput(
            lines=[_out_line(ln) for ln in got[: args.limit]],
            total=len(got[: args.limit]),
            total_exact=len(got) <= args.limit,
            truncated=len(got) > args.limit,
            since=since,
            until=until,
            source="loki",
        )
    store = get_log_store(ctx)
    if args.service:
        known = store.services()
        if args.service not in known:
            raise _unknown_service(args.service, known)
    lines, total, exact = store.search(
        since=since,
        until=until,
        service=args.service,
        level=args.level,
        text=args.text,
        regex=args.regex,
        limit=args.limit,
    )
    return SearchLogsOutput(
        lines=[_out_line(ln) for ln in lines],
        total=total,
        total_exact=exact,
        truncated=not exact or total > len(lines),
        since=since,
        until=until,
        source="embedded",
    )


# --- patterns -------------------------------------------------------------------------------------

# Masks applied before Drain3 so variable tokens collapse and identical masked lines are mined once.
# Four simple passes with constant replacements run ~3x faster than one alternation with a callback
# (measured: 41,667 lines in 0.16 s vs 0.35 s on a loaded 2-core machine).
_MASKS = (
    (re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"), "<TS>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b[0-9a-fA-F]{8,}(?:-[0-9a-fA-F]{4,})*\b"), "<ID>"),
    (re.compile(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b"), "<IP>"),
    (re.compile(r"(?<![A-Za-z_\d])[-+]?\d+(?:\.\d+)*"), "<NUM>"),
)


def mask_message(message: str) -> str:
    """Replace timestamps, ids, addresses and numbers by placeholders (what Drain3's masking does)."""
    for rx, token in _MASKS:
        message = rx.sub(token, message)
    return message


@dataclass
class _Agg:
    service: str
    level: str
    masked: str
    example: str
    first_us: int
    before: int = 0
    after: int = 0


def mine_patterns(
    rows: Iterable[tuple[int, str, str, str]], pivot_us: int, *, max_lines: int = MAX_PATTERN_LINES
) -> tuple[list[LogPattern], int, int, bool]:
    """Group (ts_us, service, level, message) rows into Drain3 templates with counts around a pivot.

    Returns (patterns sorted new-first then by growth, lines before, lines after, whether the line
    cap was hit). Identical masked lines are counted first and each distinct one is fed to Drain3 once,
    which keeps a one-hour window of a busy system well under a second.
    """
    from drain3.drain import Drain

    aggs: dict[tuple[str, str, str], _Agg] = {}
    n_before = n_after = 0
    capped = False
    mask = mask_message
    for i, (ts, service, level, message) in enumerate(rows):
        if i >= max_lines:
            capped = True
            break
        masked = mask(message)
        key = (service, level, masked)
        agg = aggs.get(key)
        if agg is None:
            agg = aggs[key] = _Agg(service, level, masked, message, ts)
        elif ts < agg.first_us:
            agg.first_us, agg.example = ts, message
        if ts < pivot_us:
            agg.before += 1
            n_before += 1
        else:
            agg.after += 1
            n_after += 1

    miners: dict[str, Drain] = {}
    clusters: dict[tuple[str, str, int], list[_Agg]] = {}
    cluster_objs: dict[tuple[str, int], Any] = {}
    for agg in sorted(aggs.values(), key=lambda a: a.first_us):
        drain = miners.get(agg.service)
        if drain is None:
            drain = miners[agg.service] = Drain(sim_th=0.5, depth=4, max_children=100)
        cluster, _ = drain.add_log_message(agg.masked)
        cluster_objs[(agg.service, cluster.cluster_id)] = cluster
        clusters.setdefault((agg.service, agg.level, cluster.cluster_id), []).append(agg)

    patterns: list[LogPattern] = []
    for (service, level, cid), members in clusters.items():
        before = sum(m.before for m in members)
        after = sum(m.after for m in members)
        first = min(members, key=lambda m: m.first_us)
        patterns.append(
            LogPattern(
                template=_clip(cluster_objs[(service, cid)].get_template(), MAX_MESSAGE_CHARS),
                service=service,
                level=level,
                count_before=before,
                count_after=after,
                first_seen=from_us(first.first_us),
                new=before == 0 and after > 0,
                example=_clip(first.example, MAX_MESSAGE_CHARS),
            )
        )
    patterns.sort(key=_pattern_rank)
    return patterns, n_before, n_after, capped


def _pattern_rank(p: LogPattern) -> tuple[int, float, float]:
    # New templates first (most frequent first), then by growth after the pivot, then by volume.
    growth = (p.count_after + 1) / (p.count_before + 1)
    return (0 if p.new else 1, -p.count_after if p.new else -growth, -(p.count_after + p.count_before))


@tool("logs")
def log_patterns(ctx: ToolContext, args: LogPatternsInput) -> LogPatternsOutput:
    """Group log lines into templates (Drain3) and count each before and after a pivot time.

    Use it right after learning when an incident started (pivot = alert start or metric onset): new
    templates come first, the way an on-call reads "this error appeared at 08:12". Each pattern has
    count_before, count_after, first_seen and an example line. Narrow with service and level.
    """
    pivot = args.pivot.astimezone(UTC)
    since = pivot - timedelta(minutes=args.before_minutes)
    until = pivot + timedelta(minutes=args.after_minutes)
    if ctx.settings.loki_url:
        from firebreak.tools.loki import SERVICE_LABEL, build_logql

        client = _loki(ctx)
        query = build_logql(service=args.service, level=args.level, text=None)
        rows: list[tuple[int, str, str, str]] = []
        loki_capped = False
        for start, end in ((since, pivot), (pivot, until)):
            got = client.query_range(query, start=start, end=end, limit=LOKI_PATTERN_LINES, direction="forward")
            loki_capped = loki_capped or len(got) >= LOKI_PATTERN_LINES
            rows.extend((to_us(ln.ts), ln.service, ln.level, ln.message) for ln in got)
        if not rows and args.service:
            known = client.label_values(SERVICE_LABEL, start=since, end=until)
            if args.service not in known:
                raise _unknown_service(args.service, known)
        patterns, n_before, n_after, capped = mine_patterns(sorted(rows), to_us(pivot))
        capped = capped or loki_capped
        source = "loki"
    else:
        store = get_log_store(ctx)
        if args.service:
            known = store.services()
            if args.service not in known:
                raise _unknown_service(args.service, known)
        patterns, n_before, n_after, capped = mine_patterns(
            store.iter_window(since=since, until=until, service=args.service, level=args.level), to_us(pivot)
        )
        source = "embedded"
    return LogPatternsOutput(
        patterns=patterns[: args.limit],
        total_patterns=len(patterns),
        lines_before=n_before,
        lines_after=n_after,
        truncated=capped or len(patterns) > args.limit,
        source=source,
    )
