"""A review's score depends only on the review: alone, beside any others, in any order.

Every registered cell, aggregator, encoder and head, with and without the
mask and with padded and bucketed batches: a tiny model's
P(positive) for each review is the same, to 1e-6, scored alone, in a batch with
longer and shorter reviews, and shuffled; and ``evaluate``'s metrics are equal
whatever the order of the reviews. The CLI test at the end is issue 11's own
case: a ``--no-mask --batching bucket`` run through ``zoo predict`` and ``zoo
evaluate``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.cli_helpers import zoo
from tests.registered import registered
from tests.test_components import BASE, VOCAB, build_model, randomize
from zoo_core.config import DataConfig, RunSpec
from zoo_core.data import Vocabulary
from zoo_core.runs import predict_proba, text_split
from zoo_core.training import evaluate

WORDS = ["<pad>", "<start>", "<unk>", "great", "film", "loved", "it", "dull", "plot", "the", "a", "was", "acting",
         "boring", "superb", "and"][:VOCAB]
MAXLEN = 24  # some reviews below are longer: truncation is part of what must not depend on the others
SETTINGS = [(mask, batching) for mask in (True, False) for batching in ("padded", "bucket")]


def reviews() -> tuple[list[str], np.ndarray]:
    """Reviews of 1 to 40 words (two of the same length, one repeated with the other label) and labels."""
    rng = np.random.default_rng(0)
    lengths = [1, 3, 6, 6, 11, 17, 23, 31, 40]
    texts = [" ".join(rng.choice(WORDS[3:], k)) for k in lengths]
    texts[0] = "Great film, I loved it."
    labels = rng.integers(0, 2, len(texts)).astype(np.int32)
    texts.append(texts[4])  # the same review twice, with both labels
    labels = np.append(labels, 1 - labels[4]).astype(np.int32)
    return texts, labels


def combinations() -> list[dict[str, str]]:
    """Every registered cell, aggregator, encoder and head, each in one tiny model with the others at their base.

    The union, not the product: a model traces once per mask setting, which is
    most of this test's time. Cells keep ``mean-states``, which reads every step;
    the aggregators run on ``tanh``, ``last`` among them.
    """
    rows = [{"cell": c} for c in registered("cell")] + [{"aggregator": a} for a in registered("aggregator")]
    rows += [{k: n} for k in ("encoder", "head") for n in registered(k)]
    unique = {}
    for row in rows:
        unique.setdefault(tuple(sorted({**BASE, **row}.items())), row)  # the base model once
    return list(unique.values())


@pytest.fixture(scope="module")
def vocab():
    return Vocabulary(WORDS)


@pytest.mark.parametrize("components", combinations(), ids=lambda row: ", ".join(row.values()))
def test_a_review_scores_the_same_alone_beside_longer_and_shorter_ones_and_shuffled(registry, vocab, components):
    model = build_model(registry, **components)
    randomize(model)
    texts, _ = reviews()
    shuffle = np.random.default_rng(1).permutation(len(texts))
    for mask, batching in SETTINGS:
        run = RunSpec(model.spec, data=DataConfig(mask=mask, batching=batching, maxlen=MAXLEN))
        where = f"{model.spec.combo}, mask {mask}, {batching}"
        alone = np.array([predict_proba(model, vocab, run, [text])[0] for text in texts])
        together = predict_proba(model, vocab, run, texts)
        shuffled = np.empty_like(together)
        shuffled[shuffle] = predict_proba(model, vocab, run, [texts[i] for i in shuffle])
        np.testing.assert_allclose(together, alone, rtol=0, atol=1e-6, err_msg=f"{where}: in a batch vs alone")
        np.testing.assert_allclose(shuffled, alone, rtol=0, atol=1e-6, err_msg=f"{where}: shuffled vs alone")


def test_evaluate_gives_the_same_metrics_in_any_order(registry, vocab):
    model = build_model(registry, cell="gru", aggregator="attention")
    randomize(model)
    # More reviews than one evaluation batch holds (256), so the order decides which share a batch.
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(WORDS[3:], n)) for n in rng.integers(1, 2 * MAXLEN, 300)]
    labels = rng.integers(0, 2, len(texts)).astype(np.int32)
    orders = {"given": np.arange(len(texts)), "shuffled": np.random.default_rng(2).permutation(len(texts)),
              "longest first": np.argsort([-len(t) for t in texts], kind="stable")}
    for mask, batching in SETTINGS:
        run = RunSpec(model.spec, data=DataConfig(mask=mask, batching=batching, maxlen=MAXLEN))
        metrics = {name: evaluate(model, text_split([texts[i] for i in order], labels[order], vocab, run), run)
                   for name, order in orders.items()}
        assert metrics["given"] == metrics["shuffled"] == metrics["longest first"], (mask, batching, metrics)


def test_an_unmasked_bucketed_run_scores_reviews_alike_in_predict_and_evaluate(tiny_imdb_archive, tmp_path):
    run_dir = tmp_path / "run"
    zoo("train", "--data", tiny_imdb_archive, "--limit", "40", "--epochs", "1", "--maxlen", "60", "--no-mask",
        "--batching", "bucket", "--set", "cell.units=4", "--set", "encoder.dim=4", "--quiet", "--save", run_dir)
    short, long = "Great film, I loved it.", " ".join(["the plot was dull and boring"] * 50)

    def p_positive(*texts):
        return [row["p_positive"] for row in json.loads(zoo("predict", run_dir, *texts, "--format", "json").stdout)]

    assert p_positive(long, short)[1] == p_positive(short)[0]

    texts, labels = reviews()
    texts = texts + [long]
    labels = np.append(labels, 0)
    scores = []
    for name, order in (("given", range(len(texts))), ("by length", np.argsort([len(t) for t in texts]))):
        tsv = tmp_path / f"{name}.tsv"
        tsv.write_text("".join(f"{labels[i]}\t{texts[i]}\n" for i in order), encoding="utf-8")
        scores.append(json.loads(zoo("evaluate", run_dir, "--data", tsv, "--format", "json").stdout)[0])
    assert {k: scores[0][k] for k in ("accuracy", "loss", "auc")} == {k: scores[1][k] for k in ("accuracy", "loss", "auc")}
