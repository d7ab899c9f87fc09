"""How governance reaches a library's single writer without knowing the library.

Erasure, opt-out and retention change the catalog and the vectors only through the library's
:class:`~facesearch.store.writer.LibraryWriter`. Their callers pass either the writer itself or an
object that has one (a ``Library``): this module names that shape, so the governance layer never
imports the library facade above it.
"""

from __future__ import annotations

from typing import Protocol

from facesearch.store.writer import LibraryWriter


class HasWriter(Protocol):
    @property
    def writer(self) -> LibraryWriter: ...


WriterSource = LibraryWriter | HasWriter


def writer_of(source: WriterSource) -> LibraryWriter:
    """The writer itself, or the writer of the object given (a library)."""
    return source if isinstance(source, LibraryWriter) else source.writer
