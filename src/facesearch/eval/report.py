"""Plots and a Markdown report of an evaluation, so that results can be read and compared at a glance.

A number such as "TAR 0.84 at FAR 1e-3" says nothing about the rest of the curve; the curves and
the score histograms show where the two score populations overlap and how a threshold trades one
error for the other. Files written:

* verification: ``roc.png`` (TAR vs FAR, log FAR), ``det.png`` (FNMR vs FMR, log-log),
  ``scores.png`` (same vs different person histograms) and ``report.md``;
* identification: ``det.png`` (FNIR vs FPIR, NIST's 1:N DET), ``scores.png`` (mated rank-1 vs
  non-mated top scores), ``cmc.png`` (hit rate by rank, when ranks are given) and ``report.md``.

Matplotlib runs on its non-interactive Agg backend (no display needed, nothing downloaded). Rates of
zero cannot sit on a log axis, so curves are clipped at the measurement's resolution (1 / count).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from facesearch.errors import FaceSearchError

log = logging.getLogger(__name__)

DPI = 100
FIGSIZE = (6.4, 4.8)  # 640 x 480 pixels at DPI


class ReportInputError(FaceSearchError):
    """The scores cannot be plotted: empty, one class only, not numbers..."""

    code = "bad_report_input"


def _pyplot():  # type: ignore[no-untyped-def]
    """pyplot on the Agg backend, imported on first use (it costs ~0.5 s and only reports need it)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# curves -----------------------------------------------------------------------------------------------


