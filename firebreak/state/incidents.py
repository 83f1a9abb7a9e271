"""The incident log's tables: incidents, their timeline, countermeasures and remediations.

Every change to an incident is kept as a timeline entry; the service functions live in
`memory.incident_log`."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from firebreak.state.base import Base, UtcDateTime

if TYPE_CHECKING:
    from firebreak.state.alerts import Alert


class IdCounter(Base):
    """Per-year counter behind INC-YYYY-NNN ids, updated in the same transaction as the insert."""

    __tablename__ = "id_counters"
    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    services: Mapped[list[Any]] = mapped_column(JSON, default=list)
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    detected_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    mitigated_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    symptoms: Mapped[str] = mapped_column(Text, default="")
    user_impact: Mapped[str] = mapped_column(Text, default="")
    root_cause: Mapped[str] = mapped_column(Text, default="")
    root_cause_category: Mapped[str] = mapped_column(String(32), default="unknown")
    hotfix: Mapped[bool] = mapped_column(Boolean, default=False)
    rollback: Mapped[bool] = mapped_column(Boolean, default=False)
    links: Mapped[list[Any]] = mapped_column(JSON, default=list)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(32), default="manual")
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    slack_channel: Mapped[str | None] = mapped_column(String(64), nullable=True)
    slack_ts: Mapped[str | None] = mapped_column(String(64), nullable=True)
    last_update_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    timeline: Mapped[list[TimelineEntry]] = relationship(
        back_populates="incident", order_by="TimelineEntry.id", cascade="all, delete-orphan"
    )
    countermeasures: Mapped[list[Countermeasure]] = relationship(
        back_populates="incident", order_by="Countermeasure.id", cascade="all, delete-orphan"
    )
    remediations: Mapped[list[Remediation]] = relationship(
        back_populates="incident", order_by="Remediation.id", cascade="all, delete-orphan"
    )
    alerts: Mapped[list[Alert]] = relationship(back_populates="incident", order_by="Alert.id")


class TimelineEntry(Base):
    """Every change to an incident, kept: who, when, what. Nothing is overwritten silently."""

    __tablename__ = "timeline_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    field: Mapped[str | None] = mapped_column(String(64), nullable=True)
    old_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    new_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    text: Mapped[str] = mapped_column(Text, default="")

    incident: Mapped[Incident] = relationship(back_populates="timeline")


class Countermeasure(Base):
    __tablename__ = "countermeasures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    what: Mapped[str] = mapped_column(Text)
    by: Mapped[str] = mapped_column(String(128))
    worked: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    approval_id: Mapped[str | None] = mapped_column(String(64), nullable=True)

    incident: Mapped[Incident] = relationship(back_populates="countermeasures")


class Remediation(Base):
    __tablename__ = "remediations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    what: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(128))
    due_date: Mapped[date | None] = mapped_column(Date, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="open")
    verification: Mapped[str] = mapped_column(Text, default="")
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)

    incident: Mapped[Incident] = relationship(back_populates="remediations")
