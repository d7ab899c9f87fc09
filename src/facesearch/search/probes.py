"""Probes read and embedded: one photo, several photos fused as one person, or an indexed face.

Kept apart from the search path (search/service.py) because how a probe becomes probe faces is one
question, asked the same way by search, verify, face detection and opt-out requests; the search path
then only decides what those faces may be compared with and what is shown and audited. Nothing here
compares a face with the library or records an audit entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facesearch.errors import FaceSearchError, NoFaceFound
from facesearch.governance.types import SearchPurpose
from facesearch.media.decode import decode_image, sha256_hex
from facesearch.media.files import read_file
from facesearch.models.pipeline import Face
from facesearch.models.pipeline_pool import PipelinePool
from facesearch.models.template import mean_template
from facesearch.search.purposes import purpose_for_face
from facesearch.store.catalog import Catalog

MAX_PROBE_PHOTOS = 10  # photos fused into one same-person probe (issue 13)

Probe = str | Path | bytes


@dataclass(frozen=True)
class ProbeFaces:
    """A probe's faces, embedded, with what the result and the audit entry say of the probe.

    ``digests``: every photo's SHA-256 (the first is the probe's); ``size``: [width, height] of the
    first photo; ``parts``: each photo's embedding of a fused probe (None otherwise), for the opt-out
    check (search/exclusions.py ``blocked_probe_faces``).
    """

    faces: list[Face]
    digests: list[str]
    size: list[int]
    parts: np.ndarray | None = None

    @property
    def digest(self) -> str:
        return self.digests[0]


def probe_photos(probe: Probe | Sequence[Probe], same_person: bool, face: int | None) -> list[Probe]:
    """The probe photos of one search: one, or several only when the caller says they show one person."""
    listed = [probe] if isinstance(probe, str | Path | bytes) else list(probe)
    if not listed:
        raise FaceSearchError("a search needs a probe photo", code="bad_request")
    if len(listed) > 1 and not same_person:
        raise FaceSearchError(
            f"{len(listed)} probe photos: several photos are searched together only as one person "
            "(same_person=True, CLI --same-person); otherwise search them one at a time",
            code="bad_request",
        )
    if len(listed) > MAX_PROBE_PHOTOS:
        raise FaceSearchError(
            f"at most {MAX_PROBE_PHOTOS} photos per same-person probe; got {len(listed)}", code="bad_request"
        )
    if len(listed) > 1 and face is not None:
        raise FaceSearchError(
            "face= picks a face of one probe photo; a same-person probe uses each photo's largest face",
            code="bad_request",
        )
    return listed


def _largest(faces: Sequence[Face]) -> Face:
    return max(faces, key=lambda f: f.box[2] * f.box[3])


class ProbeReader:
    """Reads probe photos (size and pixel limits), finds and embeds their faces with a borrowed pipeline."""

    def __init__(self, pipelines: PipelinePool, *, max_bytes: int, max_pixels: int) -> None:
        self.pipelines = pipelines
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels

    def load(self, probe: Probe) -> tuple[np.ndarray, str]:
        """Decode a probe given as a path or as bytes; returns RGB pixels and the SHA-256 of the bytes."""
        data = probe if isinstance(probe, bytes) else read_file(Path(probe), self.max_bytes)
        return decode_image(data, max_pixels=self.max_pixels).rgb, sha256_hex(data)

    def read(self, photos: list[Probe], face: int | None) -> ProbeFaces:
        """The probe faces of one photo (all, or only face number ``face``), or of several fused as one person."""
        return self.photo(photos[0], face) if len(photos) == 1 else self.fused(photos)

    def photo(self, probe: Probe, face: int | None = None) -> ProbeFaces:
        """Every face of one photo, embedded (or only face number ``face``)."""
        rgb, digest = self.load(probe)
        with self.pipelines.borrow() as pipeline:
            faces = pipeline.find_faces(rgb)
            if not faces:
                where = probe if not isinstance(probe, bytes) else ""
                raise NoFaceFound(f"no face found in the probe {where}".strip())
            if face is not None:
                if not 0 <= face < len(faces):
                    raise FaceSearchError(
                        f"the probe has {len(faces)} face(s): choose a face from 0 to {len(faces) - 1}",
                        code="bad_face",
                    )
                faces = [faces[face]]
            return ProbeFaces(pipeline.embed_faces(faces), [digest], [int(rgb.shape[1]), int(rgb.shape[0])])

    def fused(self, probes: list[Probe]) -> ProbeFaces:
        """Several photos of one person -> one probe face: the largest face of each photo, embedded, and
        the L2-normalised mean of those embeddings (models/template.py, as the opt-out's mean template).

        Issue 13 (multi-photo probes). The fused face keeps the first photo's box, size and face number
        (what a result shows beside the probe); its quality is the lowest of the photos'. A photo
        without a face is refused by its name (or its number), before anything is compared; the same photo
        twice counts once. Also returns each photo's embedding (``parts``), for the opt-out check.
        """
        largest: list[Face] = []
        digests: list[str] = []
        size: list[int] = []
        for number, probe in enumerate(probes, start=1):
            rgb, digest = self.load(probe)
            if digest in digests:
                continue  # the same photo twice counts once
            with self.pipelines.borrow() as pipeline:
                found = pipeline.find_faces(rgb)
                if not found:
                    name = str(probe) if not isinstance(probe, bytes) else f"photo {number}"
                    raise NoFaceFound(f"no face found in {name} (probe photo {number} of {len(probes)})")
                largest.extend(pipeline.embed_faces([_largest(found)]))
            digests.append(digest)
            size = size or [int(rgb.shape[1]), int(rgb.shape[0])]
        parts = np.stack([f.embedding for f in largest])  # type: ignore[misc]
        template = mean_template(parts)
        if template is None:
            raise FaceSearchError("the probe photos' faces cancel out: search them one at a time", code="bad_request")
        fused = replace(largest[0], index=0, embedding=template, quality=min(f.quality for f in largest))
        return ProbeFaces([fused], digests, size, parts)

    def largest_face(self, photo: Probe) -> tuple[np.ndarray, str]:
        """The embedding of the largest face in a photo and the photo's SHA-256 (for opt-out requests).

        Not a search: nothing is compared with the library, so nothing is audited here; the caller
        (an opt-out) audits what it does with it.
        """
        rgb, digest = self.load(photo)
        with self.pipelines.borrow() as pipeline:
            faces = pipeline.analyse(rgb)
        if not faces:
            raise NoFaceFound("no face found in the photo")
        return np.asarray(_largest(faces).embedding, dtype=np.float32), digest

    def detected(self, image: Probe) -> list[dict]:
        """The faces detected in a photo (box, landmarks, scores): nothing is compared with the library."""
        rgb, _ = self.load(image)
        with self.pipelines.borrow() as pipeline:
            found = pipeline.analyse(rgb)  # embedded too: the quality score includes stability
        return [
            {
                "face": f.index,
                "box": list(f.box),
                "landmarks": [[round(float(x), 1), round(float(y), 1)] for x, y in f.landmarks],
                "det_score": round(f.det_score, 4),
                "quality": f.quality,
            }
            for f in found
        ]


def indexed_probe(
    catalog: Catalog, photos: object, face_id: int, purpose: SearchPurpose, suppressed: np.ndarray | None
) -> ProbeFaces:
    """The stored face ``face_id`` as a probe face ("search with this face", issue 13: its embedding as
    stored; no photo is read, and none may be given too), bound like a face view:

    - ``not_found`` when there is no such face or it is an opted-out person's (``suppressed``): the same
      answer, so that the refusal tells nothing about who opted out;
    - the legal basis its collection demands, or ``purpose_required``: a face of a collection the user
      may not search without one is no probe without one either.

    Its photo's SHA-256 stands for the probe's; ``size`` is its photo's.
    """
    if photos not in (None, [], ()):
        raise FaceSearchError("search with probe photos or with an indexed face id, not both", code="bad_request")
    row = catalog.faces_by_ids([face_id]).get(face_id)
    if row is None or (suppressed is not None and face_id in set(suppressed.tolist())):
        raise FaceSearchError(f"no indexed face {face_id} to search with", code="not_found")
    purpose_for_face(catalog, purpose, face_id, row.image.collection.name, "every search")
    face = Face(
        index=0,
        box=(row.left, row.top, row.width, row.height),
        landmarks=np.asarray(row.landmarks, dtype=np.float32),
        det_score=float(row.det_score),
        quality=float(row.quality),
        thumbnail=bytes(row.thumbnail),  # its crop as indexed: a case report shows it as the probe's
        chip=np.zeros((0, 0, 3), np.uint8),
        embedding=np.frombuffer(row.embedding, dtype=np.float32).copy(),
    )
    return ProbeFaces([face], [row.image.sha256], [int(row.image.width), int(row.image.height)])
