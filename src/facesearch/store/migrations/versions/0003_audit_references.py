"""Rows that prove something happened name the audit entry that recorded it.

Revision ID: 0003
Revises: 0002
Created: 2026-12-05

Why: the hash chain shows an edited or reordered entry, and the head row a cut-off tail, but with
the append-only triggers dropped a whole log (head included) can be deleted, and an empty log
verified as "intact". The catalog itself is evidence of what happened: every image, user and
opt-out row now carries ``audit_seq``, the sequence number of the entry that created it, and every
erasure leaves a small ``erasures`` row (receipt id, time, entry; no paths). ``audit verify`` checks
that the log still holds every entry these rows name (issue 12 §4).

Rows made before this revision have no reference (NULL); they still count as evidence that the
log cannot be empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFERENCING = ("images", "governance_users", "optouts")


def _has(table: str, column: str | None = None) -> bool:
    """Whether the table (or its column) exists already: a catalog adopted from before migrations was
    made by ``create_all`` from the models of its day, which may have had them."""
    if op.get_context().as_sql:  # writing a script: assume revision 0002 exactly
        return False
    inspector = sa.inspect(op.get_bind())
    if column is None:
        return inspector.has_table(table)
    return any(c["name"] == column for c in inspector.get_columns(table))


def upgrade() -> None:
    for table in REFERENCING:
        if not _has(table, "audit_seq"):
            op.add_column(table, sa.Column("audit_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite")))
    indexes = [] if op.get_context().as_sql else sa.inspect(op.get_bind()).get_indexes("images")
    if not any(i["name"] == "ix_images_audit_seq" for i in indexes):
        op.create_index("ix_images_audit_seq", "images", ["audit_seq"])
    if _has("erasures"):
        return
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("receipt_id", sa.String(32), nullable=False, unique=True),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("audit_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("erasures")
    op.drop_index("ix_images_audit_seq", table_name="images")
    for table in reversed(REFERENCING):
        # ALTER TABLE ... DROP COLUMN, also on SQLite (3.35+): never batch mode, whose copy-and-drop of
        # ``images`` would cascade to every face row.
        op.drop_column(table, "audit_seq")
