"""Secret redaction applied to every tool output before a model, an API caller or a transcript sees it.

Each secret shape is replaced by a marker naming its kind (`[REDACTED:jwt]`) so a reader still knows
*what* was there. The patterns are deliberately specific: versions (4.6.2), hex fingerprints, UUIDs,
IPs and timestamps are evidence and must survive, so there is no generic "high-entropy string" rule.
All regexes are compiled once at import; `redact_text` is a handful of C-level scans per string.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

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
    (
        "bearer_token",
        re.compile(
            r"(?P<pre>\b[Bb]earer\s+)" + _NOT_DONE
            + r"(?=[A-Za-z0-9._~+/-]*[0-9._~+/-])[A-Za-z0-9._~+/-]{12,}=*"
        ),
        r"\g<pre>" + _m("bearer_token"),
    ),
    (
        "cookie",
        re.compile(r"(?i)(?P<pre>\b(?:set-)?cookie[\"']?\s*:\s*[\"']?)" + _NOT_DONE + r"[^\s\"'][^\r\n\"']*"),
        r"\g<pre>" + _m("cookie"),
    ),
    # key=value / key: value pairs whose key names a secret (password=, DB_PASSWORD:, api_key=, ...).
    (
        "secret_pair",
        re.compile(
            r"(?i)(?P<pre>(?<![A-Za-z0-9])(?P<key>[A-Za-z0-9_.-]*?(?:password|passwd|pwd|passphrase|secret|"
            r"token|api[_-]?key|apikey|access[_-]?key|account[_-]?key|private[_-]?key|signing[_-]?key|"
            r"client[_-]?secret|credentials?|session[_-]?id))[\"']?\s*[:=]\s*)" + _NOT_DONE
            + r"(?P<val>\"[^\"\r\n]+\"|'[^'\r\n]+'|[^\s,;&\"'}\])]+)"
        ),
        "",  # filled by _pair below
    ),
    (
        "email",
        re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
        _m("email"),
    ),
]

_PAIR_KINDS = (
    ("password", "password"), ("passwd", "password"), ("pwd", "password"), ("passphrase", "password"),
    ("token", "token"), ("key", "api_key"), ("credential", "credentials"), ("session", "session"),
    ("secret", "secret"),
)


def _pair_kind(key: str) -> str:
    low = key.lower()
    best = ("secret", -1)
    for word, kind in _PAIR_KINDS:
        pos = low.rfind(word)
        if pos > best[1]:
            best = (kind, pos)
    return best[0]


def _pair(m: re.Match[str]) -> str:
    val = m.group("val")
    quote = val[0] if val[0] in "\"'" else ""
    return f"{m.group('pre')}{quote}{_m(_pair_kind(m.group('key')))}{quote}"


_COMPILED: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (pat, _pair if kind == "secret_pair" else repl) for kind, pat, repl in _RULES
]

KINDS: tuple[str, ...] = tuple(kind for kind, _, _ in _RULES)

# Dict keys whose string value is a secret as a whole, whatever it looks like ({"password": "hunter2"}).
_SECRET_KEY = re.compile(
    r"(?i)(?:^|[^a-z0-9])?(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|"
    r"account[_-]?key|private[_-]?key|signing[_-]?key|client[_-]?secret|credentials?|authorization|cookie|"
    r"session[_-]?id)$"
)
# Keys that end like a secret but hold counts or metadata.
_NOT_SECRET_KEY = re.compile(r"(?i)(?:^|_)(?:max|num|n|total|input|output|prompt|completion)_?tokens?$")


def _secret_key(key: str) -> str | None:
    if not _SECRET_KEY.search(key) or _NOT_SECRET_KEY.search(key):
        return None
    low = key.lower()
    if low.endswith(("authorization",)):
        return "authorization"
    if low.endswith("cookie"):
        return "cookie"
    return _pair_kind(key)


# The cheapest possible pre-check: every rule needs one of these characters or words.
_MAYBE = re.compile(
    r"[@=:]|-----BEGIN|Q~|\b(?:sk|rk|xox|xapp|gh|github|gl|AIza|ya29|SG|SK|key|npm|pypi|hf|shp|do|sntry|eyJ|"
    r"whsec|[Bb]earer|" + _AWS_PREFIX + ")"
)


@lru_cache(maxsize=4096)
def _redact_cached(s: str) -> str:
    return _redact(s)


def _redact(s: str) -> str:
    if not _MAYBE.search(s):
        return s
    for pat, repl in _COMPILED:
        s = pat.sub(repl, s)
    return s


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
