"""Why a saved model scored a review as it did: per-token contributions and the running prediction.

What is explained is the model's **score**, the number its P(positive) is a
monotone function of: the single logit ``z`` of ``sigmoid1``
(``P = sigmoid(z)``), and the logit difference ``z1 - z0`` of ``softmax2``
(``P = softmax(z)[1] = sigmoid(z1 - z0)``). Every contribution is in those
units (nats of log-odds).

Two methods, chosen per model (:func:`exact_unavailable` says why a model has
no exact one):

**exact**, for ``mean-logits``, and for ``mean-states``, each followed by an
affine head (every built-in head: ``head(h) = h K + b``). Both aggregators give
the same score: with ``w`` the score's column of ``K`` (``K[:, 0]``, or
``K[:, 1] - K[:, 0]``) and ``b`` its bias (``b[0]``, or ``b[1] - b[0]``)::

    score = (1/T) sum_t (w . h_t + b) = sum_t (w . h_t) / T  +  b

where ``h_t`` is the cell's output at step ``t`` and the sum runs over the
``T`` steps the aggregator averages (the real tokens, start token included,
when the run masks padding; every step, padding too, when it does not). Step
``t``'s contribution is ``c_t = (w . h_t) / T``; the bias is not shared out
among the steps but reported once (:attr:`Explanation.bias`), so
``sum_t c_t + bias = score`` up to float rounding. ``c_t`` is the share of the
step's *output*, which carries every earlier token (and, bidirectional, every
later one): it is how the model's evidence is spread over the positions, not
a word's effect in isolation.

**integrated gradients** (Sundararajan, Taly & Yan 2017, "Axiomatic
attribution for deep networks") for every other model, with respect to the
encoder's output ``x [time, D]``, from the baseline ``x' = 0`` (a zero encoder
output at every step the model reads; masked padding stays padding). Token
``t``'s attribution is ``sum_d x_td * integral_0^1 dF/dx_td(a x) da``,
computed without materialising ``x`` (a one-hot encoder's ``x_t`` is
vocabulary-wide): scaling step ``t``'s encoded input by ``a_t`` scales its
projection ``x_t W`` alike, and the sum over ``d`` is ``dF/da_t``. The
integral is the trapezoid rule over ``steps`` equal intervals
(``steps + 1`` evaluations of the model and its gradient). Completeness says
``sum_t attribution_t = F(x) - F(0)``; the gap
(:attr:`Explanation.gap`) is the quadrature's error and is reported.

The **running prediction** of step ``t`` is ``P(positive)`` as if step
``t``'s output were the whole sequence: the aggregator over that one step, then
the head. For every built-in aggregator but one that is ``prob(head(h_t))``;
``mean-max-states`` gives ``prob(head([h_t ; h_t]))``. With the ``last``
aggregator and a one-directional cell, its value at the last token is the
model's prediction. For a bidirectional cell ``h_t`` also holds the backward
direction, which has read every token from the end back to ``t``: its running
prediction is not "what the model thought so far", and its last step is not
what ``last`` reads (the backward cell's output at the first token).

A review is encoded as the run's training data was (start token, truncation to
``maxlen``, padding side, batching width) and scored as ``zoo predict`` scores
it. With the mask on, padding never enters the result, so the explanation does
not depend on the padding side or width; with ``--no-mask`` the model reads
padding as input, and its steps appear as one ``<pad>`` token.

The public entry points: :func:`explain_texts` (or :class:`Explainer` to
explain reviews one at a time), :meth:`Explanation.to_dict`,
:func:`explanation_html` (a fragment with inline styles, for a report page) and
:func:`html_page` (a whole self-contained page).
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Sequence
from typing import Any

from zoo_core.config import DataConfig, RunSpec
from zoo_core.encoders import DenseSequence, EncodedSequence
from zoo_core.errors import ZooError
from zoo_core.lazy import np, tf
from zoo_core.progress import Progress, progress_or_silent
from zoo_core.unroll import UnrollResult

EXACT = "exact"
INTEGRATED_GRADIENTS = "integrated-gradients"
METHODS = ("auto", EXACT, INTEGRATED_GRADIENTS)
DEFAULT_STEPS = 64
MAX_STEPS = 4096
# Model evaluations per integrated-gradients batch: bounds memory on long reviews and wide cells.
IG_BATCH = 33

WORD, UNKNOWN, START_TOKEN, PADDING = "word", "unknown", "start", "padding"


@dataclasses.dataclass(frozen=True)
class Token:
    """One token of an explained review, as the model saw it.

    Attributes:
        text: The token as the run's tokenizer cut it (lowercased); ``<start>``
            for the start token; ``<pad>`` for the padding an unmasked run reads.
        id: Its vocabulary id (2, ``<unk>``, for an unknown word; 0 for padding).
        kind: ``word``, ``unknown`` (out of the vocabulary: the model saw ``<unk>``),
            ``start`` or ``padding``.
        index: Its place among the review's tokens as the model read them (0:
            the first kept, the start token unless truncation cut it), whatever
            the padding; None for padding.
        contribution: Its share of the score (see the module docstring), in
            the score's units; for padding, the sum over its steps.
        running_p: P(positive) from the aggregator and head on this step's output alone
            (for padding, on its last step's output).
        steps: How many model steps it stands for (1; padding: all its steps).
    """

    text: str
    id: int
    kind: str
    index: int | None
    contribution: float
    running_p: float
    steps: int = 1

    @property
    def shown(self) -> str:
        """The token for display: an unknown word as ``<unk:word>``, padding as ``<pad>×N``."""
        if self.kind == UNKNOWN:
            return f"<unk:{self.text}>"
        if self.kind == PADDING:
            return f"<pad>×{self.steps}"
        return self.text


@dataclasses.dataclass(frozen=True)
class Explanation:
    """How one review's score is made up, and how the prediction evolved along it.

    Attributes:
        text: The review as given.
        tokens: Every step the model read, in order (padding an unmasked run
            reads, as one token where it sits).
        method: ``exact`` or ``integrated-gradients``.
        score_name: What is explained: ``logit z`` (sigmoid1) or ``z1 - z0`` (softmax2).
        score: The model's score on the review.
        p_positive: The model's P(positive), from that score.
        bias: ``exact``: the head's bias ``b``, with ``sum(contributions) + bias
            = score``. ``integrated-gradients``: None.
        baseline_score: ``integrated-gradients``: the score with a zero encoder
            output, ``F(0)``, with ``sum(contributions) ≈ score - baseline_score``.
            ``exact``: None.
        ig_steps: The number of trapezoid intervals of integrated gradients (None for exact).
        gap: ``|sum(contributions) + bias - score|`` (exact: float rounding
            only) or ``|sum(contributions) - (score - baseline_score)|``
            (integrated gradients' completeness gap).
        cut: Tokens dropped by truncation to ``maxlen`` (start token included).
        truncating: Which end they were cut from: ``pre`` (the beginning) or ``post`` (the end).
        maxlen: The run's ``maxlen``.
        notes: Caveats that hold for this model (e.g. bidirectional running predictions).
    """

    text: str
    tokens: tuple[Token, ...]
    method: str
    score_name: str
    score: float
    p_positive: float
    bias: float | None
    baseline_score: float | None
    ig_steps: int | None
    gap: float
    cut: int
    truncating: str
    maxlen: int
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> float:
        """The sum of the contributions."""
        return float(math.fsum(t.contribution for t in self.tokens))

    @property
    def label(self) -> str:
        return "positive" if self.p_positive >= 0.5 else "negative"

    def summary(self) -> str:
        """One line: the prediction, and how the contributions add up to the score."""
        head = f"P(positive) = {self.p_positive:.4f} ({self.label}); {self.score_name} = {self.score:+.4f}"
        if self.method == EXACT:
            return (f"{head} = contributions {self.total:+.4f} + bias {self.bias:+.4f} "
                    f"(exact; gap {self.gap:.1e})")
        return (f"{head}; baseline (zero encoder output) {self.baseline_score:+.4f}; contributions "
                f"{self.total:+.4f} vs {self.score - self.baseline_score:+.4f} (integrated gradients, "
                f"{self.ig_steps} steps; gap {self.gap:.1e})")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the summary fields, then ``tokens`` as dicts."""
        out = {field.name: getattr(self, field.name) for field in dataclasses.fields(self) if field.name != "tokens"}
        out["notes"] = list(self.notes)
        out["label"] = self.label
        out["total"] = self.total
        out["tokens"] = [dataclasses.asdict(t) for t in self.tokens]
        return out


# -- which method a model allows --------------------------------------------------------------
def score_of(head, logits):
    """The explained score ``[...]`` from logits ``[..., k]``: ``z`` (1 logit) or ``z1 - z0`` (2 logits).

    Raises:
        ZooError: a head with another number of logits.
    """
    if head.num_logits == 1:
        return logits[..., 0]
    if head.num_logits == 2:
        return logits[..., 1] - logits[..., 0]
    raise ZooError(f"head {head.name!r} has {head.num_logits} logits; explain needs 1 (sigmoid) or 2 (softmax)")


def score_name(head) -> str:
    return "logit z" if head.num_logits == 1 else "z1 - z0"


def exact_unavailable(model) -> str | None:
    """Why ``model`` has no exact decomposition, or None when it has one.

    Exact: the built-in ``mean-logits`` or ``mean-states`` aggregator (their
    own ``__call__``, not overridden) and a head whose ``__call__`` is the
    affine :class:`zoo_core.heads.Head` one.
    """
    from zoo_core.aggregators import MeanLogits, MeanStates
    from zoo_core.heads import Head

    aggregator = type(model.aggregator)
    if aggregator.__call__ not in (MeanLogits.__call__, MeanStates.__call__):
        return (f"aggregator {model.aggregator.name!r} is not a mean of per-step outputs or logits "
                "(only mean-logits and mean-states decompose exactly)")
    if type(model.head).__call__ is not Head.__call__:
        return f"head {model.head.name!r} is not affine"
    return None


def _affine_score(head) -> tuple[Any, float]:
    """The score's weight vector ``w`` ``[H]`` and bias ``b`` (float64) of an affine head."""
    kernel = head.kernel.numpy().astype(np.float64)
    bias = head.bias.numpy().astype(np.float64)
    if head.num_logits == 1:
        return kernel[:, 0], float(bias[0])
    return kernel[:, 1] - kernel[:, 0], float(bias[1] - bias[0])


# -- encoding one review as the run's data was -------------------------------------------------
@dataclasses.dataclass
class _Encoded:
    ids: Any  # int32 [1, width]
    mask: Any  # bool [1, width]
    words: list[str]  # the kept tokens' text, in order ("<start>" first unless cut)
    cut: int


def encode_review(text: str, vocab, data: DataConfig) -> _Encoded:
    """``text`` as the model reads it: ids and mask ``[1, width]`` exactly as ``zoo predict`` builds them.

    Raises:
        ZooError: a text without a word, or a vocabulary that cannot encode text.
    """
    from zoo_core.data import encode_texts, is_blank
    from zoo_core.data.tokens import START

    if is_blank(text):
        raise ZooError(f"nothing to explain in {text!r}: give a text with words in it")
    words = ["<start>"] + vocab.tokenize(text)
    ids = [START] + vocab.encode(words[1:])
    cut = max(0, len(ids) - data.maxlen)
    if cut:
        words = words[cut:] if data.truncating == "pre" else words[:data.maxlen]
        ids = ids[cut:] if data.truncating == "pre" else ids[:data.maxlen]
    batch = encode_texts([text], vocab, data)
    # The batch is what predict scores; the words must be its real steps, one for one.
    assert batch.ids[0][batch.mask[0]].tolist() == ids, "explain's token alignment differs from encode_texts"
    return _Encoded(batch.ids, batch.mask, words, cut)


# -- the explainer ----------------------------------------------------------------------------
class ScaledSequence(EncodedSequence):
    """An encoded sequence with each step's input scaled by ``scale`` ``[batch, time]`` (integrated gradients).

    A cell reads an encoding through ``project(W) = x W`` (or its time-major
    twin), which is linear in ``x``, so ``(a_t x_t) W = a_t (x_t W)``: the
    one-hot encoder's ``x_t`` is scaled without being materialised.
    """

    def __init__(self, inner: EncodedSequence, scale):
        self.inner, self.scale, self.dim = inner, scale, inner.dim

    def project(self, kernel):
        return self.inner.project(kernel) * tf.cast(self.scale, kernel.dtype)[:, :, None]

    def project_time_major(self, kernel):
        return self.inner.project_time_major(kernel) * tf.cast(tf.transpose(self.scale), kernel.dtype)[:, :, None]


def scaled(encoded: EncodedSequence, scale) -> EncodedSequence:
    """``encoded`` with step ``t`` of row ``b`` scaled by ``scale[b, t]``; a dense encoding stays dense
    (some cells read its values directly, e.g. ``identity``)."""
    if isinstance(encoded, DenseSequence):
        return DenseSequence(encoded.values * tf.cast(scale, encoded.values.dtype)[:, :, None])
    return ScaledSequence(encoded, scale)


class Explainer:
    """Explains reviews for one model, encoded as one run's data.

    Args:
        model: The trained :class:`zoo_core.model.Classifier`.
        vocab: Its vocabulary.
        data: The run's :class:`DataConfig` (``run.data``): tokenising,
            truncation, padding side, batching width and mask.
        method: ``auto`` (exact where the model allows it, else integrated
            gradients), ``exact`` or ``integrated-gradients``.
        steps: Trapezoid intervals for integrated gradients (1 .. 4096).

    Raises:
        ZooError: an unknown method, ``exact`` for a model without an exact
            decomposition (saying why), steps out of range, or a head with
            neither 1 nor 2 logits.
    """

    def __init__(self, model, vocab, data: DataConfig, method: str = "auto", steps: int = DEFAULT_STEPS):
        if method not in METHODS:
            raise ZooError(f"unknown method {method!r} (choose {', '.join(METHODS)})")
        if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= MAX_STEPS:
            raise ZooError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {steps!r}")
        if model.head.num_logits not in (1, 2):
            raise ZooError(f"head {model.head.name!r} has {model.head.num_logits} logits; explain needs 1 "
                           "(sigmoid) or 2 (softmax)")
        why = exact_unavailable(model)
        if method == EXACT and why:
            raise ZooError(f"no exact explanation for {model.spec.label}: {why}; use integrated-gradients")
        self.model, self.vocab, self.data, self.steps = model, vocab, data, steps
        self.method = method if method != "auto" else (INTEGRATED_GRADIENTS if why else EXACT)
        self.notes = self._notes()
        signature = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.bool),
                     tf.TensorSpec([None, None], tf.float32)]
        # Built per explainer (no process-wide cache) and traced once: one graph per method.
        self._forward = tf.function(self._forward_eager, input_signature=signature)
        self._gradient = tf.function(self._gradient_eager, input_signature=signature)

    def _notes(self) -> tuple[str, ...]:
        from zoo_core.cells.elman import IdentityCell
        from zoo_core.cells.wrappers import BidirectionalCell, SkipCell

        cell = self.model.cell
        notes = []
        if isinstance(cell, BidirectionalCell) or (isinstance(cell, SkipCell) and cell.backward is not None):
            notes.append("bidirectional cell: a step's output holds the backward direction, which has read the "
                         "review from its end back to that step, so the running P is not the prediction so far")
        if self.method == EXACT and isinstance(cell, IdentityCell):
            notes.append("exact, no recurrence (h_t = x_t): each step's share is that token's own, with the "
                         "n-grams its encoder adds at that step")
        elif self.method == EXACT:
            notes.append("exact: each step's share is that of its output h_t, which carries the tokens read "
                         "before it (and, bidirectional, after it), not a word's effect in isolation")
        if not self.data.mask:
            notes.append("the run does not mask padding: padding steps are read as input and counted")
        return tuple(notes)

    # The model's path, with each step's encoded input scaled (scale 1: the model as it is).
    def _forward_eager(self, ids, mask, scale):
        model = self.model
        mask = mask if self.data.mask else None
        encoded = scaled(model.encoder(ids, training=False), scale)
        result = model.cell.unroll(encoded, mask, keep_outputs=True)
        logits = model.aggregator(result, mask, model.head, training=False)
        return logits, result.outputs

    def _gradient_eager(self, ids, mask, scale):
        """``(logits [K, k], the last row's outputs [1, time, H], d score / d scale [K, time])``."""
        with tf.GradientTape() as tape:
            tape.watch(scale)
            logits, outputs = self._forward_eager(ids, mask, scale)
            total = tf.reduce_sum(score_of(self.model.head, logits))  # rows are independent of each other
        return logits, outputs[-1:], tape.gradient(total, scale)

    def explain(self, text: str) -> Explanation:
        """The explanation of one review.

        Raises:
            ZooError: a text without a word.
        """
        enc = encode_review(text, self.vocab, self.data)
        width = enc.ids.shape[1]
        ids, mask = tf.constant(enc.ids, tf.int32), tf.constant(enc.mask)
        head = self.model.head
        counted = enc.mask[0] if self.data.mask else np.ones(width, bool)  # the steps the model reads
        bias = baseline = ig_steps = None
        if self.method == EXACT:
            logits, outputs = self._forward(ids, mask, tf.ones([1, width]))
            w, bias = _affine_score(head)
            per_step = outputs.numpy()[0].astype(np.float64) @ w / counted.sum()  # [width]
            contributions = np.where(counted, per_step, 0.0)
        else:
            # The model's own logits and outputs are the path's last point (scale 1).
            contributions, baseline, logits, outputs = self._integrated_gradients(ids, mask, width)
            contributions = np.where(counted, contributions, 0.0)
            ig_steps = self.steps
        score = float(score_of(head, logits).numpy()[0])
        p_positive = float(head.prob_positive(logits).numpy()[0])
        running = self._running(outputs)
        gap = abs(math.fsum(contributions) + bias - score) if bias is not None \
            else abs(math.fsum(contributions) - (score - baseline))
        tokens = self._tokens(enc, counted, contributions, running)
        return Explanation(text, tokens, self.method, score_name(head), score, p_positive, bias, baseline, ig_steps,
                           gap, enc.cut, self.data.truncating, self.data.maxlen, self.notes)

    def _running(self, outputs) -> np.ndarray:
        """The running P(positive) ``[width]`` from outputs ``[1, width, H]``: each step read as a one-step sequence."""
        steps = tf.transpose(outputs, [1, 0, 2])  # [width, 1, H]: a batch of one-step sequences
        logits = self.model.aggregator(UnrollResult(steps, steps[:, 0], None), None, self.model.head, training=False)
        return self.model.head.prob_positive(logits).numpy().astype(np.float64)

    def _integrated_gradients(self, ids, mask, width):
        """By the trapezoid rule over ``self.steps`` intervals: ``(attributions [width], F(0),
        logits [1, k] and outputs [1, width, H] at scale 1)``."""
        alphas = np.linspace(0.0, 1.0, self.steps + 1)
        weights = np.full(self.steps + 1, 1.0 / self.steps)
        weights[[0, -1]] *= 0.5
        baseline, total = None, np.zeros(width)
        for start in range(0, len(alphas), IG_BATCH):
            chunk = alphas[start:start + IG_BATCH]
            n = len(chunk)
            scale = tf.constant(np.repeat(chunk[:, None], width, axis=1), tf.float32)
            logits, outputs, grads = self._gradient(tf.tile(ids, [n, 1]), tf.tile(mask, [n, 1]), scale)
            if baseline is None:
                baseline = float(score_of(self.model.head, logits).numpy()[0])
            total += weights[start:start + n] @ grads.numpy().astype(np.float64)
        return total, baseline, logits[-1:], outputs

    def _tokens(self, enc: _Encoded, counted, contributions, running) -> tuple[Token, ...]:
        from zoo_core.data.tokens import START, UNK

        real = enc.mask[0]
        padding = np.flatnonzero(~real & counted)  # steps an unmasked run reads as input
        out: list[Token] = []
        for i, (word, position) in enumerate(zip(enc.words, np.flatnonzero(real))):
            token_id = int(enc.ids[0, position])
            # The start token is kept unless truncation cut the review's beginning; no text makes "<start>".
            kind = START_TOKEN if i == 0 and token_id == START and word == "<start>" \
                else UNKNOWN if token_id == UNK else WORD
            out.append(Token(word, token_id, kind, i, float(contributions[position]), float(running[position])))
        if padding.size:
            pad = Token("<pad>", 0, PADDING, None, float(math.fsum(contributions[padding])),
                        float(running[padding[-1]]), int(padding.size))
            out.insert(0 if self.data.padding == "pre" else len(out), pad)
        return tuple(out)


