"""The Milvus vector store: the VectorStore operations on one Milvus collection.

One code path talks to Milvus Lite (a local ``.db`` file; pymilvus starts Milvus Lite's server
process for it) and to a Milvus standalone or distributed server (``http(s)://host:19530`` and a
token). The collection holds, per face:

* ``id``: INT64 primary key, the catalog's face id (never auto-generated: the catalog owns ids);
* ``embedding``: FLOAT_VECTOR of the model's dimension, metric IP (unit vectors: IP = cosine, the
  same similarity FAISS returns);
* ``collection_id``: INT64, the face's catalog collection, so that a search restricted to one
  collection is a scalar filter (see store/vectors/face_collections.py).

Index type, chosen by where the data lives (measured: bench/scale/milvus_latency.py, docs/benchmarks.md):

* Milvus Lite builds only FLAT and IVF_FLAT, and gets FLAT at every size: exact, the same answers
  as FAISS Flat, 1.8 ms at 20k faces and 8 ms at 100k here. Milvus Lite 2.5.1's IVF_FLAT was
  measured unusable for faces: it builds no IVF below some size (20k: exact anyway), and at 100k it
  ignores nprobe (the same answers at nprobe 1 and nprobe = nlist) and missed 5-14% of planted
  same-person mates (cosine 0.93) in two runs. A gallery that outgrows a scan needs a server.
* A server gets HNSW (M=32), searched with the same adaptive ef as FAISS HNSW: a server is for big
  galleries, where a graph keeps latency flat without the training and nprobe tuning IVF needs as
  data grows. A server that turns HNSW down (Milvus Lite served over TCP) gets FLAT.

Correctness against FAISS:

* Deletes are immediate: the collection and every request use ``Strong`` consistency, so a search
  never returns a deleted id (Milvus masks deleted rows at once and compacts segments by itself, so
  this store is not ``Compactable``: nothing is left for a caller to do).
* ``allowed``: the same set of ids as FAISS's filter. When it is exactly one collection's faces it is
  sent as ``collection_id == N``; otherwise as ``id in [...]`` in chunks whose top-k are merged.
  On HNSW a filtered search looks twice as wide (ef x 2): fewer nodes on the graph walk pass the filter.
* Persistence: Milvus is the store. :meth:`save` flushes and rewrites a small stamp file in the
  library folder (count, collection, model) that the API server watches to reopen after a writer.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facesearch.errors import LibraryError
from facesearch.store.vectors.hnsw import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, adaptive_ef_search
from facesearch.store.vectors.protocol import checked_batch, without_excluded

if TYPE_CHECKING:
    from pymilvus import MilvusClient

    from facesearch.store.vectors.face_collections import FaceCollections

log = logging.getLogger(__name__)

ID_FIELD = "id"
VECTOR_FIELD = "embedding"
COLLECTION_FIELD = "collection_id"
DESCRIPTION = "facesearch face vectors"  # marks a collection as ours: a rebuild never drops anyone else's
STRONG = "Strong"

HNSW_M = 32
MAX_LIMIT = 16_384  # Milvus's largest top-k, and its largest query page
ID_FILTER_CHUNK = 16_384  # ids per "id in [...]" expression
# Rows per insert: Milvus Lite slows superlinearly with bigger requests (20k rows: 1.1 s by 1k, 158 s at once).
INSERT_BATCH = 1_000
PAGE = 4_096  # rows per query-iterator page
SERVER_FLUSH_INTERVAL_S = 60.0  # a server persists on insert (its log); flushing more often only seals tiny segments


@dataclass(frozen=True)
class MilvusSettings:
    """Where a library's vectors are: ``uri`` is a server URI or a local ``.db`` path (Milvus Lite)."""

    uri: str
    token: str = ""
    collection: str = "facesearch_faces"

    @property
    def lite(self) -> bool:
        return "://" not in self.uri

    def describe(self) -> str:
        """For messages and the stamp file: never the token."""
        where = f"Milvus Lite file {self.uri}" if self.lite else f"Milvus at {self.uri}"
        return f"{where}, collection {self.collection!r}"


def new_collection_name() -> str:
    """A name of its own for a library on a shared server (Milvus names: letters, digits, _)."""
    return f"facesearch_{uuid.uuid4().hex[:12]}"


