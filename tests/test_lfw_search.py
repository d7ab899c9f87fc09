"""1:N search on an lfw-dev subset through the CLI's JSON: the right person comes first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facesearch import Library
from facesearch.errors import NoFaceFound
from tests.conftest import new_engine_library
from tests.helpers import PURPOSE, cli_ok


@pytest.fixture(scope="module")
def lfw_subset(shared_data: Path) -> tuple[list[Path], list[Path]]:
    """People with 3+ photos among the first folders: one probe each held out, two other photos of them
    indexed, plus one-photo people as distractors (~400 photos indexed, 98 probes).

    Two photos a person (issue 11, the suite's speed): all of them made 825 photos to index, half of them
    of a few people with 20-77 photos; the probes and the rank-1 they must reach are the same."""
    people = sorted((shared_data / "lfw-dev" / "images").iterdir())[:600]
    probes, gallery = [], []
    for person in people:
        photos = sorted(person.glob("*.jpg"))
        if len(photos) >= 3:
            probes.append(photos[0])
            gallery.extend(photos[1:3])
        elif len(photos) == 1 and len(gallery) < 400:
            gallery.append(photos[0])
    return probes, gallery


def test_lfw_probes_find_their_person_first(tmp_path: Path, lfw_subset: tuple[list[Path], list[Path]]) -> None:
    probes, gallery = lfw_subset
    assert len(probes) >= 15 and len(gallery) >= 300
    # The recipe is not the subject, nor the model, nor the detector: no jitter (it costs four more alignments per
    # face, and 400 photos), the int8 embedder (issue 15: 2.6x faster per face, the same rank-1 on lfw-dev; the
    # float model stays the reference of the conversion and parity tests), and HOG without upsampling (issue 11,
    # the suite's speed: on LFW's large faces upsampling cost ~4 times the CPU per photo and found no more face,
    # see tests/test_eval_identify.py): the library is made with them (``new_engine_library``) before the index
    # command fills it. Ingest in this process (one worker): worker processes are tested in
    # tests/test_batched_ingest.py, here each would load the models.
    folder = new_engine_library(tmp_path / "lfw", model="dlib_resnet_v1_int8")
    indexed = cli_ok(
        "index",
        *map(str, gallery),
        *("-c", "lfw", "--create-collection", "--workers", "1"),
        *("-l", str(folder), "--json"),
    )
    assert json.loads(indexed.stdout)["indexed"] == len(gallery)
    for probe in probes[:2]:  # the CLI's JSON, as other tools read it
        out = cli_ok(
            "search",
            str(probe),
            "--case",
            "T-1",
            "--purpose",
            "check the CLI JSON on lfw",
            "--json",
            "-k",
            "5",
            "-l",
            str(folder),
        )
        top = json.loads(out.stdout)["faces"][0]["candidates"][0]
        assert top["rank"] == 1 and Path(top["image"]["path"]).parent.name == probe.parent.name
    hits = 0
    with Library.open(folder) as lib:
        for probe in probes:
            try:
                top = lib.search(probe, top_k=1, purpose=PURPOSE).faces[0].candidates[0]
            except NoFaceFound:
                continue  # counts as a miss
            hits += Path(top.image.path).parent.name == probe.parent.name
    assert hits / len(probes) >= 0.9, f"rank-1 {hits}/{len(probes)}"
