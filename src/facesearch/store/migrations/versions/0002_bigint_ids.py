"""64-bit image and face ids on PostgreSQL.

Revision ID: 0002
Revises: 0001
Created: 2026-11-27

Why: a face's id is also its vector's id in the index, and PostgreSQL's INTEGER stops at
2,147,483,647: short of the galleries of billions that docs/scaling.md sizes. SQLite's INTEGER keys
are 64-bit already, so there this revision changes nothing. On PostgreSQL, ``ALTER ... TYPE bigint``
rewrites ``images`` and ``faces`` under an exclusive lock: on a large catalog, open it once (any
facesearch command) in a quiet hour.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("images", "id"), ("faces", "id"), ("faces", "image_id"))
SEQUENCES = ("images_id_seq", "faces_id_seq")  # what SERIAL made for the two keys


def _on_postgresql() -> bool:
    return op.get_context().dialect.name == "postgresql"


def upgrade() -> None:
    if not _on_postgresql():
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer(), existing_nullable=False)
    for sequence in SEQUENCES:
        op.execute(f"ALTER SEQUENCE IF EXISTS {sequence} AS bigint")


def downgrade() -> None:
    """Back to 32-bit ids; refused by PostgreSQL if an id no longer fits (nothing is lost silently)."""
    if not _on_postgresql():
        return
    for sequence in SEQUENCES:
        op.execute(f"ALTER SEQUENCE IF EXISTS {sequence} AS integer")
    for table, column in reversed(COLUMNS):
        op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger(), existing_nullable=False)
