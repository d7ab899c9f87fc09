"""What every command-line command shares: the consoles, common options, JSON output and errors.

Imported by every command module, so it imports nothing heavy: facesearch.config (which pulls in the
models and the stores) and the library only inside the functions that need them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from facesearch.errors import FaceSearchError

if TYPE_CHECKING:
    from rich.progress import Progress

    from facesearch.library import Library

console = Console()
err = Console(stderr=True, soft_wrap=True)  # messages unbroken: a path in one piece, to copy

LibraryOpt = Annotated[
    Path | None,
    typer.Option("--library", "-l", help="Library folder [env FACESEARCH_LIBRARY, default ./facesearch-library]"),
]
EmbedderOpt = Annotated[
    str, typer.Option("--embedder", help="Runtime for dlib's ResNet: onnx (fast) or dlib (reference)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (stable schema)")]
MaxFmrOpt = Annotated[
    float | None,
    typer.Option(
        "--max-fmr",
        help="Operating point: the false match rate per comparison accepted as a match [default: the library's, 1e-3]",
    ),
]
MaxFpirOpt = Annotated[
    float | None,
    typer.Option(
        "--max-fpir",
        help="The chance accepted that a search for someone who is not in the gallery labels anyone a match "
        "(NIST's FPIR): a match expects at most this many strangers as high among the faces searched "
        "[default: the library's, 0.01]",
    ),
]


CaseOpt = Annotated[str, typer.Option("--case", help="Case id this search is for (written to the audit log)")]
PurposeOpt = Annotated[str, typer.Option("--purpose", help="Why this search is made (written to the audit log)")]
LegalBasisOpt = Annotated[str | None, typer.Option("--legal-basis", help="Legal basis, when a collection requires one")]


def search_purpose(case: str, purpose: str, legal_basis: str | None):  # type: ignore[no-untyped-def]
    """The stated purpose of a search or verify (validated by the library)."""
    from facesearch.governance.purpose import SearchPurpose

    return SearchPurpose(case_id=case, purpose=purpose, legal_basis=legal_basis)


def open_library(
    library: Path | None,
    embedder: str = "onnx",
    create: bool = False,
    repair: bool = True,
    jitter: float | None = None,
    jitter_axes: str | None = None,
    vector_store: str | None = None,
    milvus_uri: str | None = None,
    catalog_url: str | None = None,
    index_engine: str | None = None,
    detector: str | None = None,
    max_fpir: float | None = None,
    model: str | None = None,
    device: str | None = None,
) -> Library:
    """Open the library; the creation-only options are refused for one that exists (they were fixed then).

    ``device`` (where this command embeds) only picks a new library's default model (issue 15)."""
    from facesearch.config import default_library_path
    from facesearch.library import Library

    folder = library or default_library_path()
    creation = {
        "--jitter": jitter,
        "--jitter-axes": jitter_axes,
        "--vector-store": vector_store,
        "--milvus-uri": milvus_uri,
        "--catalog-url": catalog_url,
        "--index-engine": index_engine,
        "--detector": detector,
        "--max-fpir": max_fpir,
        "--model": model,
    }
    given = [name for name, value in creation.items() if value is not None]
    if given and (folder / "config.json").is_file():
        raise FaceSearchError(
            f"{folder} exists: {', '.join(given)} can only be set when a library is created", code="bad_request"
        )
    if milvus_uri is not None and vector_store != "milvus":
        raise FaceSearchError("--milvus-uri needs --vector-store milvus", code="bad_request")
    return Library.open(
        folder,
        embedder=embedder,
        create=create,
        repair_index=repair,
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
    )


def json_out(as_json: bool, data: object) -> bool:
    """Print ``data`` as JSON when ``--json`` was given; True if printed (the command is then done)."""
    if as_json:
        print(json.dumps(data, indent=2, default=str))
    return as_json


def progress_bar(label: str, as_json: bool) -> Progress:
    """A progress bar on stderr for a long job (hidden with --json or off a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return Progress(*columns, console=err, disable=as_json or not err.is_terminal)


def fail(exc: FaceSearchError, as_json: bool = False) -> None:
    """Report an error the user can act on (as JSON too with --json) and exit with status 2."""
    if as_json:
        print(json.dumps({"error": {"code": exc.code, "message": str(exc)}}))
    err.print(f"[bold red]error[/] ({exc.code}): {exc}")
    raise typer.Exit(code=2)