def explain_texts(model, vocab, run: RunSpec, texts: Sequence[str], *, method: str = "auto",
                  steps: int = DEFAULT_STEPS, progress: Progress | None = None) -> list[Explanation]:
    """Explains each review of ``texts`` for a saved run (what a report generator calls).

    Args:
        model: The run's classifier (:func:`zoo_core.runs.load_run`).
        vocab: Its vocabulary.
        run: Its RunSpec; ``run.data`` says how reviews are encoded.
        texts: Raw reviews, each with a word at least.
        method: ``auto``, ``exact`` or ``integrated-gradients`` (see :class:`Explainer`).
        steps: Trapezoid intervals for integrated gradients.
        progress: Optional progress factory, advanced once per review.

    Returns:
        One :class:`Explanation` per text, in order.

    Raises:
        ZooError: see :class:`Explainer`; a text without a word.
    """
    explainer = Explainer(model, vocab, run.data, method, steps)
    out = []
    with progress_or_silent(progress)(len(texts), "explaining") as bar:
        for text in texts:
            out.append(explainer.explain(text))
            bar.update(1)
    return out


# -- HTML ---------------------------------------------------------------------------------------
def contribution_rgb(value: float, scale: float) -> tuple[int, int, int]:
    """A background colour for a contribution: red (negative) through white (0) to green (positive).

    Args:
        value: The contribution.
        scale: The magnitude that gets the full colour (e.g. the review's largest ``|contribution|``).
    """
    strength = 0.0 if scale <= 0 else max(-1.0, min(1.0, value / scale))
    full = (214, 39, 40) if strength < 0 else (44, 160, 44)
    s = abs(strength)
    return tuple(round(255 + (c - 255) * s) for c in full)


