"""Confidence calibration of multiple-choice answers: expected calibration error and Brier score.

The answer distribution of one question is the softmax over its choices' summed log-likelihoods; the
model's answer is the argmax and its confidence that answer's probability.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

ECE_BINS = 15


def choice_probabilities(log_likelihoods: Sequence[float]) -> np.ndarray:
    scores = np.asarray(log_likelihoods, dtype=float)
    scores = np.exp(scores - scores.max())
    return scores / scores.sum()


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[float],
                               n_bins: int = ECE_BINS) -> float:
    """Sum over equal-width confidence bins of |accuracy - mean confidence|, weighted by bin share.

    Bins are (k/n, (k+1)/n], the first one closed at 0, so a confidence of exactly 1 falls in the top bin.
    """
    confidences = np.asarray(confidences, dtype=float)
    correct = np.asarray(correct, dtype=float)
    if confidences.size == 0:
        return float("nan")
    bins = np.clip(np.ceil(confidences * n_bins).astype(int) - 1, 0, n_bins - 1)
    error = 0.0
    for b in range(n_bins):
        members = bins == b
        if members.any():
            error += members.mean() * abs(correct[members].mean() - confidences[members].mean())
    return float(error)


def brier_score(probabilities: Sequence[Sequence[float]], gold: Sequence[int]) -> float:
    """Mean over questions of the squared distance between the answer distribution and the one-hot gold.

    Questions may have different numbers of choices.
    """
    if len(gold) == 0:
        return float("nan")
    total = 0.0
    for probs, g in zip(probabilities, gold, strict=True):
        probs = np.asarray(probs, dtype=float)
        target = np.zeros_like(probs)
        target[g] = 1.0
        total += float(np.sum((probs - target) ** 2))
    return total / len(gold)
