"""The ``facesearch`` command line. Every command is a thin layer over :class:`facesearch.Library`."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table

from facesearch.config import default_library_path
from facesearch.errors import FaceSearchError

if TYPE_CHECKING:
    from facesearch.ingest.runner import IngestReport
    from facesearch.library import Library
    from facesearch.search.results import SearchResult

app = typer.Typer(
    help="facesearch: find every indexed photo of a person, with the source of each.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

LibraryOpt = Annotated[
    Path | None,
    typer.Option("--library", "-l", help="Library folder [env FACESEARCH_LIBRARY, default ./facesearch-library]"),
]
EmbedderOpt = Annotated[
    str, typer.Option("--embedder", help="Runtime for dlib's ResNet: onnx (fast) or dlib (reference)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (stable schema)")]


def _open(library: Path | None, embedder: str = "onnx", create: bool = False, repair: bool = True) -> Library:
    from facesearch.library import Library

    return Library.open(library or default_library_path(), embedder=embedder, create=create, repair_index=repair)


def _json_out(as_json: bool, data: object) -> bool:
    """Print ``data`` as JSON when ``--json`` was given; True if printed (the command is then done)."""
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    return as_json


def _progress(label: str, as_json: bool) -> Progress:
    """A progress bar on stderr for a long evaluation (hidden with --json or off a terminal)."""
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=err, disable=as_json or not err.is_terminal)


def _fail(exc: FaceSearchError, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps({"error": {"code": exc.code, "message": str(exc)}}))
    err.print(f"[bold red]error[/] ({exc.code}): {exc}")
    raise typer.Exit(code=2)


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens")] = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@app.command()
def index(
    paths: Annotated[list[str], typer.Argument(help="Files, folders (recursive), CSV/JSONL manifests or URLs")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to add to")] = "default",
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: one per core]")] = None,
    allow_private_urls: Annotated[
        bool, typer.Option(help="Allow URLs on private/loopback addresses (off: protects internal services)")
    ] = False,
    library: LibraryOpt = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """Index every face in the given photos. Re-running resumes: nothing is indexed twice."""
    try:
        with _open(library, embedder, create=True) as lib:
            columns = (
                TextColumn("[bold]indexing"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} files/s  faces {task.fields[faces]}  errors {task.fields[errors]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
            with Progress(
                *columns, console=err, disable=as_json or not err.is_terminal and not sys.stderr.isatty()
            ) as bar:
                task = bar.add_task("index", total=0, rate="-", faces=0, errors=0)

                def progress(event: str, count: int, report: IngestReport) -> None:
                    if event == "start":
                        bar.update(task, total=count)
                        return
                    bar.advance(task, count)
                    elapsed = bar.tasks[0].elapsed or 0.0
                    done = bar.tasks[0].completed
                    rate = f"{done / elapsed:.1f}" if elapsed > 0 else "-"
                    bar.update(task, rate=rate, faces=report.faces, errors=len(report.rejected))

                report = lib.index(
                    paths,
                    collection=collection,
                    workers=workers,
                    allow_private_urls=allow_private_urls,
                    progress=progress,
                )
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, report.to_dict()):
        return
    _print_report(report)


def _print_report(report: IngestReport) -> None:
    rate = report.indexed / report.seconds if report.seconds else 0.0
    console.print(
        f"[bold green]{report.indexed}[/] photos indexed into [bold]{report.collection}[/], "
        f"{report.faces} faces ({rate:.1f} photos/s); {report.duplicates} duplicates skipped, "
        f"{report.already_indexed} already indexed, "
        f"[{'red' if report.rejected else 'green'}]{len(report.rejected)} rejected[/]"
    )
    if report.rejected:
        table = Table("source", "reason", "detail", title="Rejected (recorded in the catalog)")
        for source, code, message in report.rejected[:50]:
            table.add_row(source, code, message)
        console.print(table)
        if len(report.rejected) > 50:
            console.print(f"... and {len(report.rejected) - 50} more (facesearch stats --json lists counts)")


@app.command()
def search(
    probe: Annotated[Path, typer.Argument(help="Photo of the person to look for")],
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Candidates per face")] = 20,
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Search one collection only")] = None,
    face: Annotated[int | None, typer.Option("--face", help="Search only this face of the probe (0 = largest)")] = None,
    library: LibraryOpt = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """Find indexed photos of the person (or each person) in the probe photo."""
    try:
        with _open(library, embedder) as lib:
            result = lib.search(probe, top_k=top_k, collection=collection, face=face)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, result.to_dict()):
        return
    print_search(result)


def print_search(result: SearchResult) -> None:
    """Print one table per probe face: rank, similarity, verdict and where each photo came from."""
    for probe_face in result.faces:
        with_pages = any(c.image.page_url for c in probe_face.candidates)
        columns = ["rank", "similarity", "verdict", "face", "collection", Column("source", overflow="fold")]
        if with_pages:
            columns.append(Column("page", overflow="fold"))
        table = Table(
            *columns,
            title=f"Probe face {probe_face.face} at {probe_face.box} (threshold {result.threshold}, "
            f"{result.gallery_size} faces searched)",
        )
        for c in probe_face.candidates:
            verdict = "[green]above threshold[/]" if c.passes_threshold else "[yellow]below[/]"
            source = _short(c.image.path) if c.image.path else c.image.source_url or ""
            cells = [str(c.rank), f"{c.similarity:.3f}", verdict, str(c.face_id), c.collection, source]
            table.add_row(*cells, *([c.image.page_url or ""] if with_pages else []))
        console.print(table)
        if not probe_face.candidates:
            console.print("no candidates (empty library or collection)")
    console.print("[dim]A similarity above the threshold is a lead for a person to review, not an identification.[/]")


def _short(path: str) -> str:
    """A path relative to the working folder when it is inside it (easier to read in a table)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


