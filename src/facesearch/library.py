"""The embedded library: a folder with a catalog, a vector index, cached models and a config.

    lib = Library.open("photos-library")
    lib.index(["/photos/2024"], collection="archive")
    purpose = SearchPurpose("case-17", "identify the person in the CCTV still")
    result = lib.search("probe.jpg", purpose=purpose, top_k=20)
    lib.remove(source="/photos/2024/x.jpg")

A thin composition root: it builds each part with only the collaborators that part needs and delegates. Changes go
through one writer (store/writer.py: the write lock, the index reloaded under it, opt-out screening); searches
through one entry point (search/service.py: a purpose required, opt-outs and collection filters applied before
ranking, the audit entry written). Nothing below this module imports it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from facesearch.config import LibraryConfig, default_library_path
from facesearch.errors import LibraryError
from facesearch.governance.collections import create_collection, ensure_default_collection
from facesearch.governance.deletion_plan import DeletionPlan
from facesearch.governance.ingest_audit import IngestAudit
from facesearch.governance.optout import OptOutRegistry
from facesearch.governance.removal import preview_removal, remove_photos
from facesearch.governance.types import SearchPurpose, User
from facesearch.governance.watches import WatchRegistry
from facesearch.ingest.runner import IngestReport
from facesearch.ingest.service import Ingester
from facesearch.models.cpu_features import int8_cpu_warning
from facesearch.models.embed.base import Embedder
from facesearch.models.embed.info import BUILTIN_KEYS
from facesearch.models.pipeline import FacePipeline
from facesearch.models.pipeline_pool import PipelinePool
from facesearch.people.registry import People
from facesearch.recipe import LibraryRecipe
from facesearch.search.probes import Probe
from facesearch.search.results import SearchResult, VerifyResult
from facesearch.search.scoring import Scoring
from facesearch.search.service import SearchService
from facesearch.settings import CATALOG_NAME, LibrarySpec
from facesearch.store.catalog import Catalog, RemovalReceipt
from facesearch.store.live_index import LiveIndex
from facesearch.store.private_files import make_private, private_dir
from facesearch.store.schema import FaceRow
from facesearch.store.uploaded_copies import HeldFiles
from facesearch.store.vectors.protocol import VectorStore
from facesearch.store.writer import LibraryWriter


class Library:
    """A face library on disk. Open with :meth:`open`; close (or use as a context manager) when done."""

    def __init__(
        self, folder: Path, config: LibraryConfig, embedder_backend: str = "onnx", repair_index: bool = True
    ) -> None:
        self.folder, self.config, self.embedder_backend = folder, config, embedder_backend
        self.catalog = Catalog(config.catalog_url or folder / CATALOG_NAME)
        # Built on first use; a server raises the pool's size to embed several probes at once.
        self.recipe = LibraryRecipe(folder, config, embedder_backend)
        self.pipelines = PipelinePool(lambda threads: self.recipe.pipeline().build(threads))
        builtin = config.model in BUILTIN_KEYS and config.onnx_model is None
        self.model_info = self.recipe.model_info(None if builtin else self.embedder)
        self.model_id = self.catalog.ensure_model(self.model_info)
        keys = {m.key for m in self.catalog.models()}
        if keys - {self.model_info.key}:
            raise LibraryError(f"catalog holds embeddings of {sorted(keys)}: an index never mixes models")
        key, dim = self.model_info.key, self.model_info.dim
        self.live_index = LiveIndex(folder, config, self.catalog, dim, key, repair=repair_index)
        make_private(folder)  # catalog and index exist now: theirs and every file's mode is the owner's alone
        self.writer = LibraryWriter(folder, self.catalog, self.live_index, self.model_id)
        self.scoring = Scoring(folder, config, self.catalog, key)
        self.writer.on_change(self.scoring.forget_cohort)
        self.optouts = OptOutRegistry(
            self.catalog,
            self.writer,
            model_key=key,
            dim=dim,
            embed=lambda photo: self.searches.largest_face(photo),
            rule=self.scoring,  # the one same-person rule: opt-out, ingest screen and search
        )
        self.writer.screen = self.optouts  # no ingest engine can store an opted-out person's face
        limits = {"max_bytes": config.max_download_bytes, "max_pixels": config.max_pixels}
        self.searches = SearchService(
            self.catalog, self.live_index, self.pipelines, self.scoring, self.optouts, model_key=key, **limits
        )
        self.ingester = Ingester(self.catalog, self.writer, self.recipe)
        watching = {"model_key": key, "rule": self.scoring, "optouts": self.optouts}  # alerts on every stored batch
        self.watches = WatchRegistry(self.catalog, self.writer, embed=self.searches.largest_face, **watching)
        self.people = People(self.searches, self.writer)  # persons (issue 14): incremental on every stored batch

    @classmethod
    def open(
        cls,
        path: str | Path | None = None,
        *,
        embedder: str = "onnx",
        create: bool = True,
        repair_index: bool = True,
        **options: Any,
    ) -> Library:
        """Open (or create) the library in ``path`` (default: $FACESEARCH_LIBRARY or ./facesearch-library).

        ``embedder``: the runtime for dlib's ResNet, ``onnx`` (fast) or ``dlib`` (reference; a new library then
        gets a model it runs). ``options``: :class:`~facesearch.settings.LibrarySpec`'s creation options (``model``,
        ``device``, ``onnx_model``, ``index_engine``, ``flip_average``, ``jitter``, ``jitter_axes``, ``vector_store``,
        ``milvus_uri``, ``catalog_url``, ``detector``, ``max_fpir``): applied when a library is created, refused if
        one contradicts it.
        ``repair_index=False`` leaves a missing, corrupt or stale vector index as it is (for ``doctor
        --check-only``); by default it is rebuilt or reconciled from the catalog on open.
        """
        folder = Path(path) if path is not None else default_library_path()
        try:
            spec = LibrarySpec(**options)
        except TypeError as exc:
            raise LibraryError(f"unknown library option: {exc}", code="bad_request") from exc
        if (folder / "config.json").is_file():
            config = LibraryConfig.load(folder)
            spec.check_existing(config, folder)
        elif create:
            if folder.exists() and any(folder.iterdir()):
                raise LibraryError(f"{folder} is not empty and is not a facesearch library")
            config = spec.new_config(embedder)  # refuses bad options before anything is written
            private_dir(folder)  # 0700 before anything is written in it (issue 12 §6)
            config.save(folder)
            library = cls(folder, config, embedder, repair_index)
            # Its creator, the local operator, is its first admin: the "default" collection is theirs
            # to create, so that indexing into it works from the start (any other is created explicitly).
            ensure_default_collection(library.catalog)
            return library
        else:
            raise LibraryError(f"no facesearch library at {folder}", code="no_library")
        return cls(folder, config, embedder, repair_index)

    def close(self) -> None:
        self.live_index.close()
        self.catalog.close()
        make_private(self.folder)  # whatever this run wrote (models converted, calibration) too

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # models (recipe.py) ---------------------------------------------------------------------------

    @property
    def models_dir(self) -> Path:
        return self.recipe.models_dir

    @property
    def pipeline(self) -> FacePipeline:
        """The face pipeline for one caller at a time (built on first use; concurrent callers borrow)."""
        return self.pipelines.primary()

    @property
    def embedder(self) -> Embedder:
        return self.pipeline.embedder

    # the vector index and the writer --------------------------------------------------------------

    @property
    def vector_index(self) -> VectorStore:
        return self.live_index.current

    def save_index(self) -> None:
        self.writer.save_index()

    @property
    def held_uploads(self) -> HeldFiles | None:
        """A server's uploads that its pending jobs still need (kept when their rows are removed)."""
        return self.writer.held_uploads

    @held_uploads.setter
    def held_uploads(self, held: HeldFiles | None) -> None:
        self.writer.held_uploads = held

    # ingest, search, removal ----------------------------------------------------------------------

    def index(self, inputs: Iterable[str | Path], *, actor: str | User | None = None, **options: Any) -> IngestReport:
        """Index files, folders, manifests and URLs into a collection (``collection=``, default "default").

        The collection must exist (:meth:`create_collection`). Resumable and audited: an opening entry
        before the first photo is stored (each image names it), the counts at the end. Faces of people
        who opted out are never stored. ``options``: see :meth:`facesearch.ingest.service.Ingester.run`
        (workers, engine, device, min_quality...).
        """
        audit = IngestAudit(self.catalog, actor)
        report = self.ingester.run(inputs, audit_start=audit.start, **options)
        audit.finish(report.to_dict())
        return report

    def create_collection(self, name: str, *, require: Iterable[str] = (), **options: Any) -> dict[str, Any]:
        """Create a collection with its search requirements (``["legal_basis"]``) and ``retention_days``: an
        admin's act (``actor``: a :class:`User` must be an admin; None is the local operator), audited;
        ``exist_ok=True`` leaves an existing one as it is. See governance/collections.py."""
        return create_collection(self.catalog, name, require_fields=tuple(require), **{"actor": None, **options})

    def search(self, probe: Probe | list[Probe], *, purpose: SearchPurpose | None, **options: Any) -> SearchResult:
        """Search for the faces in ``probe`` (or a list of photos with ``same_person=True``: issue 13) for a
        stated purpose (required); see SearchService.search."""
        return self.searches.search(probe, purpose=purpose, **options)

    def verify(self, a: Probe, b: Probe, *, purpose: SearchPurpose | None, **options: Any) -> VerifyResult:
        """Are the largest faces in two photos the same person? A purpose is required; see SearchService.verify."""
        return self.searches.verify(a, b, purpose=purpose, **options)

    def view_face(
        self, face_id: int, *, purpose: SearchPurpose | None, actor: str | User | None = None, thumbnail: bool = False
    ) -> FaceRow | None:
        """An indexed face's row (metadata, thumbnail), bound and audited like a search; see SearchService.view_face."""
        return self.searches.view_face(face_id, purpose=purpose, actor=actor, thumbnail=thumbnail)

    def faces(self, image: Probe) -> list[dict]:
        """The faces detected in a photo (box, landmarks, scores), without searching."""
        return self.searches.faces(image)

    def remove(self, *, actor: str | User | None = None, **which: Any) -> RemovalReceipt:
        """Remove photos by ``image_id``, ``source`` (path or URL) or a whole ``collection``; at once. Audited.

        Nothing matched raises ``NothingMatched``; ``expected=`` (a plan from :meth:`preview_removal`)
        makes the removal refuse (``PlanChanged``) unless it deletes exactly what that plan showed.
        """
        return remove_photos(self.writer, actor=actor, **which)

    def preview_removal(self, **which: Any) -> DeletionPlan:
        """What :meth:`remove` with the same criteria would delete now: photos, paths, faces, collections."""
        return preview_removal(self.writer, **which)

    # stats, doctor --------------------------------------------------------------------------------

    def stats(self) -> dict:
        return {
            **self.catalog.stats(),
            "library": str(self.folder),
            "catalog": self.catalog.url,  # a file or a server (never a password)
            "model": asdict(self.model_info),
            "index": self.live_index.describe(),
            "warnings": self.warnings(),
        }

    def warnings(self) -> list[str]:
        """What an operator should know about this library on this machine, though nothing is broken: today,
        an 8-bit int8 model on a CPU whose int8 kernels give other descriptors (models/cpu_features.py)."""
        return [w for w in (int8_cpu_warning(self.model_info.key),) if w]

    def doctor(self, repair: bool = True) -> dict:
        """Check that the vector index holds exactly the catalog's faces; repair if asked. ``warnings`` are
        what no repair can change (:meth:`warnings`): reported, never a failure."""
        problems = self.live_index.check_file()
        if problems and repair:
            self.writer.rebuild_index()
        counts = {"faces": int(self.catalog.face_count()), "vectors": len(self.vector_index)}
        return {
            "ok": not problems,
            "problems": problems,
            "repaired": bool(problems and repair),
            **counts,
            "warnings": self.warnings(),
        }
