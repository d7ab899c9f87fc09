"""Issue 15: "a distractor model with identity structure (person centres + within-person spread)".

Synthetic people only (no faces): clustered unit vectors in a narrow cone stand in for embeddings, so the
fit can be checked against a known structure.
"""

from __future__ import annotations

import numpy as np

from facesearch.eval import distractors


def clustered_people(n_people: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """1-6 faces per person around a person centre, centres around one mean direction (a cone)."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=128)
    mean *= 4 / np.linalg.norm(mean)
    counts = rng.integers(1, 7, size=n_people)
    centres = mean + rng.normal(size=(n_people, 128)) * 0.2
    person = np.repeat(np.arange(n_people), counts)
    faces = centres[person] + rng.normal(size=(len(person), 128)) * 0.08
    faces /= np.linalg.norm(faces, axis=1, keepdims=True)
    return faces.astype(np.float32), np.array([f"p{i}" for i in person])


def test_people_model_reproduces_same_and_different_person_scores() -> None:
    vectors, persons = clustered_people()
    rng = np.random.default_rng(1)
    fit = distractors.fit_people(vectors, persons)
    assert fit.faces_per_person.min() >= 1 and fit.faces_per_person.max() <= 6
    real_different = distractors.different_person_similarities(vectors, persons, 100_000, rng)
    target = float(np.percentile(real_different, 99.9))
    scale = distractors.calibrate_people_scale(fit, target, 99.9, rng, n_people=4000, n_pairs=100_000)
    sample, person = distractors.sample_people(fit, 6000, scale, rng)
    labels = person.astype(str)
    assert np.allclose(np.linalg.norm(sample, axis=1), 1.0, atol=1e-5)

    fake_different = distractors.different_person_similarities(sample, labels, 100_000, rng)
    assert abs(float(np.percentile(fake_different, 99.9)) - target) < 0.01  # calibrated on the tail
    real_same = distractors.same_person_similarities(persons, vectors, 50_000, rng)
    fake_same = distractors.same_person_similarities(labels, sample, 50_000, rng)
    assert abs(float(np.median(fake_same)) - float(np.median(real_same))) < 0.02  # the within spread as fitted
    # identity structure: a face is far closer to its own person's other faces than to other people's,
    # which the single Gaussian cannot give (every draw there is its own person)
    assert float(np.median(fake_same)) > float(np.percentile(fake_different, 99.9))


def test_people_are_sampled_whole_across_chunks(monkeypatch) -> None:
    """Faces are generated in chunks of whole people: a person cut in two would get two centres."""
    vectors, persons = clustered_people(seed=2)
    fit = distractors.fit_people(vectors, persons)
    monkeypatch.setattr(distractors, "CHUNK", 7)  # many chunk boundaries in 500 faces
    sample, person = distractors.sample_people(fit, 500, 1.0, np.random.default_rng(3))
    assert (np.diff(person) >= 0).all() and person[0] == 0 and len(person) == 500
    starts = np.flatnonzero(np.r_[True, person[1:] != person[:-1]])
    sizes = np.diff(np.r_[starts, len(person)])
    pairs = [(s, s + 1) for s, size in zip(starts, sizes, strict=True) if size >= 2]
    same = np.array([sample[a] @ sample[b] for a, b in pairs])
    between = np.array([sample[s] @ sample[t] for s, t in zip(starts[:-1], starts[1:], strict=True)])
    assert len(pairs) >= 50 and np.median(same) > np.percentile(between, 99)


def test_the_scale_benches_fill_the_gallery_with_people_on_request() -> None:
    """``--distractors people`` (bench/scale/engines.py, codecs.py): the gallery past the real faces is made of
    synthetic people (several close faces each), and the check reports both models; the default stays Gaussian."""
    import argparse

    from bench.datasets import RealFaces
    from bench.scale.search import GAUSSIAN, PEOPLE, make_workload

    vectors, persons = clustered_people(n_people=300, seed=4)
    real = RealFaces(ids=np.arange(1, len(vectors) + 1, dtype=np.int64), vectors=vectors, persons=persons)
    size = len(vectors) + 3000
    made = {}
    for model in (GAUSSIAN, PEOPLE):
        args = argparse.Namespace(queries=20, match_percentile=99.9, cov_scale=1.0, distractors=model)
        workload, check = make_workload(real, args, size, np.random.default_rng(5))
        assert len(workload.ids) == size and len(np.unique(workload.ids)) == size
        assert ("people" in check) == (model == PEOPLE)
        made[model] = workload.vectors[workload.n_real :]
    # neighbouring rows are often the same synthetic person in the people model, never in the Gaussian
    for model, fake in made.items():
        neighbours = np.einsum("ij,ij->i", fake[:-1], fake[1:])
        close = float(np.mean(neighbours > 0.9))  # real same person: p1 0.947; different: p99.9 0.82
        assert close > 0.2 if model == PEOPLE else close < 0.01, (model, close)
