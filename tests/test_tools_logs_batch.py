"""The log store redacts a batch at a time: what is stored equals redacting each line, over chunk edges."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from firebreak.context import ToolContext
from firebreak.redact import redact_obj, redact_text
from firebreak.tools import log_store
from firebreak.tools.log_store import LogLine, get_log_store
from tests.security_corpus import CORPUS, leaks

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
EPOCH, FAR = datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)


def _stored(ctx: ToolContext) -> list[tuple[int, str, str, str, str | None]]:
    conn = get_log_store(ctx)._conn()
    return conn.execute("SELECT ts, service, level, message, attributes FROM log_lines ORDER BY id").fetchall()


def test_stored_lines_equal_redacting_each(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_store, "REDACT_CHUNK", 7)  # many chunk edges in a small batch
    texts = [text for _, text, _ in CORPUS] + [f"sent batch {i} in {i} ms" for i in range(20)]
    lines = [
        LogLine(START + timedelta(seconds=i), "mailer", "warning", text,
                {"db.password": "hunter2", "note": text, "n": i} if i % 3 else {})
        for i, text in enumerate(texts)
    ]
    assert get_log_store(ctx).ingest(lines, batch_size=10) == len(lines)
    rows = _stored(ctx)
    assert [r[3] for r in rows] == [redact_text(t) for t in texts]
    for line, row in zip(lines, rows, strict=True):
        assert row[2] == "WARN"
        assert (json.loads(row[4]) if row[4] else {}) == redact_obj(line.attributes)
    assert leaks("\n".join(f"{r[3]} {r[4]}" for r in rows)) == []
    assert all("hunter2" not in (r[4] or "") for r in rows)


def test_ingest_rows_redacts_in_chunks(ctx: ToolContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_store, "REDACT_CHUNK", 5)
    texts = [text for _, text, _ in CORPUS[:12]] + ["plain"] * 3
    us = int(START.timestamp() * 1_000_000)
    n = get_log_store(ctx).ingest_rows((us + i, "api", "err", t) for i, t in enumerate(texts))
    assert n == len(texts)
    rows = _stored(ctx)
    assert [r[3] for r in rows] == [redact_text(t) for t in texts]
    assert {r[2] for r in rows} == {"ERROR"}


def test_a_bad_line_stops_the_ingest_with_a_clear_error(ctx: ToolContext) -> None:
    lines = [LogLine(START, "api", "INFO", "ok"), LogLine(START, "", "INFO", "no service")]
    with pytest.raises(ValueError, match="service"):
        get_log_store(ctx).ingest(lines)
    assert _stored(ctx) == []  # one batch: nothing of it is written
