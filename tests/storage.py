"""Storage test helpers: the same tests run on SQLite and, when configured, on a real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POSTGRES_URL = os.environ.get("FIREBREAK_TEST_POSTGRES_URL")  # e.g. postgresql://fb@127.0.0.1:5433/postgres
BACKENDS = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.skipif(
        not POSTGRES_URL, reason="FIREBREAK_TEST_POSTGRES_URL not set (.ci/run starts PostgreSQL and sets it)")),
]


@contextmanager
def fresh_database_url(backend: str, tmp_dir: str) -> Iterator[str]:
    """A brand-new empty database for one test, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir}/state.db"
        return
    import psycopg

    assert POSTGRES_URL
    name = f"fbtest_{uuid.uuid4().hex[:12]}"
    admin = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        from firebreak.db import reset_databases

        reset_databases()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
