"""What a search may look at besides the collection (issue 13): photos taken in a date range.

Applied in the one search path (search/service.py) *before* ranking: the date range narrows the
vector store's ``allowed`` id set exactly as the collection filter does (search/exclusions.py), so a
photo outside the range is never fetched, ranked or shown. (An indexed face as the probe is read with
the other probes, in search/probes.py.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import numpy as np
from sqlalchemy import func, select

from facesearch.errors import FaceSearchError
from facesearch.store.catalog import Catalog
from facesearch.store.schema import FaceRow, ImageRow

DateLike = str | date | datetime | None


def _parse(value: DateLike, name: str, *, end: bool) -> datetime | None:
    """A date (``YYYY-MM-DD``: the whole day) or an ISO date and time -> a naive datetime bound.

    ``end``: a date alone as the upper bound means the end of that day (exclusive: the next midnight).
    EXIF times carry no time zone (media/decode.py), so bounds are compared naive; a zone given is dropped.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime.combine(value + timedelta(days=1) if end else value, time())
    text = str(value).strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day + timedelta(days=1) if end else day, time())
        return datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        raise FaceSearchError(
            f"{name} {text[:40]!r} is not a date: write YYYY-MM-DD (or YYYY-MM-DDTHH:MM:SS)", code="bad_date"
        ) from None


@dataclass(frozen=True)
class DateRange:
    """Photos taken from ``after`` (inclusive) to ``before`` (exclusive); either may be open."""

    after: datetime | None = None
    before: datetime | None = None

    @classmethod
    def of(cls, taken_after: DateLike = None, taken_before: DateLike = None) -> DateRange:
        """Checked before the probe is read: a bad date or an empty range is refused (``bad_date``)."""
        after = _parse(taken_after, "taken_after", end=False)
        before = _parse(taken_before, "taken_before", end=True)
        if after is not None and before is not None and after >= before:
            raise FaceSearchError(
                f"taken_after ({taken_after}) must be before taken_before ({taken_before})", code="bad_date"
            )
        return cls(after, before)

    @property
    def active(self) -> bool:
        return self.after is not None or self.before is not None

    def audit(self) -> dict[str, str | None]:
        """The bounds as the audit entry and the result name them (ISO text)."""
        return {
            "taken_after": self.after.isoformat() if self.after else None,
            "taken_before": self.before.isoformat() if self.before else None,
        }


def restrict_to_dates(
    catalog: Catalog, allowed: np.ndarray | None, dates: DateRange
) -> tuple[np.ndarray | None, int | None]:
    """The ids a search may return within ``dates`` (of ``allowed``, or of all faces) and how many faces
    in that scope were left out for having no date. ``(allowed, None)`` when no range is given."""
    if not dates.active:
        return allowed, None
    taken = [ImageRow.exif_time.is_not(None)]
    if dates.after is not None:
        taken.append(ImageRow.exif_time >= dates.after)
    if dates.before is not None:
        taken.append(ImageRow.exif_time < dates.before)
    with catalog.session() as s:
        ids = np.asarray(s.scalars(select(FaceRow.id).join(ImageRow).where(*taken)).all(), dtype=np.int64)
        undated_ids = select(FaceRow.id).join(ImageRow).where(ImageRow.exif_time.is_(None))
        if allowed is None:
            undated = int(s.scalar(select(func.count()).select_from(undated_ids.subquery())) or 0)
        else:
            undated = int(np.isin(np.asarray(s.scalars(undated_ids).all(), dtype=np.int64), allowed).sum())
    if allowed is not None:
        ids = np.intersect1d(ids, allowed)
    return ids, undated
