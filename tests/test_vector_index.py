"""The vector index engines behave the same behind one interface (synthetic vectors, no faces)."""

from __future__ import annotations

import threading

import faiss
import numpy as np
import pytest

from facesearch.errors import LibraryError
from facesearch.store.vectors.faiss_index import VectorIndex
from facesearch.store.vectors.protocol import Compactable, VectorStore


def unit_vectors(n: int, dim: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.mark.parametrize("engine", ["Flat", "HNSW32"])
def test_finds_itself_first_and_removal_is_immediate(engine: str, tmp_path) -> None:
    vectors = unit_vectors(2000)
    ids = np.arange(10, 2010, dtype=np.int64)
    index = VectorIndex(128, engine)
    index.add(ids, vectors)
    scores, found = index.search(vectors[:20], 5)
    assert (found[:, 0] == ids[:20]).all()
    assert np.allclose(scores[:, 0], 1.0, atol=1e-5)

    assert index.remove(ids[:5]) == 5
    assert len(index) == 1995
    _, found = index.search(vectors[:5], 10)
    assert not np.isin(found, ids[:5]).any()

    index.save(tmp_path / "i.faiss")
    loaded, meta = VectorIndex.load(tmp_path / "i.faiss")
    assert meta["engine"] == engine and len(loaded) == 1995
    _, found_again = loaded.search(vectors[:5], 10)
    assert not np.isin(found_again, ids[:5]).any()


@pytest.mark.parametrize("engine", ["Flat", "HNSW32"])
def test_filter_returns_only_allowed_ids(engine: str) -> None:
    vectors = unit_vectors(3000, seed=1)
    ids = np.arange(1, 3001, dtype=np.int64)
    index = VectorIndex(128, engine)
    index.add(ids, vectors)
    allowed = ids[::7]
    _, found = index.search(vectors[:10], 5, allowed=allowed)
    assert np.isin(found[found >= 0], allowed).all()
    # The probe's own vector is allowed for every 7th query: it must come first (exact under filter).
    _, own = index.search(vectors[0:1], 1, allowed=allowed)
    assert own[0, 0] == 1


@pytest.mark.parametrize(
    "engine",
    ["Flat", "HNSW32", "IVF16,SQfp16", "IVF16,PQ64x4fsr,Refine(SQfp16)", "OPQ64,IVF16,PQ64x4fs,Refine(SQfp16)"],
)
def test_excluded_ids_never_come_back_without_listing_the_rest(engine: str, monkeypatch) -> None:
    """Opted-out people's faces are excluded as such (not by an "allowed" list of every other id): never
    returned, alone, with a collection filter (tight or not) or with removed faces; the rest ranks as before."""
    vectors = unit_vectors(3000, seed=11)
    ids = np.arange(1, 3001, dtype=np.int64)
    index = VectorIndex(128, engine)
    index.add(ids, vectors)
    assert index.engine == engine
    queries = vectors[:20]
    _, before = index.search(queries, 10)
    assert (before[:, 0] == ids[:20]).all()  # each probe finds its own face first
    excluded = np.concatenate([ids[:20:2], [77_777]])  # half the probes' own faces, and an id never held
    _, found = index.search(queries, 10, excluded=excluded)
    assert not np.isin(found, excluded).any()
    assert (found[1::2, 0] == ids[1:20:2]).all()  # the others still find themselves first
    index.remove(ids[1:20:2][:3])  # removed faces stay gone alongside the exclusions
    _, found = index.search(queries, 10, excluded=excluded)
    assert not np.isin(found, np.concatenate([excluded, ids[1:20:2][:3]])).any()
    from facesearch.store.vectors import faiss_index

    monkeypatch.setattr(faiss_index, "EXACT_FILTER_LIMIT", 100)
    for allowed in (ids[:1500], ids[:40]):  # a large filter (the lists) and a tight one (exact)
        _, found = index.search(queries, 10, allowed=allowed, excluded=excluded)
        assert np.isin(found[found >= 0], allowed).all() and not np.isin(found, excluded).any()


def test_hnsw_compaction_drops_removed_vectors() -> None:
    vectors = unit_vectors(500, seed=2)
    ids = np.arange(1, 501, dtype=np.int64)
    index = VectorIndex(128, "HNSW16")
    index.add(ids, vectors)
    index.remove(ids[:100])
    assert len(index.tombstones) == 100
    index.compact()
    assert not index.tombstones and len(index) == 400
    assert not np.isin(index.ids(), ids[:100]).any()


@pytest.mark.parametrize("engine", ["Flat", "HNSW16"])
def test_removed_ids_leave_ids_and_vectors_before_any_compaction(engine: str, tmp_path) -> None:
    """The VectorStore contract on every engine: after remove(), ids(), vectors() and len() no longer
    count the removed ids; HNSW still holds them (Compactable.uncompacted) until compact()."""
    vectors = unit_vectors(500, seed=6)
    ids = np.arange(1, 501, dtype=np.int64)
    index = VectorIndex(128, engine)
    index.add(ids, vectors)
    assert index.remove(ids[:100]) == 100
    assert isinstance(index, VectorStore) and isinstance(index, Compactable)
    assert index.uncompacted == (100 if engine.startswith("HNSW") else 0)
    order = np.argsort(index.ids())
    assert np.array_equal(index.ids()[order], ids[100:]) and len(index) == 400
    assert np.allclose(index.vectors()[order], vectors[100:], atol=1e-6)
    index.save(tmp_path / "i.faiss")
    loaded, _ = VectorIndex.load(tmp_path / "i.faiss")
    assert np.array_equal(np.sort(loaded.ids()), ids[100:]) and loaded.uncompacted == index.uncompacted


def test_auto_engine_switches_to_hnsw_past_threshold() -> None:
    vectors = unit_vectors(1200, seed=3)
    index = VectorIndex(128, "auto", auto_threshold=1000)
    index.add(np.arange(1, 901), vectors[:900])
    assert index.engine == "Flat"
    index.add(np.arange(901, 1201), vectors[900:])
    assert index.engine == "HNSW32"
    _, found = index.search(vectors[:50], 1)
    assert (found[:, 0] == np.arange(1, 51)).mean() >= 0.98


def test_wrong_dimension_and_bad_engine_are_refused(tmp_path) -> None:
    index = VectorIndex(128, "Flat")
    with pytest.raises(LibraryError, match="dimension"):
        index.add(np.arange(3), unit_vectors(3, dim=64))
    with pytest.raises(LibraryError, match="unknown index engine"):
        VectorIndex(128, "Annoy")
    with pytest.raises(LibraryError, match="unknown index engine"):
        VectorIndex(128, "IVF4096,NoSuchCode")
    with pytest.raises(LibraryError, match="bad IVF engine"):
        VectorIndex(128, "IVFx,SQ8")
    (tmp_path / "x.faiss").write_bytes(b"garbage")
    with pytest.raises(LibraryError, match="missing or unreadable"):
        VectorIndex.load(tmp_path / "x.faiss")


def test_ivf_sq8_stays_exact_until_trained_then_compresses_and_deletes_in_place(tmp_path) -> None:
    vectors = unit_vectors(1500, seed=4)
    ids = np.arange(100, 1600, dtype=np.int64)
    index = VectorIndex(128, "IVF16,SQ8")
    index.add(ids[:500], vectors[:500])
    assert index.engine == "Flat"  # 500 < 39 x 16: too few to train on, exact meanwhile
    index.add(ids[500:], vectors[500:])
    assert index.engine == "IVF16,SQ8" and len(index) == 1500
    assert sorted(index.ids().tolist()) == ids.tolist()
    decoded = index.vectors()[np.argsort(index.ids())]  # 8-bit codes: close, not equal (outliers clip)
    assert np.abs(decoded - vectors).mean() < 0.005

    index.nprobe = 16  # every list: only the 8-bit codes stand between this and exact search
    scores, found = index.search(vectors[:50], 1)
    assert (found[:, 0] == ids[:50]).all() and np.allclose(scores[:, 0], 1.0, atol=0.02)

    assert index.remove(ids[:10]) == 10 and len(index) == 1490 and not index.tombstones
    _, found = index.search(vectors[:10], 5)
    assert not np.isin(found, ids[:10]).any()
    allowed = ids[10::9]
    _, found = index.search(vectors[10:30], 5, allowed=allowed)
    assert np.isin(found[found >= 0], allowed).all()

    index.save(tmp_path / "i.faiss")
    loaded, meta = VectorIndex.load(tmp_path / "i.faiss")
    assert meta["engine"] == "IVF16,SQ8" and len(loaded) == 1490
    loaded.nprobe = 16
    _, again = loaded.search(vectors[10:60], 1)
    assert (again[:, 0] == ids[10:60]).all()
    assert loaded.remove(ids[10:12]) == 2  # the id map survived the round trip


@pytest.mark.parametrize("engine", ["Flat", "IVF64,SQfp16"])
def test_a_large_filter_uses_a_bitmap_and_stays_exact(engine: str) -> None:
    vectors = unit_vectors(12000, seed=5)
    ids = np.arange(3, 12003, dtype=np.int64)
    index = VectorIndex(128, engine)
    index.add(ids, vectors)
    index.nprobe = 64  # every list: the filter, not the probe, is under test
    allowed = ids[1::2]  # 6,000 ids: past BITMAP_FILTER_FROM
    scores, found = index.search(vectors[:20], 5, allowed=allowed)
    sims = vectors[:20] @ vectors[1::2].T
    expected = allowed[np.argsort(-sims, axis=1)[:, :5]]
    assert (found == expected).mean() >= 0.99 and np.isin(found, allowed).all()


class _ThreadsSeen:
    """The real FAISS index, noting how many OpenMP threads each search could use (and letting another
    thread look at its own setting while a search runs)."""

    def __init__(self, index: object, searching: threading.Event, looked: threading.Event) -> None:
        self.index, self.threads, self.searching, self.looked = index, [], searching, looked

    def search(self, *args: object, **kwargs: object) -> object:
        self.threads.append(faiss.omp_get_max_threads())
        self.searching.set()
        assert self.looked.wait(10), "the other thread never looked"
        return self.index.search(*args, **kwargs)

    def __getattr__(self, name: str) -> object:
        return getattr(self.index, name)


def test_a_probe_search_runs_on_one_thread_and_a_batch_on_the_team() -> None:
    """Issue 11 (suite speed; user searches too): one probe's search wakes no OpenMP team (~30x less CPU
    per search measured); a batch keeps it; the caller's setting is put back and other threads keep theirs."""
    from facesearch.store.vectors.faiss_index import ONE_THREAD_BELOW

    faiss.omp_set_num_threads(2)  # this thread's team, whatever the machine's cores
    vectors = unit_vectors(500)
    index = VectorIndex(128, "Flat")
    index.add(np.arange(500, dtype=np.int64), vectors)
    searching, looked = threading.Event(), threading.Event()
    seen = _ThreadsSeen(index._index, searching, looked)
    index._index = seen
    elsewhere: list[int] = []

    def other_thread() -> None:
        faiss.omp_set_num_threads(3)
        if searching.wait(10):
            elsewhere.append(faiss.omp_get_max_threads())
        looked.set()

    other = threading.Thread(target=other_thread)
    other.start()
    scores, found = index.search(vectors[:1], 5)
    other.join()
    assert found[0, 0] == 0 and np.isclose(scores[0, 0], 1.0, atol=1e-5)
    assert elsewhere == [3]  # a server's other threads keep their own setting during a probe's search
    index.search(vectors[:ONE_THREAD_BELOW], 5)
    assert seen.threads == [1, 2]
    assert faiss.omp_get_max_threads() == 2
