"""Redaction: every secret shape replaced by a named marker; evidence (versions, ids, times) kept."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from firebreak.redact import redact_obj, redact_text

# Fake credentials, built by concatenation so no scanner mistakes this file for a leak.
A40 = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----"
)

# (kind expected in the marker, text containing the secret, the secret itself)
SECRETS: list[tuple[str, str, str]] = [
    (
        "openai_key",
        "OPENAI key sk-" + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKL used",
        "sk-abcdefghij",
    ),
    ("openai_key", "key=sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z_AbCdEf", "sk-proj-Ab3"),
    ("anthropic_key", "ANTHROPIC sk-ant-api03-" + "x" * 30 + "1aB", "sk-ant-api03"),
    ("slack_token", "bot xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", "xoxb-1234"),
    (
        "slack_token",
        "user xoxp-" + "1234567890-1234567890-1234567890-abcdef0123456789abcdef0123456789",
        "xoxp-",
    ),
    (
        "slack_webhook",
        "posting to https://hooks.slack.com/services/" + "T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
        "T00000000/B0",
    ),
    ("github_token", "clone with ghp_" + "A" * 36 + " now", "ghp_AAAA"),
    ("github_token", "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz", "github_pat_11"),
    ("github_token", "oauth gho_" + "16C7e42F292c6912E7710c838347Ae178B4a", "gho_16C7"),
    ("gitlab_token", "glpat-" + "xxxxxxxxxxxxxxxxxxxx1234", "glpat-xxxx"),
    ("stripe_key", "charge with sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC3"),
    ("stripe_key", "rk_test_" + "51H8abcdefghijklmnopqrstu", "rk_test_51"),
    ("stripe_webhook_secret", "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_MfKQ"),
    ("aws_access_key", "aws key AKIA" + "IOSFODNN7EXAMPLE in env", "AKIAIOSFODNN7EXAMPLE"),
    ("aws_access_key", "session ASIA" + "Y34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A"),
    ("aws_secret_key", "aws_secret_access_key = " + A40, A40),
    ("aws_secret_key", 'AWS_SECRET_KEY: "' + A40 + '"', A40),
    ("gcp_api_key", "maps AIza" + "SyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI done", "AIzaSyDdI0"),
    ("gcp_oauth_token", "ya29." + "a0AfH6SMBx3kLmN0pQrStUvWxYz-123456", "ya29.a0Af"),
    (
        "azure_storage_key",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="
        + "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsu"
        "Fq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;EndpointSuffix=core.windows.net",
        "Eby8vdM02x",
    ),
    (
        "azure_sas",
        "https://acct.blob.core.windows.net/c/b?sv=2020-08-04&sig=" + "5b3Xq%2BabcdEFGHijklMNOP%3D",
        "5b3Xq%2Babcd",
    ),
    ("azure_client_secret", "client secret abc8Q~" + "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456.", "abc8Q~ABCD"),
    (
        "sendgrid_key",
        "SG." + "ngeVfQFYQlKU0ufo8x5d1A.TwL2iGABf9DHoTf-09kqeF8tAmbihYzrnopKc-1s5cr",
        "SG.ngeVf",
    ),
    ("twilio_key", "twilio SK" + "0123456789abcdef0123456789abcdef", "SK0123456789"),
    ("mailgun_key", "mailgun key-" + "3ax6xnjp29jd6fds4gc373sgvjxteol0", "key-3ax6"),
    (
        "npm_token",
        "//registry.npmjs.org/:_authToken=npm_" + "abcdefghijklmnopqrstuvwxyz0123456789",
        "npm_abcd",
    ),
    (
        "pypi_token",
        "pypi-AgEIcHlwaS5vcmc" + "CJGQ3ZjQ4NjY0LWExNjEtNDY5Zi04ZTVjLTg5ZjI1YjY2NzE5OQ",
        "pypi-AgEI",
    ),
    ("huggingface_token", "HF hf_" + "abcdefghijklmnopqrstuvwxyzABCDEFGH", "hf_abcdef"),
    (
        "sentry_token",
        "sntrys_" + "eyJpYXQiOjE2ODQ5NTY4NjEuMzY0MjgyLCJ1cmwiOiJodHRwczovL3NlbnRyeS5pbyJ9",
        "sntrys_eyJp",
    ),
    (
        "sentry_dsn",
        "dsn https://" + "0123456789abcdef0123456789abcdef" + "@o123.ingest.sentry.io/456",
        "0123456789abcdef0123456789abcdef@",
    ),
    ("jwt", "token " + JWT, JWT[:40]),
    ("private_key", "key:\n" + PEM + "\nend", "MIIEowIBAAKCAQEAu1SU1"),
    (
        "private_key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQ\n"
        "-----END OPENSSH PRIVATE KEY-----",
        "b3BlbnNzaC1rZXkt",
    ),
    (
        "private_key",
        '{"private_key": "-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n'
        '-----END PRIVATE KEY-----\\n"}',
        "MIIEvQIBADANBgkq",
    ),
    ("bearer_token", "curl -H 'X: y' then Bearer " + "mF_9.B5f-4.1JqM" + " was sent", "mF_9.B5f-4.1JqM"),
    ("authorization", "Authorization: Bearer " + "abc123def456ghi789", "abc123def456ghi789"),
    ("authorization", "authorization=Basic " + "dXNlcjpodW50ZXIy", "dXNlcjpodW50ZXIy"),
    (
        "url_password",
        "connecting to postgresql://app:" + "s3cr3tP%40ss" + "@db.internal:5432/orders",
        "s3cr3tP",
    ),
    ("url_password", "redis://:" + "hunter2hunter2" + "@cache:6379/0", "hunter2hunter2"),
    ("url_password", "amqp://guest:" + "guestpw" + "@rabbit/", "guestpw"),
    ("password", "login failed password=" + "Tr0ub4dor&3" + " for user", "Tr0ub4dor"),
    ("password", "DB_PASSWORD: " + "correct-horse-battery", "correct-horse-battery"),
    ("password", "Server=db;User Id=sa;Password=" + "MyS3cret!" + ";", "MyS3cret!"),
    ("secret", "client_secret=" + "0a1b2c3d4e5f", "0a1b2c3d4e5f"),
    ("secret", 'config {"jwt_secret": "' + "do-not-share-me" + '"}', "do-not-share-me"),
    ("token", "GET /cb?code=1&access_token=" + "abcDEF123456" + "&state=xyz", "abcDEF123456"),
    ("api_key", "X-Api-Key: " + "9f8e7d6c5b4a3f2e1d0c", "9f8e7d6c5b4a3f2e1d0c"),
    ("api_key", "apikey=" + "ZYX987wvu654", "ZYX987wvu654"),
    ("cookie", "Cookie: " + "sessionid=38afes7a8; csrftoken=u32t4o3tb3gg43", "38afes7a8"),
    ("email", "mail to " + "jane.doe+alerts@example.co.uk" + " bounced", "jane.doe+alerts@"),
    ("email", "user=" + "bob@corp.example.com" + " logged in", "bob@corp"),
    ("telegram_bot_token", "bot 123456789:" + "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0", "AAHdqTcvCH1"),
    ("digitalocean_token", "dop_v1_" + "a" * 64, "dop_v1_aaaa"),
    ("shopify_token", "shpat_" + "0123456789abcdef0123456789abcdef", "shpat_0123"),
]


@pytest.mark.parametrize(
    ("kind", "text", "secret"), SECRETS, ids=[f"{i}-{s[0]}" for i, s in enumerate(SECRETS)]
)
def test_secret_shapes_are_redacted(kind: str, text: str, secret: str) -> None:
    out = redact_text(text)
    assert secret not in out, out
    assert f"[REDACTED:{kind}]" in out, out


def test_at_least_thirty_shapes() -> None:
    assert len(SECRETS) >= 30
    assert len({k for k, _, _ in SECRETS}) >= 30


NEGATIVES = [
    "mailer 4.6.2 deployed, previous 4.6.1",
    "version=4.6.2 build=2026.03.02-1",
    "fingerprint 3ad9878359a0f14f seen 340 times",
    "event e4874d664c3540c1a32eab185f12c5ab hash 29f7ffc4903a8a990408b80a3b4c95a2",
    "request id 0b3c2f1e-8d4a-4c9b-9e7f-1a2b3c4d5e6f failed",
    "2026-03-02T08:12:00Z retry attempt 3 for job 88123: smtp timeout",
    "at 2026-03-02 08:12:00.123+00:00 took 1234ms",
    "GET /api/v1/orders?page=2&limit=50 200 12ms",
    "connected to postgresql://db.internal:5432/orders",
    "max_tokens: 4096 total_tokens=1234",
    "author: ci note: retry policy rewrite",
    "user ip:162.217.75.90 url https://null.jsbin.com/runner",
    "token expired, refreshing session",
    "Bearer authentication failed for client",
    "sha256:9b2a4f7d1c3e5a6b8d0f2e4c6a8b0d2f4e6a8c0b2d4f6a8c0e2b4d6f8a0c2e4b",
    "disk-usage-above-ninety-percent-alert-rule-0001 fired",
    "pool exhausted: 50/50 connections, waited 30000 ms",
    'Traceback: File "/app/mailer/jobs/retry.py", line 88, in schedule_retry',
    "@openfeature.dev targeting rule",
    "key_id 667532 project front-end",
    "ReferenceError: heck is not defined",
    "INC-2026-001 opened by alice",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_evidence_is_not_redacted(text: str) -> None:
    assert redact_text(text) == text


def test_pairs_inside_values_and_more_key_names() -> None:
    out = redact_text("GET /login?redirect=https://app/cb?token=abc123XYZ&x=1")
    assert out == "GET /login?redirect=https://app/cb?token=[REDACTED:token]&x=1"
    assert redact_text("SECRET_KEY=zzz9") == "SECRET_KEY=[REDACTED:api_key]"
    assert redact_text("private_key: 'abc'") == "private_key: '[REDACTED:private_key]'"
    assert redact_text("total_tokens=50 password=hunter2") == "total_tokens=50 password=[REDACTED:password]"


def test_idempotent() -> None:
    for _, text, _ in SECRETS:
        once = redact_text(text)
        assert redact_text(once) == once


def test_marker_keeps_context() -> None:
    assert (
        redact_text("postgresql://app:pw12345@db:5432/x")
        == "postgresql://app:[REDACTED:url_password]@db:5432/x"
    )
    assert (
        redact_text("Authorization: Bearer abcdef123456") == "Authorization: Bearer [REDACTED:authorization]"
    )
    assert redact_text('password="a b c"') == 'password="[REDACTED:password]"'


def test_redact_obj_recurses_and_redacts_by_key() -> None:
    obj: dict[str, Any] = {
        "lines": [{"message": "login password=hunter22 ok", "attributes": {"user": "a@b.example.com"}}],
        "headers": {"Authorization": "opaque", "X-Api-Key": "short1", "password": "p", "max_tokens": 10},
        "count": 3,
        "nested": ({"token": "abc"}, None, 1.5),
        "truncated": False,
    }
    out = redact_obj(obj)
    assert out["lines"][0]["message"] == "login password=[REDACTED:password] ok"
    assert out["lines"][0]["attributes"]["user"] == "[REDACTED:email]"
    assert out["headers"]["Authorization"] == "[REDACTED:authorization]"
    assert out["headers"]["X-Api-Key"] == "[REDACTED:api_key]"
    assert out["headers"]["password"] == "[REDACTED:password]"
    assert out["headers"]["max_tokens"] == 10
    assert out["nested"][0]["token"] == "[REDACTED:token]"
    assert out["count"] == 3 and out["truncated"] is False
    assert obj["headers"]["password"] == "p"  # input not mutated


def test_vendor_fixtures_survive(fixtures_dir: Path) -> None:
    """Real payloads hold ids, hashes, versions and timestamps: none of it is a secret."""
    for name in (
        "sentry-issue-created.docs.json",
        "sentry-metric-alert-resolved.docs.json",
        "flagd-example_flags.flagd.json",
    ):
        data = json.loads((fixtures_dir / name).read_text())
        assert redact_obj(data) == data, name


def test_fast_enough_for_every_output() -> None:
    lines = [
        {
            "ts": "2026-03-02T08:12:00Z",
            "service": f"svc-{i % 20}",
            "level": "ERROR",
            "message": f"retry attempt {i} for job {i * 7}: smtp timeout after 3000ms host=relay-{i % 3}",
            "attributes": {"trace_id": f"{i:032x}", "attempt": i},
        }
        for i in range(2000)
    ]
    started = time.perf_counter()
    out = redact_obj({"lines": lines})
    elapsed = time.perf_counter() - started
    assert out["lines"][5]["message"] == lines[5]["message"]
    assert elapsed < 2.0  # generous bound; real figure is printed by the benchmark script
