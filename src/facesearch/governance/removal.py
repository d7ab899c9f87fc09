"""Removing photos (``facesearch remove``, the API's DELETE): by image id, source or whole collection.

Like erasure, through the library's single writer: rows deleted in one transaction with their audit
entry (zeroed on SQLite), the vectors dropped and the index saved at once, the library's own copies
of uploaded photos deleted once no row uses them. What goes is resolved by deletion_plan.py, the
same resolution :func:`preview_removal` shows beforehand; a removal that matches nothing raises
``NothingMatched`` and leaves no receipt or audit entry.
"""

from __future__ import annotations

from facesearch.governance.deletion_plan import DeletionPlan, checked_plan, preview_removal, removal_targets
from facesearch.governance.events import RemovalEvent, record
from facesearch.governance.types import User
from facesearch.governance.writers import WriterSource, writer_of
from facesearch.store.catalog import RemovalReceipt

__all__ = ["preview_removal", "remove_photos"]


def remove_photos(
    library: WriterSource,
    *,
    image_id: int | None = None,
    source: str | None = None,
    collection: str | None = None,
    actor: str | User | None = None,
    expected: DeletionPlan | None = None,
) -> RemovalReceipt:
    """Remove photos by exactly one of image id, source (a path is resolved; a URL as given) or collection.

    ``expected``: the plan an operator confirmed (``preview_removal``); if the library changed since,
    nothing is deleted (``PlanChanged``). Nothing to remove is ``NothingMatched``.
    """
    writer = writer_of(library)
    with writer.deleting() as deletion:
        s = deletion.session
        targets = removal_targets(s, image_id=image_id, source=source, collection=collection)
        checked_plan(s, targets, expected)
        deletion.images(targets.image_ids)
        if targets.collection_id is not None:
            deletion.collection(targets.collection_id)
        removed = deletion.removed
        by = "collection" if collection else "image" if image_id is not None else "source"
        event = RemovalEvent(sorted(removed.image_ids), sorted(removed.face_ids), by)
        record(writer.catalog, event, actor, session=s)
    return RemovalReceipt(sorted(removed.image_ids), sorted(removed.face_ids), removed.sources)
