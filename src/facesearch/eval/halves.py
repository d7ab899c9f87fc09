"""The two halves of the people: the one rule that splits a labelled folder's people in two.

Issue 16: every accuracy choice is kept only if it helps on both halves of the people, and ``eval verify``
and ``eval identify`` report their figures for each half (``--halves``), so that a gain found on some
people can be checked on others. A person is in half 0 when the CRC-32 of their name (the folder name in
LFW layout) is even, in half 1 when it is odd: fixed, seedless and the same on every machine, so that the
halves of docs/accuracy.md, the benches under bench/accuracy/, scripts/cluster_halves.py and the commands
are the same people. This module is that rule, written once.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path

from facesearch.eval.lfw import Pair

HALVES = (0, 1)
RULE = "a person is in half 0 when the CRC-32 of their folder name is even, in half 1 when it is odd"


def half_of(name: str) -> int:
    """The half (0 or 1) of the person called ``name`` (their folder's name in LFW layout)."""
    return zlib.crc32(name.encode()) % 2


def half_of_photo(path: str | Path) -> int:
    """The half of the person a photo in LFW layout (``DIR/<Name>/<photo>``) shows."""
    return half_of(Path(path).parent.name)


def pairs_by_half(pairs: Sequence[Pair]) -> tuple[dict[int, list[Pair]], int]:
    """The pairs whose people are all in each half, in their order, and how many pairs mix the halves (a
    different-person pair of one person from each half belongs to neither and is left out)."""
    by_half: dict[int, list[Pair]] = {h: [] for h in HALVES}
    cross = 0
    for pair in pairs:
        a, b = half_of_photo(pair.a), half_of_photo(pair.b)
        if a == b:
            by_half[a].append(pair)
        else:
            cross += 1
    return by_half, cross
