"""What a `match` needs at each gallery size, with the calibration facesearch ships (docs/accuracy.md).

A search labels a candidate `match` only when fmr x gallery size <= max_fpir (search/labels.py). For
galleries of 1k, 100k and 10M faces at max FPIR 0.01 this prints the per-comparison fmr that implies,
the score threshold the shipped lfw-dev table gives for it, per recipe and score kind, or "not
measurable with the shipped calibration" where the table's smallest measured rate is higher.

    .venv/bin/python -m bench.accuracy.operating_points [--max-fpir 0.01] [--galleries 1000 100000 10000000]
"""

from __future__ import annotations

import argparse
import json
from importlib import resources

from facesearch.config import DEFAULT_MAX_FMR, DEFAULT_MAX_FPIR
from facesearch.search.calibration import Calibration
from facesearch.search.labels import search_point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-fpir", type=float, default=DEFAULT_MAX_FPIR)
    parser.add_argument("--galleries", type=int, nargs="+", default=[1_000, 100_000, 10_000_000])
    args = parser.parse_args()
    shipped = json.loads(resources.files("facesearch.search").joinpath("default_calibration.json").read_text())
    print("| recipe | score | gallery | fmr per comparison | threshold | smallest fmr measured |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for entry in shipped:
        calibration = Calibration.from_dict(entry)
        for kind, table in calibration.tables.items():
            lead = table.threshold_for(DEFAULT_MAX_FMR)
            for gallery in args.galleries:
                p = search_point(table, lead, DEFAULT_MAX_FMR, gallery, args.max_fpir, calibration.source)
                where = (
                    f"{p.match_threshold:.4f}"
                    if p.match_threshold is not None
                    else "not measurable with the shipped calibration"
                )
                cells = [calibration.model, kind, f"{gallery:,}", f"{p.match_fmr:.0e}", where, f"{table.fmr[-1]:.1e}"]
                print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
