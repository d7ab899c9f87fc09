"""The library commands: index, search, verify, faces, remove, stats, doctor, serve.

Each is a thin layer over :class:`facesearch.Library`, registered on the app by cli/main.py. Only
Typer, Rich and facesearch.errors are imported here: the library (and with it numpy, the models and
the stores) is imported when a command runs, so that ``--help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Column, Table

from facesearch.cli.confirm import DryRunOpt, YesOpt, confirm, nothing_matched, require_files, show_plan
from facesearch.cli.support import (
    CaseOpt,
    EmbedderOpt,
    JsonOpt,
    LegalBasisOpt,
    LibraryOpt,
    MaxFmrOpt,
    MaxFpirOpt,
    PurposeOpt,
    console,
    err,
    search_purpose,
)
from facesearch.cli.support import fail as _fail
from facesearch.cli.support import json_out as _json_out
from facesearch.cli.support import open_library as _open
from facesearch.errors import FaceSearchError

if TYPE_CHECKING:
    from facesearch.ingest.runner import IngestReport
    from facesearch.search.results import SearchResult


def index(
    paths: Annotated[list[str], typer.Argument(help="Files, folders (recursive), CSV/JSONL manifests or URLs")],
    collection: Annotated[str, typer.Option("--collection", "-c", help="Collection to add to")] = "default",
    create_collection: Annotated[
        bool,
        typer.Option(
            "--create-collection",
            help="Create the collection first if it does not exist (as the library's admin, the local operator; "
            "audited). Without it, a new name is refused: see facesearch collections create",
        ),
    ] = False,
    workers: Annotated[int | None, typer.Option(help="Worker processes [default: one per core]")] = None,
    allow_private_urls: Annotated[
        bool, typer.Option(help="Allow URLs on private/loopback addresses (off: protects internal services)")
    ] = False,
    min_quality: Annotated[
        float,
        typer.Option(
            "--min-quality",
            min=0.0,
            max=1.0,
            help="Leave out faces below this quality score (0-1: size, sharpness, pose); counted, not indexed",
        ),
    ] = 0.0,
    jitter: Annotated[
        float | None,
        typer.Option(
            help="Only when this command creates the library: jitter shift in chip pixels (default 2.5; "
            "0 embeds ~2.5x faster at some accuracy cost, see docs/accuracy.md)",
        ),
    ] = None,
    jitter_axes: Annotated[
        str | None,
        typer.Option(
            "--jitter-axes",
            help="Only when this command creates the library: the directions of the jitter shifts, y (up and "
            "down: 6 views per face with flip, issue 15) or xy (left, right, up, down: 10 views, the recipe "
            "before) [default: y where facesearch ships its calibration, else xy; docs/accuracy.md]",
        ),
    ] = None,
    vector_store: Annotated[
        str | None,
        typer.Option(
            "--vector-store",
            help="Only when this command creates the library: faiss (default, index file in the library) "
            "or milvus (Milvus Lite in the library, or a server with --milvus-uri)",
        ),
    ] = None,
    milvus_uri: Annotated[
        str | None,
        typer.Option(
            "--milvus-uri",
            help="With --vector-store milvus: the server, e.g. http://milvus:19530 (token in $FACESEARCH_MILVUS_TOKEN)",
        ),
    ] = None,
    catalog_url: Annotated[
        str | None,
        typer.Option(
            "--catalog-url",
            help="Only when this command creates the library: keep its catalog in PostgreSQL, "
            "e.g. postgresql+psycopg://facesearch@db:5432/faces (no password: libpq reads $PGPASSWORD or "
            "~/.pgpass). Needs pip install 'facesearch[postgres]' [default: catalog.sqlite in the library]",
        ),
    ] = None,
    index_engine: Annotated[
        str | None,
        typer.Option(
            "--index-engine",
            help="Only when this command creates the library, with the FAISS store: auto-opq (default: exact, "
            "HNSW32 past 100k faces, OPQ-rotated fast-scan IVF-PQ re-ranked on float16 rows past 500k), "
            "auto-ivfpq (the same without the rotation, with residual codes), auto (exact, then HNSW32), Flat, "
            "HNSW32, OPQ64,IVF4096,PQ64x4fs,Refine(SQfp16), IVF4096,PQ64x4fsr,Refine(SQfp16), or a compressed IVF "
            "such as IVF8192_HNSW32,SQfp16 (docs/benchmarks.md); libraries created before keep theirs",
        ),
    ] = None,
    detector: Annotated[
        str | None,
        typer.Option(
            "--detector",
            help="Only when this command creates the library: hog (default; the CNN only where HOG finds "
            "no face) or cnn (dlib's CNN detector alone: more faces; batched on a GPU with --device cuda)",
        ),
    ] = None,
    max_fpir: Annotated[
        float | None,
        typer.Option(
            "--max-fpir",
            help="Only when this command creates the library: its default max FPIR for searches (default 0.01; "
            "a search may give its own --max-fpir)",
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Only when this command creates the library: dlib_resnet_v1_int8r (default: dlib's ResNet "
            "quantised to int8 with 7-bit weights, faster on the CPU, the same descriptors on every CPU, its own "
            "calibration; docs/benchmarks.md), dlib_resnet_v1_int8 (8-bit weights: its descriptors move on x86 "
            "CPUs without VNNI; the default for recipes only it has a calibration for, e.g. --jitter-axes xy) or "
            "dlib_resnet_v1 (float: the default with --device cuda, --embedder dlib or a recipe neither int8 model "
            "has a calibration for, e.g. --jitter 0; libraries created before keep theirs)",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="local (worker processes on this machine), batched (this process runs the networks on "
            "--device in large batches, workers decode and align: the default with a GPU) or ray (Ray actors "
            "on a cluster; this process still writes the library; pip install 'facesearch[ray]')",
        ),
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(
            "--address",
            help="With --engine ray: the cluster, e.g. ray://head:10001 [env RAY_ADDRESS; "
            "default: a Ray runtime on this machine]. Photo paths must be readable on every node",
        ),
    ] = None,
    device: Annotated[
        str, typer.Option("--device", help="cpu, or cuda / cuda:N: the ResNet and CNN detector on that GPU")
    ] = "cpu",
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="With the batched engine: the embedder's float type on the device, float32 (default), "
            "bfloat16 or float16 (faster on a GPU; cosine >= 0.9999 to float32, docs/benchmarks.md)",
        ),
    ] = "float32",
    library: LibraryOpt = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """Index every face in the given photos. Re-running resumes: nothing is indexed twice."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from facesearch.ingest.sources import check_inputs

    try:
        check_inputs(paths)  # before the library is opened: a typo'd path must not create one
        with _open(
            library,
            embedder,
            create=True,
            jitter=jitter,
            jitter_axes=jitter_axes,
            vector_store=vector_store,
            milvus_uri=milvus_uri,
            catalog_url=catalog_url,
            index_engine=index_engine,
            detector=detector,
            max_fpir=max_fpir,
            model=model,
            device=device,
        ) as lib:
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

                if create_collection:
                    lib.create_collection(collection, exist_ok=True)
                report = lib.index(
                    paths,
                    collection=collection,
                    workers=workers,
                    allow_private_urls=allow_private_urls,
                    progress=progress,
                    min_quality=min_quality,
                    engine=engine,
                    ray_address=address,
                    device=device,
                    precision=precision,
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
        f"{report.faces} faces ({rate:.1f} photos/s); "
        + (f"{report.low_quality_faces} faces below --min-quality left out; " if report.low_quality_faces else "")
        + (
            f"{report.opted_out_faces} faces of opted-out people refused ({report.opted_out_photos} photos not kept); "
            if report.opted_out_faces
            else ""
        )
        + f"{report.duplicates} duplicates skipped, "
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


def search(
    probes: Annotated[
        list[Path] | None,
        typer.Argument(help="Photo of the person to look for (several with --same-person; none with --face-id)"),
    ] = None,
    *,
    case: CaseOpt,
    purpose: PurposeOpt,
    top_k: Annotated[int, typer.Option("--top-k", "-k", help="Candidates per face")] = 20,
    collection: Annotated[str | None, typer.Option("--collection", "-c", help="Search one collection only")] = None,
    face: Annotated[int | None, typer.Option("--face", help="Search only this face of the probe (0 = largest)")] = None,
    legal_basis: LegalBasisOpt = None,
    max_fmr: MaxFmrOpt = None,
    max_fpir: MaxFpirOpt = None,
    same_person: Annotated[
        bool,
        typer.Option(
            "--same-person", help="The photos show one person: search with their largest faces fused into one"
        ),
    ] = False,
    taken_after: Annotated[
        str | None, typer.Option("--taken-after", help="Only photos taken on or after this date (YYYY-MM-DD)")
    ] = None,
    taken_before: Annotated[
        str | None, typer.Option("--taken-before", help="Only photos taken on or before this date (YYYY-MM-DD)")
    ] = None,
    face_id: Annotated[
        int | None, typer.Option("--face-id", min=1, help="Search with this indexed face instead of a photo")
    ] = None,
    library: LibraryOpt = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """Find indexed photos of the person (or each person) in the probe photo.

    --taken-after/--taken-before search only photos taken in that range (their EXIF date; photos without
    one are left out, and counted). --face-id searches with an indexed face (a candidate's face id) instead
    of a photo: the same audited search, bound to the face's collection.

    With several photos of one person and --same-person, the largest face of each is fused into one
    probe (their mean template), which finds the person's other photos better than any one of them;
    the audit entry lists every photo's SHA-256.

    Each candidate carries its calibrated false match rate (fmr: the chance that a different person
    scores as high) and the number of strangers expected to score as high among the faces searched.
    Labels: match when those strangers are at most --max-fpir; possible lead when fmr <= --max-fmr
    per comparison but not a match in a gallery this size; no match for the rest. The table shows
    each candidate's face id and image id (`remove --image` takes the image id).
    """
    probes = probes or []
    try:
        if bool(probes) == (face_id is not None):
            raise FaceSearchError("give a probe photo or --face-id (one of them)", code="bad_request")
        require_files(*probes)
        if len(probes) > 1 and not same_person:
            raise FaceSearchError(
                f"{len(probes)} probe photos: add --same-person to search them as one person, "
                "or search them one at a time (nothing was searched)",
                code="bad_request",
            )
        with _open(library, embedder) as lib:
            result = lib.search(
                probes if same_person or not probes else probes[0],
                same_person=same_person,
                taken_after=taken_after,
                taken_before=taken_before,
                probe_face_id=face_id,
                top_k=top_k,
                collection=collection,
                face=face,
                max_fmr=max_fmr,
                max_fpir=max_fpir,
                purpose=search_purpose(case, purpose, legal_basis),
            )
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, result.to_dict()):
        return
    print_search(result)


LABEL_STYLE = {"match": "green", "possible lead": "yellow", "no match": "dim"}


def print_search(result: SearchResult) -> None:
    """Print one table per probe face: rank, similarity, false match rate, label, face and image ids, source.

    Then the operating point the labels were set at, why no result can be a match (when none can),
    and any warning about the calibration.
    """
    if len(result.probes_sha256) > 1:
        hashes = ", ".join(h[:12] for h in result.probes_sha256)
        console.print(
            f"one person from {len(result.probes_sha256)} photos, their faces fused into one (SHA-256 {hashes})"
        )
    for probe_face in result.faces:
        with_pages = any(c.image.page_url for c in probe_face.candidates)
        columns = ["rank", "similarity", "FMR", "strangers expected", "label", "face id", "image id", "collection"]
        columns.append(Column("source", overflow="fold"))  # type: ignore[arg-type]
        if with_pages:
            columns.append(Column("page", overflow="fold"))  # type: ignore[arg-type]
        table = Table(
            *columns, title=f"Probe face {probe_face.face} at {probe_face.box} ({result.gallery_size} faces searched)"
        )
        for c in probe_face.candidates:
            label = f"[{LABEL_STYLE.get(c.label, 'yellow')}]{c.label}[/]"
            fmr = "-" if c.fmr is None else (f"≤{c.fmr:.2g}" if c.fmr_upper_bound else f"{c.fmr:.2g}")
            expected = "-" if c.expected_false_candidates is None else f"{c.expected_false_candidates:.2g}"
            source = _short(c.image.path) if c.image.path else c.image.source_url or ""
            cells = [str(c.rank), f"{c.similarity:.3f}", fmr, expected, label, str(c.face_id), str(c.image.image_id)]
            table.add_row(*cells, c.collection, source, *([c.image.page_url or ""] if with_pages else []))
        console.print(table)
        if not probe_face.candidates:
            console.print("no candidates (empty library or collection)")
    console.print(operating_point(result))
    if result.probe_face_id is not None:
        console.print(f"probe: indexed face {result.probe_face_id} (its photo's SHA-256 {result.probe_sha256[:12]})")
    if result.undated_excluded is not None:
        after, before = result.taken_after or "any time", result.taken_before or "now"
        console.print(
            f"only photos taken from {after} to before {before}; "
            f"{result.undated_excluded} faces without a date left out"
        )
    if result.match_unavailable:
        console.print(f"[yellow]no result can be a match[/]: {result.match_unavailable}")
    if result.calibration_warning:
        console.print(f"[bold red]calibration warning[/]: {result.calibration_warning}")
    console.print(
        "[dim]FMR: the chance that a different person scores this high in one comparison (calibration: "
        f"{result.calibration or 'none'}). A match is a lead for a person to review, not an identification.[/]"
    )


def operating_point(result: SearchResult) -> str:
    """The operating point of a search in one line: what a possible lead and a match need."""
    if result.max_fmr is None:
        return f"uncalibrated model: possible lead at {result.score} ≥ {result.threshold}; no match possible"
    lead = f"possible lead: FMR ≤ {result.max_fmr:g} ({result.score} ≥ {result.threshold})"
    if result.match_threshold is None or result.match_fmr is None:
        match = "match: not measurable at this gallery size"
    else:
        match = f"match: FMR ≤ {result.match_fmr:.2g} ({result.score} ≥ {result.match_threshold})"
    return f"{lead}; {match}, for max FPIR {result.max_fpir:g} over {result.gallery_size} faces"


def _short(path: str) -> str:
    """A path relative to the working folder when it is inside it (easier to read in a table)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def verify(
    a: Annotated[Path, typer.Argument(help="First photo")],
    b: Annotated[Path, typer.Argument(help="Second photo")],
    case: CaseOpt,
    purpose: PurposeOpt,
    legal_basis: LegalBasisOpt = None,
    max_fmr: MaxFmrOpt = None,
    library: LibraryOpt = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """Say whether the largest faces in two photos are the same person, with the score and its FMR.

    Exit status, as grep and cmp give it: 0 the same person (a match at --max-fmr), 1 not the same
    person (or not confirmed: an uncalibrated model), 2 an error.
    """
    try:
        require_files(a, b)  # before the library is opened (and perhaps created)
        with _open(library, embedder, create=True) as lib:
            result = lib.verify(a, b, max_fmr=max_fmr, purpose=search_purpose(case, purpose, legal_basis))
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    matched = result.label == "match"
    if not _json_out(as_json, result.to_dict()):
        if result.fmr is None:
            detail = f"threshold {result.threshold}, uncalibrated model"
        else:
            bound = "≤" if result.fmr_upper_bound else ""
            detail = f"FMR {bound}{result.fmr:.2g}; max FMR {result.max_fmr:g} → threshold {result.threshold}"
        if matched:
            verdict = "[green]same person[/] (match)"
        elif result.same_person:
            verdict = "[yellow]not confirmed[/] (possible lead: calibrate this model to get a match)"
        else:
            verdict = "[yellow]not the same person[/] (no match)"
        console.print(f"{verdict}: similarity {result.similarity:.4f} ({detail})")
        if result.calibration_warning:
            console.print(f"[bold red]calibration warning[/]: {result.calibration_warning}")
    if not matched:
        raise typer.Exit(code=1)


def faces(
    image: Annotated[Path, typer.Argument(help="Photo to look at")],
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List the faces detected in a photo (box, detector score, quality)."""
    try:
        require_files(image)  # before the library is opened (and perhaps created)
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


def remove(
    image: Annotated[
        int | None, typer.Option("--image", help="Image id (the search table's 'image' column, not the face id)")
    ] = None,
    source: Annotated[str | None, typer.Option("--source", help="Source path or URL")] = None,
    collection: Annotated[str | None, typer.Option("--collection", help="A whole collection")] = None,
    yes: YesOpt = False,
    dry_run: DryRunOpt = False,
    library: LibraryOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove photos (their faces, vectors and thumbnails); effective in search at once.

    Shows the photos first (image id, path, faces, collection) and asks; --yes skips the question,
    --dry-run only shows. Exit 1 when nothing matched or the answer was no.
    """
    from facesearch.governance.deletion_plan import NothingMatched

    which = {"image_id": image, "source": source, "collection": collection}
    try:
        with _open(library) as lib:
            plan = lib.preview_removal(**which)
            plan.refuse_if_empty()
            show_plan(plan, title="photos to remove", as_json=as_json, dry_run=dry_run)
            if dry_run:
                return
            confirm(f"Remove {len(plan.image_ids)} photo(s) with {len(plan.face_ids)} face(s)?", yes=yes)
            receipt = lib.remove(**which, expected=plan)
    except NothingMatched as exc:
        nothing_matched(exc, as_json)
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
    for warning in data.get("warnings", []):
        console.print(f"[bold red]warning[/]: {warning}")


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
    if not as_json:
        for warning in report["warnings"]:
            console.print(f"[yellow]warning[/]: {warning}")
    if not report["ok"] and not report["repaired"]:
        raise typer.Exit(code=1)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (default: this machine only)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    rate_limit: Annotated[int, typer.Option(help="Requests per minute per API key")] = 120,
    search_workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Searches embedded at once (default: one per two cores, at most 4)"),
    ] = None,
    docs: Annotated[bool, typer.Option(help="Serve the API's description at /docs and /openapi.json")] = True,
    library: LibraryOpt = None,
) -> None:
    """Serve the REST API (OpenAPI at /docs) for this library. Every route needs an API key
    (`facesearch users add NAME --role ...`); searches need a case id and a purpose."""
    from facesearch.api import serve as run_server
    from facesearch.config import default_library_path

    folder = library or default_library_path()
    if not (folder / "config.json").is_file():
        _fail(FaceSearchError(f"no facesearch library at {folder}: index some photos first", code="no_library"))
    if host not in ("127.0.0.1", "localhost", "::1"):
        err.print(f"[yellow]listening on {host}: reachable from other machines (keys are still required)[/]")
    run_server(folder, host=host, port=port, rate_limit_per_minute=rate_limit, search_workers=search_workers, docs=docs)


# In the order `facesearch --help` lists them (cli/main.py registers them).
COMMANDS = (index, search, verify, faces, remove, stats, doctor, serve)
