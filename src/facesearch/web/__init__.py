"""The web app: static HTML, CSS and JavaScript served at ``/`` by the API's own process.

Nothing is fetched from a CDN or font service at run time: the files under ``static/`` are all the
browser loads, and every call it makes goes to the ``/v1`` API with the user's key (kept in the tab's
sessionStorage, so it is gone when the tab closes). The pages hold no data of their own: whatever a
user sees, the API decided they may see, and audited it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.routing import Match, Mount
from starlette.types import Scope

STATIC = Path(__file__).parent / "static"


class _WebMount(Mount):
    """A mount at ``/`` that never claims an API path (``api_prefix``, given by the API: the web layer
    sits below it and never imports it).

    A plain mount at ``/`` matches every path, so the API would lose its own answers: ``GET /v1/search``
    would get the static files' 404 instead of the API's 405. Declining ``/v1`` keeps those unchanged.
    """

    def __init__(self, *args: object, api_prefix: str, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.api_prefix = api_prefix

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        path = scope.get("path", "")
        if path == self.api_prefix or path.startswith(self.api_prefix + "/"):
            return Match.NONE, {}
        return super().matches(scope)


def mount_web(app: FastAPI, api_prefix: str) -> None:
    """Serve the web app at ``/``. Call it after the API routers are included: routes added after a
    mount at ``/`` would never be reached."""
    if any(getattr(route, "name", None) == "web" for route in app.routes):
        return  # already mounted (create_app may do it)
    app.router.routes.append(
        _WebMount("/", app=StaticFiles(directory=STATIC, html=True), name="web", api_prefix=api_prefix)
    )
