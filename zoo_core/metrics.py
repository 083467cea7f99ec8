"""Classification metrics computed exactly from the scores.

Keras' ``AUC`` metric bins the scores into a fixed number of thresholds, which
is an approximation: scores that cluster near 0.5 fall into a few bins and the
area comes out several points off. The leaderboard sorts by AUC, so the zoo
computes it exactly.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

from zoo_core import heads


def roc_auc(labels, scores) -> float:
    """The exact area under the ROC curve, ties counted as half.

    It is the probability that a random positive scores above a random
    negative, computed from ranks (the Mann-Whitney U statistic; Hanley &
    McNeil 1982): ``AUC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)``,
    where ``R_pos`` is the sum of the positives' ranks among all scores, tied
    scores sharing their mean rank. O(n log n).

    Args:
        labels: ``[n]`` labels, 1 for positive and 0 for negative.
        scores: ``[n]`` scores, higher meaning more positive (e.g. P(positive)).

    Returns:
        The AUC in [0, 1]; NaN when one class is missing (AUC is undefined).

    Raises:
        ValueError: If the shapes differ, a label is not 0 or 1, or a score is not finite.
    """
    labels = np.asarray(labels).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    positive = labels == 1
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(scores)  # ties get their mean rank
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


#: Probabilities are kept this far from 0 and 1 in :func:`binary_cross_entropy`, as by the heads (Keras' ``epsilon()``).
EPSILON = heads.EPSILON


def accuracy(labels, probs) -> float:
    """The fraction of reviews classified right, a review counted positive when ``P(positive) > 0.5``.

    The rule of Keras' ``BinaryAccuracy`` (threshold 0.5, strictly greater), which scores every trained run.

    Args:
        labels: ``[n]`` labels, 1 for positive and 0 for negative.
        probs: ``[n]`` P(positive).

    Returns:
        The accuracy in [0, 1]; NaN for no reviews.
    """
    labels = np.asarray(labels).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if labels.size == 0:
        return math.nan
    return float(np.mean((probs > 0.5) == (labels == 1)))


def binary_cross_entropy(labels, probs) -> float:
    """The mean binary cross-entropy of P(positive), in nats per review.

    ``-mean(y log p + (1 - y) log(1 - p))`` with ``p`` clipped to
    ``[EPSILON, 1 - EPSILON]``, as Keras' ``binary_crossentropy`` of probabilities.

    Args:
        labels: ``[n]`` labels, 1 for positive and 0 for negative.
        probs: ``[n]`` P(positive).

    Returns:
        The loss; NaN for no reviews.
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    probs = np.clip(np.asarray(probs, dtype=np.float64).reshape(-1), EPSILON, 1.0 - EPSILON)
    if labels.size == 0:
        return math.nan
    return float(-np.mean(labels * np.log(probs) + (1.0 - labels) * np.log1p(-probs)))


def scores(labels, probs) -> dict[str, float]:
    """``{"accuracy", "loss", "auc"}`` of P(positive) ``probs`` [n] against ``labels`` [n].

    :func:`accuracy`, :func:`binary_cross_entropy` and :func:`roc_auc` (NaN where
    one class is missing); what ``zoo ensemble`` records for an ensemble's averaged probabilities.
    """
    labels = np.asarray(labels).reshape(-1)
    if labels.size == 0:
        return {"accuracy": math.nan, "loss": math.nan, "auc": math.nan}
    return {"accuracy": accuracy(labels, probs), "loss": binary_cross_entropy(labels, probs),
            "auc": roc_auc(labels, probs)}
