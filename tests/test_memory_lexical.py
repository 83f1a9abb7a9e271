"""Identifiers survive tokenisation whole, and BM25 ranks exact identifier matches first."""

from __future__ import annotations

from firebreak.memory.lexical import LexicalIndex, analyze, excerpt, is_identifier


def test_identifiers_are_kept_whole_and_split() -> None:
    terms, idents = analyze("MemoryError in mailer 4.6.2; flag mailer-retry-v2, key db.pool_size on api.example.com.")
    assert {"memoryerror", "4.6.2", "mailer-retry-v2", "db.pool_size", "api.example.com"} <= idents
    assert {"memory", "error", "retry", "pool", "size"} <= set(terms)
    assert "in" not in terms and "on" not in terms


def test_is_identifier() -> None:
    assert is_identifier("ConnectionResetError")
    assert is_identifier("4.6.2")
    assert is_identifier("OOM")
    assert not is_identifier("mailer")
    assert not is_identifier("Mailer")


def test_stemming_joins_word_forms() -> None:
    assert analyze("restarted")[0] == analyze("restarts")[0] == analyze("restarting")[0]


def test_exact_identifier_beats_shared_words() -> None:
    idx = LexicalIndex()
    idx.add("a", "mailer memory grew after release 4.6.2")
    idx.add("b", "mailer memory grew after release 4.5.0, memory memory")
    idx.add("c", "checkout latency")
    ranked = idx.search("mailer memory 4.6.2")
    assert [d for d, _ in ranked][:2] == ["a", "b"]
    assert idx.matched_identifiers("a", "is 4.6.2 bad?") == ["4.6.2"]


def test_remove_and_filter() -> None:
    idx = LexicalIndex()
    idx.add("a", "redis eviction storm")
    idx.add("b", "redis eviction storm again")
    idx.remove("a")
    assert [d for d, _ in idx.search("redis eviction")] == ["b"]
    assert idx.search("redis", allowed=lambda d: d != "b") == []
    idx.add("b", "now about postgres")  # re-adding replaces
    assert idx.search("redis") == []
    assert len(idx) == 1


def test_excerpt_prefers_the_matching_line() -> None:
    text = "Title\nServices: mailer\nSymptoms: pods restart\nRoot cause: unbounded cache in 4.5.0\n"
    assert excerpt(text, "cache 4.5.0") == "Root cause: unbounded cache in 4.5.0"
    long = "Title\n" + "filler " * 100 + "MemoryError here " + "tail " * 100
    ex = excerpt(long, "MemoryError", limit=80)
    assert "MemoryError" in ex and len(ex) <= 82


def test_glossary_joins_names_of_the_same_failure() -> None:
    from firebreak.memory.lexical import concepts

    assert "~oom" in concepts("pods OOMKilled") and "~oom" in concepts("MemoryError: Cannot allocate memory")
    assert "~dns" in concepts("getaddrinfo EAI_AGAIN") and "~dns" in concepts("UnknownHostException: api.x.io")
    assert "~disk-full" in concepts("No space left on device") and "~disk-full" in concepts("ENOSPC")
    assert "~rate-limit" in concepts("HTTP 429 Too Many Requests")
    assert concepts("the weather is nice") == []
    idx = LexicalIndex()
    idx.add("oom", "worker killed: MemoryError: Cannot allocate memory")
    idx.add("other", "worker killed by a bad deploy")
    assert idx.search("pods OOMKilled")[0][0] == "oom"
