"""Triage in three stages: suspects (agent.triage.suspects, one module per kind), named evidence
features (agent.triage.features), and a fitted ranking (agent.triage.ranking, weights.json); then one
fix policy (agent.triage.fix_policy) and the report (agent.triage.pipeline)."""

from firebreak.agent.triage.observe import Findings, findings_from, parse_time
from firebreak.agent.triage.pipeline import build_report, rank_suspects, table

__all__ = ["Findings", "build_report", "findings_from", "parse_time", "rank_suspects", "table", "warm"]


def warm() -> None:
    """Load what the first triage would pay for (modules, the stored model, the sentence embedder), so a
    worker that warms up before the first alert answers it within a second."""
    from firebreak.agent.triage import features, ranking, suspects
    from firebreak.agent.triage.features.relevance import _embedder

    suspects.sources()
    features.registry()
    ranking.model()
    ranking.metrics_model()
    emb = _embedder()
    if emb is not None:
        emb.embed_array(["warm up"])
