"""Alembic's environment for the catalog, run by :mod:`facesearch.store.migrate` (no alembic.ini).

facesearch hands over an open connection (``config.attributes["connection"]``) whose transaction
already holds the migration lock, so the migrations run inside it and commit with it. Without one
(a developer running Alembic by hand with ``sqlalchemy.url`` set), an engine is made from the URL.
``render_as_batch`` lets future revisions alter SQLite tables (SQLite's ALTER TABLE cannot do much).
"""

from __future__ import annotations

from alembic import context

from facesearch.store.migrate import catalog_metadata

config = context.config
target_metadata = catalog_metadata()


def run_offline() -> None:
    """``--sql`` mode: write the DDL out instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from facesearch.store.database import create_catalog_engine, locate

    engine = create_catalog_engine(locate(config.get_main_option("sqlalchemy.url") or ""))
    try:
        with engine.connect() as conn:
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
