"""People: persons found by clustering, which faces each holds, the manual marks, the full runs.

Revision ID: 0007
Revises: 0006
Created: 2026-12-05

Why (issue 14): "who is in here?" groups every indexed face into persons. ``persons`` holds each
person (a name and ``hidden``, the user's; the audit entry that created it); ``person_faces`` which
person holds a face and how it got there (``auto``: clustering; ``manual``: a merge or split, kept
together by every re-cluster); ``person_marks`` the corrections a re-cluster must never undo
(``not_person``: a face is not that person; ``apart``: two persons are two people, a split);
``people_runs`` each full clustering (threshold, max_fmr, counts, audit entry).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _has(table: str) -> bool:
    """Whether the table exists already (a catalog adopted from ``create_all`` with today's models)."""
    if op.get_context().as_sql:
        return False
    return sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if not _has("persons"):
        op.create_table(
            "persons",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("name", sa.String(200), nullable=True),
            sa.Column("hidden", sa.Boolean(), nullable=False),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("updated_at", sa.DateTime(), nullable=False),
            sa.Column("audit_seq", ID64, nullable=False),
        )
    if not _has("person_faces"):
        op.create_table(
            "person_faces",
            sa.Column("face_id", ID64, primary_key=True, autoincrement=False),
            sa.Column("person_id", sa.Integer(), nullable=False),
            sa.Column("how", sa.String(10), nullable=False),
        )
        op.create_index("ix_person_faces_person", "person_faces", ["person_id"])
    if not _has("person_marks"):
        op.create_table(
            "person_marks",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("kind", sa.String(20), nullable=False),
            sa.Column("person_id", sa.Integer(), nullable=False),
            sa.Column("face_id", ID64, nullable=True),
            sa.Column("other_id", sa.Integer(), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("created_by", sa.String(200), nullable=False),
            sa.Column("audit_seq", ID64, nullable=False),
        )
        op.create_index("ix_person_marks_person", "person_marks", ["person_id"])
    if not _has("people_runs"):
        op.create_table(
            "people_runs",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("at", sa.DateTime(), nullable=False),
            sa.Column("actor", sa.String(200), nullable=False),
            sa.Column("threshold", sa.Float(), nullable=False),
            sa.Column("max_fmr", sa.Float(), nullable=True),
            sa.Column("faces", sa.Integer(), nullable=False),
            sa.Column("persons", sa.Integer(), nullable=False),
            sa.Column("audit_seq", ID64, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("people_runs")
    op.drop_index("ix_person_marks_person", table_name="person_marks")
    op.drop_table("person_marks")
    op.drop_index("ix_person_faces_person", table_name="person_faces")
    op.drop_table("person_faces")
    op.drop_table("persons")
