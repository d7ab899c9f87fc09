"""Synthetic distractor faces: embeddings that look like real ones to an index.

Used by the search and clustering benchmarks (bench/scale/) and by ``eval identify --gallery-sizes``
(issue 16: the gallery-size sweep pads the real gallery with them; moved here from bench/scale/ so that
the package never imports bench/).

A 1M-face gallery cannot be built from LFW (about 13k photos), and filling it with uniform random
unit vectors would be far too easy: uniform vectors in 128-d are almost orthogonal to every face,
while real faces of different people still score around 0.8 against each other (dlib embeddings
occupy a narrow cone). The neighbours a search must tell apart live in the upper tail of that
distribution, so the distractors have to reproduce it.

We fit a multivariate Gaussian (mean + covariance) to the real embeddings, sample it and
L2-normalise. The covariance can be scaled by one factor: larger means more spread around the mean
direction, hence lower and more dispersed similarities. :func:`calibrate_scale` picks the factor
whose distractor-pair similarities match real different-person pairs at a chosen percentile, and
:func:`compare` reports both distributions so the match can be judged, not assumed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CHUNK = 100_000
# Rows gathered per step of ``pair_similarities``: two 2,048 x 128 float32 gathers (1 MB each) stay in cache for
# the dot products. With CHUNK (two 51 MB gathers per step) the 400,000 pairs took 0.22 s of CPU, with 2,048 rows
# 0.04 s, bitwise the same similarities (each row's dot product is computed alike); the calibration's bisection
# computes them 30 times, which cost ~6 s of every `eval identify --gallery-sizes` run (issue 11, the suite's speed).
PAIR_CHUNK = 2_048
PERCENTILES = (50.0, 99.0, 99.9, 99.99)


@dataclass(frozen=True)
class GaussianFit:
    """Mean and covariance of the real embeddings, kept as an eigen-decomposition for cheap sampling."""

    mean: np.ndarray
    eigvecs: np.ndarray
    sqrt_eigvals: np.ndarray


def fit_gaussian(vectors: np.ndarray) -> GaussianFit:
    """Fit N(mean, cov). eigh rather than Cholesky: with few faces the covariance is near-singular."""
    data = vectors.astype(np.float64)
    mean = data.mean(axis=0)
    eigvals, eigvecs = np.linalg.eigh(np.cov(data, rowvar=False))
    return GaussianFit(
        mean=mean.astype(np.float32),
        eigvecs=eigvecs.astype(np.float32),
        sqrt_eigvals=np.sqrt(np.clip(eigvals, 0.0, None)).astype(np.float32),
    )


def transform(fit: GaussianFit, normals: np.ndarray, scale: float) -> np.ndarray:
    """Map standard normals to unit vectors from N(mean, scale * cov); the same normals give a
    deterministic, monotone function of ``scale``, which makes the calibration a plain bisection."""
    x = (normals * (np.sqrt(scale) * fit.sqrt_eigvals)) @ fit.eigvecs.T
    x += fit.mean
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32, copy=False)


def sample(
    fit: GaussianFit, n: int, scale: float, rng: np.random.Generator, out: np.ndarray | None = None
) -> np.ndarray:
    """n distractors (float32, unit norm), generated in chunks so that 1M of them need one 512 MB array."""
    dim = fit.mean.shape[0]
    out = np.empty((n, dim), dtype=np.float32) if out is None else out
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        out[start:stop] = transform(fit, rng.standard_normal((stop - start, dim), dtype=np.float32), scale)
    return out


def pair_similarities(a: np.ndarray, b: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cosine similarities a[i[k]] . b[j[k]], computed in chunks to bound the temporary arrays."""
    sims = np.empty(len(i), dtype=np.float32)
    for start in range(0, len(i), PAIR_CHUNK):
        stop = start + PAIR_CHUNK
        sims[start:stop] = np.einsum("ij,ij->i", a[i[start:stop]], b[j[start:stop]])
    return sims


