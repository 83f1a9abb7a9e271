"""Words and patterns that read meaning into tool text: what a log line names (a host, a table, a
traffic source, a resource at its limit, a failing dependency). Plain data and small pure functions,
shared by the suspect generators and the features; nothing here scores anything."""

from __future__ import annotations

import re

BAD_LEVELS = {"ERROR": 1.0, "FATAL": 1.2, "CRITICAL": 1.2, "PANIC": 1.2, "WARN": 0.35, "WARNING": 0.35}
ALERT_WEIGHT = {"critical": 1.0, "error": 0.8, "high": 0.8, "warning": 0.45, "info": 0.15}
_STOP = (
    "the a an of in on at to for from by with and or not no is are was were be been after before "
    "than then this that into over under per ms error errors warn warning info failed failure "
    "request requests call calls new old http https get post put delete true false none null"
)
STOPWORDS = frozenset(_STOP.split())
# Revenue and sign-in paths: a noticeable failure there is critical.
CRITICAL_SERVICE_WORDS = ("checkout", "payment", "login", "auth", "cart", "order", "billing", "signup")
TRAFFIC_LABELS = (
    "client",
    "client_id",
    "campaign",
    "tenant",
    "customer",
    "partner",
    "account",
    "api_key",
    "source",
    "caller",
    "user_agent",
    "app",
    "consumer",
    "sender",
    "origin",
    "integration",
    "org",
    "organization",
    "merchant",
    "requester",
    "producer",
    "publisher",
    "subscriber",
)
# A key naming who sends requests (`client_id=`, `api_key_owner=`, `source=`, `tenant:`) and its value.
TRAFFIC_RE = re.compile(
    r"(?<![a-z])((?:[a-z]+_)?(?:client|campaign|tenant|customer|partner|account|api[_-]?key|consumer|caller|"
    r"app[_-]?id|user[_-]?agent|sender|origin|source|integration|org(?:ani[sz]ation)?|merchant|requester|"
    r"producer|publisher|subscriber)(?:[_ -]?(?:id|name|owner|key))?)\s*[=:]\s*[\"']?([A-Za-z0-9][\w.\-/]*[A-Za-z0-9])",
    re.IGNORECASE,
)
# Values after such a key that name no sender (`client: upstream unavailable`).
GENERIC_SOURCES = frozenset(
    [
        "upstream",
        "downstream",
        "unknown",
        "none",
        "null",
        "error",
        "errors",
        "timeout",
        "timed",
        "closed",
        "request",
        "requests",
        "internal",
    ]
)
THROTTLE_WORDS = ("rate limit", "ratelimit", "throttl", "quota", "too many requests", "429", "limit exceeded")
_HOST_RE = re.compile(r"\b((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z][a-z0-9-]*[a-z])\b", re.IGNORECASE)
# (pattern, how sure the match is a table name)
_TABLE_RES = (
    (re.compile(r"\btable\s+[\"'`]?([A-Za-z_][\w.]*)", re.IGNORECASE), 1.0),
    (re.compile(r"\brelation\s+[\"'`]?([A-Za-z_][\w.]*)", re.IGNORECASE), 1.0),
    (re.compile(r"\b(?:dataset|data set|collection)\s+[\"'`]?([A-Za-z_][\w.\-]*)", re.IGNORECASE), 1.0),
    (re.compile(r"[\"'`]?([A-Za-z_][\w.]*)[\"'`]?\s+table\b", re.IGNORECASE), 0.6),
    (re.compile(r"\b(?:rows?|records?)\s+(?:in|of|from)\s+[\"'`]?([A-Za-z_][\w.]*)", re.IGNORECASE), 0.8),
    # a bare name closing a clause (`... for SKU-1 in prices, refusing order`): weak on its own
    (re.compile(r"\b(?:in|from|into)\s+([a-z][a-z0-9_]{2,})(?=\s*[,;:)]|\s*$)"), 0.5),
)
CERT_WORDS = (
    "certificate",
    "x509",
    "tls handshake",
    "ssl",
    "cert ",
    "certificate_verify_failed",
    "pkix",
    "notafter",
    "handshake failure",
    "cert expired",
    "unknown authority",
)
DATA_DAMAGE_WORDS = (
    " null",
    "zero",
    " 0.00",
    "duplicate key",
    "corrupt",
    "checksum",
    "integrity",
    "inconsistent",
    "constraint",
)
WEAK_DAMAGE_WORDS = ("missing", "mismatch", "negative", "wrong", "invalid", "stale", "orphan", "truncated")
# Impossible values a reader trips over (whole words: `nan` must not match `tenant`).
BAD_VALUE_RE = re.compile(
    r"\b(?:nan|not a number|infinity|inf|invalid value|out of range|non-numeric|unparseable|bad value|"
    r"empty value|divide by zero|division by zero|"
    r"negative (?:total|amount|price|balance|quantity|stock|count|sum|rate|weight))\b",
    re.IGNORECASE,
)


