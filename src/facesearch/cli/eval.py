"""``facesearch eval ...`` and ``facesearch calibrate``: measure accuracy on the operator's own data.

Only the command-line layer: the measuring is done by facesearch.eval (inputs.py picks the pipeline,
operating point and photos), imported inside each command so that ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from facesearch.cli.support import EmbedderOpt, JsonOpt, LibraryOpt, MaxFmrOpt, console, err
from facesearch.cli.support import fail as _fail
from facesearch.cli.support import json_out as _json_out
from facesearch.cli.support import progress_bar as _progress
from facesearch.errors import FaceSearchError

ReportOpt = Annotated[
    Path | None,
    typer.Option("--report", help="Also write plots (PNG) and a Markdown summary into this folder"),
]


def _command_line() -> str:
    """The command as typed, for the report (so that anyone can reproduce it)."""
    import shlex
    import sys

    return "facesearch " + " ".join(shlex.quote(a) for a in sys.argv[1:])


eval_app = typer.Typer(
    rich_markup_mode=None,
    help="Measure accuracy on your own data (LFW-layout folders and pairs files).",
    no_args_is_help=True,
)


FlipOpt = Annotated[
    bool | None, typer.Option("--flip/--no-flip", help="Flip-averaged embeddings [default: the library's]")
]
JitterOpt = Annotated[
    float | None, typer.Option("--jitter", help="Jitter shift in chip pixels, 0 = off [default: the library's]")
]
JitterAxesOpt = Annotated[
    str | None,
    typer.Option(
        "--jitter-axes",
        help="Directions of the jitter shifts: xy (left, right, up, down: 10 views with flip) or y (up and down: 6 "
        "views, issue 15) [default: the library's; without one, what a new library gets]",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        help="Built-in model without a library: dlib_resnet_v1_int8r (7-bit weights), dlib_resnet_v1_int8 or "
        "dlib_resnet_v1 (float) [default: the library's; without one, what a new library with these options "
        "gets: an int8 model with a calibration for the recipe (issue 15), else float]",
    ),
]
FallbackOpt = Annotated[str | None, typer.Option("--detector-fallback", help="cnn or none [default: the library's]")]
HalvesOpt = Annotated[
    bool,
    typer.Option(
        "--halves",
        help="Also give the figures for each half of the people (CRC-32 of the folder name even / odd, the split "
        "docs/accuracy.md uses), to check that a result holds on people it was not chosen on (issue 16)",
    ),
]


def _check_axes(jitter_axes: str | None) -> None:
    """Refuse an unknown --jitter-axes before any photo or pairs file is read (imported here: --help stays fast)."""
    if jitter_axes is not None:
        from facesearch.config import check_jitter_axes

        check_jitter_axes(jitter_axes, "--jitter-axes")


@eval_app.command("verify")
def eval_verify(
    pairs: Annotated[Path, typer.Option("--pairs", help="Pairs file in LFW format (View 1 'N' or View 2 'folds n')")],
    images: Annotated[Path, typer.Option("--images", help="Folder in LFW layout: DIR/<Name>/<Name>_NNNN.jpg")],
    fallback: Annotated[
        str, typer.Option(help="No face found: 'centre' (landmarks in the central box) or 'reject'")
    ] = "centre",
    flip: FlipOpt = None,
    jitter: JitterOpt = None,
    jitter_axes: JitterAxesOpt = None,
    detector_fallback: FallbackOpt = None,
    model: ModelOpt = None,
    report_dir: ReportOpt = None,
    halves: HalvesOpt = False,
    library: LibraryOpt = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """10-fold verification accuracy, ROC AUC, EER and TAR at FAR 1e-2 / 1e-3."""
    from facesearch.eval.inputs import eval_pipeline
    from facesearch.eval.lfw import read_pairs
    from facesearch.eval.verify import embed_images, evaluate, evaluate_halves, pairs_of_halves

    if fallback not in ("centre", "reject"):
        _fail(FaceSearchError("--fallback must be 'centre' or 'reject'", code="bad_request"), as_json)
    try:
        _check_axes(jitter_axes)
        pair_list = read_pairs(pairs, images)
        if halves:
            pairs_of_halves(pair_list)  # a half that cannot be measured is refused before anything is embedded
        pipeline, _ = eval_pipeline(
            library,
            embedder,
            flip_average=flip,
            jitter=jitter,
            jitter_axes=jitter_axes,
            detector_fallback=detector_fallback,
            model=model,
        )
        paths = sorted({p for pair in pair_list for p in (pair.a, pair.b)})
        with _progress("embedding", as_json) as bar:
            task = bar.add_task("embed", total=len(paths))
            embeddings, no_face = embed_images(pipeline, paths, fallback, lambda n: bar.advance(task, n))
        report = evaluate(pair_list, embeddings, no_face)
        if halves:
            report.halves = evaluate_halves(pair_list, embeddings)
        if report_dir is not None:
            from facesearch.eval.report import write_verification_report

            summary = {"command": _command_line(), **report.to_dict()}
            title = f"Verification on {pairs.name} ({images})"
            written = write_verification_report(report_dir, report.scores, report.same, summary, title)
            err.print(f"report: {', '.join(str(p) for p in written)}")
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
    if report.halves is not None:
        console.print(_verify_halves_table(report.halves))


def _verify_halves_table(result: dict) -> Table:
    """Issue 16: the verification figures of each half of the people, beside the whole's."""
    table = Table(
        "half",
        "pairs (same / different)",
        "people",
        "10-fold accuracy",
        "ROC AUC",
        "EER",
        *(f"TAR at FAR {far}" for far in result["half_0"]["tar_at_far"]),
        title="Each half of the people: the pairs whose people are all in it",
        caption=f"{result['rule']}; {result['cross_half_pairs_left_out']} different-person pairs mix the halves "
        "and are left out; each half's folds and thresholds are its own",
    )
    for half in ("half_0", "half_1"):
        h = result[half]
        table.add_row(
            half.replace("_", " "),
            f"{h['pairs']} ({h['same_pairs']} / {h['different_pairs']})",
            str(h["people"]),
            f"{h['accuracy'] * 100:.2f}% ± {h['accuracy_std'] * 100:.2f}",
            f"{h['auc']:.5f}",
            f"{h['eer'] * 100:.2f}%",
            *(f"{tar * 100:.2f}%" for tar in h["tar_at_far"].values()),
        )
    return table