def different_person_similarities(
    vectors: np.ndarray, persons: np.ndarray, n_pairs: int, rng: np.random.Generator
) -> np.ndarray:
    """Similarities of random pairs of labelled faces of two different people (the impostor distribution).

    ``persons`` holds one label per face, or "" where the face's identity is unknown (those are skipped).
    """
    labelled = np.flatnonzero(persons != "")
    i = rng.choice(labelled, size=2 * n_pairs)
    j = rng.choice(labelled, size=2 * n_pairs)
    # Labels compared as integer codes: the same pairs kept, without comparing 800,000 pairs of strings (0.7 s).
    _, codes = np.unique(persons, return_inverse=True)
    keep = codes[i] != codes[j]
    return pair_similarities(vectors, vectors, i[keep][:n_pairs], j[keep][:n_pairs])


def random_pair_similarities(vectors: np.ndarray, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Similarities of random pairs of distinct rows (distractors are all different 'people')."""
    i = rng.integers(0, len(vectors), size=n_pairs)
    j = (i + rng.integers(1, len(vectors), size=n_pairs)) % len(vectors)
    return pair_similarities(vectors, vectors, i, j)


def summarize(sims: np.ndarray) -> dict[str, float]:
    """Mean, std and upper percentiles: the tail is what decides which faces a search returns."""
    stats = {"pairs": int(len(sims)), "mean": float(sims.mean()), "std": float(sims.std())}
    for p, value in zip(PERCENTILES, np.percentile(sims, PERCENTILES), strict=True):
        stats[f"p{p:g}"] = float(value)
    return stats


def bisect_scale(tail: Callable[[float], float], target: float, steps: int) -> float:
    """The scale at which ``tail(scale)`` (a similarity percentile, falling as the scale grows) meets ``target``:
    bisection in log-scale over 1e-3..1e3, shared by both distractor models' calibrations."""
    lo, hi = 1e-3, 1e3
    for _ in range(steps):
        mid = float(np.sqrt(lo * hi))
        if tail(mid) > target:
            lo = mid
        else:
            hi = mid
    return float(np.sqrt(lo * hi))


def calibrate_scale(
    fit: GaussianFit,
    target: float,
    percentile: float,
    rng: np.random.Generator,
    n_samples: int = 20_000,
    n_pairs: int = 400_000,
    steps: int = 30,
) -> float:
    """Covariance scale whose distractor pairs reach ``target`` at ``percentile`` (bisection in log-scale).

    The normals and pair indices are drawn once, so the percentile falls monotonically with the scale.
    """
    normals = rng.standard_normal((n_samples, fit.mean.shape[0]), dtype=np.float32)
    i = rng.integers(0, n_samples, size=n_pairs)
    j = (i + rng.integers(1, n_samples, size=n_pairs)) % n_samples

    def tail(scale: float) -> float:
        x = transform(fit, normals, scale)
        return float(np.percentile(pair_similarities(x, x, i, j), percentile))

    return bisect_scale(tail, target, steps)


# identity-structured distractors (issue 15) ---------------------------------------------------


@dataclass(frozen=True)
class PeopleFit:
    """Person centres and the spread of one person's faces around their centre, fitted on labelled faces.

    The single Gaussian above gives every distractor its own direction: nothing clusters, so an inverted
    file cannot localise them, where real galleries hold several photos of each person close together.
    Here a distractor person is a centre drawn from the between-person covariance, and each of their faces
    is that centre plus a draw from the pooled within-person covariance (issue 15: "a distractor model with
    identity structure"). ``faces_per_person`` is the empirical count of labelled faces per person.
    """

    between: GaussianFit
    within: GaussianFit
    faces_per_person: np.ndarray


def fit_people(vectors: np.ndarray, persons: np.ndarray) -> PeopleFit:
    """Within = pooled deviations of people with 2+ faces from their own mean (n/(n-1)-corrected);
    between = the covariance of all labelled faces less the within part (negative eigenvalues cut to 0)."""
    labelled = persons != ""
    data, names = vectors[labelled].astype(np.float64), persons[labelled]
    _, person_of, counts = np.unique(names, return_inverse=True, return_counts=True)
    sums = np.zeros((len(counts), data.shape[1]))
    np.add.at(sums, person_of, data)
    means = sums / counts[:, None]
    several = counts[person_of] >= 2
    deviations = (data - means[person_of])[several] * np.sqrt(
        counts[person_of][several] / (counts[person_of][several] - 1)
    )[:, None]
    within_cov = deviations.T @ deviations / max(1, len(deviations) - 1)
    between_cov = np.cov(data, rowvar=False) - within_cov
    return PeopleFit(
        between=_fit_cov(data.mean(axis=0), between_cov),
        within=_fit_cov(np.zeros(data.shape[1]), within_cov),
        faces_per_person=counts.astype(np.int64),
    )


def _fit_cov(mean: np.ndarray, cov: np.ndarray) -> GaussianFit:
    eigvals, eigvecs = np.linalg.eigh(cov)
    return GaussianFit(
        mean=mean.astype(np.float32),
        eigvecs=eigvecs.astype(np.float32),
        sqrt_eigvals=np.sqrt(np.clip(eigvals, 0.0, None)).astype(np.float32),
    )


def _people_faces(
    fit: PeopleFit, centre_normals: np.ndarray, face_normals: np.ndarray, person: np.ndarray, scale: float
) -> np.ndarray:
    """Unit faces: centre (between-person draw, covariance scaled by ``scale``) + within-person draw."""
    centres = (centre_normals * (np.sqrt(scale) * fit.between.sqrt_eigvals)) @ fit.between.eigvecs.T + fit.between.mean
    x = centres[person] + (face_normals * fit.within.sqrt_eigvals) @ fit.within.eigvecs.T
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32, copy=False)


