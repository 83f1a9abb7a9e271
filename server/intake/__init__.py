"""Alert intake: vendor webhooks -> normalised alerts -> deduplicated, correlated incidents.

Entry point for everything that stores alerts: `server.intake.service.ingest_alerts(ctx, alerts)`.
"""

from firebreak.server.intake.models import AlertLink, IngestResult, NormalizedAlert

__all__ = ["AlertLink", "IngestResult", "NormalizedAlert"]
