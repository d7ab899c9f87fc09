"""Shared fixtures. Real photos come from ../shared/data (override with FACESEARCH_DATA).

What costs time is built once per run and shared: dlib's networks are converted to ONNX once into
one folder ($FACESEARCH_MODEL_CACHE, set in pytest_configure, so ingest worker processes and CLI
subprocesses inherit it), and one library of the example photos (``example_gallery``) serves every
test that only needs "a library with the example photos indexed"; tests that change it work on a
copy (tests.helpers.copy_library: the catalog is the truth, the index file is derived).

The photos are never copied into the project. When the folder is missing the tests fail loudly
in CI (CI=true) and are skipped with a clear message elsewhere. The same goes for PostgreSQL's
server programs (Debian's ``postgresql``; ``make postgres`` installs it), which the tests of the
catalog on PostgreSQL run as a private cluster for the session (tests/pg_cluster.py).
"""

from __future__ import annotations

import fcntl
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.helpers import missing
from tests.pg_cluster import INSTALL, PostgresCluster, find_bindir

# Issue 11 (the suite's speed): OpenMP threads (PyTorch's and FAISS's own libgomp) sleep as soon as they are idle
# instead of spinning ~300,000 rounds after every parallel region. Two xdist workers share two cores here, so a
# spinning thread takes a core from the other worker's tests: tests/test_batched_cnn.py used 42-48 s of CPU with
# the default, 26-27 s with this (`/usr/bin/time pytest tests/test_batched_cnn.py`, twice each), and its wall time
# halved. libgomp reads it when loaded: set before any test imports torch or faiss, and inherited by every
# process a test starts (ingest workers, CLI subprocesses). A value the caller set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
VECTOR_STORES = ["faiss", "milvus"]
CATALOG_DATABASES = ["sqlite", "postgresql"]


MODEL_CACHE_ENV = "FACESEARCH_MODEL_CACHE"
_OWN_MODEL_CACHE = pytest.StashKey[str]()  # the folder pytest_configure made (None: the caller's own)


def pytest_configure(config: pytest.Config) -> None:
    """One folder of converted models for the whole run (each new library would convert its own).

    Set in the environment, so worker processes and CLI subprocesses use it too. A folder the
    caller already set is kept (a persistent cache makes repeated runs faster); else a temporary one
    is made here and removed at the end. Tests of the conversion itself convert into their own folders.
    """
    # pytest-xdist's workers inherit COLUMNS=80 and LINES=24 from execnet: Rich would fix the CLI's width
    # at import, whatever COLUMNS a test then gives the command. Unset, as in a serial run.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)
    if os.environ.get(MODEL_CACHE_ENV):
        return
    folder = tempfile.mkdtemp(prefix="facesearch-test-models-")
    os.environ[MODEL_CACHE_ENV] = folder
    config.stash[_OWN_MODEL_CACHE] = folder


