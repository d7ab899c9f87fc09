"""Cases and the decisions made about their candidates.

Revision ID: 0005
Revises: 0004
Created: 2026-12-05

Why (issue 13): an investigator's job is a case, not one search. ``cases`` holds each case (its id
as stated and as compared, purpose, legal basis, status, the users working it, who created and
closed it and when); ``case_decisions`` the decisions about candidate faces (``confirmed lead``,
``rejected``, ``inconclusive``, with a note), including the blind second review a confirmed lead
needs. Both name the audit entry that created them (``audit_seq``), as images, users and opt-outs do.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _has(table: str) -> bool:
    """Whether the table exists already (a catalog adopted from ``create_all`` with today's models)."""
    if op.get_context().as_sql:
        return False
    return sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if not _has("cases"):
        op.create_table(
            "cases",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("case_id", sa.String(100), nullable=False),
            sa.Column("case_key", sa.String(120), nullable=False, unique=True),
            sa.Column("purpose", sa.String(1000), nullable=False),
            sa.Column("legal_basis", sa.String(500), nullable=True),
            sa.Column("status", sa.String(10), nullable=False),
            sa.Column("users", sa.JSON(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("created_by", sa.String(200), nullable=False),
            sa.Column("closed_at", sa.DateTime(), nullable=True),
            sa.Column("closed_by", sa.String(200), nullable=True),
            sa.Column("audit_seq", ID64, nullable=False),
        )
    if not _has("case_decisions"):
        op.create_table(
            "case_decisions",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("case_pk", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
            sa.Column("face_id", ID64, nullable=False),
            sa.Column("search_seq", ID64, nullable=True),
            sa.Column("stage", sa.String(10), nullable=False),
            sa.Column("first_id", sa.Integer(), nullable=True),
            sa.Column("decision", sa.String(20), nullable=False),
            sa.Column("note", sa.String(1000), nullable=False),
            sa.Column("reviewer", sa.String(200), nullable=False),
            sa.Column("at", sa.DateTime(), nullable=False),
            sa.Column("audit_seq", ID64, nullable=False),
        )
        op.create_index("ix_case_decisions_case", "case_decisions", ["case_pk"])


def downgrade() -> None:
    op.drop_index("ix_case_decisions_case", table_name="case_decisions")
    op.drop_table("case_decisions")
    op.drop_table("cases")
