"""One exception for everything the intake refuses, carrying the HTTP status and a metric reason."""

from __future__ import annotations


class IntakeRefused(Exception):
    """A delivery refused for a reason the sender can fix; `reason` labels the refusal metric."""

    def __init__(self, status: int, detail: str, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.reason = reason
        self.headers = headers or {}
