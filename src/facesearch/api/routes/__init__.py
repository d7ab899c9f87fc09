"""One router per area of the API; :data:`ROUTERS` is what the app mounts under /v1."""

from __future__ import annotations

from facesearch.api.routes import (
    audit,
    cases,
    collections,
    erasure,
    faces,
    health,
    ingest,
    optouts,
    people,
    reviews,
    search,
    users,
    verify,
    watches,
)

ROUTERS = [
    health.router,
    users.router,
    collections.router,
    ingest.router,
    search.router,
    verify.router,
    faces.router,
    reviews.router,
    cases.router,
    people.router,
    watches.router,
    erasure.router,
    optouts.router,
    audit.router,
]
