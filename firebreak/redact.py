"""Secret redaction applied to every tool output before a model, an API caller or a transcript sees it.

Each secret shape is replaced by a marker naming its kind (`[REDACTED:jwt]`) so a reader still knows
*what* was there. The patterns are deliberately specific: versions (4.6.2), hex fingerprints, UUIDs,
IPs and timestamps are evidence and must survive, so there is no generic "high-entropy string" rule.
All regexes are compiled once at import; `redact_text` is a handful of C-level scans per string.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_plus

MARK = "[REDACTED:{}]"


def _m(kind: str) -> str:
    return MARK.format(kind)


# A value that has already been replaced is never matched again (idempotence).
_NOT_DONE = r"(?![\"']?\[REDACTED:)"

# (kind, pattern, replacement). A replacement string may use \g<name> to keep context
# (the header name, the URL scheme, the user name) and only hide the secret itself.
_AWS_PREFIX = r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)"

_Rule = tuple[str, re.Pattern[str], str | Callable[[re.Match[str]], str]]

_RULES: list[_Rule] = [
    # Private keys (PEM, OpenSSH, PGP), also inside JSON strings with literal "\n".
    (
        "private_key",
        re.compile(
            r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\]*)"
        ),
        _m("private_key"),
    ),
    # JSON Web Tokens: header.payload.signature, header and payload are base64url JSON ("eyJ").
    (
        "jwt",
        re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}"),
        _m("jwt"),
    ),
    # Passwords in URLs: scheme://user:password@host -> the user name stays (it is evidence).
    (
        "url_password",
        re.compile(
            r"(?P<pre>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s/:@\"'<>\[\]]*:)" + _NOT_DONE + r"[^\s/@\"'<>]+(?=@)"
        ),
        r"\g<pre>" + _m("url_password"),
    ),
    # Sentry DSN (the public key is the URL user, no password).
    (
        "sentry_dsn",
        re.compile(r"(?P<pre>\bhttps?://)[0-9a-f]{32}(?::[0-9a-f]{32})?(?=@)"),
        r"\g<pre>" + _m("sentry_dsn"),
    ),
    ("slack_webhook", re.compile(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]+"),
     _m("slack_webhook")),
    ("discord_webhook", re.compile(r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[A-Za-z0-9_-]+"),
     _m("discord_webhook")),
    # Vendor API keys with a recognisable prefix.
    ("anthropic_key", re.compile(r"\bsk-ant-[a-z0-9]{2,8}-[A-Za-z0-9_-]{20,}"), _m("anthropic_key")),
    (
        "openai_key",
        re.compile(r"\bsk-(?:proj-|svcacct-|admin-|None-)?(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])"
                   r"[A-Za-z0-9_-]{20,}"),
        _m("openai_key"),
    ),
    ("stripe_key", re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"), _m("stripe_key")),
    ("stripe_webhook_secret", re.compile(r"\bwhsec_[A-Za-z0-9+/=]{20,}"), _m("stripe_webhook_secret")),
    ("slack_token", re.compile(r"\bxox[abposrec]-(?:\d+-)*[A-Za-z0-9-]{10,}"), _m("slack_token")),
    ("slack_app_token", re.compile(r"\bxapp-\d-[A-Z0-9]+-\d+-[a-f0-9]{20,}"), _m("slack_app_token")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
     _m("github_token")),
    ("gitlab_token", re.compile(r"\bgl(?:pat|dt|rt|ptt|cbt|oas)-[A-Za-z0-9_-]{20,}"), _m("gitlab_token")),
    ("aws_access_key", re.compile(r"\b" + _AWS_PREFIX + r"[A-Z0-9]{16}\b"), _m("aws_access_key")),
    (
        "aws_secret_key",
        re.compile(
            r"(?i)(?P<pre>\baws_?secret(?:_?access)?_?key[\"']?\s*[:=]\s*[\"']?)" + _NOT_DONE
            + r"[A-Za-z0-9/+=]{40}(?![A-Za-z0-9/+=])"
        ),
        r"\g<pre>" + _m("aws_secret_key"),
    ),
    ("gcp_api_key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), _m("gcp_api_key")),
    ("gcp_oauth_token", re.compile(r"\bya29\.[0-9A-Za-z_-]{20,}"), _m("gcp_oauth_token")),
    (
        "azure_storage_key",
        re.compile(r"(?i)(?P<pre>\bAccountKey=)" + _NOT_DONE + r"[A-Za-z0-9+/]{40,}={0,2}"),
        r"\g<pre>" + _m("azure_storage_key"),
    ),
    (
        "azure_sas",
        re.compile(r"(?P<pre>[?&;]sig=)" + _NOT_DONE + r"[A-Za-z0-9%+/=]{16,}"),
        r"\g<pre>" + _m("azure_sas"),
    ),
    ("azure_client_secret", re.compile(r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.-]{3}\dQ~[A-Za-z0-9_~.-]{31,34}"),
     _m("azure_client_secret")),
    ("sendgrid_key", re.compile(r"\bSG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}"), _m("sendgrid_key")),
    ("twilio_key", re.compile(r"\bSK[0-9a-f]{32}\b"), _m("twilio_key")),
    ("mailgun_key", re.compile(r"\bkey-[0-9a-zA-Z]{32}\b"), _m("mailgun_key")),
    ("npm_token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"), _m("npm_token")),
    ("pypi_token", re.compile(r"\bpypi-AgE[A-Za-z0-9_-]{50,}"), _m("pypi_token")),
    ("huggingface_token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"), _m("huggingface_token")),
    ("shopify_token", re.compile(r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"), _m("shopify_token")),
    ("digitalocean_token", re.compile(r"\bdo[poa]_v1_[a-f0-9]{64}\b"), _m("digitalocean_token")),
    ("sentry_token", re.compile(r"\bsntry[su]_[A-Za-z0-9+/=_]{30,}"), _m("sentry_token")),
    ("telegram_bot_token", re.compile(r"\b\d{8,10}:AA[A-Za-z0-9_-]{33}\b"), _m("telegram_bot_token")),
    # Authorization headers: the scheme stays, the credential goes.
    (
        "authorization",
        re.compile(
            r"(?i)(?P<pre>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest|"
            r"negotiate|apikey|sso-key|dsn)\s+)?)" + _NOT_DONE
            + r"(?!(?:bearer|basic|token|digest|negotiate|apikey|sso-key|dsn)\s)[^\s\"',;]{4,}"
        ),
        r"\g<pre>" + _m("authorization"),
    ),
    # Bearer credentials, also URL-encoded (`Bearer%20...`, `Bearer+...`). A letters-only credential is
    # taken when it is long (20+) or mixes case inside the word; "Bearer authentication failed" stays.
    (
        "bearer_token",
        re.compile(
            r"(?P<pre>\b[Bb](?i:earer)(?:\s+|%20|\+))" + _NOT_DONE
            + r"(?:(?=[A-Za-z0-9._~+/-]*[0-9._~+/-])[A-Za-z0-9._~+/-]{12,}=*"
            r"|[A-Za-z]{20,}=*|[A-Za-z][a-z]*[A-Z][A-Za-z]*(?<=[A-Za-z]{12})=*)(?![A-Za-z0-9])"
        ),
        r"\g<pre>" + _m("bearer_token"),
    ),
    (
        "cookie",
        re.compile(r"(?i)(?P<pre>\b(?:set-)?cookie[\"']?\s*:\s*[\"']?)" + _NOT_DONE + r"[^\s\"'][^\r\n\"']*"),
        r"\g<pre>" + _m("cookie"),
    ),
    # key=value / key: value pairs whose key names a secret (password=, DB_PASSWORD:, api_key=, ...):
    # handled by _redact_pairs (a scan of every key, then a check of the key), see below.
    ("secret_pair", re.compile(r"(?!)"), ""),
    (
        "email",
        re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
        _m("email"),
    ),
]

_PAIR_KINDS = (
    ("password", "password"), ("pass", "password"), ("passwd", "password"), ("pwd", "password"),
    ("passphrase", "password"),
    ("token", "token"), ("key", "api_key"), ("private_key", "private_key"), ("private-key", "private_key"),
    ("credential", "credentials"), ("session", "session"), ("secret", "secret"),
)


def _pair_kind(key: str) -> str:
    """The marker for a secret named by `key`: the keyword ending last (longest on a tie) wins."""
    low = key.lower()
    best, rank = "secret", (-1, -1)
    for word, kind in _PAIR_KINDS:
        pos = low.rfind(word)
        if pos >= 0 and (pos + len(word), len(word)) > rank:
            best, rank = kind, (pos + len(word), len(word))
    return best


_KEYWORDS = (
    r"(?:password|passwd|pwd|passphrase|secret|secret[_-]?key|token|api[_-]?key|apikey|access[_-]?key|"
    r"account[_-]?key|private[_-]?key|signing[_-]?key|client[_-]?secret|credentials?|session[_-]?id)"
)
# A key and its separator; only the key is checked, the value is matched afterwards, so a pair whose
# key is harmless (`redirect=`) never hides a secret pair inside its value (`?token=`).
# Also JSON-escaped (`\\"password\\": \\"x\\"`) and URL-encoded (`password%3Dx`, `%22pass%22%3A%22x%22`) forms:
# a key may follow an escape (`%22`, `%26`), be closed by `\\"` or `%22`, and be separated by `%3A`/`%3D`.
_PAIR = re.compile(
    r"(?:(?<=%[0-9A-Fa-f]{2})|(?<![A-Za-z0-9_.%-])(?<!%[0-9A-Fa-f]))([A-Za-z0-9_.-]+)"
    r"(?:\\?[\"']|%2[27])?(?:\s|%20)*(?:[:=]|%3[AaDd])(?:\s|%20)*"
)
_PAIR_KEY = re.compile(r"(?i)(?:" + _KEYWORDS + r"|(?:^|[_.-])pass)$")
_PAIR_VALUE = re.compile(
    r"\\\"(?:[^\"\\\r\n]|\\(?!\"))+\\\"|\"[^\"\r\n]+\"|'[^'\r\n]+'|%22(?:(?!%22)[^\s\"'])+%22"
    r"|(?:(?!%2[26Cc]|%3[Bb])[^\s,;&\"'}\])\\])+"
)
_OPENERS = ('\\"', "%22", '"', "'")
_PAIR_HINTS = ("pass", "pwd", "secret", "token", "key", "credential", "session")


def _redact_pairs(s: str) -> str:
    parts: list[str] = []
    last = 0
    for m in _PAIR.finditer(s):
        if m.start() < last or not _PAIR_KEY.search(m.group(1)):
            continue
        v = _PAIR_VALUE.match(s, m.end())
        if v is None:
            continue
        val = v.group(0)
        quote = next((q for q in _OPENERS if val.startswith(q) and val.endswith(q) and len(val) > 2 * len(q)), "")
        if val[len(quote):].startswith("[REDACTED:"):
            continue
        parts.append(s[last : m.end()])
        parts.append(f"{quote}{_m(_pair_kind(m.group(1)))}{quote}")
        last = v.end()
    if not parts:
        return s
    parts.append(s[last:])
    return "".join(parts)


# Substrings without which a rule cannot match: a C-speed `in` test spares the regex on most strings.
# (hints, match the lower-cased text, also required)
_HINTS: dict[str, tuple[tuple[str, ...], bool, str]] = {
    "private_key": (("PRIVATE KEY",), False, ""),
    "jwt": (("eyJ",), False, ""),
    "url_password": (("://",), False, "@"),
    "sentry_dsn": (("://",), False, "@"),
    "slack_webhook": (("hooks.slack.com",), False, ""),
    "discord_webhook": (("discord",), False, ""),
    "anthropic_key": (("sk-ant-",), False, ""),
    "openai_key": (("sk-",), False, ""),
    "stripe_key": (("_live_", "_test_"), False, ""),
    "stripe_webhook_secret": (("whsec_",), False, ""),
    "slack_token": (("xox",), False, ""),
    "slack_app_token": (("xapp-",), False, ""),
    "github_token": (("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), False, ""),
    "gitlab_token": (("glpat-", "gldt-", "glrt-", "glptt-", "glcbt-", "gloas-"), False, ""),
    "aws_access_key": (
        ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "APKA"), False, ""),
    "aws_secret_key": (("aws",), True, ""),
    "gcp_api_key": (("AIza",), False, ""),
    "gcp_oauth_token": (("ya29.",), False, ""),
    "azure_storage_key": (("accountkey=",), True, ""),
    "azure_sas": (("sig=",), False, ""),
    "azure_client_secret": (("Q~",), False, ""),
    "sendgrid_key": (("SG.",), False, ""),
    "twilio_key": (("SK",), False, ""),
    "mailgun_key": (("key-",), False, ""),
    "npm_token": (("npm_",), False, ""),
    "pypi_token": (("pypi-AgE",), False, ""),
    "huggingface_token": (("hf_",), False, ""),
    "shopify_token": (("shpat_", "shpca_", "shppa_", "shpss_"), False, ""),
    "digitalocean_token": (("_v1_",), False, ""),
    "sentry_token": (("sntrys_", "sntryu_"), False, ""),
    "telegram_bot_token": ((":AA",), False, ""),
    "authorization": (("authorization",), True, ""),
    "bearer_token": (("bearer",), True, ""),
    "cookie": (("cookie",), True, ""),
    "secret_pair": (_PAIR_HINTS, True, ""),
    "email": (("@",), False, ""),
}

_Step = tuple[str, re.Pattern[str], str | Callable[[re.Match[str]], str], frozenset[str], str]


def _hint_scanner(hints: set[str]) -> re.Pattern[str]:
    # Longest first; a hint hidden inside a longer one found at the same place is restored by _IMPLIES.
    return re.compile("|".join(re.escape(h) for h in sorted(hints, key=len, reverse=True)))


_CASE_HINTS = {h for hints, lower, _ in _HINTS.values() if not lower for h in hints} | {"@", "://"}
_LOWER_HINTS = {h for hints, lower, _ in _HINTS.values() if lower for h in hints}
_SCAN_CASE = _hint_scanner(_CASE_HINTS)
_SCAN_LOWER = _hint_scanner(_LOWER_HINTS)
# Hex ids, hashes, UUIDs, numbers and timestamps: no rule can match them, skip every scan.
_TRIVIAL = re.compile(r"[0-9a-fA-FTZ.:+\- ]*")
# Each found literal also stands for the shorter hints it contains ("sk-ant-" is also "sk-").
_IMPLIES: dict[str, frozenset[str]] = {
    found: frozenset(h for h in _CASE_HINTS | _LOWER_HINTS if h in found) for found in _CASE_HINTS | _LOWER_HINTS
}
_STEPS: list[_Step] = [
    (kind, pat, repl, frozenset(_HINTS[kind][0]), _HINTS[kind][2]) for kind, pat, repl in _RULES
]


def _hints_in(s: str) -> set[str]:
    found: set[str] = set()
    if _TRIVIAL.fullmatch(s):
        return found
    for h in set(_SCAN_CASE.findall(s)) | set(_SCAN_LOWER.findall(s.lower())):
        found |= _IMPLIES[h]
    return found

KINDS: tuple[str, ...] = tuple(kind for kind, _, _ in _RULES)

# Dict keys whose string value is a secret as a whole, whatever it looks like ({"password": "hunter2"}).
_SECRET_KEY = re.compile(
    r"(?i)(?:^|[^a-z0-9])?(?:password|passwd|pwd|passphrase|secret|secret[_-]?key|token|api[_-]?key|apikey|access[_-]?key|"
    r"account[_-]?key|private[_-]?key|signing[_-]?key|client[_-]?secret|credentials?|authorization|cookie|"
    r"session[_-]?id)$"
)
# Keys that end like a secret but hold counts or metadata.
_NOT_SECRET_KEY = re.compile(r"(?i)(?:^|_)(?:max|num|n|total|input|output|prompt|completion)_?tokens?$")


def secret_key_kind(key: str) -> str | None:
    """The marker kind when a field or config key names a secret (`db.password` -> "password"), else None."""
    return _secret_key(key)


@lru_cache(maxsize=8192)
def _secret_key(key: str) -> str | None:
    """Cached: payloads repeat the same few keys, and the key pattern is the costliest scan here."""
    if not _SECRET_KEY.search(key) or _NOT_SECRET_KEY.search(key):
        return None
    low = key.lower()
    if low.endswith(("authorization",)):
        return "authorization"
    if low.endswith("cookie"):
        return "cookie"
    return _pair_kind(key)


@lru_cache(maxsize=4096)
def _redact_cached(s: str) -> str:
    return _redact(s)


def _redact_plain(s: str) -> str:
    found = _hints_in(s)
    if not found:
        return s
    for kind, pat, repl, hints, also in _STEPS:
        if hints.isdisjoint(found) or (also and also not in found):
            continue
        if kind != "secret_pair":
            s = pat.sub(repl, s)
        elif ":" in s or "=" in s or "%3" in s:  # every pair has a separator: prose naming a key word has none
            s = _redact_pairs(s)
    return s


_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")


def _redact(s: str) -> str:
    """Redact `s`; a secret visible only once URL-decoded or JSON-unescaped is redacted in the decoded text.

    The rules above read plain, URL-encoded and JSON-escaped pairs directly; this is the net under
    them for every other shape (an encoded header, a key inside a query value): when the decoded text
    reveals more secrets than the text as written, the decoded, redacted text is what is shown.
    """
    out = _redact_plain(s)
    alternatives = []
    if "%" in s and _ESCAPE.search(s):
        alternatives.append(unquote_plus(s))
    if "\\" in s:
        alternatives.append(s.replace('\\"', '"').replace("\\/", "/").replace("\\n", "\n"))
    for alt in alternatives:
        if alt == s:
            continue
        done = _redact_plain(alt)
        if done.count("[REDACTED:") > out.count("[REDACTED:"):
            out = done
    return out


def redact_text(s: str) -> str:
    """Replace every secret shape in `s` by `[REDACTED:<kind>]`; everything else is kept verbatim."""
    if len(s) < 6:
        return s
    if len(s) <= 256:
        return _redact_cached(s)
    return _redact(s)


def redact_obj(obj: Any) -> Any:
    """Redact every string inside dicts, lists and tuples (JSON-like data); other values are returned as is.

    A string stored under a key that names a secret (`password`, `api_key`, `Authorization`...) is
    replaced as a whole, since its shape alone may not give it away.
    """
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, dict):
        out: dict[Any, Any] = {}
        for k, v in obj.items():
            kind = _secret_key(k) if isinstance(k, str) and isinstance(v, str) and v else None
            out[k] = _m(kind) if kind and not v.startswith("[REDACTED:") else redact_obj(v)
        return out
    if isinstance(obj, list):
        return [redact_obj(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact_obj(v) for v in obj)
    return obj


class RedactingWriter(io.TextIOBase):
    """A text stream that redacts each write before passing it on: the CLI's stdout and stderr.

    Every `firebreak` listing, `show` and export goes through it, so a secret that reached the
    database is not printed. Click and rich accept it as a text stream (it refuses bytes and reports
    the encoding of the stream it wraps).
    """

    def __init__(self, inner: Any) -> None:
        super().__init__()
        self._inner = inner

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self._inner, "encoding", None) or "utf-8")

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._inner, "errors", None)

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError("RedactingWriter takes text")
        self._inner.write(redact_output(s))
        return len(s)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return bool(self._inner.isatty())

    def fileno(self) -> int:
        return int(self._inner.fileno())

    def writable(self) -> bool:
        return True


def redact_output(s: str) -> str:
    """Redact text about to be printed; JSON (a document, or JSON lines) is redacted value by value.

    Why: inside JSON text a secret sits behind escapes (`\\n`, `\\"`) that hide its start from the
    rules, and the decoded-text net must not turn valid JSON into invalid JSON. So a JSON document is
    parsed, redacted as data and written back (indented when it was), and other text as text.
    """
    body = s.strip()
    if body[:1] in ("{", "[") and body[-1:] in ("}", "]"):
        out = _json_document(body)
        if out is None and "\n" in body:
            lines = [_json_document(line, indent=None) for line in body.split("\n")]
            out = None if None in lines else "\n".join(str(line) for line in lines)
        if out is not None:
            return s[: len(s) - len(s.lstrip())] + out + s[len(s.rstrip()):]
    return redact_text(s)


def _json_document(text: str, indent: int | None = 2) -> str | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return json.dumps(redact_obj(value), indent=indent if "\n" in text else None, ensure_ascii=False, default=str)
