"""int8 dlib ResNet vs the float one, same run: speed, descriptor agreement, lfw-dev verification (issue 15).

Why: a quantised embedder is worth a model key only if it is faster on this CPU *and* gives the same
answers. Everything here is measured against the float model in the same run, as ratios:

- ``speed``: ms per batch of aligned chips, ONNX Runtime sessions made by ``runtime.onnx_session`` (the
  project's session settings), 1 thread and every core, float vs each int8 variant, interleaved;
- ``agree``: cosine between float and int8 descriptors of the same chips, on pairsDevTrain photos
  (people the shipped ranges were not measured on);
- ``verify``: 10-fold verification accuracy on pairsDevTrain with the default recipe (flip + 4 shifted
  alignments, 10 views), float vs int8, from the same chips;
- ``views``: the float model with fewer views: skip the 4 shifted alignments for a face whose plain and
  mirrored descriptors already agree (cosine >= a level): accuracy and views saved per level.

Chips come from ``bench/int8_chips.py`` (aligned once, kept in /tmp, never in the project); raw
descriptors are cached beside them. Prints a table and writes bench/out/int8.json (aggregates only).

    PYTHONPATH=src:. python -m bench.int8_chips
    PYTHONPATH=src:. python -m bench.speed.int8 [--pairs 2200] [--repeats 5] [--what speed,agree,verify,views]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import onnx

from bench import int8_chips
from bench.datasets import OUT, dev_pairs
from facesearch.eval.metrics import kfold_accuracy, tar_at_far
from facesearch.models.convert.dlib_format import read_dlib_network
from facesearch.models.convert.dlib_resnet_onnx import INPUT_NAME, build_resnet_onnx
from facesearch.models.convert.resnet_int8 import quantise_resnet, shipped_ranges
from facesearch.models.embed.base import l2_normalise
from facesearch.models.runtime import OnnxSession, onnx_session
from facesearch.models.weights import DLIB_RESNET, dlib_model_path

log = logging.getLogger(__name__)

BATCH = 40  # a chunk of 8 photos' faces x 5 alignments: what an ingest worker embeds at once
LEVELS = (0.0, 0.985, 0.988, 0.990, 0.991, 0.992, 0.993, 0.994, 0.995, 1.01)  # 0: always skip; 1.01: never (today)


def models() -> dict[str, bytes]:
    """The float model and its int8 variants, built in memory from dlib's weights and the shipped ranges."""
    float_model = build_resnet_onnx(read_dlib_network(dlib_model_path(DLIB_RESNET)))
    ranges = shipped_ranges()
    out = {"float": float_model.SerializeToString()}
    for fmt in ("qdq", "qoperator"):
        out[f"int8-{fmt}"] = quantise_resnet(float_model, ranges, quant_format=fmt).SerializeToString()
    return out


def time_batches(sessions: dict[str, OnnxSession], chips: np.ndarray, repeats: int) -> dict[str, float]:
    """Best ms per batch of BATCH chips for each session, runs interleaved so load hits all alike."""
    batches = [np.ascontiguousarray(chips[i : i + BATCH]) for i in range(0, len(chips) - BATCH + 1, BATCH)]
    best = {name: float("inf") for name in sessions}
    for session in sessions.values():  # warm-up
        session.run({INPUT_NAME: batches[0]})
    for _ in range(repeats):
        for name, session in sessions.items():
            start = time.perf_counter()
            for batch in batches:
                session.run({INPUT_NAME: batch})
            best[name] = min(best[name], 1000 * (time.perf_counter() - start) / len(batches))
    return best


def speed(blobs: dict[str, bytes], chips: np.ndarray, repeats: int) -> dict:
    result = {}
    for threads in (1, 0):
        sessions = {name: onnx_session(blob, threads=threads, what=name) for name, blob in blobs.items()}
        ms = time_batches(sessions, chips, repeats)
        label = "1 thread" if threads == 1 else f"{os.cpu_count()} threads"
        result[label] = {name: {"ms_per_batch": v, "x_vs_float": ms["float"] / v} for name, v in ms.items()}
        for name, v in ms.items():
            print(
                f"{label:10s} {name:15s} {v:8.1f} ms / batch of {BATCH}  ({v / BATCH:5.2f} ms/chip)  "
                f"x{ms['float'] / v:.2f} vs float"
            )
    return result


def raw_views(blob: bytes, name: str, chips: np.ndarray) -> np.ndarray:
    """(faces, 5 alignments, 2 (plain, mirror), 128) raw descriptors, cached in the chip folder."""
    cache = int8_chips.cache_dir() / f"raw-{name}-{len(chips)}.npy"
    if cache.is_file():
        return np.load(cache)
    session = onnx_session(blob, threads=0, what=name)
    flat = chips.reshape(-1, *chips.shape[2:])
    out = []
    for start in range(0, len(flat), 200):
        batch = np.ascontiguousarray(flat[start : start + 200])
        plain = session.run({INPUT_NAME: batch})[0]
        mirror = session.run({INPUT_NAME: np.ascontiguousarray(batch[:, :, ::-1])})[0]
        out.append(np.stack([plain, mirror], axis=1))
    raw = np.concatenate(out).reshape(len(chips), chips.shape[1], 2, -1).astype(np.float32)
    np.save(cache, raw)
    return raw


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def recipe_vectors(raw: np.ndarray) -> np.ndarray:
    """The default recipe's vector: the sum of all 10 raw views, normalised (Embedder.embed_with_stability)."""
    return l2_normalise(raw.reshape(len(raw), -1, raw.shape[-1]).sum(axis=1))


