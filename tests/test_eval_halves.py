"""Issue 16: ``eval verify --halves`` and ``eval identify --halves``, the figures for each half of the people.

The halves must be the people's (a pair or search of one half never mixes in the other's people) and each
half's figures its own (not the whole's under another name); the rule is the one the benches use.
"""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from facesearch.eval.halves import half_of
from facesearch.eval.lfw import Pair
from facesearch.eval.verify import evaluate, evaluate_halves
from tests.helpers import cli_ok, run_cli

INT8 = "dlib_resnet_v1_int8"


@pytest.fixture(scope="module")
def lfw(shared_data: Path) -> Path:
    return shared_data / "lfw-dev"


def _names(half: int, count: int, stem: str) -> list[str]:
    """``count`` made-up names whose CRC-32 has the parity of ``half`` (computed here, not by the module)."""
    names = (f"{stem}_{i}" for i in range(10_000))
    return [n for n in names if zlib.crc32(n.encode()) % 2 == half][:count]


def test_the_rule_is_the_one_the_benches_and_docs_use() -> None:
    """Issue 16: one rule, CRC-32 of the name even -> half 0 (docs/accuracy.md's halves); the benches and
    scripts use this very function rather than copies of it."""
    assert [half_of(n) for n in ("Colin_Powell", "George_W_Bush", "Aaron_Peirsol")] == [0, 1, 1]
    from bench.accuracy import accuracy_variants, asnorm, probe_views
    from scripts import cluster_halves

    assert all(m.half_of is half_of for m in (accuracy_variants, asnorm, probe_views, cluster_halves))


def test_verify_halves_keep_each_half_to_its_own_pairs(tmp_path: Path) -> None:
    """Issue 16: made-up embeddings where half 0 separates perfectly and half 1 does not, and where every
    cross-half pair scores like a same-person pair: a half mixing in the other's pairs, or reporting the
    whole's figures, fails here."""
    people = {h: _names(h, 20, f"half{h}") for h in (0, 1)}
    rng = np.random.default_rng(0)
    embeddings: dict[Path, np.ndarray] = {}

    def photo(name: str, number: int, vector: np.ndarray) -> Path:
        path = tmp_path / name / f"{name}_{number:04d}.jpg"
        embeddings[path] = vector / np.linalg.norm(vector)
        return path

    pairs: list[Pair] = []
    for half in (0, 1):
        for i, name in enumerate(people[half]):
            own = rng.normal(size=8)
            # Half 0: the same person's photos identical; half 1: as different as strangers' for every 4th.
            other = own if half == 0 or i % 4 else rng.normal(size=8)
            pairs.append(Pair(photo(name, 1, own), photo(name, 2, other), True, i % 10))
        for i in range(20):  # strangers within the half: orthogonal-ish random vectors
            a, b = people[half][i], people[half][(i + 1) % 20]
            pairs.append(Pair(photo(a, 3, rng.normal(size=8)), photo(b, 4, rng.normal(size=8)), False, i % 10))
    for i in range(6):  # cross-half different-person pairs scoring 1.0, as only a same-person pair should
        shared = rng.normal(size=8)
        pairs.append(Pair(photo(people[0][i], 5, shared), photo(people[1][i], 5, shared), False, i))
    result = evaluate_halves(pairs, embeddings)
    whole = evaluate(pairs, embeddings, {"scored_as_non_match": 0})
    h0, h1 = result["half_0"], result["half_1"]
    assert result["cross_half_pairs_left_out"] == 6
    assert (h0["pairs"], h0["same_pairs"], h0["different_pairs"], h0["people"]) == (40, 20, 20, 20)
    assert (h1["pairs"], h1["same_pairs"], h1["different_pairs"], h1["people"]) == (40, 20, 20, 20)
    assert h0["accuracy"] == 1.0 and h0["auc"] == 1.0  # the cross-half pairs would cost half 0 its perfect score
    assert h1["accuracy"] < 1.0 and h1["auc"] < 1.0
    assert whole.pairs == 86 and whole.auc not in (h0["auc"], h1["auc"])


