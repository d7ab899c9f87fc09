"""The Milvus vector store: the same answers as FAISS Flat, immediate deletes, persistence, configuration.

The backend tests use synthetic unit vectors (no faces) on Milvus Lite files in tmp_path, and one
Milvus Lite served over TCP on loopback for the server (URI + token) path. The library tests use
real photos and the real model, through Library and the command line. Search, removal, opt-out and
collection filters on real photos also run on both engines in test_search.py, test_library.py and
test_governance_library.py (the ``vector_store`` fixture in conftest.py).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facesearch import Library
from facesearch.config import LibraryConfig
from facesearch.errors import LibraryError
from facesearch.store.vectors import milvus_index
from facesearch.store.vectors.face_collections import FaceCollections
from facesearch.store.vectors.factory import TOKEN_ENV, milvus_settings
from facesearch.store.vectors.faiss_index import VectorIndex
from facesearch.store.vectors.milvus_index import MilvusIndex, MilvusSettings
from facesearch.store.vectors.protocol import Compactable, VectorStore
from tests.helpers import PURPOSE, copy_library, copy_on_vector_store, run_cli

DIM = 128


def unit_vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class ModuloCollections:
    """The store's view of the catalog for synthetic ids: face id i is in collection i % 3.

    Same contract as FaceCollections (which reads the real catalog; tested below on a real library).
    """

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.asarray(ids, dtype=np.int64)
        self.whole: list[int | None] = []

    def of(self, ids: np.ndarray) -> np.ndarray:
        return np.asarray(ids, dtype=np.int64) % 3

    def whole_collection(self, allowed: np.ndarray) -> int | None:
        cid = int(allowed[0]) % 3
        members = self.ids[self.ids % 3 == cid]
        answer = cid if np.array_equal(np.sort(allowed), members) else None
        self.whole.append(answer)
        return answer


@pytest.fixture
def lite(tmp_path: Path) -> MilvusSettings:
    return MilvusSettings(uri=str(tmp_path / "vectors.milvus.db"))


def assert_same_answers(milvus: MilvusIndex, faiss: VectorIndex, queries: np.ndarray, k: int, **kw: object) -> None:
    m_scores, m_ids = milvus.search(queries, k, **kw)  # type: ignore[arg-type]
    f_scores, f_ids = faiss.search(queries, k, **kw)  # type: ignore[arg-type]
    assert m_ids.shape == f_ids.shape
    assert np.array_equal(m_ids, f_ids)
    real = f_ids >= 0
    assert np.allclose(m_scores[real], f_scores[real], atol=1e-5)


def test_same_answers_as_faiss_flat_with_and_without_filters(lite: MilvusSettings, monkeypatch) -> None:
    vectors = unit_vectors(3000)
    ids = np.arange(10, 3010, dtype=np.int64)
    collections = ModuloCollections(ids)
    faiss = VectorIndex(DIM, "Flat")
    faiss.add(ids, vectors)
    with MilvusIndex.create(lite, DIM, collections) as milvus:
        assert isinstance(milvus, VectorStore) and isinstance(faiss, VectorStore)
        milvus.add(ids, vectors)
        assert len(milvus) == 3000 and milvus.engine == "milvus:FLAT" and not isinstance(milvus, Compactable)
        queries = np.vstack([vectors[:10], unit_vectors(10, seed=1)])

        assert_same_answers(milvus, faiss, queries, 10)
        _, own = milvus.search(vectors[:10], 1)
        assert (own[:, 0] == ids[:10]).all()

        # One whole collection: sent as the scalar filter collection_id == 1, same answers as the id filter.
        one = ids[ids % 3 == 1]
        assert_same_answers(milvus, faiss, queries, 10, allowed=one)
        assert collections.whole[-1] == 1

        # Any other set: the ids themselves, in chunks whose top-k are merged.
        monkeypatch.setattr(milvus_index, "ID_FILTER_CHUNK", 100)
        some = ids[::7]
        assert_same_answers(milvus, faiss, queries, 10, allowed=some)
        assert collections.whole[-1] is None
        _, found = milvus.search(queries, 10, allowed=some)
        assert np.isin(found[found >= 0], some).all()

        # Opted-out faces: one "not in" exclusion, alone or with a collection; never in any answer.
        excluded = np.concatenate([ids[:10], ids[1::50], [99_999]])  # each probe's own face, and one unknown id
        assert_same_answers(milvus, faiss, queries, 10, excluded=excluded)
        _, found = milvus.search(queries, 10, excluded=excluded)
        assert not np.isin(found, excluded).any() and (found[:10, 0] != ids[:10]).all()
        assert_same_answers(milvus, faiss, queries, 10, allowed=one, excluded=excluded)

        # Fewer allowed faces than k: the rest is -1, as FAISS pads.
        assert_same_answers(milvus, faiss, queries, 10, allowed=ids[:4])
        scores, empty = milvus.search(queries, 5, allowed=np.zeros(0, np.int64))
        assert (empty == -1).all() and scores.shape == (20, 5)


def test_removal_is_immediate_and_the_store_persists(lite: MilvusSettings, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(milvus_index, "PAGE", 700)  # ids()/vectors() read several pages
    vectors = unit_vectors(2000, seed=2)
    ids = np.arange(1, 2001, dtype=np.int64)
    stamp = tmp_path / "vectors.milvus.json"
    with MilvusIndex.create(lite, DIM) as milvus:
        milvus.add(ids, vectors)
        gone = ids[:5]
        assert milvus.remove(np.concatenate([gone, [999_999]])) == 5  # an unknown id is not counted
        assert milvus.remove(gone) == 0 and len(milvus) == 1995
        _, found = milvus.search(vectors[:5], 20)
        assert not np.isin(found, gone).any(), "a deleted id is never returned, not even once"
        assert not isinstance(milvus, Compactable)  # nothing to compact: Milvus keeps no removed vectors
        milvus.save(stamp, {"model": "m"})
    saved = json.loads(stamp.read_text())
    assert saved["count"] == 1995 and saved["model"] == "m" and saved["dim"] == DIM

    with MilvusIndex.open(lite) as reopened:
        assert len(reopened) == 1995 and reopened.dim == DIM and reopened.engine == "milvus:FLAT"
        assert np.array_equal(reopened.ids(), ids[5:])
        assert np.allclose(reopened.vectors(), vectors[5:], atol=1e-7)
        _, found = reopened.search(vectors[:10], 1)
        assert (found[:5, 0] != gone).all() and (found[5:, 0] == ids[5:10]).all()


def test_open_refuses_a_missing_or_foreign_collection(lite: MilvusSettings) -> None:
    with pytest.raises(LibraryError, match="no vector collection"):
        MilvusIndex.open(lite)
    from milvus_lite.server_manager import server_manager_instance
    from pymilvus import MilvusClient

    def foreign_collection_exists() -> bool:
        other = MilvusClient(lite.uri, alias="someone-else")
        try:
            if not other.has_collection(lite.collection):
                other.create_collection(lite.collection, dimension=8)  # someone else's, with our name
            return other.has_collection(lite.collection)
        finally:
            other.close()
            server_manager_instance.release_server(lite.uri)  # as its own process would on exit

    assert foreign_collection_exists()
    with pytest.raises(LibraryError, match="not a facesearch vector collection"):
        MilvusIndex.open(lite)
    with pytest.raises(LibraryError, match="not a facesearch vector collection"):
        MilvusIndex.create(lite, DIM, replace=True)  # a rebuild never drops it
    assert foreign_collection_exists()


@pytest.fixture
def milvus_server(tmp_path: Path) -> Iterator[str]:
    """Milvus Lite's own server mode on a loopback TCP port: the same gRPC API as a Milvus server."""
    from milvus_lite.server import Server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Server(str(tmp_path / "server.db"), f"127.0.0.1:{port}")
    assert server.init() and server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_a_server_by_uri_and_token(milvus_server: str, tmp_path: Path) -> None:
    settings = MilvusSettings(uri=milvus_server, token="root:Milvus", collection="facesearch_test")
    assert not settings.lite and "root:Milvus" not in settings.describe()
    vectors = unit_vectors(500, seed=4)
    ids = np.arange(1, 501, dtype=np.int64)
    with MilvusIndex.create(settings, DIM) as milvus:
        # A real server builds HNSW; Milvus Lite's server refuses it, and the store takes FLAT instead.
        assert milvus.engine == "milvus:FLAT"
        milvus.add(ids, vectors)
        assert milvus.remove(ids[:3]) == 3
        milvus.save(tmp_path / "stamp.json")
    with MilvusIndex.open(settings) as reopened:
        assert len(reopened) == 497
        _, found = reopened.search(vectors[:6], 3)
        assert not np.isin(found, ids[:3]).any() and (found[3:, 0] == ids[3:6]).all()


