"""The two audit entries of an ingest run: one before its first photo, one with its counts.

Why two: an ingest killed midway (kill -9, a power cut) has committed photos but never reaches its
end. The opening entry is written before the first photo is stored and every image carries its
sequence number, so the catalog never holds photos the log cannot account for (issue 12 §4);
the closing entry adds the counts and names the opening one.
"""

from __future__ import annotations

from typing import Any

from facesearch.governance.events import IngestEvent, IngestStartEvent, record
from facesearch.governance.types import User
from facesearch.store.catalog import Catalog


class IngestAudit:
    """Audits one ingest run by ``actor``: :meth:`start` is the ingester's ``audit_start`` hook."""

    def __init__(self, catalog: Catalog, actor: str | User | None) -> None:
        self.catalog = catalog
        self.actor = actor
        self.started: int | None = None

    def start(self, plan: dict[str, Any]) -> int:
        """Record the run's plan (collection, sources, engine); returns the sequence number images keep."""
        self.started = record(self.catalog, IngestStartEvent(plan), self.actor).seq
        return self.started

    def finish(self, report: dict[str, Any]) -> None:
        """Record the run's counts (the rejected list only by its length), naming the opening entry."""
        counts = {k: v for k, v in report.items() if k != "rejected"}
        summary = {**counts, "rejected": len(report.get("rejected", [])), "started": self.started}
        record(self.catalog, IngestEvent(summary), self.actor)
