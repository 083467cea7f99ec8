"""Gradient flow through time: ``||dL/dh_t||`` for every step ``t`` of one batch.

This answers the seed's question about vanishing gradients and slow starts:
how much does the loss still "feel" the state at step ``t``? A zero probe
``[batch, time, units]`` is added to every real step's output (and to the
state it feeds forward) inside the cell's unroll; the gradient of the loss
with respect to the probe is ``dL/dh_t`` through the whole recurrence, with
every later step's contribution, exactly what backpropagation through time
delivers to step ``t``.

The loss is the sum over the batch (not the mean), so each example's row is the
gradient of its own loss; padded steps get exactly zero.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from zoo_core.model import Classifier


@dataclasses.dataclass
class GradientProfile:
    """Per-step gradient norms of one model on one batch.

    Attributes:
        label: The model's name or combination.
        norms: ``||dL_i/dh_t||`` per example and step ``[batch, time]`` (0 on padded steps).
        real: Where each example has a real token ``[batch, time]``.
        loss: Mean loss of the batch.
    """

    label: str
    norms: np.ndarray
    real: np.ndarray
    loss: float

    @property
    def steps(self) -> int:
        return self.norms.shape[1]

    def mean(self) -> np.ndarray:
        """Mean over the examples real at each step ``[time]`` (NaN where none is)."""
        count = self.real.sum(0)
        total = np.where(self.real, self.norms, 0.0).sum(0)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)

    def quantile(self, q: float) -> np.ndarray:
        """The ``q`` quantile over the examples real at each step ``[time]`` (NaN where none is)."""
        masked = np.where(self.real, self.norms, np.nan)
        out = np.full(self.steps, np.nan)
        has = self.real.any(0)
        out[has] = np.nanquantile(masked[:, has], q, axis=0)
        return out

    def decay(self) -> float:
        """Mean norm at the first step with real tokens over that at the last one.

        Far below 1 means the earliest tokens barely reach the loss (vanishing
        gradients); far above 1, exploding ones.
        """
        mean = self.mean()
        real_steps = np.flatnonzero(~np.isnan(mean))
        if len(real_steps) == 0 or mean[real_steps[-1]] == 0:
            return float("nan")
        return float(mean[real_steps[0]] / mean[real_steps[-1]])


def gradient_norms(model: Classifier, ids: tf.Tensor, mask: tf.Tensor | None,
                   labels: tf.Tensor) -> tuple[np.ndarray, float]:
    """``||dL_i/dh_t||`` for every example ``i`` and step ``t``, and the batch's mean loss.

    Args:
        model: The classifier; its cell must accept ``probe`` in ``unroll``.
        ids: Token ids ``[batch, time]``.
        mask: ``[batch, time]`` bool, or ``None`` (every step real).
        labels: ``[batch]`` in {0, 1}.

    Returns:
        Norms ``[batch, time]`` and the mean loss.
    """

    @tf.function
    def compute(ids, mask, labels):
        batch, steps = tf.shape(ids)[0], tf.shape(ids)[1]
        probe = tf.zeros([batch, steps, model.cell.output_size], model.cell.dtype)
        with tf.GradientTape() as tape:
            tape.watch(probe)
            inputs = model.encoder(ids, training=False)
            result = model.cell.unroll(inputs, mask, keep_outputs=model.aggregator.needs_sequence, probe=probe)
            logits = model.aggregator(result, mask, model.head, training=False)
            mean_loss = model.loss(labels, logits)
            # The sum, so row i is the gradient of example i's own loss.
            total = mean_loss * tf.cast(batch, mean_loss.dtype)
        grad = tape.gradient(total, probe)  # [batch, time, units]
        return tf.norm(grad, axis=-1), mean_loss

    norms, loss = compute(ids, mask, labels)
    return norms.numpy(), float(loss)


def profile(model: Classifier, batch, use_mask: bool = True, label: str = "") -> GradientProfile:
    """The :class:`GradientProfile` of ``model`` on a :class:`zoo_core.data.Batch`."""
    mask = tf.constant(batch.mask) if use_mask else None
    norms, loss = gradient_norms(model, tf.constant(batch.ids), mask, tf.constant(batch.labels))
    real = np.asarray(batch.mask, bool) if use_mask else np.ones_like(norms, bool)
    return GradientProfile(label=label or model.spec.label, norms=norms, real=real, loss=loss)


def sample_steps(steps: int, rows: int) -> list[int]:
    """About ``rows`` 0-based steps spread evenly over ``steps``, always with the first and last."""
    if rows >= steps:
        return list(range(steps))
    return sorted({int(round(x)) for x in np.linspace(0, steps - 1, max(rows, 2))})


def table(profiles: list[GradientProfile], rows: int = 20) -> tuple[list[str], list[list]]:
    """Headers and rows: step ``t`` (1-based), examples with a real token, and each model's mean norm."""
    steps = profiles[0].steps
    means = [p.mean() for p in profiles]
    headers = ["t", "real"] + [f"{p.label}" for p in profiles]
    body = []
    for t in sample_steps(steps, rows):
        values = [None if np.isnan(m[t]) else float(f"{m[t]:.4g}") for m in means]
        body.append([t + 1, int(profiles[0].real[:, t].sum())] + values)
    return headers, body


def plot(profiles: list[GradientProfile], path: str | Path, title: str = "") -> Path:
    """Writes a log-scale plot of each model's mean norm (with its 10-90% band) per step.

    Uses matplotlib's object API on an Agg canvas, so no display or global
    backend is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    steps = np.arange(1, profiles[0].steps + 1)
    for p in profiles:
        (line,) = axes.plot(steps, p.mean(), label=f"{p.label} (first/last {p.decay():.2g})")
        axes.fill_between(steps, p.quantile(0.1), p.quantile(0.9), color=line.get_color(), alpha=0.15, linewidth=0)
    axes.set_yscale("log")
    axes.set_xlabel("time step t")
    axes.set_ylabel("||dL/dh_t|| (mean over examples, 10-90% band)")
    axes.set_title(title or "gradient reaching each step")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize="small")
    from zoo_core.tables import image_path

    path = image_path(path)
    figure.savefig(path, dpi=120)
    return path