@app.command()
def verify(
    a: Annotated[Path, typer.Argument(help="First photo")],
    b: Annotated[Path, typer.Argument(help="Second photo")],
    library: LibraryOpt = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """Say whether the largest faces in two photos are the same person, with the score."""
    try:
        with _open(library, embedder, create=True) as lib:
            result = lib.verify(a, b)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, result.to_dict()):
        return
    verdict = "[green]same person[/]" if result.same_person else "[red]different people[/]"
    console.print(f"{verdict}: similarity {result.similarity:.4f} (threshold {result.threshold})")


@app.command()
def faces(
    image: Annotated[Path, typer.Argument(help="Photo to look at")],
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the faces detected in a photo (box, detector score, quality)."""
    try:
        with _open(library, create=True) as lib:
            found = lib.faces(image)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, {"faces": found}):
        return
    table = Table("face", "box (left, top, width, height)", "detector score", "quality", title=str(image))
    for f in found:
        table.add_row(str(f["face"]), str(f["box"]), f"{f['det_score']:.3f}", f"{f['quality']:.2f}")
    console.print(table if found else "no face found")


@app.command()
def remove(
    image: Annotated[int | None, typer.Option("--image", help="Image id (from search results)")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Source path or URL")] = None,
    collection: Annotated[str | None, typer.Option("--collection", help="A whole collection")] = None,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove photos (their faces, vectors and thumbnails); effective in search at once."""
    try:
        with _open(library) as lib:
            receipt = lib.remove(image_id=image, source=source, collection=collection)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    data = {
        "removed_images": receipt.image_ids,
        "removed_faces": receipt.face_ids,
        "sources": receipt.sources,
    }
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        console.print(f"removed {len(receipt.image_ids)} photos and {len(receipt.face_ids)} faces")


@app.command()
def stats(library: LibraryOpt = None, as_json: JsonOpt = False) -> None:
    """Counts per collection, the model in use and the index engine."""
    try:
        with _open(library) as lib:
            data = lib.stats()
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, data):
        return
    table = Table("collection", "photos", "faces", title=f"{data['library']}")
    for c in data["collections"]:
        table.add_row(c["name"], str(c["images"]), str(c["faces"]))
    console.print(table)
    console.print(
        f"{data['images']} photos, {data['faces']} faces, {data['rejected']} rejected; "
        f"model {data['model']['name']} "
        f"({data['model']['licence']}); index {data['index']['engine']}, {data['index']['vectors']} vectors"
    )


