"""Embedded log store and the `search_logs` / `log_patterns` tools."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firebreak.context import ToolContext
from firebreak.tools.log_store import LogLine, LogStore, get_log_store, normalize_level
from firebreak.tools.logs import mask_message, mine_patterns
from firebreak.tools.registry import ToolError, call_tool

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ONSET = START + timedelta(minutes=12)


def _world() -> list[LogLine]:
    """45 minutes of two services; from 08:12 the mailer starts failing with a new error."""
    lines: list[LogLine] = []
    for i in range(45 * 6):  # one line every 10 s per service
        ts = START + timedelta(seconds=10 * i)
        lines.append(LogLine(ts, "api", "INFO", f"GET /orders/{1000 + i} 200 in {20 + i % 7}ms"))
        lines.append(
            LogLine(ts, "mailer", "INFO", f"sent batch {i} of {100 + i % 50} mails in {300 + i % 11}ms", {"pod": "m-1"})
        )
        if i % 30 == 0:
            lines.append(LogLine(ts, "mailer", "warning", f"smtp-relay slow answer {900 + i}ms"))
        if ts >= ONSET:
            lines.append(
                LogLine(
                    ts + timedelta(seconds=1),
                    "mailer",
                    "ERROR",
                    f"retry attempt {i % 5} for job {8000 + i}: SMTP timeout",
                )
            )
    return lines


@pytest.fixture
def world(ctx: ToolContext) -> ToolContext:
    get_log_store(ctx).ingest(_world())
    return ctx


def test_store_lives_in_data_dir_and_is_shared_per_context(ctx: ToolContext) -> None:
    store = get_log_store(ctx)
    assert store is get_log_store(ctx)
    assert store.path.parent == ctx.settings.data_dir
    assert store.path.exists()


def test_ingest_normalizes_levels_and_keeps_attributes(world: ToolContext) -> None:
    out = call_tool(world, "search_logs", {"service": "mailer", "level": "WARN", "since": START.isoformat()})
    assert out["total"] == 9 and not out["truncated"]
    assert {ln["level"] for ln in out["lines"]} == {"WARN"}
    info = call_tool(world, "search_logs", {"service": "mailer", "level": "info", "limit": 1})
    assert info["lines"][0]["attributes"] == {"pod": "m-1"}
    assert normalize_level("critical") == "FATAL" and normalize_level("err") == "ERROR"


def test_search_defaults_to_the_hour_before_now_newest_first(world: ToolContext) -> None:
    out = call_tool(world, "search_logs", {"service": "api", "limit": 5})
    # Clock is 08:45; the store holds 08:00..08:44:50, so the default hour covers all 270 api lines.
    assert out["total"] == 270
    assert out["truncated"] is True and len(out["lines"]) == 5
    stamps = [ln["ts"] for ln in out["lines"]]
    assert stamps == sorted(stamps, reverse=True)
    assert out["until"].startswith("2026-03-02T08:45:00")
    assert out["since"].startswith("2026-03-02T07:45:00")
    assert out["source"] == "embedded"


def test_text_search_is_case_insensitive_substring_and_literal(world: ToolContext) -> None:
    out = call_tool(world, "search_logs", {"text": "smtp TIMEOUT", "since": START.isoformat(), "limit": 500})
    assert out["total"] == 45 * 6 - 12 * 6
    assert all("SMTP timeout" in ln["message"] for ln in out["lines"])
    assert min(ln["ts"] for ln in out["lines"]) == "2026-03-02T08:12:01Z"
    # LIKE wildcards in the text are literal characters, not patterns.
    assert call_tool(world, "search_logs", {"text": "retry_attempt", "since": START.isoformat()})["total"] == 0
    assert call_tool(world, "search_logs", {"text": "%", "since": START.isoformat()})["total"] == 0


def test_regex_search_and_bad_regex(world: ToolContext) -> None:
    out = call_tool(
        world, "search_logs", {"text": r"attempt [34] for job \d+", "regex": True, "since": START.isoformat()}
    )
    assert out["total"] > 0
    assert all(ln["message"].split()[2] in {"3", "4"} for ln in out["lines"])
    with pytest.raises(ToolError) as err:
        call_tool(world, "search_logs", {"text": "attempt [", "regex": True})
    assert err.value.status == 422 and err.value.field == "text"
    assert "invalid regular expression" in err.value.message


def test_bad_input_gives_clear_tool_errors(world: ToolContext) -> None:
    with pytest.raises(ToolError) as err:
        call_tool(world, "search_logs", {"since": "2026-03-02T09:00:00Z", "until": "2026-03-02T08:00:00Z"})
    assert err.value.status == 422 and "must be before" in err.value.message
    with pytest.raises(ToolError) as err:
        call_tool(world, "search_logs", {"service": "checkout"})
    assert err.value.status == 404 and "unknown service 'checkout'" in err.value.message
    assert "api, mailer" in err.value.message
    with pytest.raises(ToolError) as err:
        call_tool(world, "search_logs", {"since": "2026-03-02T08:00:00"})
    assert err.value.status == 422 and err.value.field == "since" and "timezone" in err.value.message
    with pytest.raises(ToolError) as err:
        call_tool(world, "search_logs", {"level": "LOUD"})
    assert err.value.field == "level" and "unknown level" in err.value.message
    with pytest.raises(ToolError) as err:
        call_tool(world, "search_logs", {"limit": 100000})
    assert err.value.field == "limit"


def test_outputs_are_bounded(ctx: ToolContext) -> None:
    store = get_log_store(ctx)
    store.ingest([LogLine(START, "api", "ERROR", "x" * 50_000, {"blob": "y" * 10_000})])
    out = call_tool(ctx, "search_logs", {"since": START.isoformat()})
    line = out["lines"][0]
    assert len(line["message"]) <= 1000
    assert len(str(line["attributes"])) < 1000


def test_ingest_accepts_dicts_and_refuses_naive_times(ctx: ToolContext) -> None:
    store = get_log_store(ctx)
    n = store.ingest(
        [{"ts": "2026-03-02T08:00:00Z", "service": "api", "level": "warning", "message": "hello", "attributes": {}}]
    )
    assert n == 1
    with pytest.raises(ValueError, match="timezone"):
        store.ingest([LogLine(datetime(2026, 3, 2, 8), "api", "INFO", "naive")])
    assert store.services() == ["api"]
    assert store.time_bounds() == (START, START)


def test_another_process_can_write_and_read_while_the_store_is_open(ctx: ToolContext) -> None:
    store = get_log_store(ctx)
    store.ingest([LogLine(START, "api", "INFO", "from the server process")])
    script = textwrap.dedent(
        f"""
        from datetime import UTC, datetime, timedelta
        from pathlib import Path
        from firebreak.tools.log_store import LogLine, LogStore
        s = LogStore(Path({str(store.path)!r}))
        t = datetime(2026, 3, 2, 8, 1, tzinfo=UTC)
        s.ingest(LogLine(t + timedelta(seconds=i), "cli", "INFO", f"cli line {{i}}") for i in range(10))
        lines, total, _ = s.search(since=t - timedelta(hours=1), until=t + timedelta(hours=1), limit=100)
        print(total)
        """
    )
    repo = Path(__file__).resolve().parent.parent
    res = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=repo, timeout=60, check=False
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "11"
    assert sorted(store.services()) == ["api", "cli"]


def test_log_patterns_puts_the_new_error_first(world: ToolContext) -> None:
    out = call_tool(world, "log_patterns", {"pivot": ONSET.isoformat()})
    first = out["patterns"][0]
    assert first["new"] is True
    assert first["service"] == "mailer" and first["level"] == "ERROR"
    assert first["template"].startswith("retry attempt <NUM> for job")
    assert "SMTP timeout" in first["template"]
    assert first["count_before"] == 0 and first["count_after"] == 30 * 6
    assert first["first_seen"] == "2026-03-02T08:12:01Z"
    assert first["example"].startswith("retry attempt")
    old = [p for p in out["patterns"] if not p["new"]]
    assert {(p["service"], p["level"]) for p in old} == {("api", "INFO"), ("mailer", "INFO"), ("mailer", "WARN")}
    api = next(p for p in old if p["service"] == "api")
    assert api["count_before"] == 12 * 6 and api["count_after"] == 30 * 6
    assert out["lines_before"] + out["lines_after"] == sum(
        p["count_before"] + p["count_after"] for p in out["patterns"]
    )
    assert out["truncated"] is False and out["source"] == "embedded"


def test_log_patterns_filters_and_limits(world: ToolContext) -> None:
    out = call_tool(world, "log_patterns", {"pivot": ONSET.isoformat(), "service": "mailer", "limit": 1})
    assert len(out["patterns"]) == 1 and out["truncated"] is True and out["total_patterns"] == 3
    out = call_tool(world, "log_patterns", {"pivot": ONSET.isoformat(), "level": "ERROR", "before_minutes": 5})
    assert [p["level"] for p in out["patterns"]] == ["ERROR"]
    with pytest.raises(ToolError) as err:
        call_tool(world, "log_patterns", {"pivot": ONSET.isoformat(), "service": "nope"})
    assert err.value.status == 404
    with pytest.raises(ToolError) as err:
        call_tool(world, "log_patterns", {"pivot": "2026-03-02T08:12:00"})
    assert err.value.field == "pivot"


def test_masking_collapses_variable_tokens() -> None:
    assert mask_message("job 1234 took 5.5ms from 10.0.0.1:443") == "job <NUM> took <NUM>ms from <IP>:<NUM>"
    assert mask_message("req 3f2a9c1b-1d2e-4f5a-9b8c-7d6e5f4a3b2c at 2026-03-02T08:00:00Z") == "req <ID> at <TS>"
    assert mask_message("span deadbeef42 and 0x1f") == "span <ID> and <ID>"
    assert mask_message("v2 handler retried -3 times") == "v2 handler retried <NUM> times"


def test_mine_patterns_caps_lines() -> None:
    rows = [(i, "api", "INFO", f"tick {i}") for i in range(100)]
    patterns, before, after, capped = mine_patterns(rows, pivot_us=50, max_lines=80)
    assert capped and before == 50 and after == 30
    assert len(patterns) == 1 and patterns[0].template == "tick <NUM>"


def test_store_reopens_existing_file(tmp_path: Path) -> None:
    a = LogStore(tmp_path / "logs.sqlite3")
    a.ingest([LogLine(START, "api", "INFO", "kept")])
    a.close()
    b = LogStore(tmp_path / "logs.sqlite3")
    lines, total, _ = b.search(since=START, until=START + timedelta(seconds=1))
    assert total == 1 and lines[0].message == "kept"
    b.close()


def test_count_is_a_lower_bound_beyond_the_scan_cap(world: ToolContext) -> None:
    store = get_log_store(world)
    end = START + timedelta(hours=1)
    lines, total, exact = store.search(since=START, until=end, text="smtp timeout", limit=10)
    assert (total, exact) == (198, True)
    lines, total, exact = store.search(since=START, until=end, text="smtp timeout", limit=10, scan_cap=100)
    assert exact is False and 10 <= total <= 100 and len(lines) == 10
    lines, total, exact = store.search(since=START, until=end, limit=10, scan_cap=100)
    assert (total, exact) == (100, False)
    out = call_tool(world, "search_logs", {"service": "api", "limit": 1})
    assert out["total_exact"] is True and out["truncated"] is True


def test_threads_share_one_store(world: ToolContext) -> None:
    """The server's request threads and its worker thread use one context: one connection per thread."""
    from concurrent.futures import ThreadPoolExecutor

    def search(i: int) -> int:
        return int(call_tool(world, "search_logs", {"service": "api", "since": START.isoformat(), "limit": 1})["total"])

    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(search, i) for i in range(16)]
        get_log_store(world).ingest(LogLine(START, "api", "INFO", f"late {i}") for i in range(100))
        totals = [f.result() for f in futures]
    assert all(t in range(270, 371) for t in totals)
    assert search(0) == 370
