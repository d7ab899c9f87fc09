"""Image, face, person and opt-out ids that are never given out twice, on SQLite too.

Face ids are the vectors' ids and are named by the audit log, cases, alerts and people; image ids by
the same. SQLite's rowid is the table's largest id plus one, so after the newest photo was erased the
next photo got its ids back, and everything that named the erased faces pointed at somebody else's.
:func:`reserve_ids` moves a per-table high-water mark (``id_high_water``) past the ids it hands out, in the
writer's own transaction: one ``UPDATE ... RETURNING`` that takes SQLite's write lock first, so two
writers never get the same range. PostgreSQL's sequences never reuse an id: there it returns None and
the database numbers the rows as before.

Opt-outs too: other processes notice a new opt-out by the table's (count, largest id), so a withdrawn newest
opt-out followed by a new one (same count, same id on SQLite) left a running server matching the withdrawn
person and not the new one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

#: the tables whose ids are reserved: what the audit log, cases, alerts, URLs and people name
TABLES = ("images", "faces", "persons", "optouts")


def reserve_ids(session: Session, table: str, count: int) -> int | None:
    """The first of ``count`` new ids for ``table`` (the rest follow it), or None on PostgreSQL."""
    if table not in TABLES:
        raise ValueError(f"ids are reserved only for {TABLES}, not {table!r}")
    if session.get_bind().dialect.name != "sqlite" or count <= 0:
        return None
    session.execute(text("INSERT OR IGNORE INTO id_high_water (name, high) VALUES (:name, 0)"), {"name": table})
    high = session.execute(
        text(
            f"UPDATE id_high_water SET high = max(high, (SELECT coalesce(max(id), 0) FROM {table})) + :count "  # noqa: S608 - table from TABLES
            "WHERE name = :name RETURNING high"
        ),
        {"name": table, "count": count},
    ).scalar_one()
    return int(high) - count + 1


def number_rows(session: Session, table: str, rows: Sequence[Any]) -> None:
    """Give new ORM rows of ``table`` reserved ids, in order (on PostgreSQL the database numbers them)."""
    first = reserve_ids(session, table, len(rows))
    if first is not None:
        for offset, row in enumerate(rows):
            row.id = first + offset


def number_values(session: Session, table: str, values: list[dict]) -> None:
    """The same for the value dicts of a bulk ``INSERT``."""
    first = reserve_ids(session, table, len(values))
    if first is not None:
        for offset, row in enumerate(values):
            row["id"] = first + offset