def _verify_subset(lfw: Path, path: Path) -> tuple[Path, dict]:
    """A pairs file of 20 same-person pairs (10 per half) and 20 different-person pairs (8 within each half,
    4 mixing the halves), and the counts expected of each half, worked out here from the names."""
    lines = (lfw / "pairsDevTrain.txt").read_text().splitlines()[1:]
    same, different = lines[:1100], lines[1100:]

    def parity(name: str) -> int:
        return zlib.crc32(name.encode()) % 2

    chosen = [[p for p in same if parity(p.split()[0]) == h][:10] for h in (0, 1)]
    chosen += [[p for p in different if parity(p.split()[0]) == parity(p.split()[2]) == h][:8] for h in (0, 1)]
    chosen += [[p for p in different if parity(p.split()[0]) != parity(p.split()[2])][:4]]
    path.write_text("20\n" + "\n".join(line for block in chosen for line in block) + "\n")
    people = [
        {p.split()[0] for p in chosen[h]} | {n for p in chosen[2 + h] for n in (p.split()[0], p.split()[2])}
        for h in (0, 1)
    ]
    return path, {"people": [len(p) for p in people]}


def test_eval_verify_halves_on_lfw_dev_pairs(lfw: Path, tmp_path: Path, xdg_cache: Path) -> None:
    """Issue 16: ``eval verify --halves`` on real pairs: the whole's figures as without it, beside each half's,
    with the pairs and people each rests on and the cross-half pairs left out, in JSON and in the table."""
    from facesearch.cli.eval import _verify_halves_table

    pairs, expected = _verify_subset(lfw, tmp_path / "pairs.txt")
    args = ["eval", "verify", "--pairs", str(pairs), "--images", str(lfw / "images"), "--jitter", "0"]
    args += ["--model", INT8, "-l", str(tmp_path / "nolib"), "--json", "--halves"]
    report = json.loads(cli_ok(*args, env={"XDG_CACHE_HOME": str(xdg_cache)}).stdout)
    assert report["pairs"] == 40
    halves = report["halves"]
    assert halves["cross_half_pairs_left_out"] == 4
    for h in (0, 1):
        figures = halves[f"half_{h}"]
        assert (figures["pairs"], figures["same_pairs"], figures["different_pairs"]) == (18, 10, 8)
        assert figures["people"] == expected["people"][h]
        assert set(figures["tar_at_far"]) == {"0.01", "0.001"}
        assert figures["accuracy"] >= 0.9 and figures["auc"] >= 0.95  # the figures of a working pipeline
    # (That a half's figures are its pairs' own, not the whole's, is shown on made-up embeddings above.)
    console = Console(file=io.StringIO(), width=200)
    console.print(_verify_halves_table(halves))
    shown = " ".join(console.file.getvalue().split())
    h0 = halves["half_0"]
    assert (
        f"half 0 │ 18 (10 / 8) │ {h0['people']} │ {h0['accuracy'] * 100:.2f}% ± {h0['accuracy_std'] * 100:.2f}" in shown
    )
    assert "4 different-person pairs mix the halves and are left out" in shown


def test_eval_verify_halves_refused_before_embedding(lfw: Path, tmp_path: Path) -> None:
    """Issue 16: a pairs file where a half has no different-person pair cannot give that half an accuracy:
    refused with a clear error, before any photo is embedded."""
    lines = (lfw / "pairsDevTrain.txt").read_text().splitlines()[1:]
    same = [p for p in lines[:1100] if half_of(p.split()[0]) == 1][:2]
    different = [p for p in lines[1100:] if half_of(p.split()[0]) == half_of(p.split()[2]) == 0][:2]
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("2\n" + "\n".join(same + different) + "\n")
    args = ["eval", "verify", "--pairs", str(pairs), "--images", str(lfw / "images"), "--halves"]
    result = run_cli(*args, "--model", "no-such-model", "-l", str(tmp_path / "nolib"), "--json")
    assert result.exit_code != 0
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "bad_request"
    assert "half 0 of the people has 0 same-person and 2 different-person pairs" in error["message"]


