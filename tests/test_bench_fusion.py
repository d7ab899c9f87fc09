"""Issue 16, learned score fusion: the feature and scoring functions of bench/accuracy/fusion.py on synthetic vectors.

The bench decides whether a fused score is worth building into search; these checks make sure its baseline
features are the scores the engine computes (the cosine of the averaged views, search's s-norm) and that its
1:N figures count a search as the commands do. Random vectors only: no embedding of a real person.
"""

from __future__ import annotations

import numpy as np

from bench.accuracy.fusion import Faces, Searches, cohort_stats, matrix, outcome, pair_features
from facesearch.models.embed.base import l2_normalise
from facesearch.search.normalize import CohortNormalizer


def synthetic_cache(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """What bench/accuracy/view_cache.py stores: raw descriptors (photo, 5 chips, plain/mirror, dim) and cues."""
    raw = rng.normal(size=(n, 5, 2, 16)).astype(np.float32) + rng.normal(size=(n, 1, 1, 16)).astype(np.float32) * 3
    return {"raw": raw, "det_score": rng.random(n).astype(np.float32), "box": rng.uniform(40, 200, n)}


def test_faces_embedding_is_the_engines_average_of_the_ten_views() -> None:
    """The engine sums the 10 raw descriptors and normalises (models/embed/base.py): the bench's baseline is that."""
    data = synthetic_cache(np.random.default_rng(0), 6)
    faces = Faces.load(data)
    np.testing.assert_allclose(faces.emb, l2_normalise(data["raw"].sum(axis=(1, 2))), rtol=1e-5, atol=1e-6)
    assert faces.views.shape == (6, 10, 16)
    assert np.all(faces.stability <= 1 + 1e-6) and np.all(faces.stability > 0)


def test_mirror_agreement_is_one_when_each_chip_equals_its_mirror() -> None:
    data = synthetic_cache(np.random.default_rng(1), 4)
    data["raw"][:, :, 1] = data["raw"][:, :, 0]
    np.testing.assert_allclose(Faces.load(data).mirror, 1.0, rtol=1e-5)


def test_pair_features_carry_the_engines_scores() -> None:
    """``cos`` is the verify score, ``snorm`` search's normalised score, and the view-pair statistics are ordered."""
    rng = np.random.default_rng(2)
    faces = Faces.load(synthetic_cache(rng, 30))
    cohort = faces.emb[10:]
    mu, sd = cohort_stats(faces.emb, cohort)
    a, b = np.array([0, 1, 2]), np.array([3, 4, 5])
    feats = pair_features(faces, a, b, mu, sd)
    cos = np.einsum("ij,ij->i", faces.emb[a], faces.emb[b])
    np.testing.assert_allclose(feats["cos"], cos, rtol=1e-5)
    normaliser = CohortNormalizer(cohort, top=19)
    pairs = zip(cos, a, b, strict=True)
    expected = [normaliser.normalize(np.array([c]), faces.emb[i], faces.emb[[j]])[0] for c, i, j in pairs]
    np.testing.assert_allclose(feats["snorm"], expected, rtol=1e-4, atol=1e-4)
    assert np.all(feats["vv_min"] <= feats["vv_mean"]) and np.all(feats["vv_mean"] <= feats["vv_max"])


def test_outcome_counts_a_mate_below_the_threshold_as_missed() -> None:
    """rank-1 counts the mate on top; FNIR also misses a mate on top that scores no higher than the FPIR threshold
    (with 2 non-mated searches, their highest top score)."""
    scores = np.array(
        [
            [0.9, 0.1],  # mated: mate on top, above every stranger: found
            [0.6, 0.5],  # mated: mate on top but below a stranger's top score: missed at FPIR 0.01
            [0.2, 0.8],  # mated: another face on top: missed
            [0.7, 0.3],  # non-mated
            [0.4, 0.1],  # non-mated
        ]
    )
    mate = np.array([[True, False], [True, False], [True, False], [False, False], [False, False]])
    mated = np.array([True, True, True, False, False])
    rank1, fnir = outcome(Searches(feats={}, mate=mate, mated=mated), scores)
    assert rank1 == 2 / 3
    assert fnir == 2 / 3


def test_matrix_keeps_each_candidates_features_on_one_row() -> None:
    """1:N features are (searches, candidates) arrays: each row of the design matrix must be one candidate's
    features, not neighbouring candidates' values of one feature (a bug that turned the fused ranking to noise)."""
    feats = {"cos": np.array([[0.9, 0.1], [0.5, 0.4]]), "snorm": np.array([[9.0, 1.0], [5.0, 4.0]])}
    np.testing.assert_array_equal(matrix(feats, ["cos", "snorm"]), [[0.9, 9.0], [0.1, 1.0], [0.5, 5.0], [0.4, 4.0]])
