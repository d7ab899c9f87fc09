"""Removing photos (``facesearch remove``, the API's DELETE): by image id, source or whole collection.

Like erasure, through the library's single writer: rows deleted in one transaction with their audit
entry (zeroed on SQLite), the vectors dropped and the index saved at once, the library's own copies
of uploaded photos deleted once no row uses them.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from facesearch.errors import FaceSearchError
from facesearch.governance.events import RemovalEvent, record
from facesearch.governance.types import User
from facesearch.governance.writers import WriterSource, writer_of
from facesearch.store.catalog import RemovalReceipt
from facesearch.store.schema import CollectionRow, ImageRow


def remove_photos(
    library: WriterSource,
    *,
    image_id: int | None = None,
    source: str | None = None,
    collection: str | None = None,
    actor: str | User | None = None,
) -> RemovalReceipt:
    """Remove photos by exactly one of image id, source (a path is resolved; a URL as given) or collection."""
    if sum(x is not None for x in (image_id, source, collection)) != 1:
        raise FaceSearchError("remove needs exactly one of image_id, source or collection", code="bad_request")
    writer = writer_of(library)
    with writer.deleting() as deletion:
        s = deletion.session
        if collection is not None:
            cid = s.scalar(select(CollectionRow.id).where(CollectionRow.name == collection))
            if cid is None:
                raise FaceSearchError(f"no collection named {collection!r}", code="not_found")
            deletion.images(s.scalars(select(ImageRow.id).where(ImageRow.collection_id == cid)).all())
            deletion.collection(cid)
        elif image_id is not None:
            deletion.images([image_id])
        else:
            resolved = source if "://" in str(source) else str(Path(str(source)).resolve())
            for candidate in dict.fromkeys([resolved, str(source)]):
                found = s.scalars(select(ImageRow.id).where(ImageRow.source == candidate)).all()
                if deletion.images(found).image_ids:
                    break
        removed = deletion.removed
        by = "collection" if collection else "image" if image_id is not None else "source"
        event = RemovalEvent(sorted(removed.image_ids), sorted(removed.face_ids), by)
        record(writer.catalog, event, actor, session=s)
    return RemovalReceipt(sorted(removed.image_ids), sorted(removed.face_ids), removed.sources)