class MilvusIndex:
    """A VectorStore on a Milvus collection. Open with :meth:`open` or :meth:`create`; :meth:`close` when done."""

    def __init__(
        self,
        settings: MilvusSettings,
        client: MilvusClient,
        dim: int,
        collections: FaceCollections | None = None,
        index_type: str | None = None,
        count: int = 0,
    ) -> None:
        self.settings = settings
        self.client = client
        self.dim = dim
        self.collections = collections
        self.index_type = index_type  # None: the collection is not created yet
        self.ef_search = HNSW_EF_SEARCH
        self._count = count
        self._last_flush = 0.0
        self._closed = False

    # opening ------------------------------------------------------------------------------------

    @classmethod
    def open(cls, settings: MilvusSettings, collections: FaceCollections | None = None) -> MilvusIndex:
        """The existing collection; LibraryError when it is missing or not one of ours (then rebuild)."""
        client = _connect(settings)
        try:
            if not client.has_collection(settings.collection):
                raise LibraryError(f"no vector collection in {settings.describe()}")
            info = client.describe_collection(settings.collection)
            dim = _check_ours(settings, info)
            index = cls(settings, client, dim, collections, count=0)
            index._read_index()
            client.load_collection(settings.collection)
            index._count = index._query_count()
        except LibraryError:
            _disconnect(settings, client)
            raise
        except Exception as exc:  # pymilvus raises MilvusException and grpc errors
            _disconnect(settings, client)
            raise LibraryError(f"cannot read the vector collection in {settings.describe()}: {exc}") from exc
        return index

    @classmethod
    def create(
        cls, settings: MilvusSettings, dim: int, collections: FaceCollections | None = None, *, replace: bool = True
    ) -> MilvusIndex:
        """An empty store. ``replace`` drops our collection if it exists; otherwise it is made on first add."""
        client = _connect(settings)
        try:
            if replace and client.has_collection(settings.collection):
                _check_ours(settings, client.describe_collection(settings.collection))
                log.info("dropping the vector collection in %s to rebuild it", settings.describe())
                client.drop_collection(settings.collection)
            index = cls(settings, client, dim, collections)
            if replace:
                index._create_collection()
        except Exception:
            _disconnect(settings, client)
            raise
        return index

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _disconnect(self.settings, self.client)

    def __enter__(self) -> MilvusIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def engine(self) -> str:
        return f"milvus:{self.index_type or 'FLAT'}"

    # the VectorStore interface ------------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids, vectors = checked_batch(ids, vectors, self.dim)
        if len(ids) == 0:
            return
        if self.index_type is None:
            self._create_collection()
        owners = self.collections.of(ids) if self.collections is not None else np.full(len(ids), -1, np.int64)
        for start in range(0, len(ids), INSERT_BATCH):
            stop = start + INSERT_BATCH
            rows = [
                {ID_FIELD: int(i), VECTOR_FIELD: v, COLLECTION_FIELD: int(c)}
                for i, v, c in zip(ids[start:stop], vectors[start:stop], owners[start:stop], strict=True)
            ]
            self.client.insert(self.settings.collection, rows)
        self._count += len(ids)

    def search(
        self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, excluded: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (similarities, ids) per query, ids -1 where fewer than k exist; only ``allowed`` ids if given,
        never ``excluded`` ones (one ``not in`` filter: a few opted-out people's faces)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(MAX_LIMIT, max(1, min(k, max(1, len(self)))))
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        found = np.full((len(queries), k), -1, dtype=np.int64)
        allowed, excluded = without_excluded(allowed, excluded)
        if self.index_type is None or (allowed is not None and len(allowed) == 0):
            return scores, found
        if allowed is None:
            expr = None if excluded is None else f"{ID_FIELD} not in {np.unique(excluded).tolist()}"
            hits = self._search(queries, k, expr, filtered=False)
        else:
            allowed = np.asarray(allowed, dtype=np.int64)
            cid = self.collections.whole_collection(allowed) if self.collections is not None else None
            if cid is not None:
                hits = self._search(queries, k, f"{COLLECTION_FIELD} == {cid}", filtered=True)
            else:
                hits = [[] for _ in range(len(queries))]
                for chunk in _chunks(np.unique(allowed), ID_FILTER_CHUNK):
                    part = self._search(queries, k, f"{ID_FIELD} in {chunk.tolist()}", filtered=True)
                    hits = [merged + more for merged, more in zip(hits, part, strict=True)]
        for row, per_query in enumerate(hits):
            best = sorted(per_query, key=lambda h: (-h[0], h[1]))[:k]
            for col, (score, face_id) in enumerate(best):
                scores[row, col] = score
                found[row, col] = face_id
        return scores, found

    def remove(self, ids: np.ndarray) -> int:
        """Delete ids; effective for the next search at once (Strong consistency). Returns how many existed."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        if len(ids) == 0 or self.index_type is None:
            return 0
        removed = 0
        for chunk in _chunks(ids, ID_FILTER_CHUNK):
            rows = self.client.query(
                self.settings.collection,
                filter=f"{ID_FIELD} in {chunk.tolist()}",
                output_fields=[ID_FIELD],
                limit=len(chunk),
                consistency_level=STRONG,
            )
            present = [int(r[ID_FIELD]) for r in rows]
            if present:
                self.client.delete(self.settings.collection, ids=present)
                removed += len(present)
        self._count -= removed
        return removed

    def ids(self) -> np.ndarray:
        """Every stored face id, ascending (read page by page: no single unbounded query)."""
        ids = [i for i, _ in self._iterate(with_vectors=False)]
        return np.sort(np.asarray(ids, dtype=np.int64))

    def vectors(self) -> np.ndarray:
        """Every stored vector, in the order of :meth:`ids` (ascending id)."""
        return self.items()[1]

    def items(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids ascending, their vectors), read page by page."""
        pairs = list(self._iterate(with_vectors=True))
        if not pairs:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        ids = np.fromiter((i for i, _ in pairs), dtype=np.int64, count=len(pairs))
        vectors = np.stack([v for _, v in pairs]).astype(np.float32, copy=False)
        order = np.argsort(ids, kind="stable")
        return ids[order], vectors[order]

    def save(self, path: Path, extra: dict | None = None) -> None:
        """Flush (seal what was inserted) and rewrite the stamp file ``path`` atomically.

        Inserts and deletes are already durable when their call returns (Milvus logs them), so on a
        server the flush is throttled: flushing on every checkpoint would only seal tiny segments.
        """
        if self.index_type is not None:
            now = time.monotonic()
            if self.settings.lite or now - self._last_flush >= SERVER_FLUSH_INTERVAL_S:
                try:
                    self.client.flush(self.settings.collection)
                    self._last_flush = now
                except Exception as exc:  # a server may rate-limit flushes: the data is safe in its log
                    if self.settings.lite:
                        raise LibraryError(f"cannot flush {self.settings.describe()}: {exc}") from exc
                    log.warning("Milvus flush deferred (%s); inserts are already durable", exc)
        stamp = {
            "engine": self.engine,
            "store": self.settings.describe(),
            "collection": self.settings.collection,
            "dim": self.dim,
            "count": self._count,
            **(extra or {}),
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(stamp))
        os.replace(tmp, path)

    # internals ----------------------------------------------------------------------------------

    def _create_collection(self) -> None:
        from pymilvus import DataType, MilvusClient

        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=DESCRIPTION)
        schema.add_field(ID_FIELD, DataType.INT64, is_primary=True)
        schema.add_field(VECTOR_FIELD, DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field(COLLECTION_FIELD, DataType.INT64)
        self.client.create_collection(self.settings.collection, schema=schema, consistency_level=STRONG)
        wanted = "FLAT" if self.settings.lite else "HNSW"
        try:
            self._create_index(wanted)
        except Exception as exc:
            if wanted == "FLAT" or "only support" not in str(exc):
                raise
            log.info("%s builds no HNSW index (%s): using FLAT", self.settings.describe(), exc)
            self._create_index("FLAT")
        self.client.load_collection(self.settings.collection)
        self._count = 0

    def _create_index(self, index_type: str) -> None:
        params: dict[str, Any] = {}
        if index_type == "HNSW":
            params = {"M": HNSW_M, "efConstruction": HNSW_EF_CONSTRUCTION}
        index_params = self.client.prepare_index_params()
        index_params.add_index(field_name=VECTOR_FIELD, index_type=index_type, metric_type="IP", params=params)
        self.client.create_index(self.settings.collection, index_params)
        self.index_type = index_type

    def _read_index(self) -> None:
        described = self.client.describe_index(self.settings.collection, VECTOR_FIELD) or {}
        self.index_type = str(described.get("index_type") or "FLAT")

    def _query_count(self) -> int:
        rows = self.client.query(
            self.settings.collection, filter="", output_fields=["count(*)"], consistency_level=STRONG
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def _search_params(self, k: int, filtered: bool) -> dict[str, Any]:
        if self.index_type == "HNSW":
            ef = self.ef_search or adaptive_ef_search(max(1, self._count))
            if filtered:
                ef *= 2  # a graph walk under a filter meets fewer allowed nodes: look wider
            return {"metric_type": "IP", "params": {"ef": max(ef, k)}}
        return {"metric_type": "IP", "params": {}}

    def _search(
        self, queries: np.ndarray, k: int, expr: str | None, *, filtered: bool
    ) -> list[list[tuple[float, int]]]:
        result = self.client.search(
            self.settings.collection,
            data=[q for q in queries],
            limit=k,
            filter=expr or "",
            output_fields=[],
            search_params=self._search_params(k, filtered),
            anns_field=VECTOR_FIELD,
            consistency_level=STRONG,
        )
        return [[(float(hit["distance"]), int(hit["id"])) for hit in hits] for hits in result]

    def _iterate(self, with_vectors: bool) -> Iterator[tuple[int, np.ndarray | None]]:
        if self.index_type is None:
            return
        fields = [ID_FIELD, VECTOR_FIELD] if with_vectors else [ID_FIELD]
        iterator = self.client.query_iterator(
            self.settings.collection,
            batch_size=PAGE,
            filter="",
            output_fields=fields,
            consistency_level=STRONG,
        )
        try:
            while True:
                page = iterator.next()
                if not page:
                    return
                for row in page:
                    vector = np.asarray(row[VECTOR_FIELD], dtype=np.float32) if with_vectors else None
                    yield int(row[ID_FIELD]), vector
        finally:
            iterator.close()


def _chunks(values: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _check_ours(settings: MilvusSettings, info: dict) -> int:
    """The vector dimension of a facesearch collection; LibraryError for anyone else's collection."""
    fields = {f["name"]: f for f in info.get("fields", [])}
    if info.get("description") != DESCRIPTION or set(fields) != {ID_FIELD, VECTOR_FIELD, COLLECTION_FIELD}:
        raise LibraryError(
            f"{settings.describe()} exists and is not a facesearch vector collection: "
            "set another milvus_collection in the library's config.json"
        )
    return int(fields[VECTOR_FIELD].get("params", {}).get("dim", 0))


# connections: one client per MilvusIndex; one Milvus Lite server per file, shared in the process -------

_lite_lock = threading.Lock()
_lite_users: dict[str, int] = {}


def _no_mvcc_warning(record: logging.LogRecord) -> bool:
    """Milvus Lite has no MVCC timestamp for iterators; pymilvus warns on every page and then copes."""
    return "mvccTs" not in record.getMessage()


def _connect(settings: MilvusSettings) -> MilvusClient:
    """A client of its own (its own alias: closing one never closes another's connection)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        try:
            from pymilvus import MilvusClient

            if settings.lite:
                import milvus_lite  # noqa: F401  (imported here, under the filter: it imports pkg_resources)
        except ImportError as exc:
            raise LibraryError(
                f"this library keeps its vectors in Milvus, which needs an optional extra: "
                f"pip install 'facesearch[milvus]' ({exc})",
                code="milvus_missing",
            ) from exc

    if settings.lite:
        logging.getLogger("pymilvus.orm.iterator").addFilter(_no_mvcc_warning)
        Path(settings.uri).parent.mkdir(parents=True, exist_ok=True)
        with _lite_lock:
            _lite_users[settings.uri] = _lite_users.get(settings.uri, 0) + 1
    try:
        return MilvusClient(uri=settings.uri, token=settings.token, alias=f"facesearch-{uuid.uuid4().hex}")
    except Exception as exc:
        _release_lite(settings)
        hint = " (Milvus Lite opens a file in one process at a time: is another facesearch using it?)"
        raise LibraryError(f"cannot connect to {settings.describe()}: {exc}" + (hint if settings.lite else "")) from exc


def _disconnect(settings: MilvusSettings, client: MilvusClient) -> None:
    try:
        client.close()
    finally:
        _release_lite(settings)


def _release_lite(settings: MilvusSettings) -> None:
    """Stop Milvus Lite's server process for a file when its last user in this process lets go."""
    if not settings.lite:
        return
    with _lite_lock:
        users = _lite_users.get(settings.uri, 0) - 1
        if users > 0:
            _lite_users[settings.uri] = users
            return
        _lite_users.pop(settings.uri, None)
        from milvus_lite.server_manager import server_manager_instance

        server_manager_instance.release_server(settings.uri)
