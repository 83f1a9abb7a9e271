"""Plausible values for `{name}` placeholders in log templates, chosen by the placeholder's name.

Generated a column at a time with numpy (tens of thousands of lines in milliseconds) and fully
determined by the generator passed in, so the same seed always gives the same lines.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence

import numpy as np

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")

Rng = np.random.Generator
Column = Callable[[Rng, int], list[str]]

_TABLES = ["orders", "users", "payments", "sessions", "invoices", "carts", "accounts", "events", "shipments"]
_PATHS = ["/v1/orders", "/v1/users/me", "/v1/cart", "/v1/search", "/v1/checkout", "/healthz", "/v1/invoices"]
_REGIONS = ["eu-west-1", "eu-central-1", "us-east-1", "us-west-2"]
_QUEUES = ["default", "emails", "webhooks", "exports", "billing"]
_NAMES = ["alice", "bob", "chen", "dmitri", "emma", "farah", "gus", "hana", "ivan", "julia"]
_METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]


def stream_rng(seed: int, *parts: object) -> Rng:
    """An independent, reproducible generator per (seed, stream name): adding a stream never shifts others."""
    key = zlib.crc32("\x1f".join(str(p) for p in parts).encode())
    return np.random.default_rng([seed & 0xFFFFFFFF, key])


def _ints(lo: int, hi: int) -> Column:
    return lambda rng, n: rng.integers(lo, hi, n).astype(str).tolist()


def _prefixed(prefix: str, lo: int, hi: int) -> Column:
    return lambda rng, n: [f"{prefix}{v}" for v in rng.integers(lo, hi, n).tolist()]


def _hex(width: int, prefix: str = "") -> Column:
    """Random hex of `width` digits, built from 8-digit chunks (int64 cannot hold 16 hex digits)."""
    chunks = (width + 7) // 8

    def column(rng: Rng, n: int) -> list[str]:
        parts = rng.integers(0, 2**32, (n, chunks), dtype=np.int64).tolist()
        return [prefix + "".join(f"{c:08x}" for c in row)[:width] for row in parts]

    return column


def _choice(options: Sequence[str]) -> Column:
    arr = np.array(options)
    return lambda rng, n: arr[rng.integers(0, len(arr), n)].tolist()


def _ms(rng: Rng, n: int) -> list[str]:
    return np.maximum(1, rng.lognormal(np.log(80.0), 0.6, n)).astype(np.int64).astype(str).tolist()


def _seconds(rng: Rng, n: int) -> list[str]:
    return [f"{v:.2f}" for v in rng.lognormal(np.log(1.5), 0.5, n).tolist()]


def _ip(rng: Rng, n: int) -> list[str]:
    octets = rng.integers(1, 255, (n, 3)).tolist()
    return [f"10.{a}.{b}.{c}" for a, b, c in octets]


def _email(rng: Rng, n: int) -> list[str]:
    return [f"{name}{num}@example.com" for name, num in
            zip(_choice(_NAMES)(rng, n), rng.integers(1, 999, n).tolist(), strict=True)]


def _pct(rng: Rng, n: int) -> list[str]:
    return [f"{v:.1f}" for v in rng.uniform(0, 100, n).tolist()]


def _version(rng: Rng, n: int) -> list[str]:
    parts = rng.integers(0, 20, (n, 3)).tolist()
    return [f"{a % 5 + 1}.{b}.{c}" for a, b, c in parts]


# Exact names first, then suffix rules, then a random token.
_BY_NAME: dict[str, Column] = {
    "ms": _ms, "latency": _ms, "latency_ms": _ms, "duration_ms": _ms, "elapsed": _ms, "elapsed_ms": _ms,
    "took": _ms, "timeout_ms": _ints(1000, 30000),
    "s": _seconds, "sec": _seconds, "seconds": _seconds, "duration": _seconds,
    "n": _ints(1, 200), "count": _ints(1, 500), "num": _ints(1, 200), "items": _ints(1, 40),
    "rows": _ints(1, 5000), "hits": _ints(0, 300), "queued": _ints(1, 900), "size": _ints(1, 1000),
    "lines": _ints(1, 40), "pending": _ints(0, 400), "depth": _ints(0, 2000), "lag": _ints(0, 5000),
    "attempt": _ints(1, 12), "retry": _ints(1, 12), "try": _ints(1, 12), "retries": _ints(0, 12),
    "id": _hex(8), "request_id": _hex(16), "req": _hex(16), "trace_id": _hex(32), "span_id": _hex(16),
    "uuid": _hex(32), "event_id": _hex(32), "txn": _hex(12, "txn_"), "session": _hex(12),
    "job": _prefixed("job-", 100000, 999999), "job_id": _prefixed("job-", 100000, 999999),
    "batch": _ints(1000, 99999), "order": _prefixed("ord-", 100000, 999999),
    "order_id": _prefixed("ord-", 100000, 999999), "cart": _hex(10), "cart_id": _hex(10),
    "user": _prefixed("u", 10000, 99999), "user_id": _prefixed("u", 10000, 99999),
    "customer": _prefixed("cus_", 10000, 99999), "account": _prefixed("acct-", 1000, 9999),
    "tenant": _prefixed("tenant-", 100, 999), "client": _prefixed("client-", 1000, 9999),
    "client_id": _prefixed("client-", 1000, 9999), "campaign": _prefixed("cmp-", 1000, 9999),
    "email": _email, "ip": _ip, "client_ip": _ip, "remote_addr": _ip, "addr": _ip,
    "host": _prefixed("node-", 1, 64), "hostname": _prefixed("node-", 1, 64), "node": _prefixed("node-", 1, 64),
    "pod": _hex(5, "pod-"), "worker": _ints(1, 32), "thread": _ints(1, 64), "pid": _ints(1000, 65000),
    "port": _ints(1024, 65535), "partition": _ints(0, 32), "shard": _ints(0, 16), "offset": _ints(0, 10**7),
    "table": _choice(_TABLES), "queue": _choice(_QUEUES), "topic": _choice(_QUEUES),
    "path": _choice(_PATHS), "route": _choice(_PATHS), "url": _choice(_PATHS), "endpoint": _choice(_PATHS),
    "method": _choice(_METHODS), "status": _choice(["200", "200", "200", "201", "204", "304"]),
    "code": _choice(["200", "200", "201", "204"]), "region": _choice(_REGIONS), "zone": _choice(_REGIONS),
    "name": _choice(_NAMES), "author": _choice(_NAMES), "version": _version,
    "bytes": _ints(200, 5_000_000), "kb": _ints(1, 5000), "mb": _ints(1, 2048), "gb": _ints(1, 500),
    "pct": _pct, "percent": _pct, "ratio": lambda rng, n: [f"{v:.3f}" for v in rng.uniform(0, 1, n).tolist()],
    "amount": lambda rng, n: [f"{v:.2f}" for v in rng.lognormal(np.log(40), 0.8, n).tolist()],
    "currency": _choice(["EUR", "USD", "GBP"]), "sku": _prefixed("SKU-", 10000, 99999),
    "file": _choice(["app.log", "export.csv", "report.pdf", "dump.sql"]),
    "key": _hex(12, "k_"), "token": _hex(6, "tok_"),
}
_SUFFIX: tuple[tuple[str, Column], ...] = (
    ("_ms", _ms), ("_id", _hex(10)), ("_count", _ints(1, 500)), ("_bytes", _ints(200, 5_000_000)),
    ("_pct", _pct), ("_ip", _ip), ("_host", _prefixed("node-", 1, 64)), ("_seconds", _seconds),
)


def column_for(name: str) -> Column:
    """The value generator for one placeholder name; unknown names get a random token."""
    key = name.lower()
    if key in _BY_NAME:
        return _BY_NAME[key]
    for suffix, col in _SUFFIX:
        if key.endswith(suffix):
            return col
    return _hex(8)


def split_template(text: str) -> tuple[list[str], list[str]]:
    """`"a {x} b"` -> (["a ", " b"], ["x"]): literal parts around the placeholder names."""
    literals: list[str] = []
    names: list[str] = []
    pos = 0
    for m in PLACEHOLDER.finditer(text):
        literals.append(text[pos:m.start()])
        names.append(m.group(1))
        pos = m.end()
    literals.append(text[pos:])
    return literals, names


def fill(rng: Rng, text: str, n: int) -> list[str]:
    """`n` renderings of one template, each placeholder filled independently."""
    literals, names = split_template(text)
    if not names:
        return [text] * n
    columns = [column_for(name)(rng, n) for name in names]
    out = [literals[0]] * n
    for lit, col in zip(literals[1:], columns, strict=True):
        out = [a + b + lit for a, b in zip(out, col, strict=True)]
    return out