# Issue 11 (the suite's speed): the modules that take longest, longest first. `make test` runs pytest-xdist with
# `--dist loadscope --no-loadscope-reorder`: each module goes to one worker, handed out in collection order, and
# a worker takes its next module while its last two tests run. xdist's own order (most tests first) put these
# modules of one or two long tests last, so one worker ran a 90 s module alone while the other had finished.
# Longest first, the last modules handed out are short ones and the workers finish together. The order: each
# module's seconds in a worker during a whole `make test` on the 2-core machine (from the completion times of a
# `-v` run: the time from a worker's previous test to each of the module's tests; 2026-12-06, 905 tests, 830 s
# of worker time), less what the fifth suite-speed pass took out of nine of them (estimated from their CPU time
# before and after, each module run alone): e.g. ~66 s eval identify (was 98), 52 s test_search, ~40 s the
# web's two sizes (was 56), 34 s the People page in a browser, ~32 s test_eval, 32 s test_ingest. The browser
# modules were missing here (their CPU is mostly Chromium's, not pytest's): handed out last, one of them kept a
# worker busy alone at the end. The modules not listed took under ~8 s each. The sixth pass moved two down by
# their CPU time alone before and after: test_ingest (34 -> 28 s) and test_library (28 -> 18 s).
# Refresh it from a `-v` run's completion times when modules grow (tests/test_suite_speed.py checks the names).
LONGEST_FIRST = (
    "test_eval_identify.py",
    "test_search.py",
    "test_web_mobile.py",
    "test_web_people.py",
    "test_eval.py",
    "test_web_investigation.py",
    "test_web.py",
    "test_ingest.py",
    "test_milvus_index.py",
    "test_web_probe.py",
    "test_api.py",
    "test_governance_library.py",
    "test_ray_ingest.py",
    "test_cnn_detector.py",
    "test_api_fuzz.py",
    "test_watches.py",
    "test_library.py",
    "test_multi_probe.py",
    "test_lfw_search.py",
    "test_batched_ingest.py",
    "test_postgres_library.py",
    "test_batched_cnn.py",
    "test_web_cases.py",
    "test_governance_cli.py",
    "test_torch_parity.py",
    "test_dlib_conversion.py",
    "test_governance_audit.py",
    "test_int8_embedder.py",
    "test_eval_groups.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The modules of ``LONGEST_FIRST`` first, in its order; the others after them, in pytest's order.

    A stable sort on the module alone: each module's tests keep their order and stay together."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = config.stash.get(_OWN_MODEL_CACHE, None)
    if folder is not None:
        os.environ.pop(MODEL_CACHE_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def model_cache() -> Path:
    """The run's folder of converted models, for tests that build an embedder or detector themselves."""
    return Path(os.environ[MODEL_CACHE_ENV])


@pytest.fixture(scope="session")
def xdg_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """$XDG_CACHE_HOME for commands run without a library (they convert models into its facesearch/
    folder, and matplotlib keeps its font cache there): one per run, never the user's own."""
    return tmp_path_factory.mktemp("xdg-cache")


def data_dir() -> Path:
    return Path(os.environ.get("FACESEARCH_DATA", ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = data_dir()
    if not (path / "face_recognition_examples").is_dir():
        missing(f"real face photos not found at {path} (set FACESEARCH_DATA)")
    return path


T = TypeVar("T")


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], T]) -> T:
    """What ``build(folder)`` makes, made once per test run even when pytest-xdist runs several workers.

    A session fixture lives in one process: each xdist worker would build it again (an example library
    costs ~8 s of CPU). Here the first worker to ask builds it in a folder of the whole run (the parent
    of the workers' own temporary folders, as pytest-xdist's documentation shows) while holding an
    exclusive lock; a worker that asks meanwhile waits for the lock, then reuses the folder and the
    value ``build`` returned (pickled beside it). A build that failed leaves no value: the next worker
    tries again. What is built here must only ever be read or copied, never changed by a test.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return build(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent
    folder, value = root / name, root / f"{name}.pickle"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed, even if build raises
        if value.is_file():
            return pickle.loads(value.read_bytes())
        shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
        folder.mkdir()
        built = build(folder)
        value.write_bytes(pickle.dumps(built))
        return built


# The collection every new library has (created with it): ingest tests into new libraries need no admin step.
EXAMPLES_COLLECTION = "default"


@pytest.fixture(scope="session")
def example_inputs(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> list[Path]:
    """20 real photos (17 portraits, 3 group photos), a truncated JPEG and a copy of one portrait:
    what every ingest engine is compared on (tests/test_ray_ingest.py, tests/test_batched_ingest.py)."""
    examples = shared_data / "face_recognition_examples"

    def build(extra: Path) -> list[Path]:  # one folder for every worker: the libraries name these paths
        obama = examples / "by_identity" / "barack_obama" / "obama.jpg"
        (extra / "truncated.jpg").write_bytes(obama.read_bytes()[:5000])
        shutil.copy(obama, extra / "same_bytes_as_obama.jpg")
        return [examples / "by_identity", examples / "multi_face", extra]

    return built_once(tmp_path_factory, "extra", build)


def new_engine_library(folder: Path, **options: Any) -> Path:
    """A new library for the ingest engines' tests: the flip-only recipe (no jitter) and HOG without upsampling.

    Issue 11 (the suite's speed): ``example_inputs`` are full-size photos (up to 2333 pixels high). HOG with
    one upsampling (the default) took 7.4 s of CPU per ingest of them, without it 2.6 s, and it finds the
    same 24 faces (they are large). The engines (local, worker pool, batched, Ray) ingest these photos ~9
    times a run, each compared with ``local_examples``: every such library is made here, so they share the
    setting, which the library's config carries to each worker process and actor like any other.
    """
    from facesearch import Library
    from facesearch.config import LibraryConfig

    Library.open(folder, jitter=0, **options).close()  # options: other creation settings (e.g. the model)
    config = LibraryConfig.load(folder)
    config.detector = {**config.detector, "upsample": 0}
    config.save(folder)
    return folder


@pytest.fixture(scope="session")
def local_examples(tmp_path_factory: pytest.TempPathFactory, example_inputs: list[Path]) -> tuple[Path, Any]:
    """The examples indexed by the local engine in this process (flip-only recipe, HOG without upsampling:
    ``new_engine_library``): the reference."""
    from facesearch import Library

    def build(root: Path) -> tuple[Path, Any]:
        folder = root / "lib"
        with Library.open(new_engine_library(folder)) as lib:
            report = lib.index(example_inputs, collection=EXAMPLES_COLLECTION, workers=1)
            assert len(lib.vector_index) == lib.catalog.face_count()
        return folder, report

    return built_once(tmp_path_factory, "local", build)


GALLERY_PROBE = "by_identity/barack_obama/obama.jpg"  # never in example_gallery: a new photo of someone in it
GALLERY_COLLECTIONS = {"examples": 16, "groups": 3}  # collection: photos


@pytest.fixture(scope="session")
def example_gallery(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """The library most tests search: built once per run, closed, never opened by a test itself.

    The 16 portraits of face_recognition_examples/by_identity but ``GALLERY_PROBE`` in collection
    "examples", the 3 group photos in "groups", embedded without jitter (the recipe is not what these
    tests are about, and jitter costs four more alignments per face) in this process (no worker start-up).
    HOG runs without upsampling (``new_engine_library``): these are full-size photos of large faces, and every
    search of a copy detects its probe with the copy's settings (issue 11, the suite's speed).
    Searching writes to the audit log, so every test, even one that only searches, uses a copy:
    ``tests.helpers.copy_library(example_gallery, tmp_path / "lib")`` (a folder copy: milliseconds).
    """
    from facesearch import Library

    examples = shared_data / "face_recognition_examples"
    portraits = [p for p in sorted((examples / "by_identity").rglob("*")) if p.is_file()]

    def build(root: Path) -> Path:
        folder = new_engine_library(root / "lib")  # no jitter, HOG without upsampling (its docstring says why)
        with Library.open(folder) as lib:
            photos = [str(p) for p in portraits if p != examples / GALLERY_PROBE]
            for name in GALLERY_COLLECTIONS:
                lib.create_collection(name)  # ingest never creates one (issue 12 §3)
            report = lib.index(photos, collection="examples", workers=1)
            assert report.indexed == GALLERY_COLLECTIONS["examples"] and not report.rejected
            assert lib.index([examples / "multi_face"], collection="groups", workers=1).indexed == 3
        return folder

    return built_once(tmp_path_factory, "gallery", build)


CHROMIUM = "/usr/bin/chromium"
TIMEOUT_MS = 20_000  # a web test's patience for the page's actions and Playwright's assertions


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium, driven by Playwright, for every web test of the run (tests/test_web*.py).

    Issue 11 (the suite's speed): one browser per process, not one per module (six modules launched their own,
    ~1 s of CPU and ~3 s of a busy machine's wall time each). Each test still gets its own context (cookies,
    storage, viewport), closed after it, so no state passes from one test to the next.
    """
    executable = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if executable is None:
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the web tests need a real browser. Install it with "
            "`make browser` (or `sudo apt-get install -y chromium`); Playwright's own browsers are not used."
        )
    from playwright.sync_api import expect, sync_playwright

    # Issue 11 (never flaky): Playwright's assertions wait 5 s by default, whatever the page's default timeout; a
    # search on a 2-core machine busy with the rest of the suite took longer, and a web test failed by the clock.
    # Assertions get the same patience as the page's actions (they still fail, at 20 s, when nothing comes).
    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def vector_store(request: pytest.FixtureRequest) -> str:
    """The vector store engine a test runs on: FAISS, unless the test asks for each in turn.

    Only tests whose subject is the store's behaviour (results, removal, filters, opt-out) run on
    every engine, one representative per behaviour: they are marked ``@ON_EVERY_VECTOR_STORE``.
    """
    return getattr(request, "param", VECTOR_STORES[0])


