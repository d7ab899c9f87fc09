"""The calibration ``facesearch calibrate`` would measure, from heldout_calibration's cached embeddings (issue 16).

``facesearch calibrate --images ../shared/data/lfw-dev/images -o FILE`` embeds every lfw-dev photo (~25 min on the
loaded 2-core machine) and then compares every pair. ``python -m bench.accuracy.heldout_calibration`` embeds the
same photos the same way (eval/verify.py ``embed_images``, the default pipeline of the recipe, photos without a
face left out) and caches them in bench/out/. This script runs the calibration step itself (eval/calibrate.py
``calibrate``, the function the command calls) on that cache, so one embedding gives both the shipped tables and
their held-out check. It says whether the tables already shipped for the recipe are reproduced exactly (the
proof that the cache is what the command would have embedded), then writes the calibration for
``scripts/ship_calibration.py --add``. Aggregate figures only: the cache of embeddings stays in bench/out/.

    .venv/bin/python -m bench.accuracy.calibration_from_cache \\
        bench/out/heldout-dlib_resnet_v1_int8+flip+jitter2.5-9525.npz -o bench/out/calibration-int8.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from facesearch.eval.calibrate import calibrate
from facesearch.search.calibration import Calibration, ScoreTable, default_calibration


def _as_shipped(table: ScoreTable) -> dict:
    """A table as the shipped file holds it (thresholds and rates rounded)."""
    return Calibration("m", "s", {table.score: table}).to_dict()["tables"][table.score]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path, help="bench/out/heldout-<recipe>-<photos>.npz")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--source", default=None, help="[default: '<photos> photos of images (lfw-dev)', as shipped]")
    args = parser.parse_args()
    recipe = args.cache.stem.removeprefix("heldout-").rsplit("-", 1)[0]
    data = np.load(args.cache)
    vectors, people = data["vectors"], data["people"]
    # Paths in the order calibrate sorts the real ones (by person, then photo; the cache keeps lfw_photos' order),
    # so that its fixed-seed draws (the disjoint s-norm cohort) pick the same photos.
    paths = [Path(str(person)) / f"{i:05d}.jpg" for i, person in enumerate(people.tolist())]
    assert [p.parent.name for p in sorted(paths)] == people.tolist(), "the cache is in lfw_photos' sorted order"
    source = args.source or f"{len(paths)} photos of images (lfw-dev)"
    result = calibrate(dict(zip(paths, vectors, strict=True)), lambda p: p.parent.name, recipe, source)
    shipped = default_calibration(recipe)
    for kind, table in sorted(result.tables.items()):
        old = shipped.table(kind) if shipped is not None else None
        same = old is not None and _as_shipped(old) == _as_shipped(table)
        print(
            f"{recipe} {kind}: {table.impostor_comparisons:,} impostor / {table.genuine_comparisons:,} genuine; "
            f"threshold at FMR 1e-3 {table.threshold_for(1e-3):.4f}, smallest FMR {table.fmr[-1]:.2g}; "
            + ("the shipped table, reproduced exactly" if same else "not shipped yet" if old is None else "DIFFERS")
        )
    result.save(args.output)
    print(f"wrote {args.output} ({source})")


if __name__ == "__main__":
    main()
