"""Benchmark of the trace store and tools against issue 16's target; prints figures.

    python scripts/bench_traces.py                    # 1,000,000 spans in a one-hour window
    python scripts/bench_traces.py --spans 200000     # quicker

Target: `latency_breakdown` over 1,000,000 spans in the window <= 500 ms. Also printed: ingest rate
(spans/s, through `TraceStore.add_spans` with SpanRecords, and through the integer fast path
`add_rows` that OTLP intake uses), the other trace tools' times, and whether the injected fault
(the database's own time grows after the pivot) comes out on top.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from firebreak.clock import FixedClock  # noqa: E402
from firebreak.context import ToolContext  # noqa: E402
from firebreak.settings import Settings  # noqa: E402
from firebreak.tools.registry import call_tool  # noqa: E402
from firebreak.tools.trace_store import SpanRow, trace_store  # noqa: E402

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
WINDOW_S = 3600
# (service, operation, parent index or -1, own time ms): one Sock Shop-like request of 8 spans.
TREE = [
    ("front-end", "GET /cart", -1, 4),
    ("orders", "GET /orders", 0, 3),
    ("orders-db", "find", 1, 2),
    ("carts", "GET /carts/{id}", 0, 3),
    ("carts-db", "find", 3, 5),
    ("catalogue", "GET /catalogue", 0, 2),
    ("catalogue-db", "SELECT", 5, 3),
    ("user", "GET /customers/{id}", 0, 2),
]
FAULTY = 4  # carts-db: its own time grows by 40 ms after the pivot
KIDS: dict[int, list[int]] = {}
for _i, _node in enumerate(TREE):
    KIDS.setdefault(_node[2], []).append(_i)


def _place(i: int, at: int, own: list[int], starts: list[int], ends: list[int]) -> int:
    """Lay span i out from `at`: half its own time, its children one after another, the other half."""
    starts[i] = at
    cursor = at + own[i] // 2
    for k in KIDS.get(i, []):
        cursor = _place(k, cursor, own, starts, ends)
    ends[i] = cursor + own[i] - own[i] // 2
    return ends[i]


def trace_rows(n_spans: int, seed: int = 7, window_s: int = WINDOW_S, operations: int = 1) -> Iterator[SpanRow]:
    """Whole traces spread over the hour, children written before parents (as SDK batches send them)."""
    rng = random.Random(seed)
    n_traces = n_spans // len(TREE)
    base = int(START.timestamp() * 1_000_000)
    step = window_s * 1_000_000 // n_traces
    pivot = base + window_s * 1_000_000 // 2
    for t in range(n_traces):
        t0 = base + t * step
        trace_id = f"{t:032x}"
        starts: list[int] = [0] * len(TREE)
        ends: list[int] = [0] * len(TREE)
        # Sequential children; a span's end = start + own time + its children's time.
        own = [int(ms * 1000 * (0.8 + 0.4 * rng.random())) for _, _, _, ms in TREE]
        if t0 >= pivot:
            own[FAULTY] += 40_000
        _place(0, t0, own, starts, ends)
        err = t0 >= pivot and rng.random() < 0.05
        for i in reversed(range(len(TREE))):
            service, op, parent, _ = TREE[i]
            if operations > 1:  # many routes per service: more rollup rows per bucket
                op = f"{op} #{t % operations}"
            status = 2 if err and i in (FAULTY, 3) else 1
            yield (
                trace_id,
                f"{i + 1:016x}",
                f"{parent + 1:016x}" if parent >= 0 else None,
                service,
                op,
                starts[i],
                ends[i],
                status,
                None,
            )


def timed(fn: object, repeat: int = 5) -> tuple[float, object]:
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spans", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=512, help="spans per add_rows call (an SDK export batch)")
    ap.add_argument("--hours", type=float, default=1.0, help="window the spans are spread over")
    ap.add_argument("--operations", type=int, default=1, help="distinct operations per service")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        window_s = int(args.hours * 3600)
        now = START + timedelta(seconds=window_s)
        ctx = ToolContext(settings=Settings(data_dir=Path(tmp)), clock=FixedClock(now))
        store = trace_store(ctx)
        rows = list(trace_rows(args.spans, window_s=window_s, operations=args.operations))
        t = time.perf_counter()
        added = 0
        for i in range(0, len(rows), args.batch):
            added += store.add_rows(rows[i : i + args.batch])
        ingest = time.perf_counter() - t
        print(f"ingest: {added:,} spans in {ingest:.1f} s = {added / ingest:,.0f} spans/s (batches of {args.batch})")
        (rollup_rows,) = store._conn().execute("SELECT COUNT(*) FROM span_rollup").fetchone()
        print(f"window {args.hours:g} h, {args.operations} operation(s) per service: {rollup_rows:,} rollup rows")
        window = {"since": START.isoformat(), "until": now.isoformat()}
        pivot = (START + timedelta(seconds=window_s / 2)).isoformat()
        dt, out = timed(lambda: call_tool(ctx, "latency_breakdown", {**window, "pivot": pivot}))
        top = out["services"][0]  # type: ignore[index]
        spans_in = sum(s["before"]["requests"] + s["after"]["requests"] for s in out["services"])  # type: ignore[index]
        print(
            f"latency_breakdown: {dt * 1000:.0f} ms (median of 5) over {added:,} spans "
            f"({spans_in:,} entry spans); top: {top['service']} {top['shift']} "
            f"self +{top['self_delta_ms']:.1f} ms/request; target <= 500 ms"
        )
        odd = (START + timedelta(seconds=window_s / 2 + 0.37)).isoformat()
        dt, _ = timed(
            lambda: call_tool(
                ctx,
                "latency_breakdown",
                {
                    "since": (START + timedelta(seconds=13.5)).isoformat(),
                    "until": (now - timedelta(seconds=17.2)).isoformat(),
                    "pivot": odd,
                },
            )
        )
        print(f"latency_breakdown, unaligned window and pivot: {dt * 1000:.0f} ms")
        dt, out = timed(lambda: call_tool(ctx, "service_map", window))
        print(f"service_map: {dt * 1000:.0f} ms, {len(out['edges'])} edges")  # type: ignore[index]
        dt, out = timed(lambda: call_tool(ctx, "trace_errors", {"since": pivot, "until": now.isoformat()}))
        print(f"trace_errors: {dt * 1000:.0f} ms, {out['total_groups']} groups")  # type: ignore[index]
        dt, out = timed(lambda: call_tool(ctx, "sample_traces", {**window, "status": "error", "limit": 3}))
        print(f"sample_traces: {dt * 1000:.0f} ms, {len(out['traces'])} traces")  # type: ignore[index]
        ctx.close()


if __name__ == "__main__":
    main()
