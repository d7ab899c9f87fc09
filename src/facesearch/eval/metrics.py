"""Verification metrics: 10-fold accuracy, ROC AUC, EER and TAR at fixed FAR (pure NumPy).

Scores are similarities: higher means more likely the same person.
"""

from __future__ import annotations

import numpy as np


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold with the highest accuracy, midway between two neighbouring scores."""
    order = np.argsort(scores)
    s, y = scores[order], same[order].astype(bool)
    # Rejecting the lowest c scores: correct = different-person pairs among them + same-person pairs above.
    rejected_negatives = np.concatenate([[0], np.cumsum(~y)])
    rejected_positives = np.concatenate([[0], np.cumsum(y)])
    correct = rejected_negatives + (y.sum() - rejected_positives)
    cut = int(np.argmax(correct))
    if cut == 0:
        return float(s[0] - 1e-6)
    if cut == len(s):
        return float(s[-1] + 1e-6)
    return float((s[cut - 1] + s[cut]) / 2)


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[float, float, list[float]]:
    """Accuracy with the threshold chosen on the other folds, tested on each fold: mean, std, thresholds."""
    accuracies, thresholds = [], []
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        threshold = best_threshold(scores[train], same[train])
        thresholds.append(threshold)
        accuracies.append(float(np.mean((scores[test] >= threshold) == same[test])))
    return float(np.mean(accuracies)), float(np.std(accuracies)), thresholds


def roc_auc(scores: np.ndarray, same: np.ndarray) -> float:
    """Probability that a random same-person pair outscores a random different-person pair (ties half)."""
    genuine, impostor = scores[same], scores[~same]
    ranks = _average_ranks(np.concatenate([genuine, impostor]))
    rank_sum = ranks[: len(genuine)].sum()
    return float((rank_sum - len(genuine) * (len(genuine) + 1) / 2) / (len(genuine) * len(impostor)))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values))
    sorted_values = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_values[j + 1] == sorted_values[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def eer(scores: np.ndarray, same: np.ndarray) -> float:
    """Equal error rate: where the false match rate equals the false non-match rate."""
    thresholds = np.unique(scores)
    fmr = np.array([np.mean(scores[~same] >= t) for t in thresholds])
    fnmr = np.array([np.mean(scores[same] < t) for t in thresholds])
    i = int(np.argmin(np.abs(fmr - fnmr)))
    return float((fmr[i] + fnmr[i]) / 2)


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> float:
    """True accept rate at the strictest threshold whose false accept rate is at most ``far``."""
    impostor = np.sort(scores[~same])[::-1]
    allowed = int(np.floor(far * len(impostor)))  # impostors allowed above the threshold
    threshold = impostor[allowed] if allowed < len(impostor) else -np.inf
    return float(np.mean(scores[same] > threshold))