def damage_strength(text: str) -> int:
    """2: the text reports damaged or impossible values (constraint, corrupt, NaN, zero); 1: a weaker
    hint (missing, mismatch, invalid); 0: nothing about data."""
    low = f" {text.lower()}"
    if any(w in low for w in DATA_DAMAGE_WORDS + DATA_WORDS) or BAD_VALUE_RE.search(text):
        return 2
    return 1 if any(w in low for w in WEAK_DAMAGE_WORDS) else 0


CHANGE_WRITES_DATA = (
    "migration",
    "backfill",
    "import",
    "cleanup",
    "purge",
    "delete",
    "truncate",
    "script",
    "restore",
    "reindex",
    "rewrite",
    "bulk",
    "batch update",
    "data fix",
)
_SNAKE_RE = re.compile(r"\b(?:in|into|from|on|table|relation)\s+[\"'`]?([a-z][a-z0-9]*_[a-z0-9_]+)\b")
DATA_WORDS = (
    "corrupt",
    "checksum",
    "constraint",
    "duplicate key",
    "violat",
    "null value",
    "invalid row",
    "malformed",
    "inconsistent",
    "integrity",
    "deserializ",
    "missing rows",
    "foreign key",
    "unexpected null",
    "bad record",
    "truncated",
)
RESOURCE_LOG_WORDS: dict[str, tuple[str, ...]] = {
    "memory": ("out of memory", "oom", "memoryerror", "cannot allocate memory", "heap space", "oomkilled"),
    "disk": ("no space left", "disk full", "disk quota", "enospc"),
    "file-descriptors": ("too many open files", "file descriptor"),
    "connections": (
        "too many connections",
        "connection pool exhausted",
        "remaining connection slots",
        "pool exhausted",
        "could not obtain connection",
        "max_connections",
    ),
    "threads": (
        "thread pool exhausted",
        "thread pool",
        "no threads available",
        "threadpool",
        "native thread",
        "rejected execution",
    ),
    "cpu": ("cpu throttl", "cpu saturat"),
}
RESOURCE_METRIC_WORDS: dict[str, tuple[str, ...]] = {
    "memory": ("memory", "rss", "heap", "resident"),
    "disk": ("disk", "filesystem", "volume", "fs_"),
    "file-descriptors": ("fds", "file_descriptor", "open_files"),
    "connections": ("connection",),
    "threads": ("thread",),
    "cpu": ("cpu",),
}
DEPENDENCY_FAIL_WORDS = (
    "429",
    "too many requests",
    "throttl",
    "rate limit",
    "quota",
    "timed out",
    "timeout",
    "refused",
    "unreachable",
    "unavailable",
    "503",
    "502",
    "504",
    "reset by peer",
    "circuit",
    "failed to connect",
    "connection error",
    "no route",
    "dns",
    "bad gateway",
    "upstream",
)


# ----------------------------------------------------------------------------------------------
# Parsing helpers


def extract_hosts(text: str) -> list[str]:
    hosts = []
    for m in _HOST_RE.finditer(text):
        h = m.group(1).lower().strip(".")
        if re.fullmatch(r"[\d.]+", h) or h.count(".") < 1:
            continue
        tld = h.rsplit(".", 1)[-1]
        if tld in ("py", "go", "js", "java", "rb", "ts", "log", "json", "yaml", "txt", "html", "php"):
            continue
        hosts.append(h)
    return hosts