def test_milvus_lite_is_one_process_at_a_time_and_released_on_close(lite: MilvusSettings) -> None:
    script = textwrap.dedent(
        f"""
        from facesearch.errors import LibraryError
        from facesearch.store.vectors.milvus_index import MilvusIndex, MilvusSettings
        try:
            with MilvusIndex.open(MilvusSettings(uri={lite.uri!r})) as m:
                print("count", len(m))
        except LibraryError as exc:
            print("refused", exc)
        """
    )

    def other_process() -> str:
        return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120).stdout

    milvus = MilvusIndex.create(lite, DIM)
    milvus.add(np.arange(1, 4), unit_vectors(3))
    assert "one process at a time" in other_process()
    milvus.close()
    assert "count 3" in other_process()


# configuration ------------------------------------------------------------------------------------


def test_old_configs_mean_faiss_and_the_token_may_come_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    config = LibraryConfig()
    data = json.loads(json.dumps(config.__dict__))
    for key in ("vector_store", "milvus_uri", "milvus_token", "milvus_collection"):
        del data[key]  # a config.json written before these settings existed
    (tmp_path / "config.json").write_text(json.dumps(data))
    old = LibraryConfig.load(tmp_path)
    assert old.vector_store == "faiss" and old.milvus_uri is None and old.milvus_token is None

    milvus = LibraryConfig(vector_store="milvus")
    assert milvus_settings(tmp_path, milvus).uri == str((tmp_path / "vectors.milvus.db").resolve())
    monkeypatch.setenv(TOKEN_ENV, "user:secret")
    server = LibraryConfig(vector_store="milvus", milvus_uri="https://milvus.example:19530")
    assert milvus_settings(tmp_path, server).token == "user:secret"
    server.milvus_token = "from-config"
    assert milvus_settings(tmp_path, server).token == "from-config"
    with pytest.raises(LibraryError, match="unknown vector_store"):
        Library.open(tmp_path / "bad", vector_store="qdrant")


