"""API keys, roles and request limits.

Every route under ``/v1`` needs an API key, sent as ``Authorization: Bearer <key>`` or as
``X-API-Key: <key>``; the one exception is ``GET /v1/health``, which answers ``{"status": "ok"}``
and nothing else, so that a load balancer can probe the server without holding a key.

The key is checked by :class:`AuthMiddleware` *before* the request body is read: an unauthenticated
client cannot make the server spool a 100 MiB upload, and a rejected key costs one scrypt hash.
Then, per route, :func:`permission` checks the user's role against the route's action with
:func:`facesearch.governance.require` (403 when the role lacks it). The action is recorded on the
route (see :func:`action_of`), published in the OpenAPI document as ``x-facesearch-action``, and
used by the tests to check every route.

Rate limits (429 with Retry-After): each user has a token bucket of ``rate_limit_per_minute``
requests. Failed authentications are limited per *presented key* (its SHA-256), never per client
address: behind a reverse proxy every client shares one address, and an attacker sending bad keys
must not get a valid key refused (issue 12 §5). A key that has never failed has a full bucket, so a
valid key is only ever limited by its own user's requests; a bad key sent again and again is refused
before it is looked up. A key whose id matches no user costs one indexed lookup, no hashing.

Request bodies: a JSON (or any non-multipart) body is capped at :data:`MAX_JSON_BYTES` (1 MiB), a
multipart upload at ``max_request_bytes``. The cap is checked against Content-Length before anything
is read, and bytes are counted as they arrive (a chunked body has no Content-Length), so an
authenticated user cannot make the server buffer and parse a huge JSON document on its event loop.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from fastapi.routing import APIRoute

try:  # FastAPI >= 0.16x includes routers lazily; this walks the included routes
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI: app.routes holds them all
    iter_route_contexts = None  # type: ignore[assignment]
from fastapi.security import APIKeyHeader, HTTPBearer
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from facesearch.api.errors import PayloadTooLarge, RateLimited, Unauthorized, facesearch_error_response
from facesearch.api.ratelimit import RateLimiter
from facesearch.api.state import LibraryHost
from facesearch.governance import ROLE_PERMISSIONS, User, authenticate, require

log = logging.getLogger(__name__)

API_PREFIX = "/v1"
PUBLIC_PATHS = frozenset({"/v1/health"})
ANY_USER = None  # the action of routes every active user may call
ACTION_KEY = "x-facesearch-action"
MAX_JSON_BYTES = 1024 * 1024  # every JSON body of this API is a few KiB; nothing legitimate comes close
MULTIPART = b"multipart/form-data"

# Declared only so that /docs offers an "Authorize" button and the OpenAPI document lists both ways
# of sending a key; the check itself is AuthMiddleware's.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="the API key")


def key_from_headers(headers: dict[str, str]) -> str | None:
    """The API key of a request: the Bearer token, else the X-API-Key header; None when neither is there."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get("x-api-key", "").strip()
    return key or None