# A bare snake_case identifier standing on its own (`(ledger_rows rate=0)`, `ledger_rows: 3 rows ...`):
# not a key (`x_id=`), a call (`f_x(`), a dotted path (`mod.f_x`) or an attribute.
_BARE_SNAKE_RE = re.compile(r"(?<![\w.=/<>\[-])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![\w(=\[<>.-]|\.\w)")
# Suffixes of fields, units and metric names, not of tables.
_FIELD_SUFFIXES = (
    "_id",
    "_ids",
    "_ms",
    "_us",
    "_ns",
    "_s",
    "_sec",
    "_seconds",
    "_total",
    "_count",
    "_ratio",
    "_bytes",
    "_at",
    "_ts",
    "_time",
    "_per_second",
    "_per_minute",
    "_rate",
    "_pct",
    "_percent",
    "_key",
    "_url",
    "_name",
    "_type",
    "_size",
    "_len",
    "_version",
    "_code",
    "_status",
    "_level",
    "_flag",
)
BARE_TABLE_SURE = 0.5


def tables_in(text: str) -> list[tuple[str, float]]:
    """Table names a log line points at: explicit (`table invoices`, `relation "x"`), snake_case after
    in/from (0.7), or, only in a line reporting impossible values, a bare snake_case name (0.5): the
    thing holding the bad values is usually named next to them."""
    out: list[tuple[str, float]] = []
    for rx, sure in _TABLE_RES:
        for m in rx.finditer(text):
            name = m.group(1).strip(".")
            if "<" not in name and name.lower() not in STOPWORDS and not name.isdigit():
                out.append((name, sure))
    for m in _SNAKE_RE.finditer(text):
        out.append((m.group(1), 0.7))
    if damage_strength(text) == 2:
        seen = {n for n, _ in out}
        for m in _BARE_SNAKE_RE.finditer(text):
            name = m.group(1)
            if name not in seen and not name.endswith(_FIELD_SUFFIXES):
                seen.add(name)
                out.append((name, BARE_TABLE_SURE))
    return out


def traffic_sources(text: str) -> list[str]:
    """Values that name who sends requests (client ids, campaigns, tenants, API keys) in one line."""
    return [v for _, v in traffic_pairs(text)]


def traffic_pairs(text: str) -> list[tuple[str, str]]:
    """(key, value) pairs such as ("client_id", "client-1234") or ("campaign", "winter-promo")."""
    out = []
    for m in TRAFFIC_RE.finditer(text):
        val = m.group(2)
        masked = "<" in text[m.end(2) : m.end(2) + 2]  # `client-<NUM>`: a template, not a value
        if masked or "<" in val or val.lower() in STOPWORDS or val.isdigit() or len(val) < 3:
            continue
        out.append((m.group(1).lower(), val))
    return out


def varies_per_line(template: str, key: str) -> bool:
    """True when the masker replaced the value after `key` by an id placeholder (`tenant=<ID>`): ids,
    hashes and addresses are per-request tokens, so the example's value is one random line, not a source
    dominating the load. Drain's own `<*>` only says values differ, and is left to the line counts."""
    rx = rf"(?<![a-z]){re.escape(key)}\s*[=:]\s*[\"']?<(?!\*>)[A-Z]+>"
    return re.search(rx, template, re.IGNORECASE) is not None


def own_demand(key: str) -> bool:
    """Campaigns (and launches) are our own customers arriving: scale for them, do not block them."""
    return "campaign" in key or key in ("promotion", "promo", "launch")


_WRITE_REJECT_WORDS = ("duplicate key", "violates", "unique constraint", "foreign key", "constraint")
_READ_DAMAGE_WORDS = ("corrupt", "checksum", "null", "zero", "0.00", "malformed", "truncated", "inconsistent")


def write_rejected(text: str) -> bool:
    """A constraint refusing a write protects the table: the writer misbehaves, the data is fine
    (unless the line also reports values already damaged)."""
    low = text.lower()
    return any(w in low for w in _WRITE_REJECT_WORDS) and not (
        any(w in low for w in _READ_DAMAGE_WORDS) or BAD_VALUE_RE.search(text)
    )