def _scale(explanation: Explanation) -> float:
    return max((abs(t.contribution) for t in explanation.tokens), default=0.0)


def _sparkline(explanation: Explanation, width: int = 600, height: int = 60) -> str:
    """An inline SVG of the running P(positive) along the review, with the 0.5 line."""
    probs = [t.running_p for t in explanation.tokens]
    n = len(probs)
    xs = [width * (i + 0.5) / n for i in range(n)]
    points = " ".join(f"{x:.1f},{height * (1 - p):.1f}" for x, p in zip(xs, probs))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" style="background:#fafafa;border:1px solid #ddd">'
            f'<line x1="0" y1="{height / 2}" x2="{width}" y2="{height / 2}" stroke="#bbb" stroke-dasharray="4 3"/>'
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{points}"/></svg>')


def explanation_html(explanation: Explanation, title: str | None = None) -> str:
    """One explanation as an HTML fragment with inline styles only (no script, no network).

    The tokens coloured red (against) to green (for) by contribution, each with
    a tooltip giving its contribution and running P; the running P(positive)
    as an inline SVG line; the summary, notes, and a token table under a
    ``<details>``. Embed it in any page (a report's run page) or wrap it with
    :func:`html_page`.
    """
    e = explanation
    scale = _scale(e)
    spans = []
    if e.cut and e.truncating == "pre":
        spans.append(f'<span style="color:#888">[… {e.cut} tokens cut]</span>')
    for t in e.tokens:
        r, g, b = contribution_rgb(t.contribution, scale)
        style = f"background:rgb({r},{g},{b});padding:1px 2px;border-radius:3px"
        if 0.299 * r + 0.587 * g + 0.114 * b < 140:  # a dark background (strong red or green): white text reads
            style += ";color:#fff"
        if t.kind in (UNKNOWN, START_TOKEN, PADDING):
            style += ";font-style:italic;color:#555"
        tip = f"{t.shown}: contribution {t.contribution:+.4f}, P(positive) after it {t.running_p:.3f}"
        spans.append(f'<span style="{style}" title="{html.escape(tip)}">{html.escape(t.shown)}</span>')
    if e.cut and e.truncating == "post":
        spans.append(f'<span style="color:#888">[{e.cut} tokens cut …]</span>')
    rows = "".join(
        f'<tr><td>{"" if t.index is None else t.index}</td><td>{html.escape(t.shown)}</td><td>{t.id}</td>'
        f'<td style="text-align:right">{t.contribution:+.4f}</td>'
        f'<td style="text-align:right">{t.running_p:.3f}</td></tr>' for t in e.tokens)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in e.notes)
    heading = f'<h2 style="font-size:1.1em;margin:0 0 .4em">{html.escape(title)}</h2>' if title else ""
    return (
        f'<section style="margin:1.2em 0;padding:.8em 1em;border:1px solid #ddd;border-radius:6px">{heading}'
        f'<p style="margin:.2em 0;font-family:monospace">{html.escape(e.summary())}</p>'
        f'<p style="line-height:1.9;font-family:Georgia,serif">{" ".join(spans)}</p>'
        f'<div style="font-size:.85em;color:#555">running P(positive) after each token (dashed: 0.5)</div>'
        f'{_sparkline(e)}'
        + (f'<ul style="font-size:.85em;color:#555">{notes}</ul>' if notes else "")
        + '<details><summary>tokens</summary><table style="border-collapse:collapse;font-family:monospace">'
          '<tr><th>#</th><th>token</th><th>id</th><th>contribution</th><th>running P</th></tr>'
        + rows + "</table></details></section>")


def html_page(explanations: Sequence[Explanation], title: str, subtitle: str = "",
              titles: Sequence[str] | None = None) -> str:
    """A self-contained HTML page of explanations: inline styles and SVG, no script, no network.

    Args:
        explanations: What to show, in order.
        title: The page title.
        subtitle: A line under the title (e.g. the run and its model).
        titles: One heading per explanation (default: ``review N``).
    """
    titles = list(titles) if titles is not None else [f"review {i}" for i in range(1, len(explanations) + 1)]
    body = "".join(explanation_html(e, t) for e, t in zip(explanations, titles))
    legend = ('<p style="font-size:.9em">Colour: <span style="background:rgb(214,39,40);padding:1px 4px">'
              'against</span> … <span style="padding:1px 4px">neutral</span> … '
              '<span style="background:rgb(44,160,44);padding:1px 4px">for</span> a positive prediction, '
              "scaled per review to its largest contribution. Hover a token for its numbers.</p>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title></head>"
            '<body style="font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em">'
            f"<h1 style=\"font-size:1.4em\">{html.escape(title)}</h1>"
            + (f"<p>{html.escape(subtitle)}</p>" if subtitle else "")
            + legend + body + "</body></html>\n")

