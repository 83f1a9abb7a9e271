"""The action catalog (../shared/specs/drill-scenario.md, "Mitigations"): the only fixes that can run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ActionName = Literal[
    "rollback",
    "disable_flag",
    "enable_flag",
    "set_flag_variant",
    "revert_config",
    "restart",
    "scale",
    "failover",
    "block_traffic",
    "renew_certificate",
    "restore_data",
]

# Fields each action takes; True means required.
ACTION_FIELDS: dict[str, dict[str, bool]] = {
    "rollback": {"service": True, "to": True},
    "disable_flag": {"flag": True},
    "enable_flag": {"flag": True},
    "set_flag_variant": {"flag": True, "variant": True},
    "revert_config": {"service": True, "key": True},
    "restart": {"service": True},
    "scale": {"service": True, "replicas": False},
    "failover": {"service": True, "to": False},
    "block_traffic": {"service": True, "source": False},
    "renew_certificate": {"ref": True},
    "restore_data": {"ref": True},
}

FLAG_ACTIONS = frozenset({"disable_flag", "enable_flag", "set_flag_variant"})


class ProposedFix(BaseModel):
    """One action from the catalog with its parameters, why, the risk, and how to undo it."""

    model_config = ConfigDict(extra="forbid")

    action: ActionName
    parameters: dict[str, str | int] = Field(default_factory=dict)
    rationale: str = ""
    risk: str = ""
    undo: str = ""

    def flat(self) -> dict[str, Any]:
        """The drill-spec shape: {"action": "rollback", "service": "mailer", "to": "4.6.1"}."""
        return {"action": self.action, **self.parameters}

    def validate_catalog(self) -> None:
        """Raise ValueError unless the parameters are exactly what the catalog allows."""
        fields = ACTION_FIELDS[self.action]
        unknown = set(self.parameters) - set(fields)
        if unknown:
            raise ValueError(f"{self.action}: unknown parameter(s) {sorted(unknown)}")
        missing = [f for f, req in fields.items() if req and f not in self.parameters]
        if missing:
            raise ValueError(f"{self.action}: missing parameter(s) {missing}")

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.parameters.items())
        return f"{self.action}({params})"
