"""Live `firebreak serve` processes: each writes a heartbeat so the others can tell when one died.

DBOS (without its hosted Conductor) only recovers the workflows of its own executor id on restart; when a
replica is killed for good, another replica must notice and recover that executor's pending workflows.
This table is that notice: one row per replica, `last_seen` refreshed every few seconds.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from firebreak.state.base import Base, UtcDateTime


class Replica(Base):
    __tablename__ = "replicas"

    executor_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    boot_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime)
    # Set by the replica that recovered this one's workflows after it stopped answering.
    recovered_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
