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
    # On these pairs the whole separates perfectly while half 0's small folds put one threshold wrong: a half
    # giving the whole's figures would show 100% here.
    assert report["accuracy"] == 1.0 and halves["half_0"]["accuracy"] == 0.95
    console = Console(file=io.StringIO(), width=200)
    console.print(_verify_halves_table(halves))
    shown = " ".join(console.file.getvalue().split())
    assert "half 0 │ 18 (10 / 8)" in shown and "95.00% ± 10.00" in shown
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
