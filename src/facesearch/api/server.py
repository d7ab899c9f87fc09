"""``serve()``: run the REST API with Uvicorn (``facesearch serve`` calls this).

It binds to 127.0.0.1 by default: the API hands out faces and must not face a network by accident.
To serve others, put it behind a TLS-terminating reverse proxy and bind to the proxy's interface
(keys travel in headers, so plain HTTP beyond localhost would expose them). One process: the rate
limits, the job table and the served library's locks are in its memory (see state.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

from facesearch.api.app import create_app
from facesearch.api.state import MiB

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def serve(
    library_path: Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    rate_limit_per_minute: int = 120,
    max_upload_bytes: int = 20 * MiB,
    ingest_workers: int | None = None,
    search_workers: int | None = None,
    docs: bool = True,
    log_level: str = "info",
) -> None:
    """Serve the library at ``library_path`` until interrupted."""
    import uvicorn

    app = create_app(
        Path(library_path),
        rate_limit_per_minute=rate_limit_per_minute,
        max_upload_bytes=max_upload_bytes,
        ingest_workers=ingest_workers,
        search_workers=search_workers,
        docs=docs,
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("serving on %s: put a TLS-terminating proxy in front, API keys travel in headers", host)
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1, proxy_headers=False)
