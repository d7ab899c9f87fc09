"""One template for one person from several photos: the L2-normalised mean of their embeddings.

The mean of several photos of a person lies nearer the person's other photos than any single one
(pose, light and expression average out), as Rekognition's user vectors do. Shared by the opt-out
(governance/optout.py: a person's photos plus their mean) and the multi-photo search probe
(search/probes.py, issue 13), so both fuse a person's photos the same way.
"""

from __future__ import annotations

import numpy as np


def mean_template(embeddings: np.ndarray) -> np.ndarray | None:
    """The unit-length mean of ``embeddings`` (one per row); None when the mean is the zero vector."""
    mean = np.asarray(embeddings).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm == 0:
        return None
    return (mean / norm).astype(embeddings.dtype)