@app.command()
def doctor(
    check_only: Annotated[bool, typer.Option("--check-only", help="Report problems without repairing")] = False,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check that the vector index agrees with the catalog; rebuild it from stored embeddings if not."""
    try:
        with _open(library, repair=False) as lib:  # doctor checks first, then repairs itself
            report = lib.doctor(repair=not check_only)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if as_json:
        print(json.dumps(report, indent=2))
    elif report["ok"]:
        console.print(f"[green]ok[/]: {report['faces']} faces, index agrees with the catalog")
    else:
        for problem in report["problems"]:
            console.print(f"[red]problem[/]: {problem}")
        console.print("[green]repaired[/]: index rebuilt from the catalog" if report["repaired"] else "not repaired")
    if not report["ok"] and not report["repaired"]:
        raise typer.Exit(code=1)


eval_app = typer.Typer(
    help="Measure accuracy on your own data (LFW-layout folders and pairs files).", no_args_is_help=True
)
app.add_typer(eval_app, name="eval")


def _eval_pipeline(library: Path | None, embedder: str, flip: bool | None = None):  # type: ignore[no-untyped-def]
    """The pipeline of an existing library (its model and settings), or the defaults."""
    from facesearch.config import LibraryConfig
    from facesearch.library import Library
    from facesearch.models.detector import HogFaceDetector
    from facesearch.models.embedder import create_embedder
    from facesearch.models.pipeline import FacePipeline

    folder = library or default_library_path()
    if (folder / "config.json").is_file():
        with Library.open(folder, embedder=embedder, create=False) as lib:
            pipeline = lib.pipeline
    else:
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "facesearch" / "models"
        config = LibraryConfig()
        pipeline = FacePipeline(
            HogFaceDetector(config.detector_settings()), create_embedder(embedder, cache), config.flip_average
        )
    if flip is not None:
        pipeline.flip = flip
    return pipeline


@eval_app.command("verify")
def eval_verify(
    pairs: Annotated[Path, typer.Option("--pairs", help="Pairs file in LFW format (View 1 'N' or View 2 'folds n')")],
    images: Annotated[Path, typer.Option("--images", help="Folder in LFW layout: DIR/<Name>/<Name>_NNNN.jpg")],
    fallback: Annotated[
        str, typer.Option(help="No face found: 'centre' (landmarks in the central box) or 'reject'")
    ] = "centre",
    flip: Annotated[
        bool | None, typer.Option("--flip/--no-flip", help="Flip-averaged embeddings [default: library default]")
    ] = None,
    library: LibraryOpt = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """10-fold verification accuracy, ROC AUC, EER and TAR at FAR 1e-2 / 1e-3."""
    from facesearch.eval.lfw import read_pairs
    from facesearch.eval.verify import embed_images, evaluate

    if fallback not in ("centre", "reject"):
        _fail(FaceSearchError("--fallback must be 'centre' or 'reject'", code="bad_request"), as_json)
    try:
        pair_list = read_pairs(pairs, images)
        pipeline = _eval_pipeline(library, embedder, flip)
        paths = sorted({p for pair in pair_list for p in (pair.a, pair.b)})
        with _progress("embedding", as_json) as bar:
            task = bar.add_task("embed", total=len(paths))
            embeddings, no_face = embed_images(pipeline, paths, fallback, lambda n: bar.advance(task, n))
        report = evaluate(pair_list, embeddings, no_face)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, report.to_dict()):
        return
    table = Table(
        "metric", "value", title=f"Verification on {pairs.name} ({report.pairs} pairs, {report.images} images)"
    )
    table.add_row("10-fold accuracy", f"{report.accuracy * 100:.2f}% ± {report.accuracy_std * 100:.2f}")
    table.add_row("ROC AUC", f"{report.auc:.5f}")
    table.add_row("EER", f"{report.eer * 100:.2f}%")
    for far, tar in report.tar_at_far.items():
        table.add_row(f"TAR at FAR {far}", f"{tar * 100:.2f}%")
    nf = report.no_face
    table.add_row(
        "no face detected",
        f"{nf['count']} images; fallback '{nf['fallback']}' used {nf['fallback_used']}×, "
        f"{nf['scored_as_non_match']} pairs scored as non-matches",
    )
    console.print(table)


@eval_app.command("identify")
def eval_identify(
    images: Annotated[Path, typer.Option("--images", help="Folder in LFW layout: DIR/<Name>/<Name>_NNNN.jpg")],
    seed: Annotated[int, typer.Option(help="Seed for who is enrolled and who is a non-mated search")] = 0,
    work_dir: Annotated[
        Path | None, typer.Option(help="Keep the evaluation library here [default: a temporary folder, removed]")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Ingest worker processes [default: one per core]")] = None,
    normalize: Annotated[
        str | None, typer.Option(help="Score normalisation: none or snorm [default: the library default]")
    ] = None,
    flip: Annotated[
        bool | None, typer.Option("--flip/--no-flip", help="Flip-averaged embeddings [default: library default]")
    ] = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """1:N search with distractors through the real ingest and search path: rank-1/5, FNIR at FPIR."""
    import tempfile

    from facesearch.eval.identify import run as run_identify
    from facesearch.eval.identify import split_people
    from facesearch.library import Library

    try:
        split = split_people(images, seed)
        with tempfile.TemporaryDirectory(prefix="facesearch-eval-") as tmp:
            folder = work_dir or Path(tmp) / "library"
            with (
                Library.open(folder, embedder=embedder, flip_average=flip) as lib,
                _progress("enrolling and searching", as_json) as bar,
            ):
                if normalize is not None:
                    if normalize not in ("none", "snorm"):
                        raise FaceSearchError("--normalize must be 'none' or 'snorm'", code="bad_request")
                    lib.config.score_normalization = normalize
                task = bar.add_task(
                    "enrolling and searching", total=len(split.gallery) + len(split.mated) + len(split.non_mated)
                )
                report = run_identify(lib, split, seed, lambda _event, n: bar.advance(task, n), workers)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, report.to_dict()):
        return
    table = Table("metric", "value", title=f"1:N identification on {images} (seed {seed})")
    table.add_row("gallery", f"{report.gallery_size} faces")
    table.add_row("searches", f"{report.mated} mated, {report.non_mated} non-mated")
    table.add_row("rank-1 / rank-5", f"{report.rank1:.4f} / {report.rank5:.4f}")
    for fpir, fnir in report.fnir_at_fpir.items():
        table.add_row(f"FNIR at FPIR {fpir}", f"{fnir:.4f} (threshold {report.thresholds[fpir]:.4f})")
    table.add_row("no face in probe", f"{report.no_face['mated']} mated, {report.no_face['non_mated']} non-mated")
    console.print(table)


if __name__ == "__main__":  # pragma: no cover
    app()