def error_tradeoff(genuine: np.ndarray, impostor: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At every distinct score t (accept when score >= t): thresholds, false match rate, false non-match rate.

    Works for 1:1 (genuine/impostor pair scores: FMR, FNMR) and 1:N (mated rank-1 / non-mated top
    scores: FPIR, FNIR) alike. A ``-inf`` score is never accepted.
    """
    thresholds = np.unique(np.concatenate([genuine, impostor]))
    thresholds = thresholds[np.isfinite(thresholds)]
    imp, gen = np.sort(impostor), np.sort(genuine)
    fmr = 1 - np.searchsorted(imp, thresholds, side="left") / len(imp)
    fnmr = np.searchsorted(gen, thresholds, side="left") / len(gen)
    return thresholds, fmr, fnmr


def _check_scores(scores: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(scores, dtype=np.float64).ravel()
    if np.isnan(values).any():
        raise ReportInputError(f"{name} holds NaN scores")
    return values


def _two_classes(positive: np.ndarray, negative: np.ndarray, pos_name: str, neg_name: str) -> None:
    for values, name in ((positive, pos_name), (negative, neg_name)):
        if len(values) == 0:
            raise ReportInputError(f"no {name} scores: a curve needs both {pos_name} and {neg_name} scores")
    if not np.isfinite(positive).any() and not np.isfinite(negative).any():
        raise ReportInputError(f"no finite score among the {pos_name} and {neg_name} scores: nothing to plot")


# figures ----------------------------------------------------------------------------------------------


def _save(fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)
    log.info("wrote %s", path)
    return path


def _roc(path: Path, genuine: np.ndarray, impostor: np.ndarray, threshold: float | None) -> Path:
    plt = _pyplot()
    _, fmr, fnmr = error_tradeoff(genuine, impostor)
    floor = 1 / len(impostor)
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.step(np.clip(fmr, floor, 1), 1 - fnmr, where="post", color="tab:blue")
    _mark(ax, threshold, genuine, impostor, lambda fa, fn: (max(fa, floor), 1 - fn))
    ax.set_xscale("log")
    ax.set_xlim(min(floor, 0.1), 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel(f"false accept rate (log; floor 1/{len(impostor):,} impostor pairs)")
    ax.set_ylabel("true accept rate")
    ax.set_title("ROC")
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def _det(
    path: Path,
    genuine: np.ndarray,
    impostor: np.ndarray,
    threshold: float | None,
    labels: tuple[str, str, str],
) -> Path:
    plt = _pyplot()
    x_label, y_label, title = labels
    _, fmr, fnmr = error_tradeoff(genuine, impostor)
    x_floor, y_floor = 1 / len(impostor), 1 / len(genuine)
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.step(np.clip(fmr, x_floor, 1), np.clip(fnmr, y_floor, 1), where="post", color="tab:red")
    _mark(ax, threshold, genuine, impostor, lambda fa, fn: (max(fa, x_floor), max(fn, y_floor)))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(min(x_floor, 0.1), 1)
    ax.set_ylim(min(y_floor, 0.1), 1.05)
    ax.set_xlabel(f"{x_label} (log; floor 1/{len(impostor):,})")
    ax.set_ylabel(f"{y_label} (log; floor 1/{len(genuine):,})")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def _mark(ax, threshold: float | None, genuine: np.ndarray, impostor: np.ndarray, place) -> None:  # type: ignore[no-untyped-def]
    """Mark the operating point of ``threshold`` on a curve."""
    if threshold is None:
        return
    false_accept = float(np.mean(impostor >= threshold))
    false_reject = float(np.mean(genuine < threshold))
    x, y = place(false_accept, false_reject)
    ax.plot([x], [y], "ko")
    ax.annotate(f"threshold {threshold:g}", (x, y), textcoords="offset points", xytext=(6, -14))


def _histograms(
    path: Path,
    positive: np.ndarray,
    negative: np.ndarray,
    threshold: float | None,
    names: tuple[str, str],
    title: str,
) -> Path:
    plt = _pyplot()
    pos, neg = positive[np.isfinite(positive)], negative[np.isfinite(negative)]
    edges = np.histogram_bin_edges(np.concatenate([pos, neg]), bins=min(60, max(10, (len(pos) + len(neg)) // 10)))
    fig, ax = plt.subplots(figsize=FIGSIZE)
    # Densities, not counts: impostor pairs often outnumber genuine ones by orders of magnitude.
    ax.hist(neg, bins=edges, density=True, alpha=0.55, color="tab:orange", label=f"{names[1]} ({len(neg):,})")
    ax.hist(pos, bins=edges, density=True, alpha=0.55, color="tab:blue", label=f"{names[0]} ({len(pos):,})")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def _cmc(path: Path, ranks: np.ndarray) -> Path:
    plt = _pyplot()
    depth = int(max(5, ranks.max(initial=0)))
    hit = [float(np.mean((ranks >= 1) & (ranks <= k))) for k in range(1, depth + 1)]
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.plot(range(1, depth + 1), hit, marker="o", color="tab:green")
    ax.set_xlabel("rank")
    ax.set_ylabel("share of mated searches with the mate at or above rank")
    ax.set_ylim(0, 1.01)
    ax.set_title("Cumulative match characteristic")
    ax.grid(True, alpha=0.3)
    return _save(fig, path)


# markdown ---------------------------------------------------------------------------------------------


def flatten(summary: Mapping, prefix: str = "") -> list[tuple[str, str]]:
    """Nested summary dict as ``(dotted key, text)`` rows, e.g. ``tar_at_far.0.01``."""
    rows: list[tuple[str, str]] = []
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows.extend(flatten(value, name + "."))
        elif isinstance(value, list | tuple):
            rows.append((name, ", ".join(_text(v) for v in value)))
        else:
            rows.append((name, _text(value)))
    return rows


def _text(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _markdown(title: str, summary: Mapping, images: list[tuple[str, Path]], notes: list[str]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    command = summary.get("command")
    lines = [f"# {title}", ""]
    if command:
        shown = command if isinstance(command, str) else " ".join(str(part) for part in command)
        lines += ["Command:", "", "```", shown, "```", ""]
    lines += ["| metric | value |", "| --- | --- |"]
    lines += [f"| {cell(k)} | {cell(v)} |" for k, v in flatten({k: v for k, v in summary.items() if k != "command"})]
    lines.append("")
    lines += notes
    for caption, path in images:
        lines += [f"## {caption}", "", f"![{caption}]({path.name})", ""]
    return "\n".join(lines)


def _write_markdown(out_dir: Path, text: str) -> Path:
    path = out_dir / "report.md"
    path.write_text(text, encoding="utf-8")
    log.info("wrote %s", path)
    return path


# public API -------------------------------------------------------------------------------------------


def write_verification_report(
    out_dir: Path,
    scores: np.ndarray,
    same: np.ndarray,
    summary: Mapping,
    title: str = "Verification report",
    threshold: float | None = None,
) -> list[Path]:
    """Write ``roc.png``, ``det.png``, ``scores.png`` and ``report.md`` for 1:1 pair scores.

    ``scores[i]`` is the similarity of pair i and ``same[i]`` whether it is a same-person pair (for
    instance the arrays :func:`facesearch.eval.verify.evaluate` builds). ``summary`` is shown as a
    table (e.g. ``VerifyReport.to_dict()``); a ``command`` entry is shown as the command line that
    produced it. ``threshold`` is marked on the curves and histograms. Returns the files written.
    """
    values = _check_scores(scores, "scores")
    labels = np.asarray(same, dtype=bool).ravel()
    if len(values) != len(labels):
        raise ReportInputError(f"{len(values)} scores but {len(labels)} same/different labels")
    genuine, impostor = values[labels], values[~labels]
    _two_classes(genuine, impostor, "same-person", "different-person")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    roc = _roc(out_dir / "roc.png", genuine, impostor, threshold)
    det = _det(
        out_dir / "det.png",
        genuine,
        impostor,
        threshold,
        ("false match rate (FMR)", "false non-match rate (FNMR)", "DET: verification errors"),
    )
    hist = _histograms(
        out_dir / "scores.png", genuine, impostor, threshold, ("same person", "different people"), "Pair scores"
    )
    notes = [f"{len(genuine):,} same-person and {len(impostor):,} different-person pairs."]
    if threshold is not None:
        notes[0] += (
            f" At threshold {threshold:g}: FMR {np.mean(impostor >= threshold):.4g},"
            f" FNMR {np.mean(genuine < threshold):.4g}."
        )
    notes.append("")
    images = [("ROC", roc), ("DET", det), ("Score distributions", hist)]
    md = _write_markdown(out_dir, _markdown(title, summary, images, notes))
    return [roc, det, hist, md]


def write_identification_report(
    out_dir: Path,
    mated_scores: np.ndarray,
    non_mated_top_scores: np.ndarray,
    summary: Mapping,
    title: str = "Identification report",
    mated_ranks: np.ndarray | None = None,
    threshold: float | None = None,
    warnings: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> list[Path]:
    """Write ``det.png`` (FNIR vs FPIR), ``scores.png``, ``cmc.png`` (with ranks) and ``report.md`` for 1:N.

    ``warnings`` (issue 16: FPIR figures on too few non-mated searches) are shown as warning lines above
    the plots; ``notes``, Markdown lines, after them (e.g. :func:`sweep_markdown`'s table).

    One entry per search, as NIST's rank-1 FNIR/FPIR definitions need them:

    * ``mated_scores``: the mate's score when it is the top candidate, ``-inf`` when it is not (wrong
      person on top, or no face found): such a search is a miss at every threshold;
    * ``non_mated_top_scores``: the top candidate's score of each non-mated search, ``-inf`` when no
      face was found (never a false positive);
    * ``mated_ranks`` (optional): rank of the mate in the candidate list, ``0`` when absent.
    """
    mated = _check_scores(mated_scores, "mated_scores")
    non_mated = _check_scores(non_mated_top_scores, "non_mated_top_scores")
    _two_classes(mated, non_mated, "mated", "non-mated")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    det = _det(
        out_dir / "det.png",
        mated,
        non_mated,
        threshold,
        (
            "false positive identification rate (FPIR)",
            "false negative identification rate (FNIR)",
            "DET: identification errors (rank 1)",
        ),
    )
    hist = _histograms(
        out_dir / "scores.png",
        mated,
        non_mated,
        threshold,
        ("mated searches, mate at rank 1", "non-mated searches, top candidate"),
        "Top candidate scores",
    )
    images = [("DET (FNIR vs FPIR)", det), ("Score distributions", hist)]
    written = [det, hist]
    if mated_ranks is not None:
        ranks = np.asarray(mated_ranks, dtype=np.int64).ravel()
        if len(ranks) != len(mated):
            raise ReportInputError(f"{len(ranks)} mated ranks but {len(mated)} mated scores")
        cmc = _cmc(out_dir / "cmc.png", ranks)
        images.append(("CMC", cmc))
        written.append(cmc)
    lines = [
        f"{len(mated):,} mated searches ({int(np.sum(~np.isfinite(mated))):,} without the mate at rank 1), "
        f"{len(non_mated):,} non-mated searches ({int(np.sum(~np.isfinite(non_mated))):,} without a face).",
        "",
    ]
    for warning in warnings:
        lines += [f"**Warning:** {warning}.", ""]
    lines += [*notes, ""] if notes else []
    written.append(_write_markdown(out_dir, _markdown(title, summary, images, lines)))
    return written


def sweep_cells(row: Mapping, fpirs: list[str], on_top: bool) -> list[str]:
    """One gallery size of the sweep as table cells, the same in the terminal and in report.md (``on_top``: with
    the count of searches whose top candidate is a distractor, which the terminal's narrower table leaves out)."""
    cells = [
        f"{row['gallery_size']:,}",
        f"{row['distractors']:,}",
        row["index"],
        row["score"],
        f"{row['rank1']:.4f}",
        f"{row['rank5']:.4f}",
        *(f"{row['fnir_at_fpir'][f]:.4f}" for f in fpirs),
    ]
    if on_top:
        cells.append(f"{row['distractor_on_top']['mated']:,} / {row['distractor_on_top']['non_mated']:,}")
    return [*cells, "yes" if row["small_sample"] else "no"]


def sweep_markdown(result: Mapping) -> list[str]:
    """Issue 16: the gallery-size sweep of ``eval identify`` (``gallery_sweep`` of its JSON) as a Markdown table."""
    reference = result["reference"]
    fpirs = list(reference["fnir_at_fpir"])
    check = result["distractor_check"]
    lines = [
        "## Gallery-size sweep",
        "",
        "The same searches with the gallery padded with synthetic distractors (a Gaussian fitted to the gallery's "
        f"labelled faces; pairs at p99.9: real different people {check['real_different_person']['p99.9']:.4f}, "
        f"distractors {check['distractor_pairs']['p99.9']:.4f}). The first row is the real gallery alone, "
        f"scored the sweep's way (reproduces the library's searches: {reference['matches_library_search']}).",
        *_probe_check_line(check.get("non_mated_probes_vs") or {}),
        "",
        "| gallery | distractors | index | score | rank-1 | rank-5 | "
        + " | ".join(f"FNIR @ FPIR {f}" for f in fpirs)
        + " | distractor on top (mated / non-mated) | small sample |",
        "| ---: | ---: | --- | --- | ---: | ---: | " + " | ".join("---:" for _ in fpirs) + " | ---: | --- |",
    ]
    for row in [reference, *result["sizes"]]:
        cells = sweep_cells(row, fpirs, on_top=True)
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _probe_check_line(probes_vs: Mapping) -> list[str]:
    """How the non-mated probes see real strangers and as many distractors (their median top score)."""
    if not probes_vs:
        return []
    top = probes_vs["top_score_median"]
    return [
        f"Non-mated probes against {probes_vs['equal_counts']:,} real strangers and as many distractors: median top "
        f"score {top['real_strangers']:.4f} vs {top['distractors']:.4f}; pairs at p99.9 "
        f"{probes_vs['real_strangers']['p99.9']:.4f} vs {probes_vs['distractors']['p99.9']:.4f}."
    ]