ON_EVERY_VECTOR_STORE = pytest.mark.parametrize("vector_store", VECTOR_STORES, indirect=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster for the whole run (started on first use, stopped at the end).

    Its password reaches libpq through ``$PGPASSFILE``, set for this process and the ones it starts
    (ingest workers, concurrent writers), exactly as an operator would set it up.
    """
    bindir = find_bindir()
    if bindir is None:
        missing(f"PostgreSQL's server programs (initdb, pg_ctl) not found: {INSTALL}")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("psycopg is not installed: pip install -e '.[postgres]'")
    cluster = PostgresCluster(bindir)
    cluster.start()
    previous = os.environ.get("PGPASSFILE")
    os.environ["PGPASSFILE"] = str(cluster.passfile)
    try:
        yield cluster
    finally:
        if previous is None:
            os.environ.pop("PGPASSFILE", None)
        else:
            os.environ["PGPASSFILE"] = previous
        cluster.stop()


@pytest.fixture
def postgres_url(postgres: PostgresCluster) -> str:
    """A fresh, empty database of the session's cluster, as a catalog URL (no password in it)."""
    return postgres.create_database()


@pytest.fixture(params=CATALOG_DATABASES)
def catalog_target(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a new catalog goes, on each database in turn: a SQLite file, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return tmp_path / "catalog.sqlite"
    return request.getfixturevalue("postgres_url")
