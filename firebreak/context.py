"""What every tool receives: settings, the (possibly simulated) clock, the database, lazy stores."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from firebreak.clock import Clock, SystemClock
from firebreak.db import Database, get_database
from firebreak.settings import Settings

T = TypeVar("T")


@dataclass
class ToolContext:
    """Injected into every tool call; a drill builds one with its own data dir and clock."""

    settings: Settings
    clock: Clock = field(default_factory=SystemClock)
    _db: Database | None = None
    _resources: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = get_database(self.settings)
        return self._db

    def resource(self, key: str, factory: Callable[[], T]) -> T:
        """A store or client opened once per context (log store, flag store, chroma index...)."""
        with self._lock:
            if key not in self._resources:
                self._resources[key] = factory()
            return self._resources[key]  # type: ignore[no-any-return]

    def close(self) -> None:
        for res in self._resources.values():
            close = getattr(res, "close", None)
            if callable(close):
                close()
        self._resources.clear()


def default_context() -> ToolContext:
    """A context from the current environment (read fresh, so each CLI call sees its own settings)."""
    return ToolContext(settings=Settings())
