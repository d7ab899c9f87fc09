"""User names unique whatever their case: ``governance_users.name_key``.

Revision ID: 0004
Revises: 0003
Created: 2026-12-05

Why (issue 12 §7): users "Admin" and "admin" could coexist, so an audit entry's actor or an
operator's ``users revoke admin`` could name the wrong person. The new column holds the name as
compared (Unicode NFKC, then case-folded) under a unique constraint, so that the database itself
refuses a second spelling, even when two processes add users at once.

A catalog that already holds names differing only by case is migrated, not refused (refusing would
lock the operator out of every command, since each one opens the catalog): the deterministic
resolution is that the oldest user (lowest id) keeps the plain key and each later one gets
``<key>#<id>``. Nobody loses access or their name (audit entries keep their meaning), each is still
found by its exact name, and no new user can take any spelling of the name. The later users are
named in a warning so that an admin can revoke the one that should not exist.

The compared form is computed here rather than imported, so that later code cannot change what this
revision does; governance/users.py ``name_key`` computes the same.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)

TABLE = "governance_users"
CONSTRAINT = "uq_governance_users_name_key"


def _key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def resolve_keys(rows: Sequence[tuple[int, str]]) -> dict[int, str]:
    """``{id: name_key}`` for ``(id, name)`` rows: the oldest of each spelling keeps the plain key."""
    keys: dict[int, str] = {}
    taken: set[str] = set()
    for user_id, name in sorted(rows):
        key = _key(name)
        if key in taken:
            log.warning(
                "user %r (id %d) differs only by case from an older user: kept, with name key %r; "
                "revoke whichever of them should not exist",
                name,
                user_id,
                f"{key}#{user_id}",
            )
            key = f"{key}#{user_id}"
        taken.add(key)
        keys[user_id] = key
    return keys


def upgrade() -> None:
    bind = op.get_bind()
    if "name_key" in {c["name"] for c in sa.inspect(bind).get_columns(TABLE)}:
        return  # adopted from create_all with today's models: the column and its constraint exist
    op.add_column(TABLE, sa.Column("name_key", sa.String(length=120), nullable=True))
    users = sa.table(TABLE, sa.column("id", sa.Integer()), sa.column("name", sa.String()), sa.column("name_key"))
    rows = [(int(i), str(n)) for i, n in bind.execute(sa.select(users.c.id, users.c.name))]
    for user_id, key in resolve_keys(rows).items():
        bind.execute(sa.update(users).where(users.c.id == user_id).values(name_key=key))
    with op.batch_alter_table(TABLE) as batch:
        batch.alter_column("name_key", existing_type=sa.String(length=120), nullable=False)
        batch.create_unique_constraint(CONSTRAINT, ["name_key"])


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_constraint(CONSTRAINT, type_="unique")
        batch.drop_column("name_key")
