"""Security headers sent with every response the server gives: API, web app, docs and errors alike.

Why headers and not only the web page's ``<meta>`` tag: a meta tag cannot carry ``frame-ancestors``
(browsers ignore it there), covers only the HTML page that holds it, and does nothing for a JSON or
image response opened directly. So every response says (issue 12 §6):

* ``Content-Security-Policy``: only this server's own scripts, styles and images (and ``blob:``
  images made from fetched thumbnails) load; no plug-ins, no ``<base>``, no form posts elsewhere, and
  ``frame-ancestors 'none'``: no other site may frame a page of this server (click-jacking);
* ``X-Frame-Options: DENY``: the same for browsers that predate ``frame-ancestors``;
* ``X-Content-Type-Options: nosniff``: a response is only ever what its Content-Type says (an
  uploaded "photo" can never be run as a script or a page);
* ``Referrer-Policy: no-referrer``: opening a photo's source page never tells it where the link was.

The interactive API documentation (``/docs``, Swagger UI from the fastapi-offline package) starts
with one inline script and sets inline styles, so its page alone allows ``'unsafe-inline'``; it shows
the API's description, never the library's data, and it too may not be framed.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_COMMON = "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
CSP = (
    "default-src 'self'; img-src 'self' blob: data:; script-src 'self'; style-src 'self'; connect-src 'self'; "
    + _COMMON
)
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; connect-src 'self'; " + _COMMON
)
HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` and a Content-Security-Policy to every HTTP response."""

    def __init__(self, app: ASGIApp, docs_paths: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.docs_paths = docs_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        policy = DOCS_CSP if scope.get("path", "") in self.docs_paths else CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = policy
                for name, value in HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