@pytest.fixture(scope="module")
def tiny_lfw(lfw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LFW-layout folder (links into lfw-dev) with people of both halves, chosen here by the CRC-32 of the
    name: per half 2 people with 3 photos (enrolled, and their other photos the mated searches) and 6 with
    one (shuffled into distractors and non-mated searches). Small: each photo is embedded (issue 11)."""
    root = tmp_path_factory.mktemp("tiny-lfw") / "images"
    root.mkdir()
    people = sorted((lfw / "images").iterdir())
    count = {p: len(list(p.glob("*.jpg"))) for p in people}
    for h in (0, 1):
        mine = [p for p in people if zlib.crc32(p.name.encode()) % 2 == h]
        for person in [p for p in mine if count[p] == 3][:2] + [p for p in mine if count[p] == 1][:6]:
            (root / person.name).symlink_to(person, target_is_directory=True)
    return root


IDENTIFY = ["--jitter", "0", "--model", INT8, "--workers", "1"]  # the halves are the subject, not the recipe


def test_eval_identify_halves_each_its_own_people(tiny_lfw: Path, tmp_path: Path) -> None:
    """Issue 16: ``eval identify --halves`` gives each half the figures of the protocol run on its people
    alone: the same as a library enrolled with only that half's photos gives (enrolled and searched through
    the library here), its searches are its people's only, and each figure rests on, and warns about, its own
    non-mated searches."""
    from facesearch.cli.eval import _identify_halves_table
    from facesearch.eval.identify import Split, split_people
    from facesearch.eval.identify import run as run_identify
    from facesearch.library import Library

    args = ["eval", "identify", "--images", str(tiny_lfw), "--seed", "1", *IDENTIFY, "--halves", "--json"]
    report = json.loads(cli_ok(*args, "--work-dir", str(tmp_path / "whole")).stdout)
    halves = report["halves"]
    assert halves["reference"]["matches_library_search"] is True
    split = split_people(tiny_lfw, 1)
    for h in (0, 1):
        figures = halves[f"half_{h}"]
        mine = [p for p in split.mated if zlib.crc32(p.parent.name.encode()) % 2 == h]
        strangers = [p for p in split.non_mated if zlib.crc32(p.parent.name.encode()) % 2 == h]
        assert (figures["mated"], figures["non_mated"]) == (len(mine), len(strangers))
        assert 0 < figures["mated"] < report["mated"] and 0 < figures["non_mated"] < report["non_mated"]
        assert figures["people"] == 8 and figures["gallery_size"] < report["gallery_size"]
        assert figures["fpir_sample"]["0.01"]["non_mated_searches"] == len(strangers)
        assert figures["warnings"] and all(f"rests on {len(strangers)} non-mated" in w for w in figures["warnings"])
        assert f"half {h} of the people: FNIR at FPIR 0.01 rests on {len(strangers)}" in " ".join(report["warnings"])
    # Half 0 enrolled and searched through a library of its own: the same figures.
    half0 = Split(*([p for p in ps if zlib.crc32(p.parent.name.encode()) % 2 == 0] for ps in vars(split).values()))
    with Library.open(tmp_path / "half0", jitter=0, model=INT8) as lib:
        alone = run_identify(lib, half0, 1, workers=1).to_dict()
    keys = ("gallery_size", "mated", "non_mated", "rank1", "rank5", "fnir_at_fpir", "thresholds", "score")
    assert {k: halves["half_0"][k] for k in keys} == {k: alone[k] for k in keys}
    console = Console(file=io.StringIO(), width=200)
    console.print(_identify_halves_table(halves))
    shown = " ".join(console.file.getvalue().split())
    assert (
        f"half 0 │ 8 │ {halves['half_0']['gallery_size']} faces │ {len(half0.mated)} / {len(half0.non_mated)}" in shown
    )
    assert "this reproduces the library's searches: yes" in shown


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--probe-photos", "2"], "--halves measures one photo per search: leave out --probe-photos"),
        ([], "half 1 of the people has no mated search"),
    ],
)
def test_eval_identify_halves_refused(tiny_lfw: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    """Issue 16: ``--halves`` where it cannot measure (several photos per search; a half with nobody to find)
    is refused with a clear error before anything is built."""
    root = tmp_path / "images"
    root.mkdir()
    for person in tiny_lfw.iterdir():  # half 1 keeps only its one-photo people
        if zlib.crc32(person.name.encode()) % 2 == 0 or len(list(person.glob("*.jpg"))) == 1 or extra:
            (root / person.name).symlink_to(person.resolve(), target_is_directory=True)
    work_dir = tmp_path / "lib"
    args = ["eval", "identify", "--images", str(root), "--halves", *extra, "--work-dir", str(work_dir), "--json"]
    result = run_cli(*args)
    assert result.exit_code != 0
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "bad_request" and message in error["message"]
    assert not work_dir.exists()  # nothing was built
