"""Assemble the calibration facesearch ships (src/facesearch/search/default_calibration.json).

Each input is the output of ``facesearch calibrate --images ../shared/data/lfw-dev/images -o FILE``
for one embedding recipe (the default, and older recipes that existing libraries may use). Only
aggregate figures go into the package: score thresholds and error rates, never embeddings.

    .venv/bin/python scripts/ship_calibration.py bench/out/calibration-*.json
    .venv/bin/python scripts/ship_calibration.py --add bench/out/calibration-int8.json   # keep the others
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from facesearch.search.calibration import Calibration

TARGET = Path(__file__).resolve().parents[1] / "src" / "facesearch" / "search" / "default_calibration.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument(
        "--add", action="store_true", help="Keep the shipped entries of other recipes (replace only those given)"
    )
    args = parser.parse_args()
    entries = {}
    if args.add:
        entries = {entry["model"]: entry for entry in json.loads(TARGET.read_text())}
    for path in args.files:
        calibration = Calibration.load(path)  # validates the tables
        entries[calibration.model] = calibration.to_dict()
        print(f"{calibration.model}: {', '.join(sorted(calibration.tables))} from {calibration.source}")
    TARGET.write_text(json.dumps(list(entries.values()), indent=1) + "\n")
    print(f"wrote {TARGET} ({TARGET.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