def verification(vectors: np.ndarray, index: dict[Path, int], pairs: list) -> dict:
    scores = np.array([float(vectors[index[p.a]] @ vectors[index[p.b]]) for p in pairs])
    same = np.array([p.same for p in pairs], bool)
    folds = np.array([p.fold for p in pairs])
    mean, std, _ = kfold_accuracy(scores, same, folds)
    return {"accuracy": mean, "std": std, "tar_at_far_1e-3": tar_at_far(scores, same, 1e-3), "scores": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2200, help="pairsDevTrain pairs (spread over the folds)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--what", default="speed,agree,verify,views")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    what = set(args.what.split(","))
    import onnxruntime as ort

    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, {os.cpu_count()} CPUs")
    blobs = models()
    photos, chips = int8_chips.load("pairs")
    report: dict = {"batch": BATCH}
    if "speed" in what:
        report["speed"] = speed(blobs, np.asarray(chips[:40, 0]).reshape(-1, 150, 150, 3)[:200], args.repeats)
    all_pairs = dev_pairs()
    step = max(1, len(all_pairs) // args.pairs)
    pairs = all_pairs[::step][: args.pairs]
    wanted = sorted({p for pair in pairs for p in (pair.a, pair.b)})
    position = {p: i for i, p in enumerate(photos)}
    rows = np.array([position[p] for p in wanted])
    index = {p: i for i, p in enumerate(wanted)}
    subset = np.asarray(chips[rows]) if what & {"agree", "verify", "views"} else None
    raws = {}
    if subset is not None:
        for name in ("float", "int8-qdq") if what & {"agree", "verify"} else ("float",):
            raws[name] = raw_views(blobs[name], f"{name}-{args.pairs}", subset)
    if "agree" in what:
        report["agree"] = {}
        for name in raws.keys() - {"float"}:
            cos = np.sum(unit(raws["float"]) * unit(raws[name]), axis=-1).reshape(-1)
            recipe = np.sum(recipe_vectors(raws["float"]) * recipe_vectors(raws[name]), axis=1)
            report["agree"][name] = {
                "views": int(cos.size),
                "view_cosine_mean": float(cos.mean()),
                "view_cosine_min": float(cos.min()),
                "view_cosine_p01": float(np.percentile(cos, 1)),
                "recipe_cosine_mean": float(recipe.mean()),
                "recipe_cosine_min": float(recipe.min()),
            }
            print(f"agreement {name}: {report['agree'][name]}")
    if "verify" in what:
        report["verify"] = {}
        for name, raw in raws.items():
            result = verification(recipe_vectors(raw), index, pairs)
            scores = result.pop("scores")
            if name != "float":
                ref = verification(recipe_vectors(raws["float"]), index, pairs)["scores"]
                result["score_abs_diff_max"] = float(np.abs(scores - ref).max())
            result.update(identification(recipe_vectors(raw), wanted))
            report["verify"][name] = result
            print(f"verify {name} on {len(pairs)} pairs: {_short(result)}")
    if "views" in what:
        report["views"] = views_report(raws["float"], index, pairs, wanted)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "int8.json").write_text(json.dumps(report, indent=1) + "\n")


def _short(result: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items())


def identification(vectors: np.ndarray, photos: list[Path]) -> dict:
    """A 1:N check on the same photos (more sensitive than 2,200 pairs): people with 2+ photos, every
    other one enrolled by their first photo and searched with the rest (mated); the others' photos are
    non-mated searches; people with one photo are distractors in the gallery. Rank-1 hit rate of the
    mated searches, and FNIR at FPIR 0.01 (threshold: the 99th percentile of non-mated top scores)."""
    people: dict[str, list[int]] = {}
    for i, path in enumerate(photos):
        people.setdefault(path.parent.name, []).append(i)
    several = sorted(name for name, rows in people.items() if len(rows) > 1)
    enrolled = several[::2]
    gallery = [people[name][0] for name in enrolled] + [rows[0] for rows in people.values() if len(rows) == 1]
    owner = np.array([photos[i].parent.name for i in gallery])
    mated = [i for name in enrolled for i in people[name][1:]]
    non_mated = [i for name in several[1::2] for i in people[name]]
    scores = vectors[mated] @ vectors[gallery].T
    best = scores.argmax(axis=1)
    hit = owner[best] == np.array([photos[i].parent.name for i in mated])
    top_non_mated = (vectors[non_mated] @ vectors[gallery].T).max(axis=1)
    threshold = np.percentile(top_non_mated, 99)
    found = hit & (scores.max(axis=1) > threshold)
    return {"rank1": float(hit.mean()), "fnir_at_fpir_0.01": float(1 - found.mean()), "mated": len(mated)}


def views_report(raw: np.ndarray, index: dict[Path, int], pairs: list, photos: list[Path]) -> dict:
    """Skip the shifted alignments of faces whose plain and mirrored descriptors agree (cosine >= level)."""
    plain = unit(raw[:, 0, 0])
    mirror = unit(raw[:, 0, 1])
    agreement = np.sum(plain * mirror, axis=1)
    flip_only = l2_normalise(raw[:, 0].sum(axis=1))
    full = recipe_vectors(raw)
    out = {}
    for level in LEVELS:
        skip = agreement >= level
        vectors = np.where(skip[:, None], flip_only, full)
        result = verification(vectors, index, pairs)
        result.pop("scores")
        views = 2 * len(raw) + 8 * int((~skip).sum())
        result.update(skipped=float(skip.mean()), views_per_face=views / len(raw))
        result.update(identification(vectors, photos))
        out[f"{level:.3f}"] = result
        print(f"views: skip shifted when plain~mirror >= {level:.3f}: {_short(result)}")
    print(f"plain~mirror cosine: percentiles 5/25/50/75/95 {np.percentile(agreement, [5, 25, 50, 75, 95]).round(3)}")
    return out


if __name__ == "__main__":
    main()
