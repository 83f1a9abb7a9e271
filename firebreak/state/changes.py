"""Changes: deploys, config and flag changes, infra events (the "what changed?" source)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from firebreak.state.base import Base, UtcDateTime


class Change(Base):
    """A deploy, config change, flag change or infra event: the "what changed?" source."""

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    service: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    previous_version: Mapped[str | None] = mapped_column(String(128), nullable=True)
    key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    from_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    to_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    flag: Mapped[str | None] = mapped_column(String(200), nullable=True)
    variant: Mapped[str | None] = mapped_column(String(200), nullable=True)
    state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    author: Mapped[str | None] = mapped_column(String(200), nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(32), default="webhook")