@eval_app.command("identify")
def eval_identify(
    images: Annotated[Path, typer.Option("--images", help="Folder in LFW layout: DIR/<Name>/<Name>_NNNN.jpg")],
    seed: Annotated[int, typer.Option(help="Seed for who is enrolled and who is a non-mated search")] = 0,
    work_dir: Annotated[
        Path | None, typer.Option(help="Keep the evaluation library here [default: a temporary folder, removed]")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Ingest worker processes [default: one per core]")] = None,
    normalize: Annotated[
        str | None,
        typer.Option(help="Score normalisation: none, snorm or snorm_cos (issue 16) [default: the library default]"),
    ] = None,
    flip: FlipOpt = None,
    jitter: JitterOpt = None,
    jitter_axes: JitterAxesOpt = None,
    model: ModelOpt = None,
    report_dir: ReportOpt = None,
    probe_photos: Annotated[
        int,
        typer.Option(
            "--probe-photos",
            min=1,
            max=10,
            help="Photos per search, fused into one probe (issue 13); above 1, each search also runs with its "
            "first photo alone, on the same gallery and people, to show what the other photos are worth",
        ),
    ] = 1,
    gallery_sizes: Annotated[
        str | None,
        typer.Option(
            "--gallery-sizes",
            help="Also measure the same searches with the gallery padded with synthetic distractors up to each of "
            "these sizes in faces, e.g. 10000,100000 (issue 16; none below the real gallery)",
        ),
    ] = None,
    halves: HalvesOpt = False,
    cohort_draws: Annotated[
        int,
        typer.Option(
            "--cohort-draws",
            help="Also measure the same searches with the s-norm cohort drawn with seeds 0..N-1 (N >= 2; seed 0 is "
            "the library's): how far the figures move with the cohort's draw alone (issue 16)",
        ),
    ] = 0,
    compare_normalize: Annotated[
        str | None,
        typer.Option(
            "--compare-normalize",
            help="Also score the same searches as a library with this score normalisation would (none, snorm or "
            "snorm_cos; with --halves and --cohort-draws, those too): two kinds compared on one embedding (issue 16)",
        ),
    ] = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """1:N search with distractors through the real ingest and search path: rank-1/5, FNIR at FPIR."""
    import tempfile

    from facesearch.config import SCORE_NORMALIZATIONS
    from facesearch.eval.cohort_draws import check_draws
    from facesearch.eval.gallery_sweep import check_sizes, parse_sizes
    from facesearch.eval.identify import Split, split_groups, split_people
    from facesearch.eval.identify import run as run_identify
    from facesearch.eval.identify_halves import check_halves
    from facesearch.library import Library

    try:
        _check_axes(jitter_axes)
        for option, kind in (("--normalize", normalize), ("--compare-normalize", compare_normalize)):
            if kind is not None and kind not in SCORE_NORMALIZATIONS:  # refused before anything is read
                raise FaceSearchError(
                    f"{option} {kind!r}: one of {', '.join(SCORE_NORMALIZATIONS)}", code="bad_request"
                )
        sizes = parse_sizes(gallery_sizes) if gallery_sizes is not None else []
        if cohort_draws:
            check_draws(cohort_draws)
        options = ((sizes, "--gallery-sizes"), (halves, "--halves"), (cohort_draws, "--cohort-draws"))
        for asked, option in (*options, (compare_normalize, "--compare-normalize")):
            if asked and probe_photos != 1:
                raise FaceSearchError(
                    f"{option} measures one photo per search: leave out --probe-photos", code="bad_request"
                )
        split = split_people(images, seed) if probe_photos == 1 else split_groups(images, seed, probe_photos)
        if halves and isinstance(split, Split):  # before the library is made: a bad folder builds nothing
            check_halves(split.gallery, split.mated)
        check_sizes(sizes, len(split.gallery), "photos")  # and against its faces once they are indexed
        searches = (len(split.mated) + len(split.non_mated)) * (1 if probe_photos == 1 else 2)
        with tempfile.TemporaryDirectory(prefix="facesearch-eval-") as tmp:
            folder = work_dir or Path(tmp) / "library"
            with (
                Library.open(
                    folder, embedder=embedder, flip_average=flip, jitter=jitter, jitter_axes=jitter_axes, model=model
                ) as lib,
                _progress("enrolling and searching", as_json) as bar,
            ):
                if normalize is not None:
                    lib.config.score_normalization = normalize
                task = bar.add_task("enrolling and searching", total=len(split.gallery) + searches)
                report = run_identify(
                    lib,
                    split,
                    seed,
                    lambda _event, n: bar.advance(task, n),
                    workers,
                    sizes,
                    halves=halves,
                    cohort_draws=cohort_draws,
                    compare_normalize=compare_normalize,
                )
        if report_dir is not None:
            from facesearch.eval.report import sweep_markdown, write_identification_report

            summary = {"command": _command_line(), **report.to_dict()}
            summary.pop("gallery_sweep", None)  # a table of its own below, not rows of the summary
            written = write_identification_report(
                report_dir,
                report.mated_scores,
                report.non_mated_top,
                summary,
                title=f"1:N identification on {images} (seed {seed})",
                mated_ranks=report.mated_ranks,
                threshold=report.thresholds.get("0.01"),
                warnings=report.warnings,
                notes=sweep_markdown(report.gallery_sweep) if report.gallery_sweep else [],
            )
            err.print(f"report: {', '.join(str(p) for p in written)}")
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
    if report.single_photo is not None:
        single = report.single_photo
        table.add_row("photos per search", f"{report.probe_photos}, fused (above); 1 alone (below)")
        table.add_row("1 photo: rank-1 / rank-5", f"{single['rank1']:.4f} / {single['rank5']:.4f}")
        for fpir, fnir in single["fnir_at_fpir"].items():
            table.add_row(f"1 photo: FNIR at FPIR {fpir}", f"{fnir:.4f} (threshold {single['thresholds'][fpir]:.4f})")
    console.print(table)
    if report.gallery_sweep:
        console.print(_sweep_table(report.gallery_sweep))
    if report.halves:
        console.print(_identify_halves_table(report.halves))
    if report.cohort_draws:
        console.print(_cohort_draws_table(report.cohort_draws))
    if report.compared:
        console.print(_compared_table(report.compared))
    for warning in report.warnings:  # issue 16: an FPIR figure on too few non-mated searches says so
        console.print(f"[bold yellow]warning[/]: {warning}")


def _compared_table(result: dict) -> Table:
    """Issue 16: the same searches scored with another kind (``--compare-normalize``): whole, halves, draws."""
    fpirs = list(result["whole"]["fnir_at_fpir"])
    table = Table(
        "searches",
        "rank-1",
        *(f"FNIR @ FPIR {f}" for f in fpirs),
        title=f"The same searches scored as {result['whole']['score']} (--compare-normalize {result['normalization']})",
    )
    rows = [("whole", result["whole"])] + [
        (f"half {h}", result["halves"][f"half_{h}"]) for h in (0, 1) if "halves" in result
    ]
    for name, figures in rows:
        table.add_row(name, f"{figures['rank1']:.4f}", *(f"{figures['fnir_at_fpir'][f]:.4f}" for f in fpirs))
    if "cohort_draws" in result:
        spread = result["cohort_draws"]["spread"]
        table.add_row(
            f"{len(result['cohort_draws']['draws'])} cohort draws: median (min-max)",
            f"{spread['rank1']['median']:.4f} ({spread['rank1']['min']:.4f}-{spread['rank1']['max']:.4f})",
            *(
                f"{spread[f'fnir_at_fpir_{f}']['median']:.4f} ({spread[f'fnir_at_fpir_{f}']['min']:.4f}-"
                f"{spread[f'fnir_at_fpir_{f}']['max']:.4f})"
                for f in fpirs
            ),
        )
    return table


def _cohort_draws_table(result: dict) -> Table:
    """Issue 16: the spread of the figures over the s-norm cohort's draws."""
    draws = len(result["draws"])
    table = Table(
        "figure",
        "min",
        "median",
        "max",
        "std",
        "seed 0 (the library's)",
        title=f"The same searches with {draws} draws of the s-norm cohort (seeds 0..{draws - 1})",
        caption=result["note"],
    )
    first = result["draws"][0]
    for name, values in result["spread"].items():
        own = first[name] if name in first else first["fnir_at_fpir"][name.removeprefix("fnir_at_fpir_")]
        table.add_row(name, *(f"{values[k]:.4f}" for k in ("min", "median", "max", "std")), f"{own:.4f}")
    return table


def _identify_halves_table(result: dict) -> Table:
    """Issue 16: the 1:N figures within each half of the people (gallery and searches of its people only)."""
    fpirs = list(result["half_0"]["fnir_at_fpir"])
    matches = "yes" if result["reference"]["matches_library_search"] else "NO"
    table = Table(
        "half",
        "people",
        "gallery",
        "mated / non-mated",
        "score",
        "rank-1 / rank-5",
        *(f"FNIR @ FPIR {fpir}" for fpir in fpirs),
        title="Each half of the people: gallery and searches of its people only",
        caption=f"{result['rule']}; searched again from the faces the library's searches embedded (on the whole "
        f"gallery this reproduces the library's searches: {matches}); * rests on fewer than 100 non-mated searches",
    )
    for half in ("half_0", "half_1"):
        h = result[half]
        small = " *" if h["warnings"] else ""
        table.add_row(
            half.replace("_", " "),
            str(h["people"]),
            f"{h['gallery_size']} faces",
            f"{h['mated']} / {h['non_mated']}",
            h["score"],
            f"{h['rank1']:.4f} / {h['rank5']:.4f}",
            *(f"{h['fnir_at_fpir'][fpir]:.4f}{small}" for fpir in fpirs),
        )
    return table


def _sweep_table(result: dict) -> Table:
    """Issue 16: the figures at each gallery size, the real gallery first."""
    check = result["distractor_check"]
    real, fake = check["real_different_person"], check["distractor_pairs"]
    table = Table(
        "gallery",
        "distractors",
        "index",
        "score",
        "rank-1",
        "rank-5",
        *(f"FNIR @ FPIR {fpir}" for fpir in result["reference"]["fnir_at_fpir"]),
        "small sample",
        title="Gallery-size sweep: the same searches, the gallery padded with synthetic distractors "
        f"(pairs p99.9: real {real['p99.9']:.4f}, distractors {fake['p99.9']:.4f})",
    )
    probes_vs = check.get("non_mated_probes_vs") or {}
    if probes_vs:
        top = probes_vs["top_score_median"]
        table.caption = (
            f"non-mated probes' median top score: {top['real_strangers']:.4f} against "
            f"{probes_vs['equal_counts']:,} real strangers, {top['distractors']:.4f} against as many distractors"
        )
    from facesearch.eval.report import sweep_cells

    fpirs = list(result["reference"]["fnir_at_fpir"])
    for row in [result["reference"], *result["sizes"]]:
        table.add_row(*sweep_cells(row, fpirs, on_top=False))
    return table


def calibrate(
    images: Annotated[Path, typer.Option("--images", help="Labelled photos in LFW layout: DIR/<Person>/<photo>")],
    pairs: Annotated[
        Path | None, typer.Option("--pairs", help="Use only the photos named in this LFW pairs file")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the calibration here instead of into the library")
    ] = None,
    flip: FlipOpt = None,
    jitter: JitterOpt = None,
    jitter_axes: JitterAxesOpt = None,
    model: ModelOpt = None,
    max_comparisons: Annotated[
        int, typer.Option(help="Sample this many different-person pairs when there are more")
    ] = 60_000_000,
    library: LibraryOpt = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """Measure how often different people reach each score on your own labelled photos (FMR tables).

    Every pair of photos of different people is compared (and every pair of the same person), with
    the library's own model and cohort. The tables go into the library (calibration.json), where
    search and verify use them to give each result its false match rate and to set the threshold
    from --max-fmr; or into --output.
    """
    from facesearch.config import default_library_path
    from facesearch.eval.calibrate import calibrate as measure
    from facesearch.eval.inputs import calibration_photos, eval_pipeline, operating_points
    from facesearch.eval.verify import embed_images
    from facesearch.library import Library

    try:
        _check_axes(jitter_axes)
        paths = calibration_photos(images, pairs)
        folder = library or default_library_path()
        lib = Library.open(folder, embedder=embedder, create=False) if (folder / "config.json").is_file() else None
        if lib is None and output is None:
            raise FaceSearchError(
                f"no library at {folder}: give --library or --output FILE for the calibration", code="bad_request"
            )
        try:
            if lib is not None:
                pipeline, model_key = lib.pipeline, lib.model_info.key
            else:
                pipeline, model_key = eval_pipeline(
                    None, embedder, flip_average=flip, jitter=jitter, jitter_axes=jitter_axes, model=model
                )
            with _progress("embedding", as_json) as bar:
                task = bar.add_task("embed", total=len(paths))
                embeddings, no_face = embed_images(pipeline, paths, "reject", lambda n: bar.advance(task, n))
            source = f"{len(paths) - no_face['count']} photos of {images.name} ({images.resolve().parent.name})"
            result = measure(
                embeddings,
                lambda p: p.parent.name,
                model_key,
                source,
                normalizer=lib.scoring.normalizer if lib else None,
                cohort_from_photos=lib is None,  # a library's s-norm scores use its own cohort, or none yet
                max_comparisons=max_comparisons,
            )
            if output is not None:
                result.save(output)
                written = output
            else:
                written = lib.scoring.save_calibration(result)  # type: ignore[union-attr]
        finally:
            if lib:
                lib.close()
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    path = written
    summary = {
        "model": result.model,
        "source": result.source,
        "written": str(path),
        "no_face": no_face["count"],
        "operating_points": operating_points(result),
    }
    if _json_out(as_json, summary):
        return
    title = f"Calibration of {result.model}: {result.source}"
    table = Table("score", "max FMR", "threshold", "FNMR there", title=title)
    for row in summary["operating_points"]:
        table.add_row(row["score"], f"{row['max_fmr']:g}", f"{row['threshold']:.4f}", f"{row['fnmr']:.4f}")
    console.print(table)
    for kind, t in result.tables.items():
        console.print(
            f"{kind}: {t.impostor_comparisons:,} different-person and {t.genuine_comparisons:,} same-person comparisons"
        )
    console.print(f"written to {path}; photos without a face left out: {no_face['count']}")


@eval_app.command("groups")
def eval_groups(
    images: Annotated[Path, typer.Option("--images", help="Folder in LFW layout: DIR/<Person>/<photo>")],
    labels: Annotated[
        Path, typer.Option("--labels", help="CSV: a 'person' or 'image' column and a 'group' column (yours to supply)")
    ],
    derive: Annotated[
        str | None,
        typer.Option(
            help="Write --labels first from a property of each photo: 'brightness' (thirds) or 'colour' "
            "(grayscale vs colour). For trying the command; real groups are the operator's to supply",
        ),
    ] = None,
    max_fmr: MaxFmrOpt = None,
    library: LibraryOpt = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """False match and false non-match rates per group at the operating threshold (NIST IR 8280 style).

    Every pair of photos of the same person is a genuine comparison; every pair of photos of
    different people in the same group an impostor comparison. A warning is printed when the worst
    group's rate is more than twice the best group's.
    """
    from facesearch.eval.groups import (
        group_differentials,
        groups_table,
        labels_from_image_property,
        read_labels,
        write_labels_csv,
    )
    from facesearch.eval.inputs import calibration_photos, verify_operating_point
    from facesearch.eval.verify import embed_images

    try:
        paths = calibration_photos(images, None)
        if derive is not None:
            if derive not in ("brightness", "colour"):
                raise FaceSearchError("--derive must be 'brightness' or 'colour'", code="bad_request")
            write_labels_csv(labels_from_image_property(paths, derive), labels, images)
        label_table = read_labels(labels)
        pipeline, threshold, operating = verify_operating_point(library, embedder, max_fmr)
        with _progress("embedding", as_json) as bar:
            task = bar.add_task("embed", total=len(paths))
            embeddings, _ = embed_images(pipeline, paths, "reject", lambda n: bar.advance(task, n))
        report = group_differentials(embeddings, lambda p: p.parent.name, label_table, threshold)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    data = {**report.to_dict(), "operating_point": operating}
    if _json_out(as_json, data):
        return
    console.print(groups_table(report))
    for warning in report.warnings:
        console.print(f"[bold yellow]warning[/]: {warning}")
    console.print(
        f"[dim]threshold {threshold:.4f} ({operating}). The grouping is yours to supply: these figures only "
        "describe the groups in this labels file.[/]"
    )


@eval_app.command("detect")
def eval_detect(
    boxes: Annotated[
        Path, typer.Option("--boxes", help="face_boxes.csv: split,file,img_w,img_h,left,top,width,height,ignore")
    ],
    images: Annotated[
        Path | None, typer.Option("--images", help="Folder of the photos in the CSV [default: the CSV's folder]")
    ] = None,
    negatives: Annotated[
        Path | None, typer.Option("--negatives", help="Folder of photos without any human face")
    ] = None,
    detector: Annotated[str, typer.Option("--detector", help="hog or cnn")] = "hog",
    upsample: Annotated[int, typer.Option(help="Upsampling steps (finds smaller faces, slower)")] = 1,
    near_misses: Annotated[
        str,
        typer.Option(
            "--near-misses", help="cnn: dlib's CNN checks crops around HOG's near misses (a new library's), or none"
        ),
    ] = "cnn",
    iou: Annotated[float, typer.Option(help="Overlap needed to count a detection as the face")] = 0.3,
    as_json: JsonOpt = False,
) -> None:
    """Detection recall and precision on annotated boxes, and false faces per photo on negatives."""
    from facesearch.eval.detect import detection_table, evaluate_detection
    from facesearch.models.detect.base import DetectorSettings
    from facesearch.models.detect.factory import create_detector

    try:
        found = create_detector(detector, DetectorSettings(upsample=upsample), near_misses=near_misses)
        report = evaluate_detection(found, boxes, images or boxes.parent, negatives, iou)
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    checked = {"near_misses": near_misses if detector == "hog" else "none"}
    if _json_out(as_json, {**report.to_dict(), "detector_kind": detector, "upsample": upsample, **checked}):
        return
    console.print(detection_table(report))


@eval_app.command("cluster")
def eval_cluster(
    images: Annotated[Path, typer.Option("--images", help="Folder in LFW layout: DIR/<Name>/<Name>_NNNN.jpg")],
    max_fmr: Annotated[
        float,
        typer.Option("--max-fmr", help="Operating point: the false match rate per comparison that links two faces"),
    ] = 1e-4,  # people.clustering.MAX_FMR (not imported here: --help stays fast)
    batches: Annotated[
        int,
        typer.Option("--batches", min=1, help="Also cluster incrementally, faces arriving in this many batches"),
    ] = 1,
    cache: Annotated[
        Path | None,
        typer.Option("--cache", help="Keep the embeddings here between runs (biometric data: keep private)"),
    ] = None,
    indexed: Annotated[
        bool,
        typer.Option("--indexed", help="Score the faces --library has already indexed from DIR (embeds nothing)"),
    ] = False,
    report_dir: ReportOpt = None,
    library: LibraryOpt = None,
    embedder: EmbedderOpt = "onnx",
    as_json: JsonOpt = False,
) -> None:
    """Group the faces of one-face photos into persons and score it (pairwise, BCubed) against the folder
    names, with dlib's Chinese Whispers and Immich's DBSCAN on the same embeddings (issue 14)."""
    from facesearch.eval.cluster import evaluate
    from facesearch.eval.cluster_embed import indexed_embeddings, one_face_embeddings
    from facesearch.eval.inputs import calibration_photos, eval_pipeline, verify_operating_point

    try:
        if not 0 < max_fmr < 1:
            raise FaceSearchError(f"--max-fmr must be between 0 and 1, got {max_fmr:g}", code="bad_request")
        paths = calibration_photos(images, None)
        pipeline, threshold, _ = verify_operating_point(library, embedder, max_fmr)
        if indexed:
            from facesearch.config import default_library_path
            from facesearch.library import Library

            with Library.open(library or default_library_path(), embedder=embedder, create=False) as lib:
                x, people, skipped = indexed_embeddings(lib, paths)
        else:
            _, key = eval_pipeline(library, embedder)
            with _progress("embedding", as_json) as bar:
                task = bar.add_task("embed", total=len(paths))
                x, people, skipped = one_face_embeddings(
                    pipeline, key, paths, cache=cache, progress=lambda n: bar.advance(task, n)
                )
        if len(x) < 2:
            raise FaceSearchError(f"{images}: fewer than 2 photos with exactly one face", code="bad_request")
        report = evaluate(x, people, threshold, max_fmr, len(paths), skipped, batches=batches)
        if report_dir is not None:
            from facesearch.eval.cluster_report import write_cluster_report

            summary = {"command": _command_line(), **report.to_dict()}
            written = write_cluster_report(report_dir, summary, report.sizes, f"Clustering of {images}")
            err.print(f"report: {', '.join(str(p) for p in written)}")
    except FaceSearchError as exc:
        _fail(exc, as_json)
        return
    if _json_out(as_json, report.to_dict()):
        return
    title = (
        f"Clustering {report.faces} faces of {report.photos} photos at max FMR {max_fmr:g} (cosine >= {threshold:.4f})"
    )
    table = Table("method", "pairwise P", "pairwise R", "BCubed P", "BCubed R", "BCubed F1", "persons", title=title)
    rows = dict(report.methods)
    if report.incremental is not None:
        rows[f"facesearch, {batches} batches"] = report.incremental
    for name, m in rows.items():
        pw, bc = m["pairwise"], m["bcubed"]
        table.add_row(
            name,
            *(f"{v:.4f}" for v in (pw["precision"], pw["recall"], bc["precision"], bc["recall"], bc["f1"])),
            f"{m['persons_found']} / {m['persons_true']}",
        )
    console.print(table)
