"""Ids never given out twice: the highest image, face, person and opt-out id handed out, per table.

Revision ID: 0008
Revises: 0007
Created: 2026-12-06

Why (stop 25): SQLite numbers a new row as the table's largest id plus one, so erasing the newest photo
gave its image and face ids to the next photo stored, and the audit log, a case's evidence or an alert
that named the erased faces then showed somebody else's. ``id_high_water`` keeps, per table, the highest
id ever handed out; the catalog takes new ids above it (store/ids.py). It starts empty: the first photo
stored after the upgrade gets the table's largest id plus one, as before, and from then on no id comes back.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _has(table: str) -> bool:
    """Whether the table exists already (a catalog adopted from ``create_all`` with today's models)."""
    if op.get_context().as_sql:
        return False
    return sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if not _has("id_high_water"):
        op.create_table(
            "id_high_water",
            sa.Column("name", sa.String(50), primary_key=True),
            sa.Column("high", ID64, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("id_high_water")
