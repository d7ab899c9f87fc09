"""Watchlists: a case watching for a person, the alerts they raise, and how far each user has read them.

Revision ID: 0006
Revises: 0005
Created: 2026-12-05

Why (issue 13): nothing told an investigator when a newly ingested photo matched the person of a
case. ``watches`` holds each watch (its case, a label, the probe photos' embeddings with the model
key, a required expiry, an optional webhook, who added and removed it and when, the audit entries);
``alerts`` each newly stored face a watch matched (face, image, score, fmr, label, when, the audit
entry, the webhook's delivery outcome); ``alert_marks`` up to which alert a user has seen them.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _has(table: str) -> bool:
    """Whether the table exists already (a catalog adopted from ``create_all`` with today's models)."""
    if op.get_context().as_sql:
        return False
    return sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if not _has("watches"):
        op.create_table(
            "watches",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("case_pk", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
            sa.Column("label", sa.String(200), nullable=False),
            sa.Column("model_key", sa.String(200), nullable=False),
            sa.Column("dim", sa.Integer(), nullable=False),
            sa.Column("embeddings", sa.LargeBinary(), nullable=False),
            sa.Column("photos_sha256", sa.JSON(), nullable=False),
            sa.Column("expires_at", sa.DateTime(), nullable=False),
            sa.Column("webhook_url", sa.String(2000), nullable=True),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("created_by", sa.String(200), nullable=False),
            sa.Column("audit_seq", ID64, nullable=False),
            sa.Column("removed_at", sa.DateTime(), nullable=True),
            sa.Column("removed_by", sa.String(200), nullable=True),
            sa.Column("removed_seq", ID64, nullable=True),
        )
        op.create_index("ix_watches_case", "watches", ["case_pk"])
    if not _has("alerts"):
        op.create_table(
            "alerts",
            sa.Column("id", sa.Integer(), primary_key=True),
            sa.Column("watch_id", sa.Integer(), sa.ForeignKey("watches.id"), nullable=False),
            sa.Column("case_pk", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False),
            sa.Column("face_id", ID64, nullable=False),
            sa.Column("image_id", ID64, nullable=False),
            sa.Column("score", sa.Float(), nullable=False),
            sa.Column("fmr", sa.Float(), nullable=True),
            sa.Column("label", sa.String(20), nullable=False),
            sa.Column("at", sa.DateTime(), nullable=False),
            sa.Column("audit_seq", ID64, nullable=False),
            sa.Column("webhook_status", sa.String(300), nullable=True),
            sa.Column("webhook_at", sa.DateTime(), nullable=True),
        )
        op.create_index("ix_alerts_case", "alerts", ["case_pk"])
        op.create_index("ix_alerts_watch", "alerts", ["watch_id"])
    if not _has("alert_marks"):
        op.create_table(
            "alert_marks",
            sa.Column("user_key", sa.String(200), primary_key=True),
            sa.Column("last_seen", sa.Integer(), nullable=False),
            sa.Column("at", sa.DateTime(), nullable=False),
        )


def downgrade() -> None:
    op.drop_table("alert_marks")
    op.drop_index("ix_alerts_watch", table_name="alerts")
    op.drop_index("ix_alerts_case", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_watches_case", table_name="watches")
    op.drop_table("watches")