# the library on Milvus: real photos, real model ------------------------------------------------------


@pytest.fixture(scope="module")
def examples(shared_data: Path) -> Path:
    return shared_data / "face_recognition_examples"


@pytest.fixture(scope="module")
def faiss_library(tmp_path_factory: pytest.TempPathFactory, example_gallery: Path) -> Path:
    """A copy of the run's example gallery (on FAISS): portraits and the "groups" collection."""
    return copy_library(example_gallery, tmp_path_factory.mktemp("faiss") / "lib")


def test_a_library_on_milvus_answers_as_on_faiss(faiss_library: Path, examples: Path, tmp_path: Path) -> None:
    milvus_folder = copy_on_vector_store(faiss_library, tmp_path / "milvus", "milvus")
    probes = [examples / "by_identity" / "barack_obama" / "obama.jpg", examples / "multi_face" / "two_people.jpg"]
    with Library.open(faiss_library) as faiss, Library.open(milvus_folder) as milvus:
        faces = milvus.catalog.face_count()
        assert milvus.stats()["index"] == {"engine": "milvus:FLAT", "vectors": faces, "tombstones": 0}
        assert (milvus_folder / "vectors.milvus.db").is_file() and not (milvus_folder / "index.faiss").exists()
        for probe in probes:
            for collection in (None, "groups"):
                a = faiss.search(probe, top_k=30, collection=collection, purpose=PURPOSE)
                b = milvus.search(probe, top_k=30, collection=collection, purpose=PURPOSE)
                for fa, fb in zip(a.faces, b.faces, strict=True):
                    assert [c.face_id for c in fa.candidates] == [c.face_id for c in fb.candidates]
                    assert [c.similarity for c in fa.candidates] == pytest.approx(
                        [c.similarity for c in fb.candidates], abs=1e-4
                    )

        # The catalog tells the store when `allowed` is exactly one collection (then a scalar filter).
        scope = FaceCollections(milvus.catalog)
        groups = milvus.catalog.collection_id("groups", create=False)
        group_faces = milvus.catalog.face_ids_in_collection(groups)
        assert scope.whole_collection(group_faces[::-1]) == groups
        assert scope.whole_collection(group_faces[1:]) is None
        assert scope.of(np.array([group_faces[0], 10**9])).tolist() == [groups, -1]
        assert milvus.doctor(repair=False)["ok"]


def test_cli_creates_a_library_on_milvus(examples: Path, tmp_path: Path) -> None:
    folder = tmp_path / "lib"
    photos = [str(examples / "by_identity" / "joe_biden" / name) for name in ("biden.jpg", "biden2.jpg")]
    done = run_cli("index", *photos, "--vector-store", "milvus", "--jitter", "0", "--json", "-l", str(folder))
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["faces"] == 2
    config = json.loads((folder / "config.json").read_text())
    assert config["vector_store"] == "milvus" and config["milvus_uri"] is None
    # The command has closed the library, so Milvus Lite's file is free: opened as `doctor --check-only` does.
    with Library.open(folder, create=False, repair_index=False) as lib:
        assert lib.stats()["index"] == {"engine": "milvus:FLAT", "vectors": 2, "tombstones": 0}
        assert lib.doctor(repair=False)["ok"]
    again = run_cli("index", *photos, "--vector-store", "faiss", "--json", "-l", str(folder))
    assert again.exit_code == 2 and "--vector-store can only be set when a library is created" in again.stdout
