"""The secret corpus for the security tests: 25 shapes, each plain, URL-encoded and JSON-quoted (75 texts).

Every entry is (name, text, secret): `text` is what an outsider puts in a log line, alert or note;
`secret` is the part that must never come out again. Fake credentials are built by concatenation so
no scanner mistakes this file for a leak. Negatives are evidence that must stay readable.
"""

from __future__ import annotations

import json
from urllib.parse import quote

_A40 = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
_JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9" + ".eyJzdWIiOiJzZWN1cml0eS10ZXN0IiwiaWF0IjoxNTE2MjM5MDIyfQ"
        + ".Zm9vYmFyYmF6cXV4c2VjcmV0c2lnbmF0dXJl")
_PEM_BODY = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"

# (name, text, secret)
BASE: list[tuple[str, str, str]] = [
    ("aws_access_key", "using key AKIA" + "QX7RSECURITYTST1 for s3", "AKIAQX7RSECURITYTST1"),
    ("github_token", "clone with ghp_" + "Zq9" * 12 + " failed", "ghp_" + "Zq9" * 12),
    ("slack_token", "bot xoxb-" + "918273645012-5647382910123-QwErTyUiOpAsDfGhJkLzXcVb", "QwErTyUiOpAsDfGhJkLzXcVb"),
    ("stripe_key", "charge via sk_live_" + "9fK2mQ7xL4pR8sT1vW3yZ6bN", "9fK2mQ7xL4pR8sT1vW3yZ6bN"),
    ("jwt", "session " + _JWT + " expired", _JWT.split(".")[2]),
    ("private_key", "key:\n-----BEGIN RSA PRIVATE KEY-----\n" + _PEM_BODY + "\n-----END RSA PRIVATE KEY-----",
     _PEM_BODY[:40]),
    ("url_password", "dial postgresql://orders:" + "Pg5ecretXyZ77" + "@db.internal:5432/orders", "Pg5ecretXyZ77"),
    ("db_pass", "env DB_PASS=" + "Kq8vDbPassword42" + " loaded", "Kq8vDbPassword42"),
    ("bearer_letters", "sent Bearer " + "qwertyuiopasdfghjklzxcvbnm" + " upstream", "qwertyuiopasdfghjklzxcvbnm"),
    ("password_pair", "login failed password=" + "Tr0ub4dorAndThree" + " for admin", "Tr0ub4dorAndThree"),
    ("api_key_pair", "retry with api_key=" + "ZYX987wvu654tsr321" + " now", "ZYX987wvu654tsr321"),
    ("basic_auth", "Authorization: Basic " + "YWRtaW46c3VwZXJzZWNyZXQ=", "YWRtaW46c3VwZXJzZWNyZXQ"),
    ("gcp_api_key", "maps AIza" + "SyB3cUr1tyT3stK3yV4lu3AbCdEfGh12345" + " quota", "SyB3cUr1tyT3stK3yV4lu3AbCdEf"),
    ("openai_key", "model key sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" + " set", "Ab3dEf6hIj9kLm2nOp5qRs8tUv1w"),
    ("sendgrid_key", "mail SG." + "ngeVfQFYQlKU0ufo8x5d1A.TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc" + " ok",
     "TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc"),
    ("npm_token", "publish npm_" + "s3curityT3stT0kenAbCdEfGhIjKlMnOpQrS" + " done",
     "s3curityT3stT0kenAbCdEfGhIjKlMnOpQrS"),
    ("gitlab_token", "ci glpat-" + "Gl4bT0kenSecurityXyZ12" + " used", "Gl4bT0kenSecurityXyZ12"),
    ("sentry_token", "auth sntrys_" + "eyJpYXQiOjE2ODQ5NTY4NjEuMzY0MjgyLCJ1cmwiOiJz",
     "eyJpYXQiOjE2ODQ5NTY4NjEuMzY0MjgyLCJ1cmwiOiJz"),
    ("slack_webhook", "notify https://hooks.slack.com/services/" + "T0SEC1/B0SEC2/Wh00kS3cr3tV4lu3Xyz",
     "Wh00kS3cr3tV4lu3Xyz"),
    ("json_pass", 'config {"pass": "' + "Js0nPassV4lue99" + '"} read', "Js0nPassV4lue99"),
    ("client_secret", "oauth client_secret=" + "0a1b2c3d4e5fSecretSauce" + " rejected", "0a1b2c3d4e5fSecretSauce"),
    ("query_token", "GET /cb?code=1&access_token=" + "QueryT0kenAbc123" + "&state=x", "QueryT0kenAbc123"),
    ("cookie", "Cookie: " + "sessionid=C00kieSess10nVal; theme=dark", "C00kieSess10nVal"),
    ("api_key_header", "X-Api-Key: " + "9f8e7d6c5b4a3f2e1d0cAPI", "9f8e7d6c5b4a3f2e1d0cAPI"),
    ("aws_secret_key", "aws_secret_access_key = " + _A40, _A40),
]


def _forms(name: str, text: str, secret: str) -> list[tuple[str, str, str]]:
    return [
        (f"{name}", text, secret),
        (f"{name}/url", quote(text, safe=""), secret),
        (f"{name}/json", json.dumps({"detail": text}), secret),
    ]


CORPUS: list[tuple[str, str, str]] = [form for base in BASE for form in _forms(*base)]

# Evidence next to the secrets: it must come out readable.
NEGATIVES = [
    "mailer 4.6.2 deployed over 4.6.1",
    "request id 0b3c2f1e-8d4a-4c9b-9e7f-1a2b3c4d5e6f",
    "sha256:9b2a4f7d1c3e5a6b8d0f2e4c6a8b0d2f4e6a8c0b2d4f6a8c0e2b4d6f8a0c2e4b",
    "trace 4bf92f3577b34da6a3ce929d0e0e4736 span 00f067aa0ba902b7",
]


def leaks(text: str) -> list[str]:
    """Names of corpus entries whose secret appears in `text` (as is, URL-encoded or JSON-escaped)."""
    found = []
    for name, _, secret in CORPUS:
        variants = {secret, quote(secret, safe=""), json.dumps(secret)[1:-1]}
        if any(v in text for v in variants):
            found.append(name)
    return sorted(set(found))
