"""``zoo explain``: exact decompositions, integrated gradients, the running prediction, and the CLI.

Models with fixed random weights check the maths (sums, references, padding
and mask invariance); one tiny model trained in a module fixture checks
integrated gradients' completeness on learned weights and the command line.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import tensorflow as tf

from tests.cli_helpers import zoo
from tests.imdb_fixtures import NEGATIVE, NEUTRAL, POSITIVE
from tests.isolation import home_env
from zoo_core.config import DataConfig, ModelSpec, RunSpec
from zoo_core.data.tokens import RESERVED, Vocabulary
from zoo_core.errors import ZooError
from zoo_core.explain import EXACT, INTEGRATED_GRADIENTS, Explainer, encode_review, explain_texts, html_page
from zoo_core.model import Classifier
from zoo_core.runs import load_run, predict_proba

VOCAB = Vocabulary(list(RESERVED) + NEUTRAL + POSITIVE + NEGATIVE)
REVIEW = "The film was great, a zorgle of fun! But the plot was dull."  # ',', 'zorgle', '!', 'but', '.' unknown
DATA = DataConfig(maxlen=24)
# Integrated gradients' completeness on the trained model, with the default 64 trapezoid steps:
# |sum of attributions - (F(x) - F(0))| at most this, in logit units (the quadrature error; measured
# 1e-6 to 2e-5 on these reviews, where F(x) - F(0) is 0.3 to 1).
IG_TOLERANCE = 1e-3


def random_model(registry, cell="gru", aggregator="mean-states", head="sigmoid1", encoder="embedding", seed=0):
    """A classifier with random weights (head bias too), large enough that logits are of order 1."""
    declared = {p.name for p in registry.get("cell", cell).obj.hparams}
    params = {"cell": {"units": 5} if "units" in declared else {}}
    if encoder == "embedding":
        params["encoder"] = {"dim": 4}
    model = Classifier(ModelSpec(encoder, cell, aggregator, head, params=params), registry, len(VOCAB))
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        v.assign(rng.normal(0, 0.7, v.shape).astype(np.float32))
    return model


def run_of(model, data=DATA):
    """The RunSpec of ``model`` encoding reviews by ``data``, for :func:`explain_texts` and :func:`predict_proba`."""
    return RunSpec(model=model.spec, data=data)


def contributions(explanation):
    return np.array([t.contribution for t in explanation.tokens])


# -- exact ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cell, aggregator, head", [
    ("gru", "mean-states", "sigmoid1"),
    ("lstm", "mean-logits", "softmax2"),
    ("bidirectional", "mean-states", "softmax2"),
])
def test_exact_contributions_and_bias_sum_to_the_score(registry, cell, aggregator, head):
    model = random_model(registry, cell, aggregator, head)
    e = Explainer(model, VOCAB, DATA).explain(REVIEW)
    assert e.method == EXACT and e.score_name == ("logit z" if head == "sigmoid1" else "z1 - z0")
    assert abs(e.total + e.bias - e.score) < 1e-5 and e.gap < 1e-5
    assert np.abs(contributions(e)).max() > 0.01 and abs(e.bias) > 0.05  # not a trivially zero sum
    # The score is the model's: P(positive) as zoo predict gives it.
    assert e.p_positive == pytest.approx(float(predict_proba(model, VOCAB, run_of(model), [REVIEW])[0]), abs=1e-6)
    assert e.p_positive == pytest.approx(1 / (1 + math.exp(-e.score)), abs=1e-6)


def test_exact_contributions_match_a_numpy_reference(registry):
    """c_t = (w . h_t) / T with h_t from the cell's NumPy reference unroll, w the head's score column."""
    model = random_model(registry, "lstm", "mean-states", "softmax2")
    e = Explainer(model, VOCAB, DATA).explain(REVIEW)
    ids = np.array([[1] + VOCAB.encode(VOCAB.tokenize(REVIEW))])
    outputs, _ = model.cell.reference_unroll(model.encoder.numpy_reference(ids), None)
    kernel, bias = model.head.kernel.numpy(), model.head.bias.numpy()
    w = kernel[:, 1] - kernel[:, 0]
    np.testing.assert_allclose(contributions(e), outputs[0] @ w / ids.shape[1], atol=1e-5)
    assert e.bias == pytest.approx(float(bias[1] - bias[0]), abs=1e-6)


def test_integrated_gradients_of_a_linear_model_are_its_exact_decomposition(registry):
    """identity cell + mean-states + affine head is linear in the encoder output: IG (even 2 steps) is exact."""
    model = random_model(registry, "identity", "mean-states", "sigmoid1")
    exact = Explainer(model, VOCAB, DATA).explain(REVIEW)
    ig = Explainer(model, VOCAB, DATA, method=INTEGRATED_GRADIENTS, steps=2).explain(REVIEW)
    assert ig.method == INTEGRATED_GRADIENTS and ig.ig_steps == 2
    np.testing.assert_allclose(contributions(ig), contributions(exact), atol=1e-5)
    assert ig.baseline_score == pytest.approx(exact.bias, abs=1e-5)  # F(0) = b
    assert ig.gap < 1e-5


# -- padding, masking, truncation ----------------------------------------------------------------
@pytest.mark.parametrize("cell, aggregator", [("gru", "mean-logits"), ("lstm", "attention")])
def test_padding_side_width_and_mask_do_not_change_the_explanation(registry, cell, aggregator):
    model = random_model(registry, cell, aggregator)
    reference = Explainer(model, VOCAB, DATA).explain(REVIEW)  # pre-padded to 24
    variants = [dataclasses.replace(DATA, maxlen=60, padding="post"), dataclasses.replace(DATA, batching="bucket"),
                # unmasked and bucketed: the review is read at its own length, no padding at all
                dataclasses.replace(DATA, batching="bucket", mask=False)]
    for data in variants:
        e = Explainer(model, VOCAB, data).explain(REVIEW)
        assert [(t.text, t.id, t.index) for t in e.tokens] == [(t.text, t.id, t.index) for t in reference.tokens]
        np.testing.assert_allclose(contributions(e), contributions(reference), atol=1e-5, err_msg=str(data))
        np.testing.assert_allclose([t.running_p for t in e.tokens], [t.running_p for t in reference.tokens],
                                   atol=1e-6)
        assert e.score == pytest.approx(reference.score, abs=1e-5)


def test_padding_an_unmasked_run_reads_is_one_token_and_still_counted(registry):
    model = random_model(registry, "gru", "mean-logits")
    data = dataclasses.replace(DATA, mask=False, padding="post")
    e = Explainer(model, VOCAB, data).explain("great fun")
    pad = e.tokens[-1]
    assert pad.kind == "padding" and pad.shown == "<pad>×21" and pad.index is None  # 24 - 3 tokens
    assert abs(e.total + e.bias - e.score) < 1e-5
    assert e.p_positive == pytest.approx(float(predict_proba(model, VOCAB, run_of(model, data), ["great fun"])[0]),
                                         abs=1e-6)
    assert any("does not mask" in note for note in e.notes)


def test_tokens_as_the_model_saw_them_unknown_words_and_truncation(registry):
    model = random_model(registry, "tanh", "last")
    e = Explainer(model, VOCAB, DataConfig(maxlen=5, truncating="pre")).explain("Dull plot, but great fun")
    # "<start> dull plot , but great fun" is 7 tokens: the first 2 are cut; ',' and 'but' are unknown.
    assert e.cut == 2 and [t.shown for t in e.tokens] == ["plot", "<unk:,>", "<unk:but>", "great", "fun"]
    assert [t.kind for t in e.tokens] == ["word", "unknown", "unknown", "word", "word"]
    assert [t.index for t in e.tokens] == [0, 1, 2, 3, 4]
    post = Explainer(model, VOCAB, DataConfig(maxlen=5, truncating="post")).explain("Dull plot, but great fun")
    assert post.cut == 2 and [t.text for t in post.tokens] == ["<start>", "dull", "plot", ",", "but"]
    assert post.tokens[0].kind == "start"


# -- the running prediction ---------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["tanh", "lstm"])
def test_running_p_at_the_last_token_is_the_prediction_of_a_last_model(registry, cell):
    model = random_model(registry, cell, "last")
    e = Explainer(model, VOCAB, DATA).explain(REVIEW)
    assert e.tokens[-1].running_p == pytest.approx(e.p_positive, abs=1e-6)
    assert len({round(t.running_p, 4) for t in e.tokens}) > 3  # it moves along the review


@pytest.mark.parametrize("aggregator", ["mean-states", "mean-logits", "mean-probs", "max-states", "mean-max-states",
                                        "attention"])
def test_running_p_is_the_model_reading_one_step_as_the_whole_review(registry, aggregator):
    """Every aggregator of one step ``h_t``: ``head(h_t)``, or ``head([h_t ; h_t])`` for mean-max-states."""
    model = random_model(registry, "tanh", aggregator)
    e = Explainer(model, VOCAB, DATA).explain(REVIEW)
    enc = encode_review(REVIEW, VOCAB, DATA)
    outputs = model.cell.unroll(model.encoder(tf.constant(enc.ids, tf.int32)), tf.constant(enc.mask),
                                keep_outputs=True).outputs.numpy()[0][enc.mask[0]]  # [tokens, H]
    pooled = np.concatenate([outputs, outputs], axis=1) if aggregator == "mean-max-states" else outputs
    expected = model.head.prob_positive(model.head(tf.constant(pooled))).numpy()
    np.testing.assert_allclose([t.running_p for t in e.tokens], expected, atol=1e-6)


def test_bidirectional_running_p_is_flagged(registry):
    e = Explainer(random_model(registry, "bidirectional", "last"), VOCAB, DATA).explain(REVIEW)
    assert e.method == INTEGRATED_GRADIENTS and any("bidirectional" in note for note in e.notes)


def test_bad_requests_are_zoo_errors(registry):
    last = random_model(registry, "gru", "last")
    with pytest.raises(ZooError, match="no exact explanation.*aggregator 'last'"):
        Explainer(last, VOCAB, DATA, method=EXACT)
    with pytest.raises(ZooError, match="steps"):
        Explainer(last, VOCAB, DATA, steps=0)
    with pytest.raises(ZooError, match="nothing to explain"):
        Explainer(last, VOCAB, DATA).explain(" <br /> ")
    with pytest.raises(ZooError, match="unknown method"):
        Explainer(last, VOCAB, DATA, method="shap")


def test_encode_review_is_what_predict_scores():
    enc = encode_review("Great film!", VOCAB, DATA)
    assert enc.ids.shape == (1, 24) and enc.mask[0, -4:].all() and not enc.mask[0, :-4].any()
    assert enc.words == ["<start>", "great", "film", "!"] and enc.cut == 0


# -- a trained tiny model, and the command line --------------------------------------------------
TRAIN = ["--limit", "40", "--maxlen", "30", "--lr", "0.03", "--set", "train.patience=0", "--set", "cell.units=6",
         "--set", "encoder.dim=6"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_imdb_archive):
    """A GRU (last step: integrated gradients) trained to learn the tiny data, and a mean-logits tanh (exact)."""
    home = tmp_path_factory.mktemp("explain")
    db = home / "results.sqlite"
    with home_env(home):
        common = [*TRAIN, "--data", str(tiny_imdb_archive), "--results", str(db)]
        zoo("train", "--cell", "gru", "--aggregator", "last", "--epochs", "8", *common, "--save", home / "gru-last")
        zoo("train", "--cell", "tanh", "--aggregator", "mean-logits", "--head", "softmax2", "--epochs", "2",
            *common, "--save", home / "tanh-mean")
    return home


def test_integrated_gradients_completeness_on_a_trained_model(trained, registry):
    model, vocab, run = load_run(trained / "gru-last", registry)
    # Reviews like the tiny training data's, so that the model has learned something about them.
    reviews = ["great great great!", "awful awful awful!", "The film was wonderful and fun. <br /><br />The best movie!",
               "Awful and boring. <br /><br />The worst plot, a waste!"]
    explained = explain_texts(model, vocab, run, reviews)
    probs = predict_proba(model, vocab, run, reviews)
    assert [round(float(p)) for p in probs] == [1, 0, 1, 0]
    for e, p in zip(explained, probs):
        assert e.method == INTEGRATED_GRADIENTS and e.ig_steps == 64
        assert abs(e.score - e.baseline_score) > 0.3  # a real difference to account for
        assert e.gap <= IG_TOLERANCE, e.summary()
        assert e.p_positive == pytest.approx(float(p), abs=1e-5)
        assert e.tokens[-1].running_p == pytest.approx(e.p_positive, abs=1e-5)
    # The learned sentiment words push the way they should.
    assert max(explained[0].tokens, key=lambda t: t.contribution).text == "great"
    assert min(explained[1].tokens, key=lambda t: t.contribution).text == "awful"


def test_cli_text_table_and_colour(trained):
    folder = str(trained / "gru-last")
    plain = zoo("explain", folder, "A wonderful film!", "--color", "never")
    assert "\x1b[" not in plain.stdout
    lines = plain.stdout.splitlines()
    assert lines[0].startswith("review 1: P(positive) = ") and "integrated gradients, 64 steps; gap" in lines[0]
    assert lines[1].startswith("<start> ") and "wonderful film" in lines[1]
    assert any(line.split()[:2] == ["#", "token"] for line in lines)
    coloured = zoo("explain", folder, "A wonderful film!", "--color", "always")
    assert "\x1b[48;5;" in coloured.stdout
    assert "integrated gradients, 64 steps" in coloured.stderr


def test_cli_json_csv_and_html_agree(trained, tmp_path):
    folder = str(trained / "tanh-mean")
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("Great fun.\n\nAwful, boring plot.\n", encoding="utf-8")
    out = zoo("explain", folder, "The best film", "--file", reviews, "--format", "json", "--html",
              tmp_path / "page.html")
    assert "review 3 (line 2 of" in out.stderr and "is empty: skipped" in out.stderr
    explained = json.loads(out.stdout)
    assert [e["review"] for e in explained] == [1, 2, 4]
    for e in explained:
        assert e["method"] == "exact" and e["score_name"] == "z1 - z0"
        assert abs(sum(t["contribution"] for t in e["tokens"]) + e["bias"] - e["score"]) < 1e-5
    rows = zoo("explain", folder, "The best film", "--file", reviews, "--format", "csv").stdout.splitlines()
    assert rows[0] == "review,index,token,id,kind,contribution,running_p"
    assert len(rows) == 1 + sum(len(e["tokens"]) for e in explained)
    first = rows[1].split(",")
    assert first[:5] == ["1", "0", "<start>", "1", "start"]
    assert float(first[5]) == pytest.approx(explained[0]["tokens"][0]["contribution"], abs=1e-9)
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>") and page.count("<section") == 3
    assert "<script" not in page and "<link" not in page and "src=" not in page and "url(" not in page
    assert_balanced(page)


def assert_balanced(page: str) -> None:
    """Every element the page opens is closed, in order (void elements aside)."""
    from html.parser import HTMLParser

    void = {"meta", "br", "img", "input", "link", "hr", "polyline", "line"}
    stack: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag not in void:
                stack.append(tag)

        def handle_endtag(self, tag):
            if tag not in void:
                assert stack and stack.pop() == tag, f"</{tag}> closes nothing open"

    Parser().feed(page)
    assert stack == []


@pytest.mark.parametrize("args, message", [
    (["no-such-run", "fun"], "unknown run 'no-such-run'"),
    (["{folder}", ""], "review 1 on the command line is empty"),
    (["{folder}", "--file", "{missing}"], "does not exist"),
    (["{folder}"], "nothing to explain"),
    (["{folder}", "fun", "--method", "exact"], "no exact explanation"),
    (["{folder}", "fun", "--html", "{missing_dir}/page.html"], "does not exist"),
])
def test_cli_bad_input_is_one_line_and_exit_2(trained, tmp_path, args, message):
    values = {"folder": trained / "gru-last", "missing": tmp_path / "nope.txt", "missing_dir": tmp_path / "nodir"}
    args = [a.format(**values) for a in args]
    result = zoo("explain", *args, "--results", trained / "results.sqlite", expect=2)
    error = result.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("Error: ") and message in error[0], result.stderr


def test_cli_steps_out_of_range_is_exit_2(trained):
    zoo("explain", trained / "gru-last", "fun", "--steps", "0", expect=2)


def test_html_page_of_the_core_is_self_contained(registry):
    model = random_model(registry, "gru", "mean-states")
    page = html_page(explain_texts(model, VOCAB, run_of(model), ["<b>great</b> & fun"]), "<title>")
    assert "<b>" not in page and "&lt;" in page and "&amp;" in page and "<title><title>" not in page
    assert_balanced(page)


@pytest.mark.parametrize("no_color, expected", [("", "True"), ("1", "False")])
def test_colour_follows_the_terminal_and_no_color(no_color, expected):
    """auto: colour when stdout is a terminal (a real pseudo-terminal here) unless NO_COLOR is set."""
    import os
    import subprocess
    import sys

    main, child = os.openpty()
    try:
        code = "from zoo_core.cli.explain import use_colour; import sys; print(use_colour('auto'), file=sys.stderr)"
        result = subprocess.run([sys.executable, "-c", code], stdout=child, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "NO_COLOR": no_color}, timeout=120)
    finally:
        os.close(child)
        os.close(main)
    assert result.stderr.strip() == expected
    piped = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "NO_COLOR": no_color}, timeout=120)
    assert piped.stderr.strip() == "False"  # not a terminal: never
