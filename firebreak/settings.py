"""One settings object for the whole product, read from `FIREBREAK_*` variables and `.env`."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Names follow ../shared/specs/interfaces.md; every one is overridable by `FIREBREAK_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="FIREBREAK_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".firebreak")
    database_url: str | None = None
    model: str = "offline"
    flags_file: Path | None = None
    chroma_url: str | None = None
    openai_base_url: str | None = None
    openai_api_key: SecretStr | None = None
    api_token: SecretStr | None = None
    sentry_client_secret: SecretStr | None = None
    grafana_hmac_secret: SecretStr | None = None
    webhook_token: SecretStr | None = None
    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_channel: str | None = None
    slack_api_url: str | None = None
    approvers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    update_minutes: int = 30
    # Post-mortem reminder this many hours after a major/critical incident resolves; unset: next working morning.
    postmortem_delay_hours: float | None = None
    session_secret: SecretStr | None = None
    public_url: str | None = None
    action_timeout_seconds: float = 120.0
    message_templates_dir: Path | None = None

    # Intake and correlation.
    correlation_window_minutes: int = 10
    group_wait_seconds: float = 30.0
    service_map: dict[str, str] = Field(default_factory=dict)
    dependencies: dict[str, list[str]] = Field(default_factory=dict)
    intake_queue_limit: int = 50_000
    # Security (README "Security"): alerts per delivery (counted while the body streams in), OS users
    # allowed to approve from the CLI without a password ({"os-login": "firebreak-name"}), and whether
    # /metrics and /docs + /openapi.json answer without the API token.
    max_alerts_per_delivery: int = 10_000
    cli_os_users: dict[str, str] = Field(default_factory=dict)
    public_metrics: bool = False
    public_docs: bool = False

    # Investigation budgets.
    max_tool_calls: int = 30
    max_tokens: int = 200_000
    max_wall_seconds: float = 120.0

    # Durable workflows (workflows/): replicas, queue limits, re-investigation, actions safe to retry.
    replica_id: str | None = None
    worker_concurrency: int = 2
    investigation_concurrency: int = 8
    reinvestigate_minutes: float = 30.0
    followup_debounce_seconds: float = 60.0
    idempotent_actions: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # Real backends (unset: embedded stores).
    loki_url: str | None = None
    prometheus_url: str | None = None
    # Trace backends for the trace tools (Tempo first); unset: the embedded trace store.
    tempo_url: str | None = None
    jaeger_url: str | None = None
    # Bearer token for OTLP intake (/v1/traces, /v1/logs, /v1/metrics); unset: intake refused (401).
    otlp_token: SecretStr | None = None
    # Labels naming a series' service, tried in order (Prometheus and the metrics tools).
    service_labels: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["service", "job", "app", "app_kubernetes_io_name", "container"])
    grafana_url: str | None = None
    grafana_token: SecretStr | None = None
    sentry_api_url: str | None = None
    sentry_api_token: SecretStr | None = None
    sentry_org: str | None = None
    embedding_model: str = "local"

    @field_validator("approvers", "service_labels", "idempotent_actions", mode="before")
    @classmethod
    def _split_approvers(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.ensure_data_dir() / 'firebreak.db'}"

    @property
    def resolved_flags_file(self) -> Path:
        return self.flags_file or self.data_dir / "flags.flagd.json"

    def ensure_data_dir(self) -> Path:
        """The data dir is created on first use, not at import."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def action_hook(self, action: str) -> str | None:
        return os.environ.get(f"FIREBREAK_ACTION_HOOK_{action.upper()}")

    def action_command(self, action: str) -> str | None:
        return os.environ.get(f"FIREBREAK_ACTION_COMMAND_{action.upper()}")

    def is_approver(self, user: str) -> bool:
        return user in self.approvers


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
