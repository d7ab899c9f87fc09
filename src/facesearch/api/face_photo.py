"""The whole photo an indexed face is in, for the compare view (issue 13: "the original photo cannot be
opened, only a face thumbnail; its date is stored but never shown").

Why here and not a static file route: the photo is a face view like the thumbnail, so it goes through the
one search path (``SearchService.view_face``: case, purpose, the collection's legal basis, an audit entry
``face_view`` with ``view: photo``) before a byte is read. The file is read from where it was indexed and
checked against its SHA-256 (a file changed since is refused, not shown as if it were the one indexed);
it is re-encoded as a JPEG at most :data:`MAX_SIDE` pixels on its longer side, which also drops the
file's own metadata (GPS included). Photos indexed from URLs are not kept: their source link is shown.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from PIL import Image

from facesearch.api.errors import ApiError, NotFound
from facesearch.api.service import view_face
from facesearch.governance import SearchPurpose, User
from facesearch.library import Library
from facesearch.media.decode import decode_image, sha256_hex

MAX_SIDE = 1600
JPEG_QUALITY = 88


class SourceChanged(ApiError):
    code = "source_changed"


@dataclass(frozen=True)
class FacePhoto:
    """A JPEG of the photo, the face's box in its pixels, its size, and the photo's EXIF date (None: none)."""

    jpeg: bytes
    box: tuple[int, int, int, int]
    size: tuple[int, int]
    taken: datetime | None


def face_photo(library: Library, face_id: int, *, purpose: SearchPurpose, actor: User, max_pixels: int) -> FacePhoto:
    """The photo of ``face_id``, after the purpose check and audit entry of a face view."""
    row = view_face(library, face_id, purpose=purpose, actor=actor, thumbnail=False, photo=True)
    image = row.image
    if image.source_kind != "file":
        raise NotFound(f"the photo of face {face_id} was fetched from a URL and is not kept: open its source link")
    try:
        data = Path(image.source).read_bytes()
    except OSError as exc:
        raise NotFound(f"the photo of face {face_id} is no longer at the path it was indexed from") from exc
    if sha256_hex(data) != image.sha256:
        raise SourceChanged(f"the file of face {face_id} has changed since it was indexed: not shown")
    decoded = decode_image(data, max_pixels=max_pixels)
    picture = Image.fromarray(decoded.rgb)
    scale = min(1.0, MAX_SIDE / max(decoded.width, decoded.height))
    if scale < 1.0:
        picture = picture.resize((round(decoded.width * scale), round(decoded.height * scale)), Image.LANCZOS)
    left, top, width, height = row.box
    box = (round(left * scale), round(top * scale), round(width * scale), round(height * scale))
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=JPEG_QUALITY)
    return FacePhoto(out.getvalue(), box, picture.size, image.exif_time or decoded.exif_time)
