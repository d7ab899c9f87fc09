"""Errors of the REST API, and the one JSON shape every error takes: ``{"error": {"code", "message"}}``.

Every error facesearch raises on purpose is a :class:`~facesearch.errors.FaceSearchError` with a
stable ``code``; the API maps that code (or, failing that, the error's class) to an HTTP status, so
a client can branch on the code and a new error with a known code needs no new handler. Anything
else is a bug: it is logged with its traceback and answered with a bare 500 that reveals nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from facesearch.errors import FaceSearchError, ImageRejected, LibraryError, ModelError, NoFaceFound
from facesearch.governance.errors import AuditError, PermissionDenied, PurposeRequired, UserError

log = logging.getLogger(__name__)

# Form fields whose absence means "no case or purpose was given": reported as purpose_required.
PURPOSE_FIELDS = frozenset({"case_id", "purpose"})


class ApiError(FaceSearchError):
    """An error the API layer itself raises (the library's own errors keep their classes)."""

    code = "bad_request"


class Unauthorized(ApiError):
    """No API key, or one that is unknown, malformed or revoked (HTTP 401)."""

    code = "unauthorized"


class RateLimited(ApiError):
    """The key used up its requests for now (HTTP 429); ``retry_after`` is in whole seconds."""

    code = "rate_limited"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PayloadTooLarge(ApiError):
    """An upload or a request body is over its limit (HTTP 413)."""

    code = "too_large"


class NotFound(ApiError):
    code = "not_found"


class Busy(ApiError):
    """A write had to wait too long for an ingest job to finish (HTTP 409; retry later)."""

    code = "busy"


# Status by error code. Codes not listed fall back to the error's class (see status_for).
STATUS_BY_CODE: dict[str, int] = {
    "bad_request": 400,
    "bad_json": 400,
    "bad_manifest": 400,
    "unauthorized": 401,
    "forbidden": 403,
    "not_found": 404,
    "nothing_matched": 404,
    "no_user": 404,
    "no_collection": 404,
    "no_case": 404,
    "no_watch": 404,
    "no_person": 404,
    "no_task": 404,
    "method_not_allowed": 405,
    "user_exists": 409,
    "collection_exists": 409,
    "case_exists": 409,
    "case_closed": 409,
    "watch_removed": 409,
    "conflict": 409,
    "opted_out": 403,
    "already_reviewed": 409,
    "same_reviewer": 403,
    "last_admin": 409,
    "plan_changed": 409,
    "busy": 409,
    "source_changed": 409,
    "too_large": 413,
    "not_an_image": 415,
    "unsupported": 415,
    "empty_file": 422,
    "too_many_pixels": 422,
    "truncated": 422,
    "corrupt": 422,
    "no_face": 422,
    "bad_face": 422,
    "bad_date": 422,
    "bad_decision": 422,
    "bad_expiry": 422,
    "bad_webhook": 422,
    "not_a_candidate": 422,
    "bad_anchor": 422,
    "purpose_required": 422,
    "invalid_purpose": 422,
    "unknown_role": 422,
    "bad_name": 422,
    "path_not_allowed": 422,
    "validation_error": 422,
    "rate_limited": 429,
    "internal_error": 500,
    "bad_settings": 500,
}

_STATUS_BY_CLASS: tuple[tuple[type[FaceSearchError], int], ...] = (
    (PermissionDenied, 403),
    (PurposeRequired, 422),
    (UserError, 422),
    (ImageRejected, 422),
    (NoFaceFound, 422),
    (AuditError, 500),
    (LibraryError, 500),
    (ModelError, 500),
)

_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def status_for(exc: FaceSearchError) -> int:
    """The HTTP status of a facesearch error: by its code, else by its class, else 400 (the input was refused)."""
    if exc.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[exc.code]
    for cls, status in _STATUS_BY_CLASS:
        if isinstance(exc, cls):
            return status
    return 400


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def facesearch_error_response(exc: FaceSearchError) -> JSONResponse:
    status = status_for(exc)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
    if status >= 500:
        # Server-side faults (audit log, library folder, models): the details are for the log only.
        log.error("%s (%s): %s", type(exc).__name__, exc.code, exc)
        return error_response(status, exc.code, "the server could not complete the request; see its log")
    return error_response(status, exc.code, exc.message, headers)


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """422 with the fields and problems in words (never the input back); 400 ``bad_json`` for unparseable JSON."""
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "bad_json", "the request body is not valid JSON")
    missing = {str(e["loc"][-1]) for e in errors if e.get("type") == "missing" and e.get("loc")}
    if missing & PURPOSE_FIELDS:
        return error_response(
            422, "purpose_required", "every search and comparison needs a case_id and a purpose (form fields)"
        )
    parts = []
    for error in errors[:10]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return error_response(422, "validation_error", "; ".join(parts) or "invalid request")


def install_handlers(app: FastAPI) -> None:
    """Make every error, expected or not, a JSON error body with the right status."""

    @app.exception_handler(FaceSearchError)
    async def _facesearch(_: Request, exc: FaceSearchError) -> JSONResponse:
        return facesearch_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODE_BY_STATUS.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return error_response(exc.status_code, code, message, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal error; the server log has the details")
