"""Errors a caller can act on. Each carries a short machine-readable ``code``."""

from __future__ import annotations


class FaceSearchError(Exception):
    """Base class: every error facesearch raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self)


class ImageRejected(FaceSearchError):
    """An input could not be used as an image (empty, corrupt, too large, not an image...)."""

    code = "image_rejected"


class FetchRefused(FaceSearchError):
    """A URL was not fetched (private address, wrong content type, too large, timeout...)."""

    code = "fetch_refused"


class ModelError(FaceSearchError):
    """A model file is missing, unreadable, or does not match what the library was built with."""

    code = "model_error"


class LibraryError(FaceSearchError):
    """The library folder is unusable or inconsistent in a way we cannot repair automatically."""

    code = "library_error"


class NoFaceFound(FaceSearchError):
    """A probe image holds no detectable face."""

    code = "no_face"


class CalibrationError(FaceSearchError):
    """A calibration is missing, malformed, or cannot answer the question asked of it."""

    code = "calibration_error"


class NoCollection(FaceSearchError):
    """An ingest named a collection that does not exist: ingest never creates one, an admin does
    (governance/collections.py), so that a new name cannot sidestep a collection's rules."""

    code = "no_collection"

    @classmethod
    def named(cls, name: str) -> NoCollection:
        return cls(
            f"no collection named {name!r}: an admin must create it first "
            f"(facesearch collections create {name}, or POST /v1/collections)"
        )
