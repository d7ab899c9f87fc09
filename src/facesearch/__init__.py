"""facesearch: a self-hosted face search engine with safeguards built in.

The public entry point is :class:`facesearch.Library` (imported lazily so that
``import facesearch`` stays cheap and loads no model).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from facesearch._version import __version__

__all__ = ["Library", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from facesearch.library import Library


def __getattr__(name: str) -> Any:
    if name == "Library":
        from facesearch.library import Library

        return Library
    raise AttributeError(name)
