"""Photos of one person, as an opt-out or a watch takes them: the largest face of each, embedded once.

Both an opt-out (issue 12) and a watch (issue 13) name a person by a few photos. They share the same
rules, kept here so that they cannot drift apart: at least one photo and at most a stated number, the
same photo sent twice counted once (by SHA-256), and a photo without a face refused with its name and
place in the request rather than silently skipped (a skipped photo would weaken the template unseen).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from facesearch.errors import FaceSearchError, NoFaceFound

Photo = bytes | str | Path


def embed_each(
    embed: Callable[[Photo], tuple[np.ndarray, str]], photos: Photo | Sequence[Photo], *, what: str, max_photos: int
) -> list[tuple[np.ndarray, str]]:
    """``(embedding, sha256)`` of each distinct photo's largest face; ``what`` names the request ("opt-out")."""
    listed = [photos] if isinstance(photos, bytes | str | Path) else list(photos)
    article = "an" if what[:1] in "aeiou" else "a"
    if not listed:
        raise FaceSearchError(f"{article} {what} needs at least one photo of the person", code="bad_request")
    if len(listed) > max_photos:
        raise FaceSearchError(f"at most {max_photos} photos per {what}; got {len(listed)}", code="bad_request")
    found: dict[str, np.ndarray] = {}
    for number, photo in enumerate(listed, start=1):
        try:
            embedding, digest = embed(photo)
        except NoFaceFound as exc:
            name = photo if isinstance(photo, str | Path) else f"photo {number}"
            raise NoFaceFound(
                f"no face found in {name} ({what} photo {number} of {len(listed)}): send a clear photo of the face"
            ) from exc
        found.setdefault(digest, np.asarray(embedding, dtype=np.float32))
    return [(embedding, digest) for digest, embedding in found.items()]
