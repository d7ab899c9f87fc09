"""Plots of ``facesearch eval cluster`` (issue 14): the methods side by side, and the persons' sizes.

``quality.png``: pairwise precision / recall and BCubed F1 of each method (precision first: a false
merge is the worse error). ``sizes.png``: how many persons have each number of faces, found by each
method vs the truth (log-log): a method that chains shows a few huge persons on the right.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from facesearch.eval.report import _markdown, _pyplot, _save, _write_markdown

FIGSIZE = (7.2, 4.8)


def write_cluster_report(out_dir: Path, summary: Mapping, sizes: Mapping[str, np.ndarray], title: str) -> list[Path]:
    """Write ``quality.png``, ``sizes.png`` and ``report.md``; returns the files written."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = summary["methods"]
    names = list(methods)
    figures = {
        "pairwise precision": [methods[m]["pairwise"]["precision"] for m in names],
        "pairwise recall": [methods[m]["pairwise"]["recall"] for m in names],
        "BCubed F1": [methods[m]["bcubed"]["f1"] for m in names],
    }
    fig, ax = plt.subplots(figsize=FIGSIZE)
    width = 0.8 / len(figures)
    for k, (label, values) in enumerate(figures.items()):
        ax.bar(np.arange(len(names)) + k * width, values, width, label=label)
    ax.set_xticks(np.arange(len(names)) + width * (len(figures) - 1) / 2, names)
    ax.set_ylim(0, 1.05)
    ax.set_title("Clustering quality (same embeddings, same run)")
    ax.legend(loc="lower left")
    quality = _save(fig, out_dir / "quality.png")
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for name, counts in sizes.items():
        values, how_many = np.unique(counts, return_counts=True)
        ax.loglog(values, how_many, marker="o", linestyle="-" if name == "truth" else ":", label=name)
    ax.set_xlabel("faces in a person")
    ax.set_ylabel("persons")
    ax.set_title("Person sizes: found vs true")
    ax.legend()
    size_plot = _save(fig, out_dir / "sizes.png")
    notes = ["Pairwise: over all pairs of faces. BCubed: per face, averaged.", ""]
    images = [("Quality", quality), ("Person sizes", size_plot)]
    md = _write_markdown(out_dir, _markdown(title, summary, images, notes))
    return [quality, size_plot, md]
