"""The state database: migrations match the models, SQLite runs in WAL mode, naive datetimes are refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select, text

from firebreak.context import ToolContext
from firebreak.state.base import Base
from firebreak.state.changes import Change


def test_migrations_produce_exactly_the_models(storage_ctx: ToolContext) -> None:
    with storage_ctx.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_sqlite_uses_wal(ctx: ToolContext) -> None:
    with ctx.db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_migrate_is_idempotent(ctx: ToolContext) -> None:
    """Migrating a database that is already at the newest revision changes nothing: same revision(s),
    the rows are still there (a migration that re-ran would fail on an existing table or drop data)."""
    from alembic.script import ScriptDirectory

    from firebreak.db import alembic_config, migrate

    heads = set(ScriptDirectory.from_config(alembic_config(str(ctx.db.engine.url))).get_heads())
    with ctx.db.session() as s:
        s.add(Change(kind="deploy", at=datetime(2026, 1, 1, tzinfo=UTC), note="kept"))

    def revisions() -> set[str]:
        with ctx.db.engine.connect() as conn:
            return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())

    assert revisions() == heads
    migrate(ctx.db.engine)
    migrate(ctx.db.engine)
    assert revisions() == heads
    with ctx.db.session() as s:
        assert list(s.scalars(select(Change.note))) == ["kept"]


def test_naive_datetimes_are_refused(ctx: ToolContext) -> None:
    with pytest.raises(Exception, match="naive datetime"), ctx.db.session() as s:
        s.add(Change(kind="deploy", at=datetime(2026, 1, 1), note=""))
        s.flush()


def test_data_dir_is_created_on_first_use(ctx: ToolContext) -> None:
    assert not ctx.settings.data_dir.exists()
    _ = ctx.db
    assert (ctx.settings.data_dir / "firebreak.db").exists()
