"""How well predicted probabilities match what students answered: AUC and RMSE."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def area_under_roc(predicted: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Return the AUC: the chance that a random right answer was predicted higher
    than a random wrong one, ties counting half (the Mann-Whitney U statistic)."""
    scores = np.asarray(predicted, np.float64)
    truth = np.asarray(actual, np.bool_)
    if scores.shape != truth.shape:
        raise ValueError(f"{scores.size} predictions for {truth.size} answers")
    right = int(truth.sum())
    wrong = truth.size - right
    if right == 0 or wrong == 0:
        raise ValueError("the AUC needs at least one right and one wrong answer")

    # Rank every score (1 = lowest), tied scores sharing their average rank.
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    last_rank = np.cumsum(counts)
    average_rank = last_rank - (counts - 1) / 2.0
    ranks = average_rank[inverse]
    u = ranks[truth].sum() - right * (right + 1) / 2.0
    return float(u / (right * wrong))


def root_mean_squared_error(predicted: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Return the RMSE between predicted probabilities and the 0/1 answers."""
    scores = np.asarray(predicted, np.float64)
    truth = np.asarray(actual, np.float64)
    if scores.shape != truth.shape or not scores.size:
        raise ValueError(f"{scores.size} predictions for {truth.size} answers")
    return float(np.sqrt(np.mean((scores - truth) ** 2)))