class AuthMiddleware:
    """Authenticates and rate-limits every ``/v1`` request but the health check; caps request bodies.

    ``limiter`` holds the per-user request buckets; ``failures`` (default: one of the same rate) the
    per-presented-key buckets of failed authentications, kept apart so that a flood of bad keys cannot
    push users' buckets out of the limiter's bounded table.
    """

    def __init__(
        self,
        app: ASGIApp,
        host: LibraryHost,
        limiter: RateLimiter,
        max_request_bytes: int,
        failures: RateLimiter | None = None,
        max_json_bytes: int = MAX_JSON_BYTES,
    ) -> None:
        self.app = app
        self.host = host
        self.limiter = limiter
        self.failures = failures if failures is not None else RateLimiter(int(limiter.capacity))
        self.max_request_bytes = max_request_bytes
        self.max_json_bytes = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            path = scope.get("path", "")
            if path.startswith(API_PREFIX + "/") and path not in PUBLIC_PATHS:
                scope.setdefault("state", {})["user"] = await self._user(scope)
            limit = self._body_limit(scope)
            self._check_length(scope, limit)
        except (Unauthorized, RateLimited, PayloadTooLarge) as exc:
            await facesearch_error_response(exc)(scope, receive, send)
            return
        await self.app(scope, self._limited(receive, limit), send)

    async def _user(self, scope: Scope) -> User:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        key = key_from_headers(headers)
        if key is None:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")
        presented = "key:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        wait = self.failures.peek(presented)
        if wait:
            raise RateLimited("too many failed authentications with this API key", wait)
        user = await anyio.to_thread.run_sync(authenticate, self.host.catalog, key)
        if user is None:
            self.failures.take(presented)
            raise Unauthorized("the API key is unknown, malformed or revoked")
        wait = self.limiter.take(f"user:{user.id}")
        if wait:
            raise RateLimited(f"rate limit of {int(self.limiter.capacity)} requests per minute reached", wait)
        return user

    def _body_limit(self, scope: Scope) -> int:
        """The byte limit of this request's body: uploads (multipart) have theirs, anything else is JSON-sized."""
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-type" and value.lower().lstrip().startswith(MULTIPART):
                return self.max_request_bytes
        return self.max_json_bytes

    @staticmethod
    def _check_length(scope: Scope, limit: int) -> None:
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    return  # the server itself refuses a malformed length
                if length > limit:
                    raise PayloadTooLarge(f"the request body is over the limit of {limit} bytes")

    @staticmethod
    def _limited(receive: Receive, limit: int) -> Receive:
        """``receive`` that stops a body sent without (or beyond) its Content-Length at the limit."""
        seen = 0

        async def wrapped() -> Any:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI re-raises an HTTPException met while reading the body: the 413 reaches the handlers.
                    raise HTTPException(413, f"the request body is over the limit of {limit} bytes")
            return message

        return wrapped


class _Permission:
    """The dependency behind :func:`permission`: the current user, if their role allows ``action``."""

    def __init__(self, action: str | None) -> None:
        self.action = action

    def __call__(
        self,
        request: Request,
        _bearer_key: Annotated[Any, Depends(_bearer)] = None,
        _header_key: Annotated[Any, Depends(_api_key)] = None,
    ) -> User:
        user = getattr(request.state, "user", None)
        if user is None:  # only reachable if the middleware was bypassed
            raise Unauthorized("an API key is required")
        if self.action is not None:
            require(user, self.action)
        return user


def permission(action: str | None) -> Any:
    """``Depends`` giving the authenticated user, after checking that their role may do ``action``.

    ``action`` is one of :data:`facesearch.governance.ACTIONS`, or None for routes every active user
    may call (who am I, which collections exist).
    """
    return Depends(_Permission(action))


def action_of(route: APIRoute) -> str | None:
    """The action a route checks (None: any active user), found in its dependencies; KeyError if none."""
    stack = list(route.dependant.dependencies)
    while stack:
        dependency = stack.pop()
        if isinstance(dependency.call, _Permission):
            return dependency.call.action
        stack.extend(dependency.dependencies)
    raise KeyError(f"{sorted(route.methods)} {route.path} checks no permission")


def publish_actions(routes: list[Any], prefix: str = API_PREFIX) -> None:
    """Write each route's action into its OpenAPI operation (``x-facesearch-action``) and description.

    Call on a router's routes before it is included (FastAPI builds the included routes from these).
    """
    for route in routes:
        if not isinstance(route, APIRoute) or prefix + route.path in PUBLIC_PATHS:
            continue
        action = action_of(route)
        route.openapi_extra = {**(route.openapi_extra or {}), ACTION_KEY: action or "any"}
        who = (
            "any authenticated user"
            if action is None
            else f"role {' or '.join(sorted(ROLE_PERMISSIONS[action]))} (action `{action}`)"
        )
        route.description = f"{route.description}\n\nNeeds an API key; {who}.".strip()


def api_routes(app: Any) -> Iterator[tuple[str, str, APIRoute]]:
    """(method, full path, route) for every API route of an app, whatever way its routers were included."""
    contexts = iter_route_contexts(app.routes) if iter_route_contexts is not None else None
    pairs = (
        ((ctx.path, ctx.original_route) for ctx in contexts)
        if contexts is not None
        else ((getattr(r, "path", None), r) for r in app.routes)
    )
    for path, route in pairs:
        if isinstance(route, APIRoute) and path:
            for method in sorted(route.methods):
                yield method, path, route
