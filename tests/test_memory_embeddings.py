"""The offline embedder gives sentence-transformers' vectors without torch, and fails clearly."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from firebreak.settings import Settings
from memory.embeddings import EmbeddingError, MiniLMEmbedder, get_embedder

DATA = Path(__file__).parent / "data" / "memory"


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_matches_sentence_transformers_reference(embedder: MiniLMEmbedder) -> None:
    ref = json.loads((DATA / "reference_embeddings.json").read_text())
    got = embedder.embed(ref["texts"])
    for mine, theirs in zip(got, ref["vectors"], strict=True):
        assert len(mine) == 384
        assert max(abs(a - b) for a, b in zip(mine, theirs, strict=True)) < 1e-5


def test_vectors_are_normalised_and_order_is_kept(embedder: MiniLMEmbedder) -> None:
    texts = ["short", "a much longer sentence about the mailer running out of memory after a deploy", ""]
    vecs = embedder.embed(texts)
    assert [round(math.sqrt(sum(x * x for x in v)), 4) for v in vecs] == [1.0, 1.0, 1.0]
    assert embedder.embed([texts[1]])[0] == pytest.approx(vecs[1], abs=1e-5)  # batching does not change it
    assert embedder.embed([]) == []


def test_similar_texts_are_closer(embedder: MiniLMEmbedder) -> None:
    a, b, c = embedder.embed(
        ["mailer pods killed for running out of memory", "email service OOM crash loop", "TLS certificate expired"]
    )
    assert _cos(a, b) > _cos(a, c) + 0.2


def test_embedder_is_created_once_per_process(settings: Settings) -> None:
    assert get_embedder(settings) is get_embedder(settings)


def test_unknown_model_names_the_setting(settings: Settings) -> None:
    settings.embedding_model = "bogus"
    with pytest.raises(EmbeddingError, match="embedding_model"):
        get_embedder(settings)


def test_openai_embedder_normalises(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from memory import embeddings

    settings.embedding_model = "openai:text-embedding-3-small"
    settings.openai_base_url = "http://127.0.0.1:9/v1"
    emb = embeddings.OpenAIEmbedder("text-embedding-3-small", settings)

    def create(model: str, input: list[str]) -> SimpleNamespace:
        assert model == "text-embedding-3-small"
        return SimpleNamespace(data=[SimpleNamespace(index=i, embedding=[3.0, 4.0]) for i in range(len(input))])

    monkeypatch.setattr(emb.client.embeddings, "create", create)
    assert emb.embed(["x", "y"]) == [[0.6, 0.8], [0.6, 0.8]]
    assert emb.name == "openai-text-embedding-3-small"


@pytest.mark.slow
def test_torch_path_gives_the_same_vectors(embedder: MiniLMEmbedder) -> None:
    from memory.embeddings import SentenceTransformerEmbedder

    texts = ["flag checkout-new-pricing made checkout slow", "x" * 2000]
    ref = SentenceTransformerEmbedder().embed(texts)
    for mine, theirs in zip(embedder.embed(texts), ref, strict=True):
        assert max(abs(a - b) for a, b in zip(mine, theirs, strict=True)) < 1e-5
