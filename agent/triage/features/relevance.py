"""Does what a suspect says of itself (a change note, key, flag name, host, table, client) relate to what
broke (new error templates, alert text, Sentry titles)? Lexical overlap and the packaged sentence
embedder, so that "copy changes on the settings page" scores low against connection errors."""

from __future__ import annotations

import logging
import os
from functools import lru_cache
from typing import Any

from firebreak.agent.triage.context import Candidate, Context
from firebreak.agent.triage.features import feature
from firebreak.agent.triage.observe import words

log = logging.getLogger(__name__)
CHANGES = ("deploy", "config", "flag", "infra")


@feature("relevance_lexical", CHANGES)
def relevance_lexical(cand: Candidate, ctx: Context) -> float:
    """Share (0..1) of the change's meaningful words that the symptoms also use (3 shared words count fully)."""
    mine = words(cand.text) - {w for s in ctx.services for w in words(s.replace("-", " "))}
    if not mine:
        return 0.0
    shared = mine & ctx.symptom_words
    return min(1.0, len(shared) / min(3.0, len(mine)))


@lru_cache(maxsize=1)
def _embedder() -> Any:
    """The packaged MiniLM embedder, or None where it cannot load (then relevance is lexical only)."""
    if os.environ.get("FIREBREAK_TRIAGE_EMBEDDINGS", "1") == "0":
        return None
    try:
        from firebreak.memory.embeddings import MiniLMEmbedder

        return MiniLMEmbedder()
    except Exception as exc:  # noqa: BLE001 - an optional signal; the lexical feature still works
        log.info("no embedder for relevance (%s)", exc)
        return None


def _vectors(texts: list[str]) -> Any:
    emb = _embedder()
    if emb is None:
        return None
    import numpy as np

    arr = np.asarray(emb.embed_array(texts), dtype=float)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    return arr / np.where(norms == 0, 1.0, norms)


def _symptom_lines(ctx: Context) -> list[str]:
    lines = [b.template[:200] for b in ctx.bads if b.new or b.level in ("ERROR", "FATAL")][:12]
    lines += [str(a.get("title") or "") for a in ctx.f.alerts][:4]
    lines += [str(i.get("title") or "") for i in ctx.f.sentry][:4]
    return [ln for ln in lines if ln.strip()]


def _semantic_table(ctx: Context) -> dict[str, float]:
    """Best cosine between each change's text and any symptom line, computed in one batch per context."""
    cached = getattr(ctx, "_semantic", None)
    if cached is not None:
        return cached
    table: dict[str, float] = {}
    from firebreak.agent.triage.suspects._changes import change_text

    texts = sorted({change_text(c) for c in ctx.f.changes if change_text(c).strip()})
    symptoms = _symptom_lines(ctx)
    if texts and symptoms:
        vecs = _vectors(texts + symptoms)
        if vecs is not None:
            sims = vecs[: len(texts)] @ vecs[len(texts) :].T
            table = {t: float(sims[i].max()) for i, t in enumerate(texts)}
    ctx._semantic = table  # type: ignore[attr-defined]
    return table


@feature("relevance_semantic", CHANGES)
def relevance_semantic(cand: Candidate, ctx: Context) -> float:
    """Cosine (rescaled to 0..1 from 0.1..0.6) between the change's text and the closest symptom line."""
    from firebreak.agent.triage.suspects._changes import change_text

    if cand.change is None:
        return 0.0
    sim = _semantic_table(ctx).get(change_text(cand.change))
    if sim is None:
        return 0.0
    return max(0.0, min(1.0, (sim - 0.1) / 0.5))


@feature("ref_named_in_errors")
def ref_named_in_errors(cand: Candidate, ctx: Context) -> float:
    """1 when the new error lines name the suspect itself (its flag, key, host, table, client, version)."""
    ref = cand.suspect.ref.lower()
    if len(ref) < 4 or cand.suspect.kind in ("resource", "infra"):
        return 0.0
    return float(ref in ctx.new_bad_text.lower() or ref in " ".join(str(a.get("title")) for a in ctx.f.alerts).lower())


@feature("sentry_release", ("deploy",))
def sentry_release(cand: Candidate, ctx: Context) -> float:
    """1 when a Sentry issue of the deployed service is tagged with the deployed version."""
    return float(
        any(
            str(i.get("release") or "") == cand.suspect.ref and i.get("service") == cand.suspect.service
            for i in ctx.f.sentry
        )
    )
