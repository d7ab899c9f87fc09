"""Issue 12 §5: a server killed with ``kill -9`` during an upload job.

Seen: it left 8 photos in ``uploads/`` that no row refers to and nothing ever removes, and its worker
processes outlived it at 350-600 MB each, holding the catalog open. Here ``facesearch serve`` runs as
a real process, gets 9 photos (more than one chunk, so ingest workers start), and is killed by SIGKILL
once its ingest workers are running: the workers must be gone within a bounded (polled) wait, and the
next server start removes the orphaned uploads and says so in the audit log.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import httpx
from sqlalchemy import select

from facesearch import Library
from facesearch.api import create_app
from facesearch.governance import add_user
from facesearch.ingest.runner import CHUNK_SIZE
from facesearch.store.catalog import Catalog
from facesearch.store.schema import ImageRow
from tests.process_helpers import wait_for

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's note that it prefers httpx2 to httpx
    from fastapi.testclient import TestClient

ROOT = Path(__file__).resolve().parents[1]
# More than one chunk: a run of one chunk is read in the server's own process (no workers to kill).
PHOTOS = CHUNK_SIZE + 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_table() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, state) of every process, read from /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), fields[0])
    return table


def descendants(pid: int) -> set[int]:
    table = process_table()
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, (parent, _) in table.items() if parent in frontier} - found
        found |= frontier
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def alive(pids: set[int]) -> set[int]:
    """Those of ``pids`` still running (a zombie waiting to be reaped is not running)."""
    table = process_table()
    return {pid for pid in pids if pid in table and table[pid][1] != "Z"}


def referenced(folder: Path) -> set[str]:
    catalog = Catalog(folder / "catalog.sqlite")
    try:
        with catalog.session() as s:
            return set(s.scalars(select(ImageRow.source)))
    finally:
        catalog.close()


def test_a_server_killed_during_an_upload_job_leaves_no_workers_and_its_orphans_are_swept(
    tmp_path: Path, shared_data: Path
) -> None:
    """Issue 12 §5: worker processes die with their parent; on start, files in uploads/ that no row and
    no pending job refers to are removed, and audited."""
    folder = tmp_path / "lib"
    with Library.open(folder, jitter=0) as lib:
        _, ingester = add_user(lib.catalog, "ingester-1", "ingester")
        _, auditor = add_user(lib.catalog, "auditor-1", "auditor")
    photos = sorted((shared_data / "face_recognition_examples" / "by_identity").rglob("*.jpg"))[:PHOTOS]
    assert len(photos) == PHOTOS

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "facesearch.cli", "serve", "--port", str(port), "-l", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def answering() -> bool:
            assert server.poll() is None, "the server exited"
            try:
                return httpx.get(f"{base}/v1/health", timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(answering, "the server to answer")
        files = [("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos]
        sent = httpx.post(
            f"{base}/v1/ingest/uploads",
            files=files,
            data={"collection": "default"},
            headers={"Authorization": f"Bearer {ingester}"},
            timeout=120,
        )
        assert sent.status_code == 202, sent.text

        def started_workers() -> set[
            int
        ]:  # the job's pool processes (and multiprocessing's helper), once a worker runs
            found = descendants(server.pid)
            return found if any("spawn_main" in command_line(pid) for pid in found) else set()

        workers = wait_for(started_workers, "the job's worker processes to start")
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=60)
    wait_for(lambda: not alive(workers), f"the workers {sorted(workers)} to exit after their parent", timeout=60)

    uploads = folder / "uploads"
    left = {p for p in uploads.rglob("*") if p.is_file()}
    rows = referenced(folder)
    orphans = {p for p in left if str(p) not in rows}
    assert orphans, "the job finished before the kill: nothing was orphaned"

    with TestClient(create_app(folder, rate_limit_per_minute=0, ingest_workers=1)) as client:
        after = {p for p in uploads.rglob("*") if p.is_file()}
        assert after == left - orphans and all(str(p) in rows for p in after)
        entries = client.get(
            "/v1/audit", params={"action": "uploads_swept"}, headers={"Authorization": f"Bearer {auditor}"}
        ).json()["entries"]
    assert len(entries) == 1
    details = entries[0]["details"]
    assert details["files"] == len(orphans)
    assert set(details["sha256"]) == {p.stem for p in orphans if p.parent == uploads}
    assert not any(str(folder) in str(value) for value in details.values())  # hashes and counts, never paths
