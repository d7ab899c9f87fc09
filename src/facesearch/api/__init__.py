"""The REST API (``facesearch serve``): FastAPI routes under /v1 over one library, with keys, roles and audit.

- :mod:`~facesearch.api.app`: ``create_app(library_path)``: the application.
- :mod:`~facesearch.api.server`: ``serve(library_path, host, port)``: Uvicorn, bound to 127.0.0.1 by default.
- :mod:`~facesearch.api.auth`: keys, roles per route, rate limits; :mod:`~facesearch.api.errors`: JSON errors.
- :mod:`~facesearch.api.service`: the governance glue (purpose, opt-outs, audit), one function per operation.
- :mod:`~facesearch.api.jobs`, :mod:`~facesearch.api.uploads`, :mod:`~facesearch.api.manifest`: ingest.
- :mod:`~facesearch.api.routes`: one router per area; :mod:`~facesearch.api.models`: request/response bodies.
"""

from __future__ import annotations

from facesearch.api.app import create_app
from facesearch.api.server import serve

__all__ = ["create_app", "serve"]
