"""Batch redaction: `redact_many` and `redact_obj_many` give exactly what redacting one by one gives.

The batch functions scan a whole batch at once and send only the lines a scan hits through
`redact_text`; these tests generate text built from the pieces that matter to that shortcut (every
hint, the secret corpus, `%` escapes, backslashes, newlines, characters whose lower case is longer,
repeated lines) and compare with the one-by-one result.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firebreak import redact_batch
from firebreak.redact import _CASE_HINTS, _LOWER_HINTS, redact_obj, redact_text
from firebreak.redact_batch import redact_many, redact_obj_many
from tests.security_corpus import CORPUS, NEGATIVES, leaks

_HINTS = sorted(_CASE_HINTS | _LOWER_HINTS)
_PIECES = [
    *_HINTS,
    *(h.upper() for h in _LOWER_HINTS),
    *(text for _, text, _ in CORPUS),
    *NEGATIVES,
    "\n", "%", "%3D", "%40", "\\", '\\"', "=", ": ", "@", "://", "Bearer ", "password=", "api_key: ",
    "\u0130", "\u212a", "user@example.com", "https://u:p4ss@db.example:5432/x", " ", "ok", "1234567890",
]
_piece = st.one_of(st.sampled_from(_PIECES), st.text(max_size=12))
_text = st.lists(_piece, max_size=8).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_text, max_size=40))
def test_redact_many_equals_redact_text_one_by_one(texts: list[str]) -> None:
    assert redact_many(texts) == [redact_text(t) for t in texts]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([t for _, t, _ in CORPUS] + NEGATIVES + ["plain line 1", "plain line 2"]),
                max_size=60))
def test_repeated_lines_in_a_batch(texts: list[str]) -> None:
    assert redact_many(texts) == [redact_text(t) for t in texts]


_leaf = st.one_of(_text, st.integers(), st.none(), st.booleans())
_key = st.one_of(st.sampled_from(["password", "db.password", "api_key", "Authorization", "cookie", "max_tokens",
                                  "message", "url", "code.file.path"]), st.text(max_size=8))
_obj = st.recursive(
    _leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_key, inner, max_size=4),
                            st.lists(inner, max_size=3).map(tuple)),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_obj, max_size=20))
def test_redact_obj_many_equals_redact_obj_one_by_one(objs: list[Any]) -> None:
    assert redact_obj_many(objs) == [redact_obj(o) for o in objs]


def test_every_corpus_secret_is_hidden_in_one_batch_with_plain_lines() -> None:
    plain = [f"sent batch {i} of mails in {i} ms" for i in range(500)]
    batch = plain + [text for _, text, _ in CORPUS] + plain
    out = redact_many(batch)
    assert out[: len(plain)] == plain and out[-len(plain):] == plain
    assert leaks("\n".join(out)) == []


def test_a_secret_split_over_two_lines_is_not_joined_by_the_batch() -> None:
    # Each line alone: "Bearer" at the end of one line, a token-looking word at the start of the next.
    texts = ["auth header was Bearer", "abcdefghijklmnopqrstuvwxyz0123 next"]
    assert redact_many(texts) == [redact_text(t) for t in texts] == texts


def test_a_character_whose_lower_case_is_longer_falls_back_to_each_line() -> None:
    texts = ["\u0130stanbul office: password=Hunter2xyz", "plain", "token: abcdefghijkl1234"]
    assert redact_many(texts) == [redact_text(t) for t in texts]
    assert "Hunter2xyz" not in redact_many(texts)[0]


def test_attributes_redacted_by_key_and_by_shape() -> None:
    attrs: list[dict[str, Any]] = [{"db.password": "hunter2", "url": "https://u:s3cretPw@db:5432", "n": 3},
             {"nested": {"token": "abc", "list": ["user@example.com", 1]}}, {}]
    out = redact_obj_many(attrs)
    assert out == [redact_obj(a) for a in attrs]
    assert out[0]["db.password"] == "[REDACTED:password]" and "s3cretPw" not in out[0]["url"]
    assert out[1]["nested"]["token"] == "[REDACTED:token]"
    assert out[1]["nested"]["list"] == ["[REDACTED:email]", 1]
    assert attrs[0]["db.password"] == "hunter2"  # the input is not changed in place


def test_secrets_at_the_very_start_and_end_of_lines() -> None:
    # The line a hit belongs to is found from offsets: hits on the first and last character of a line
    # (and one-character lines around them) must land on the right line.
    secrets = ["password=Hunter2xyz", "AKIA" + "IOSFODNN7EXAMPLE", "ok", "user@example.com", "x",
               "caf%C3%A9 token%3Dabcdef123456", "ghp_" + "A" * 36, "a\\nb", "Bearer abcdefghijklmnop1234"]
    for batch in (secrets, secrets[::-1], ["", *secrets, ""], [s + s for s in secrets]):
        assert redact_many(batch) == [redact_text(t) for t in batch]


def test_long_lines_are_scanned_in_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redact_batch, "SCAN_CHARS", 40)
    texts = [t for _, t, _ in CORPUS[:12]] + ["x" * 100, "plain", "password=abcdef " * 10, ""]
    assert redact_many(texts) == [redact_text(t) for t in texts]
