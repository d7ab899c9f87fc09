"""The embedded library: a folder with a catalog, a vector index, cached models and a config.

    lib = Library.open("photos-library")
    lib.index(["/photos/2024"], collection="archive")
    result = lib.search("probe.jpg", top_k=20)
    lib.verify("a.jpg", "b.jpg")
    lib.remove(source="/photos/2024/x.jpg")

Everything the CLI does goes through this class; the CLI only parses arguments and prints.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from facesearch.config import LibraryConfig, default_library_path
from facesearch.errors import FaceSearchError, LibraryError
from facesearch.governance.audit import AuditLog, search_details
from facesearch.governance.optout import OptOutRegistry
from facesearch.governance.purpose import SearchPurpose, check_purpose, requirements
from facesearch.governance.uploaded_copies import HeldFiles, discard_uploaded_copies
from facesearch.governance.users import User
from facesearch.ingest.runner import IngestReport, IngestRun, ProgressCallback
from facesearch.ingest.sources import Source, expand
from facesearch.ingest.worker import ItemResult, WorkerSettings
from facesearch.models.embedder import (
    DLIB_RESNET_KEY,
    Embedder,
    ModelInfo,
    dlib_resnet_info,
)
from facesearch.models.pipeline import FacePipeline, PipelineRecipe
from facesearch.models.pipeline_pool import PipelinePool
from facesearch.search.calibration import CALIBRATION_NAME, Calibration, ScoreTable, default_calibration
from facesearch.search.normalize import CohortNormalizer
from facesearch.search.results import SearchResult, VerifyResult
from facesearch.search.searcher import MAX_TOP_K, Searcher
from facesearch.store.catalog import Catalog, RemovalReceipt
from facesearch.store.database import server_catalog_url
from facesearch.store.vector_index import VectorIndex
from facesearch.store.vector_store import VectorStore, check_engine, close_store, load_store, new_store, store_path

log = logging.getLogger(__name__)

OPTOUT_SLACK = 20  # extra candidates fetched when opt-outs exist, so filtering still fills top_k

CATALOG_NAME = "catalog.sqlite"
INDEX_NAME = "index.faiss"
MODELS_DIR = "models"
LOCK_NAME = "write.lock"
ENGINES = ("local", "batched", "ray")  # how `index` runs: see Library.index


class Library:
    """A face library on disk. Open with :meth:`open`; close (or use as a context manager) when done."""

    def __init__(
        self, folder: Path, config: LibraryConfig, embedder_backend: str = "onnx", repair_index: bool = True
    ) -> None:
        self.folder = folder
        self.config = config
        self.embedder_backend = embedder_backend
        self.catalog = Catalog(config.catalog_url or folder / CATALOG_NAME)
        # Built on first use; a server raises the pool's size to embed several probes at once.
        self.pipelines = PipelinePool(lambda threads: self.pipeline_recipe().build(threads))
        self._lazy = threading.Lock()  # builds the cohort normaliser once when searches run concurrently
        self.held_uploads: HeldFiles | None = None  # a server's uploads its pending jobs still need
        self._normalizer: CohortNormalizer | None | bool = False  # False: not built yet
        self._calibration: Calibration | None | bool = False  # False: not loaded yet
        self._optouts: OptOutRegistry | None = None
        self.model_info = self._model_info()
        self.model_id = self.catalog.ensure_model(self.model_info)
        self._check_single_model()
        self.vector_index = self._load_index(repair_index)
        self.vector_index.ef_search = config.hnsw_ef_search

    # opening ------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        embedder: str = "onnx",
        create: bool = True,
        onnx_model: dict | None = None,
        index_engine: str | None = None,
        repair_index: bool = True,
        flip_average: bool | None = None,
        jitter: float | None = None,
        vector_store: str | None = None,
        milvus_uri: str | None = None,
        catalog_url: str | None = None,
        detector: str | None = None,
    ) -> Library:
        """Open (or create) the library in ``path`` (default: $FACESEARCH_LIBRARY or ./facesearch-library).

        ``embedder`` picks the runtime for dlib's ResNet: ``onnx`` (fast) or ``dlib`` (reference).
        ``onnx_model`` (only when creating) configures another ONNX face model instead.
        ``vector_store`` (only when creating): ``faiss`` (default) or ``milvus``, on Milvus Lite in the
        folder or, with ``milvus_uri``, on a Milvus server (store/vector_store.py).
        ``catalog_url`` (only when creating): keep the catalog in a PostgreSQL database
        (``postgresql+psycopg://user@host:port/dbname``, no password: libpq reads $PGPASSWORD or
        ~/.pgpass) instead of catalog.sqlite in the folder (store/database.py).
        ``detector`` (only when creating): ``hog`` (the default: dlib's HOG, with the CNN tried on photos
        where it finds no face) or ``cnn`` (dlib's CNN alone: finds more faces; the detector for a GPU,
        where it runs in batches with ``index(engine="batched", device="cuda")``).
        ``repair_index=False`` leaves a missing, corrupt or stale vector index as it is (for ``doctor
        --check-only``); by default it is rebuilt or reconciled from the catalog on open.
        """
        folder = Path(path) if path is not None else default_library_path()
        if (folder / "config.json").is_file():
            config = LibraryConfig.load(folder)
            if onnx_model is not None and config.onnx_model != onnx_model:
                raise LibraryError(f"{folder} was built with another model; an index never mixes models")
            if vector_store is not None and config.vector_store != vector_store:
                raise LibraryError(f"{folder} keeps its vectors in {config.vector_store}, fixed when it was created")
            if catalog_url is not None and server_catalog_url(catalog_url) != config.catalog_url:
                raise LibraryError(
                    f"{folder} keeps its catalog in {config.catalog_url or CATALOG_NAME}, fixed when it was created"
                )
        elif create:
            if folder.exists() and any(folder.iterdir()):
                raise LibraryError(f"{folder} is not empty and is not a facesearch library")
            # Checked before anything is written: a refused URL (a password in it) leaves no folder behind.
            checked_url = server_catalog_url(catalog_url) if catalog_url is not None else None
            if detector not in (None, "hog", "cnn"):
                raise LibraryError(f"unknown detector {detector!r}: choose 'hog' or 'cnn'", code="bad_request")
            if index_engine is not None:
                # Refuse an engine FAISS cannot build before anything is written (dim: dlib's 128 unless given).
                VectorIndex(int((onnx_model or {}).get("dim", 128)), index_engine)
            folder.mkdir(parents=True, exist_ok=True)
            config = LibraryConfig(onnx_model=onnx_model, index_engine=index_engine or "auto", catalog_url=checked_url)
            if flip_average is not None:
                config.flip_average = flip_average
            if jitter is not None:
                config.jitter = jitter
            if detector == "cnn":
                config.detector_kind, config.detector_fallback = "cnn", "none"
            if onnx_model is not None:
                config.model = onnx_model["key"]
            if vector_store is not None:
                config.vector_store = vector_store
                config.milvus_uri = milvus_uri
                if vector_store == "milvus" and milvus_uri:
                    from facesearch.store.milvus_index import new_collection_name

                    config.milvus_collection = new_collection_name()  # a server may hold many libraries
            check_engine(config)
            config.save(folder)
        else:
            raise LibraryError(f"no facesearch library at {folder}", code="no_library")
        return cls(folder, config, embedder, repair_index)

    def close(self) -> None:
        close_store(getattr(self, "vector_index", None))
        self.catalog.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # models -------------------------------------------------------------------------------------

    def _model_info(self) -> ModelInfo:
        """The model, and how it is applied: flip-averaged embeddings are another recipe, never mixed."""
        if self.config.model == DLIB_RESNET_KEY and self.config.onnx_model is None:
            info = dlib_resnet_info()
        else:
            info = self.embedder.info
        key = self.config.recipe_key(info.key)
        if key != info.key:
            how = ", ".join(
                w for w, on in (("flip-averaged", self.config.flip_average), ("jittered", self.config.jitter)) if on
            )
            info = replace(info, key=key, name=f"{info.name} ({how})")
        return info

    def _check_single_model(self) -> None:
        keys = {m.key for m in self.catalog.models()}
        if keys - {self.model_info.key}:
            raise LibraryError(f"catalog holds embeddings of {sorted(keys)}: an index never mixes models")

    @property
    def models_dir(self) -> Path:
        """Where this library keeps the ONNX conversions of dlib's networks (its own ``models/`` folder).

        ``$FACESEARCH_MODEL_CACHE``, when set and non-empty, names one folder that many libraries share
        instead: a conversion then happens once per machine rather than once per library (test runs and
        hosts with many libraries). The files are named by their weights' hash and written atomically, so
        sharing the folder (even between processes converting at once) never yields a stale or torn model.
        """
        shared = os.environ.get("FACESEARCH_MODEL_CACHE")
        if shared:
            return Path(shared)
        return self.folder / MODELS_DIR

    @property
    def embedder(self) -> Embedder:
        return self.pipeline.embedder

    @property
    def pipeline(self) -> FacePipeline:
        """The face pipeline, built on first use (loading models costs a second or two).

        For one caller at a time (ingest, the CLI); concurrent callers use :meth:`borrow_pipeline`.
        """
        return self.pipelines.primary()

    def borrow_pipeline(self) -> AbstractContextManager[FacePipeline]:
        """A pipeline of the pool for this caller alone while the ``with`` block runs (thread-safe)."""
        return self.pipelines.borrow()

    def pipeline_recipe(self) -> PipelineRecipe:
        """How to build this library's pipeline in another process (ingest and evaluation workers)."""
        spec = self.config.model_spec()
        return PipelineRecipe(
            backend=self.embedder_backend,
            models_dir=str(self.models_dir),
            model_spec=spec.to_dict() if spec else None,
            options=self.config.pipeline_options(),
        )

    @property
    def normalizer(self) -> CohortNormalizer | None:
        """The cohort normaliser when the library uses s-norm (built on first use from indexed faces)."""
        if self.config.score_normalization != "snorm":
            return None
        with self._lazy:
            if self._normalizer is False:
                self._normalizer = CohortNormalizer.from_catalog(self.catalog)
            return self._normalizer  # type: ignore[return-value]

    @property
    def calibration(self) -> Calibration | None:
        """The score → FMR tables: the library's own (``facesearch calibrate``), else the shipped default.

        None for a model facesearch has no figures for: search then falls back to the configured
        thresholds and reports no ``fmr`` until the operator calibrates.
        """
        if self._calibration is False:
            own = self.folder / CALIBRATION_NAME
            calibration = Calibration.load(own) if own.is_file() else default_calibration(self.model_info.key)
            if calibration is not None and calibration.model != self.model_info.key:
                log.warning("%s is for %s, not this library's %s: ignored", own, calibration.model, self.model_info.key)
                calibration = default_calibration(self.model_info.key)
            self._calibration = calibration
        return self._calibration  # type: ignore[return-value]

    def score_table(self, kind: str) -> tuple[ScoreTable | None, str | None]:
        """The FMR table for one score kind and where it was measured.

        The library's own calibration may lack a kind (no s-norm table when the library was too
        small for a cohort when it was calibrated): the shipped default fills in for that kind.
        """
        for calibration in (self.calibration, default_calibration(self.model_info.key)):
            table = calibration.table(kind) if calibration else None
            if table is not None:
                return table, calibration.source  # type: ignore[union-attr]
        return None, None

    def save_calibration(self, calibration: Calibration) -> Path:
        """Keep a calibration measured for this library's model; searches use it from now on."""
        if calibration.model != self.model_info.key:
            raise LibraryError(f"calibration is for {calibration.model}, this library uses {self.model_info.key}")
        path = self.folder / CALIBRATION_NAME
        calibration.save(path)
        self._calibration = calibration
        return path

    # the vector index ---------------------------------------------------------------------------

    @property
    def index_path(self) -> Path:
        """FAISS's index file, or the Milvus store's stamp file (rewritten at every save)."""
        return store_path(self.folder, self.config)

    def _load_index(self, repair: bool = True) -> VectorStore:
        try:
            index = load_store(self.folder, self.config, self.catalog)
        except LibraryError as exc:
            if not repair:
                return new_store(self.folder, self.config, self.catalog, self.model_info.dim, replace=False)
            if self.index_path.exists():
                log.warning("%s; rebuilding it from the catalog", exc)
            return self.rebuild_index()
        if not repair:
            return index
        if index.dim != self.model_info.dim:
            log.warning("vector index dimension %d != model's %d; rebuilding", index.dim, self.model_info.dim)
            close_store(index)
            return self.rebuild_index()
        if len(index) != self.catalog.face_count():
            self._reconcile(index)
        return index

    def rebuild_index(self) -> VectorStore:
        """Build the vector index afresh from the embeddings stored in the catalog."""
        index = new_store(self.folder, self.config, self.catalog, self.model_info.dim, replace=True)
        index.ef_search = self.config.hnsw_ef_search
        for ids, vectors in self.catalog.iter_embeddings():
            index.add(ids, vectors)
        previous = getattr(self, "vector_index", None)
        self.vector_index = index
        if previous is not None and previous is not index:
            close_store(previous)
        self.save_index()
        return index

    def _reconcile(self, index: VectorStore) -> dict:
        """Make the index hold exactly the catalog's faces (after a crash between commit and save)."""
        in_catalog = self.catalog.all_face_ids()
        in_index = index.ids()
        if index.tombstones:
            in_index = in_index[~np.isin(in_index, np.fromiter(index.tombstones, np.int64))]
        missing = np.setdiff1d(in_catalog, in_index)
        extra = np.setdiff1d(in_index, in_catalog)
        if len(extra):
            index.remove(extra)
        if len(missing):
            wanted = set(missing.tolist())
            for ids, vectors in self.catalog.iter_embeddings():
                keep = np.fromiter((i in wanted for i in ids.tolist()), bool, len(ids))
                if keep.any():
                    index.add(ids[keep], vectors[keep])
        log.info("vector index reconciled: %d added, %d removed", len(missing), len(extra))
        self.vector_index = index
        self.save_index()
        return {"added": int(len(missing)), "removed": int(len(extra))}

    def save_index(self) -> None:
        self.vector_index.save(self.index_path, {"model": self.model_info.key})

    # ingestion ----------------------------------------------------------------------------------

    def index(
        self,
        inputs: Iterable[str | Path],
        *,
        collection: str = "default",
        workers: int | None = None,
        allow_private_urls: bool = False,
        progress: ProgressCallback | None = None,
        min_quality: float = 0.0,
        actor: str | User | None = None,
        engine: str = "local",
        ray_address: str | None = None,
        device: str = "cpu",
        precision: str = "float32",
    ) -> IngestReport:
        """Index files, folders, manifests and URLs into a collection. Resumable; see ingest.runner.

        ``min_quality`` (0..1, see models/align.py quality_score) leaves out faces that are too
        small, blurred or turned to search reliably; they are counted in the report. Faces of people
        who opted out are never stored (counted too). Each run is written to the audit log.
        ``engine="ray"`` detects and embeds on a Ray cluster (``ray_address``, else $RAY_ADDRESS, else
        a Ray runtime started on this machine; ``workers`` is then the number of actors) while this
        process stays the only writer: the same results as ``"local"`` (ingest/ray_engine.py).
        ``engine="batched"`` runs the networks in this process on ``device`` in large batches while
        ``workers`` processes read, decode, detect on the CPU and align (ingest/batched_engine.py): the
        engine for a GPU, and the default when ``device`` is one (``"cuda"``, ``"cuda:1"``). Its
        embeddings are computed in ``precision`` there ("float32", "bfloat16" or "float16").
        """
        if not 0.0 <= min_quality <= 1.0:
            raise FaceSearchError(f"min_quality must be between 0 and 1; got {min_quality}", code="bad_request")
        if engine not in ENGINES:
            choices = ", ".join(repr(e) for e in ENGINES)
            raise FaceSearchError(f"unknown engine {engine!r}: choose one of {choices}", code="bad_request")
        if engine == "local" and device != "cpu":
            engine = "batched"  # one process owns the GPU; see ingest/batched_engine.py
        if precision not in ("float32", "bfloat16", "float16"):
            raise FaceSearchError(f"unknown precision {precision!r}: float32, bfloat16 or float16", code="bad_request")
        if precision != "float32" and (engine != "batched" or device == "cpu"):
            message = "a precision other than float32 needs a GPU device (--device cuda)"
            raise FaceSearchError(message, code="bad_request")
        if ray_address and engine != "ray":
            raise FaceSearchError("a Ray address needs the ray engine (--engine ray)", code="bad_request")
        with self._write_lock():
            collection_id = self.catalog.collection_id(collection)
            if collection_id is None:
                raise LibraryError(f"cannot create collection {collection!r}")
            known = self.catalog.known_sources(collection_id)
            sources: list[Source] = []
            report = IngestReport(collection=collection)
            for source in expand(inputs):
                if source.location in known:
                    report.already_indexed += 1
                else:
                    known.add(source.location)
                    sources.append(source)
            report.total = len(sources) + report.already_indexed
            if self.config.onnx_model is None and self.embedder_backend == "onnx":
                from facesearch.models.embedder import converted_dlib_resnet

                converted_dlib_resnet(self.models_dir)  # convert once, before the workers start
            settings = replace(
                self._worker_settings(allow_private_urls, workers), min_quality=min_quality, device=device
            )
            if engine == "ray":
                from facesearch.ingest.ray_engine import RayIngestRun, RayOptions, collection_digests

                run: IngestRun = RayIngestRun(
                    settings,
                    store=lambda results: self._store(collection_id, results),
                    checkpoint=self.save_index,
                    options=RayOptions(address=ray_address, num_cpus=workers, actors=workers),
                    known_digests=lambda: collection_digests(self.catalog, collection_id),
                )
            elif engine == "batched":
                from facesearch.ingest.batched_engine import BatchedIngestRun, default_workers

                run = BatchedIngestRun(
                    settings,
                    store=lambda results: self._store(collection_id, results),
                    checkpoint=self.save_index,
                    workers=workers or default_workers(),
                    dtype=precision,
                )
            else:
                run = IngestRun(
                    settings,
                    store=lambda results: self._store(collection_id, results),
                    checkpoint=self.save_index,
                    workers=workers or os.cpu_count() or 1,
                )
            report = run.run(collection_id, report, sources, progress)
            details = {k: v for k, v in report.to_dict().items() if k != "rejected"}
            details["rejected"] = len(report.rejected)
            AuditLog(self.catalog).append(actor, "ingest", details)
            return report

    def _worker_settings(self, allow_private_urls: bool, workers: int | None) -> WorkerSettings:
        return WorkerSettings(
            catalog_path=str(self.catalog.path or ""),
            catalog_url=None if self.catalog.is_sqlite else self.catalog.url,
            models_dir=str(self.models_dir),
            backend=self.embedder_backend,
            model_spec=self.config.onnx_model,
            pipeline_options=self.config.pipeline_options(),
            max_pixels=self.config.max_pixels,
            max_download_bytes=self.config.max_download_bytes,
            allow_private_urls=allow_private_urls,
            embed_threads=1 if (workers or os.cpu_count() or 1) > 1 else 0,
        )

    def _store(self, collection_id: int, results: list[ItemResult]) -> list[tuple[int, list[int]] | None]:
        """Write one batch of ingest results: rejections recorded, faces of opted-out people dropped,
        the images and faces in one catalog transaction, their vectors in one index call.

        Returns, per result, (image id, face ids), or None (a rejection, or bytes already stored).
        """
        self._normalizer = False  # the cohort is drawn from the library: rebuild after changes
        out: list[tuple[int, list[int]] | None] = [None] * len(results)
        adding: list[tuple[int, ItemResult]] = []
        screening = bool(self.optouts.count())
        for position, result in enumerate(results):
            if result.status == "rejected":
                self.catalog.record_rejection(collection_id, result.source.location, result.code, result.message)
            elif result.status == "indexed" and result.image is not None:
                if result.faces and screening:
                    keep = ~self.optouts.is_opted_out(np.stack([f.embedding for f in result.faces]))
                    result.opted_out_faces = int((~keep).sum())
                    result.faces = [f for f, k in zip(result.faces, keep, strict=True) if k]
                adding.append((position, result))
        batch = [(r.image, r.faces) for _, r in adding if r.image is not None]
        stored = self.catalog.add_images(collection_id, self.model_id, batch)
        ids: list[int] = []
        vectors: list[np.ndarray] = []
        for (position, result), row in zip(adding, stored, strict=True):
            out[position] = row
            if row is not None and row[1]:
                ids += row[1]
                vectors += [f.embedding for f in result.faces]
        if ids:
            self.vector_index.add(np.asarray(ids), np.stack(vectors))
        return out

    @contextmanager
    def _write_lock(self) -> Iterator[None]:
        """One writer per library at a time (a second ``index`` waits rather than corrupting the index)."""
        with open(self.folder / LOCK_NAME, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # search and compare -------------------------------------------------------------------------

    @property
    def searcher(self) -> Searcher:
        return Searcher(self)

    def search(
        self,
        probe: str | Path | bytes,
        *,
        top_k: int = 20,
        collection: str | None = None,
        face: int | None = None,
        max_fmr: float | None = None,
        purpose: SearchPurpose | None = None,
        actor: str | User | None = None,
    ) -> SearchResult:
        """Find indexed faces like each face in the probe (or only face number ``face``).

        ``max_fmr`` (default: the library's, 1e-3) sets the operating point: candidates whose
        calibrated false match rate is at most this are labelled matches, the rest leads.
        Every search is written to the audit log (who, the case and ``purpose``, the probe's SHA-256,
        the faces shown); the purpose is checked against what the collection demands. Faces of
        people who opted out are never returned, and a probe of such a person gets no candidates.
        """
        purpose = self._checked_purpose(purpose, collection)
        registry = self.optouts
        blocked = registry.count() > 0
        depth = min(top_k + OPTOUT_SLACK, MAX_TOP_K) if blocked else top_k
        result, probes = self.searcher.search_with_probes(
            probe, top_k=depth, collection=collection, face=face, max_fmr=max_fmr
        )
        if blocked:
            result = registry.filter_search_result(result, probes)
            faces = [replace(f, candidates=f.candidates[:top_k]) for f in result.faces]
            result = replace(result, top_k=top_k, faces=faces)
        entry = AuditLog(self.catalog).append(actor, "search", search_details(result), purpose=purpose)
        return replace(result, audit_sequence=entry.seq)

    def verify(
        self,
        a: str | Path | bytes,
        b: str | Path | bytes,
        max_fmr: float | None = None,
        purpose: SearchPurpose | None = None,
        actor: str | User | None = None,
    ) -> VerifyResult:
        """Are the largest faces in two photos the same person (at false match rate ``max_fmr``)? Audited."""
        purpose = self._checked_purpose(purpose, None)
        result = self.searcher.verify(a, b, max_fmr=max_fmr)
        details = {
            "photos_sha256": result.photos_sha256,
            "same_person": result.same_person,
            "similarity": result.similarity,
            "fmr": result.fmr,
        }
        entry = AuditLog(self.catalog).append(actor, "verify", details, purpose=purpose)
        return replace(result, audit_sequence=entry.seq)

    def _checked_purpose(self, purpose: SearchPurpose | None, collection: str | None) -> SearchPurpose | None:
        """Validate a stated purpose; demand one when the collection (or any, unfiltered) requires more."""
        if purpose is not None or requirements(self.catalog, collection):
            return check_purpose(self.catalog, purpose, collection)
        return None

    @property
    def optouts(self) -> OptOutRegistry:
        """The people who asked to be left out (their embeddings only; see governance/optout.py)."""
        if self._optouts is None:
            self._optouts = OptOutRegistry(self)
        return self._optouts

    def faces(self, image: str | Path | bytes) -> list[dict]:
        """The faces detected in a photo (box, landmarks, scores), without searching."""
        return self.searcher.faces(image)

    # removal, stats, doctor ---------------------------------------------------------------------

    def remove(
        self,
        *,
        image_id: int | None = None,
        source: str | None = None,
        collection: str | None = None,
        actor: str | User | None = None,
    ) -> RemovalReceipt:
        """Remove photos by image id, source (path or URL) or a whole collection; effective at once. Audited."""
        if sum(x is not None for x in (image_id, source, collection)) != 1:
            raise FaceSearchError("remove needs exactly one of image_id, source or collection", code="bad_request")
        with self._write_lock():
            if collection is not None:
                cid = self.catalog.collection_id(collection, create=False)
                if cid is None:
                    raise FaceSearchError(f"no collection named {collection!r}", code="not_found")
                receipt = self.catalog.remove_images(collection_id=cid, drop_collection=True)
            elif image_id is not None:
                receipt = self.catalog.remove_images(image_ids=[image_id])
            else:
                resolved = source if "://" in str(source) else str(Path(str(source)).resolve())
                receipt = self.catalog.remove_images(source=resolved)
                if not receipt.image_ids and resolved != source:
                    receipt = self.catalog.remove_images(source=str(source))
            self.vector_index.remove(np.asarray(receipt.face_ids, dtype=np.int64))
            self._normalizer = False
            self.save_index()
            details = {
                "images": receipt.image_ids,
                "faces": receipt.face_ids,
                "by": "collection" if collection else "image" if image_id is not None else "source",
            }
            AuditLog(self.catalog).append(actor, "remove", details)
        self.discard_uploaded_copies(receipt.sources)
        return receipt

    def discard_uploaded_copies(self, sources: Iterable[str]) -> list[Path]:
        """Delete the library's own copies (uploads/) of removed photos no image row uses any more."""
        return discard_uploaded_copies(self.catalog, self.folder, sources, self.held_uploads)

    def stats(self) -> dict:
        stats = self.catalog.stats()
        stats.update(
            library=str(self.folder),
            catalog=self.catalog.url,  # a file or a server (never a password)
            model=asdict(self.model_info),
            index={
                "engine": self.vector_index.engine,
                "vectors": len(self.vector_index),
                "tombstones": len(self.vector_index.tombstones),
            },
        )
        return stats

    def doctor(self, repair: bool = True) -> dict:
        """Check that the vector index holds exactly the catalog's faces; repair if asked."""
        problems: list[str] = []
        try:
            index: VectorStore | None = load_store(self.folder, self.config, self.catalog)
        except LibraryError as exc:
            problems.append(str(exc))
            index = None
        in_catalog = self.catalog.all_face_ids()
        if index is not None:
            live = index.ids()
            if index.tombstones:
                live = live[~np.isin(live, np.fromiter(index.tombstones, np.int64))]
            missing = np.setdiff1d(in_catalog, live)
            extra = np.setdiff1d(live, in_catalog)
            if len(missing):
                problems.append(f"{len(missing)} faces in the catalog are missing from the index")
            if len(extra):
                problems.append(f"{len(extra)} vectors in the index have no face in the catalog")
            if index.dim != self.model_info.dim:
                problems.append(f"index dimension {index.dim} != model dimension {self.model_info.dim}")
            close_store(index)
        repaired = False
        if problems and repair:
            self.rebuild_index()
            repaired = True
        return {
            "ok": not problems,
            "problems": problems,
            "repaired": repaired,
            "faces": int(len(in_catalog)),
            "vectors": len(self.vector_index),
        }
