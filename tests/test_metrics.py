"""Exact ROC AUC against a pairwise count, on tables of cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from zoo_core.metrics import roc_auc


def pairwise_auc(labels, scores) -> float:
    """P(score of a positive > score of a negative), ties counted 1/2: the definition, O(n^2)."""
    positives = [s for s, y in zip(scores, labels) if y == 1]
    negatives = [s for s, y in zip(scores, labels) if y == 0]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(positives, negatives))
    return wins / (len(positives) * len(negatives))


CASES = {
    "perfect": ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0),
    "reversed": ([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9], 0.0),
    "all tied": ([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], 0.5),
    "one tie across classes": ([0, 1, 0, 1], [0.2, 0.5, 0.5, 0.9], 0.875),
}


@pytest.mark.parametrize("labels, scores, expected", CASES.values(), ids=CASES.keys())
def test_auc_of_small_cases_by_hand(labels, scores, expected):
    assert roc_auc(labels, scores) == pytest.approx(expected, abs=1e-12)
    assert pairwise_auc(labels, scores) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_auc_equals_the_pairwise_count_with_clustered_and_tied_scores(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 400)
    # Scores clustered near 0.5 and rounded: many ties, where binned AUCs go wrong.
    scores = np.round(0.5 + 0.01 * rng.standard_normal(400) + 0.004 * labels, 3)
    assert roc_auc(labels, scores) == pytest.approx(pairwise_auc(labels, scores), abs=1e-12)


def test_auc_is_exact_where_keras_binned_auc_is_not():
    keras = pytest.importorskip("keras")
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 2000)
    scores = 0.5 + 0.0004 * rng.standard_normal(2000) + 0.0002 * labels  # all within one or two bins
    binned = keras.metrics.AUC(num_thresholds=1000)
    binned.update_state(labels, scores)
    exact = roc_auc(labels, scores)
    assert exact == pytest.approx(pairwise_auc(labels, scores), abs=1e-12)
    assert abs(float(binned.result()) - exact) > 0.01  # what the zoo no longer reports


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0]], ids=["positives only", "negatives only"])
def test_auc_is_nan_with_one_class(labels):
    assert math.isnan(roc_auc(labels, [0.3] * len(labels)))


@pytest.mark.parametrize("labels, scores, message", [
    ([0, 1], [0.5], "2 labels but 1 scores"),
    ([0, 2], [0.5, 0.6], "labels must be 0 or 1"),
    ([0, 1], [0.5, float("nan")], "scores must be finite"),
], ids=["shapes", "label 2", "nan score"])
def test_auc_refuses_bad_input(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        roc_auc(labels, scores)