def people_layout(fit: PeopleFit, n: int, rng: np.random.Generator) -> np.ndarray:
    """Which synthetic person each of n faces belongs to (0, 0, 1, 2, 2, 2, ...), counts drawn from the real ones."""
    counts = rng.choice(fit.faces_per_person, size=n)  # at least n faces: every person has >= 1
    return np.repeat(np.arange(n), counts)[:n]


def sample_people(
    fit: PeopleFit, n: int, scale: float, rng: np.random.Generator, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """n faces of synthetic people (unit float32) and each face's person number, in chunks of whole people."""
    dim = fit.between.mean.shape[0]
    out = np.empty((n, dim), dtype=np.float32) if out is None else out
    person = people_layout(fit, n, rng)
    starts = np.flatnonzero(np.r_[True, person[1:] != person[:-1]])  # where each person's faces begin
    for first in range(0, len(starts), CHUNK):
        lo = starts[first]
        hi = starts[first + CHUNK] if first + CHUNK < len(starts) else n
        people = person[lo:hi] - person[lo]
        centres = rng.standard_normal((int(people[-1]) + 1, dim), dtype=np.float32)
        faces = rng.standard_normal((hi - lo, dim), dtype=np.float32)
        out[lo:hi] = _people_faces(fit, centres, faces, people, scale)
    return out, person


def calibrate_people_scale(
    fit: PeopleFit,
    target: float,
    percentile: float,
    rng: np.random.Generator,
    n_people: int = 20_000,
    n_pairs: int = 400_000,
    steps: int = 30,
) -> float:
    """Between-person scale whose pairs of different synthetic people reach ``target`` at ``percentile``
    (as :func:`calibrate_scale`; the within-person spread stays as fitted)."""
    dim = fit.between.mean.shape[0]
    centres = rng.standard_normal((n_people, dim), dtype=np.float32)
    faces = rng.standard_normal((n_people, dim), dtype=np.float32)
    person = np.arange(n_people)
    i = rng.integers(0, n_people, size=n_pairs)
    j = (i + rng.integers(1, n_people, size=n_pairs)) % n_people

    def tail(scale: float) -> float:
        x = _people_faces(fit, centres, faces, person, scale)
        return float(np.percentile(pair_similarities(x, x, i, j), percentile))

    return bisect_scale(tail, target, steps)


def same_person_similarities(
    persons: np.ndarray, vectors: np.ndarray, n_pairs: int, rng: np.random.Generator
) -> np.ndarray:
    """Similarities of random pairs of two different faces of one person (the genuine distribution)."""
    labelled = np.flatnonzero(persons != "")
    order = labelled[np.argsort(persons[labelled], kind="stable")]
    names = persons[order]
    starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    many = np.flatnonzero(sizes >= 2)
    pick = rng.choice(many, size=n_pairs)
    a = rng.integers(0, sizes[pick])
    b = (a + rng.integers(1, sizes[pick])) % sizes[pick]
    return pair_similarities(vectors, vectors, order[starts[pick] + a], order[starts[pick] + b])
