"""The REST API application: ``create_app(library_path)`` returns a FastAPI app serving one library.

Routes are versioned under ``/v1``; the OpenAPI document is at ``/openapi.json`` and the interactive
documentation at ``/docs``. Every error is JSON ``{"error": {"code", "message"}}`` (see errors.py);
every route but ``/v1/health`` needs an API key (see auth.py). The app owns a background thread
for ingest jobs and the served Library; both are closed when the app shuts down.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from facesearch._version import __version__
from facesearch.api.auth import API_PREFIX, AuthMiddleware, publish_actions
from facesearch.api.errors import install_handlers
from facesearch.api.headers import SecurityHeaders
from facesearch.api.jobs import JobRunner
from facesearch.api.ratelimit import RateLimiter
from facesearch.api.routes import ROUTERS
from facesearch.api.state import ApiSettings, LibraryHost, MiB, default_search_workers
from facesearch.api.uploads import UploadStore, sweep_orphans

log = logging.getLogger(__name__)

DOCS_ASSETS = "/docs-assets"  # Swagger UI's script and style, from the fastapi-offline package

DESCRIPTION = """\
Search a self-hosted face library by photo, with accountability built in.

* Every route but `/v1/health` needs an API key: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
  Each route names the roles that may call it (`x-facesearch-action` in this document).
* Every search and comparison states a `case_id` and a `purpose`; both are recorded in the audit log,
  with the probe's SHA-256 and the face ids shown (never the probe).
* Results are leads for a person to review, labelled for the gallery searched: `match` when at most
  `max_fpir` strangers are expected to score as high among the faces searched (default 0.01),
  `possible lead` when the false match rate per comparison is at most `max_fmr`, `no match` otherwise.
  Even a match is not an identification.
* Errors are JSON: `{"error": {"code": "...", "message": "..."}}`; branch on `code`.
"""


def create_app(
    library_path: Path,
    *,
    rate_limit_per_minute: int = 120,
    max_upload_bytes: int = 20 * MiB,
    max_request_bytes: int | None = None,
    ingest_workers: int | None = None,
    search_workers: int | None = None,
    embedder: str = "onnx",
    docs: bool = True,
) -> FastAPI:
    """A FastAPI app serving the library at ``library_path`` (which must exist: create it and its first
    admin with the CLI). ``max_upload_bytes`` bounds each uploaded file, ``max_request_bytes`` (default
    5 x that) a whole multipart request (any other body, JSON, is capped at 1 MiB: auth.MAX_JSON_BYTES);
    ``rate_limit_per_minute`` is per user (0 turns limiting off);
    ``search_workers`` probes are embedded at once (default: one per two cores, at most four);
    ``docs=False`` serves neither /docs nor /openapi.json."""
    settings = ApiSettings(
        library_path=Path(library_path),
        rate_limit_per_minute=rate_limit_per_minute,
        max_upload_bytes=max_upload_bytes,
        max_request_bytes=max_request_bytes if max_request_bytes is not None else 5 * max_upload_bytes,
        ingest_workers=ingest_workers,
        search_workers=search_workers or default_search_workers(),
        embedder=embedder,
    )
    uploads = UploadStore(settings.library_path)
    host = LibraryHost(settings, held_uploads=uploads.held)
    sweep_orphans(uploads, host.catalog)  # what a server killed during a job left in uploads/ (issue 12 §5)
    jobs = JobRunner(host, uploads, workers=ingest_workers)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("serving %s", host.path)
        yield
        jobs.close()
        host.close()

    # The interactive docs page loads Swagger UI from the fastapi-offline package, not from a CDN, so it
    # works on an offline machine. It and the schema describe the API, not its data, and are served
    # without a key (a browser cannot send one when opening /docs); docs=False removes both.
    described = {"title": "facesearch", "version": __version__, "description": DESCRIPTION, "lifespan": lifespan}
    if docs:
        app = FastAPIOffline(
            docs_url="/docs",
            openapi_url="/openapi.json",
            redoc_url=None,
            static_url=DOCS_ASSETS,
            favicon_url="/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None},  # no call to validator.swagger.io
            **described,
        )
    else:
        app = FastAPI(docs_url=None, openapi_url=None, redoc_url=None, **described)
    app.state.settings = settings
    app.state.host = host
    app.state.uploads = uploads
    app.state.jobs = jobs
    for router in ROUTERS:
        publish_actions(router.routes)
        app.include_router(router, prefix=API_PREFIX)
    install_handlers(app)
    app.add_middleware(
        AuthMiddleware,
        host=host,
        limiter=RateLimiter(rate_limit_per_minute),
        max_request_bytes=settings.max_request_bytes,
    )
    from facesearch.web import mount_web

    mount_web(app, API_PREFIX)  # after the routers: the web app's mount at "/" must come last
    _send_security_headers(app, frozenset({"/docs", "/docs/oauth2-redirect"} if docs else ()))
    return app


def _send_security_headers(app: FastAPI, docs_paths: frozenset[str]) -> None:
    """Wrap the whole middleware stack in :class:`SecurityHeaders`, Starlette's own error middleware
    included: ``add_middleware`` would place it inside that one, and a 500 would go out without them."""
    build = app.build_middleware_stack

    def build_with_headers() -> Any:
        return SecurityHeaders(build(), docs_paths)

    app.build_middleware_stack = build_with_headers  # type: ignore[method-assign]
