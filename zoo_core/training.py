"""Training: a custom loop with ``tf.GradientTape``, Keras optimizers, losses and metrics.

:func:`train` builds the classifier of a :class:`~zoo_core.config.RunSpec`,
runs one compiled training step per batch (BPTT through the shared unroll),
evaluates on the validation split after each epoch, stops early on the
monitored metric, restores the best epoch's weights and evaluates them on
the test split. It never raises for a diverging or interrupted run: a
non-finite loss or gradient stops it with status ``"nan"``, and a stop request
(the caller's ``should_stop()``, checked between batches, evaluation batches
and epochs) or ``KeyboardInterrupt`` with status ``"interrupted"``; both keep
the last good weights, so the caller can still save and report them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import statistics
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from zoo_core.config import RunSpec, TrainConfig
from zoo_core.errors import ZooError
from zoo_core.metrics import roc_auc
from zoo_core.model import Classifier
from zoo_core.progress import Echo, Progress, echo_or_silent, progress_or_silent
from zoo_core.registry import Registry

# None batch and time dims: bucketed batches of any length reuse one trace.
BATCH_SIGNATURE = (
    tf.TensorSpec([None, None], tf.int32, name="ids"),
    tf.TensorSpec([None, None], tf.bool, name="mask"),
    tf.TensorSpec([None], tf.int32, name="labels"),
)
MIN_EVAL_BATCH = 256  # evaluation keeps no activations for backprop, so larger batches are cheap


@dataclasses.dataclass
class TrainResult:
    """What one training run produced.

    Attributes:
        run: The run that was trained.
        params: Number of trainable parameters.
        history: Per epoch: ``epoch, train_loss, train_accuracy, val_loss,
            val_accuracy, val_auc, seconds, tokens_per_sec`` (the learning curves).
        best_epoch: The epoch whose weights were kept (0 if none finished).
        val: ``accuracy, loss, auc`` of the kept weights on the validation split.
        test: ``accuracy, loss, auc`` of the kept weights on the test split; empty
            for a run trained with ``score_test=False`` (a tuning trial).
        wall_time: Seconds for the whole run, evaluation included.
        tokens_per_sec: Real (unpadded) training tokens per second, median over epochs.
        status: ``"completed"``, ``"early-stopped"``, ``"nan"``, ``"interrupted"``, or the
            status of an observer's :class:`EndRun` (``"pruned"``).
        message: Why a run stopped early, in one line.
    """

    run: RunSpec
    params: int
    history: list[dict]
    best_epoch: int
    val: dict[str, float]
    test: dict[str, float]
    wall_time: float
    tokens_per_sec: float
    status: str
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the run as :meth:`RunSpec.to_dict`)."""
        out = dataclasses.asdict(self)
        out["run"] = self.run.to_dict()
        return out


class NonFiniteLoss(Exception):
    """A training step gave a NaN or infinite loss, gradient or weight; its update was not kept."""


class Stopped(Exception):
    """``should_stop()`` asked the work to stop; raised between two batches."""


class EndRun(Exception):
    """Raised by an observer's ``on_epoch`` to end the run after that epoch, as early stopping would.

    :func:`train` keeps the best epoch's weights, skips the epochs left and
    records ``status`` (e.g. ``"pruned"``: a tuner judged the run unpromising)
    and ``message`` in its :class:`TrainResult`.

    Args:
        status: The run's :attr:`TrainResult.status`; not one of ``completed``,
            ``nan`` or ``interrupted``, which mean something else.
        message: Why the run ended, in one line.
    """

    def __init__(self, status: str, message: str):
        if status in ("completed", "nan", "interrupted"):
            raise ValueError(f"EndRun cannot use the status {status!r}")
        self.status, self.message = status, message
        super().__init__(message)


StopCheck = Callable[[], bool]


def _never() -> bool:
    return False


class TrainObserver:
    """Watches a run of :func:`train`: a report every ``every_steps`` optimizer steps and after each epoch.

    Subclass it and override what you need (the base ignores both calls), or
    pass any object with these two methods and the attribute. Training without
    an observer does no extra work; with one, it reads the running accuracy and
    the learning rate from TensorFlow only when a step report is due.

    Attributes:
        every_steps: Optimizer steps between two :meth:`on_step` reports (>= 1).
    """

    every_steps: int = 100

    def on_step(self, step: int, logs: dict[str, float]) -> None:
        """Called after global optimizer step ``step``, a multiple of ``every_steps`` (1-based, across epochs).

        Args:
            step: Updates applied since the run began.
            logs: Over the last ``every_steps`` steps (which may span two
                epochs): ``train_loss`` (mean per review), ``train_accuracy``,
                ``grad_norm`` (mean global gradient norm, before clipping),
                and ``learning_rate`` (the rate of the next update).
        """

    def on_epoch(self, epoch: int, logs: dict[str, float]) -> None:
        """Called after each finished epoch (training and validation), not after one cut short.

        Args:
            epoch: 1-based.
            logs: The epoch's row of :attr:`TrainResult.history` (``train_loss``,
                ``train_accuracy``, ``val_loss``, ``val_accuracy``, ``val_auc``,
                ``seconds``, ``tokens_per_sec``), plus ``learning_rate`` (of
                the next update) and ``step`` (updates applied so far).

        Raises:
            EndRun: to end the run here, keeping its best epoch (e.g. a tuner pruning it).
        """


class _StepReports:
    """Sums over the optimizer steps since the last report, for an observer's ``on_step``.

    The loss and the gradient norm are host floats already (the loop checks
    them every step); the accuracy is the change in the epoch's running metric,
    read only when a report is due or the epoch ends.
    """

    def __init__(self, observer, learning_rate: Callable[[], float]):
        self.observer, self.learning_rate = observer, learning_rate
        self.every = int(observer.every_steps)
        if self.every < 1:
            raise ValueError(f"every_steps must be at least 1, not {self.every}")
        self.step = 0  # updates applied in the whole run
        self._clear()

    def _clear(self) -> None:
        self.loss_sum, self.norm_sum = 0.0, 0.0
        self.examples, self.steps, self.correct = 0, 0, 0

    def add(self, loss: float, size: int, norm: float) -> bool:
        """Counts one applied step of ``size`` reviews; whether a report is due now."""
        self.step += 1
        self.steps += 1
        self.loss_sum += loss * size
        self.examples += size
        self.norm_sum += norm
        return self.step % self.every == 0

    def report(self) -> None:
        self.observer.on_step(self.step, {
            "train_loss": self.loss_sum / self.examples,
            "train_accuracy": self.correct / self.examples,
            "grad_norm": self.norm_sum / self.steps,
            "learning_rate": self.learning_rate(),
        })
        self._clear()


def learning_rate(config: TrainConfig, total_steps: int | None = None):
    """``config.lr``, or a Keras schedule decaying it to 0 over ``total_steps`` updates.

    Raises:
        ValueError: A decaying schedule without ``total_steps``.
    """
    if config.lr_schedule == "constant":
        return config.lr
    if not total_steps:
        raise ValueError(f"lr_schedule={config.lr_schedule!r} needs the run's number of steps")
    if config.lr_schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(config.lr, decay_steps=total_steps, alpha=0.0)
    return keras.optimizers.schedules.PolynomialDecay(config.lr, decay_steps=total_steps, end_learning_rate=0.0)


class ScaledLearningRates:
    """Mixin for a Keras optimizer: variable ``i``'s update uses ``lr * lr_scales[i]``.

    ``lr_scales`` follows the order of the variables the optimizer was built
    with; empty (the default) scales nothing. Only the update's step size is
    scaled: decoupled weight decay keeps the unscaled rate. Training sets it
    from ``train.cell_lr_scale`` (:func:`cell_lr_scales`), so that a recurrence
    can learn slower than the encoder and the head: discriminative learning
    rates (Howard & Ruder 2018, "Universal Language Model Fine-tuning", Eq. 2).
    """

    lr_scales: tuple[float, ...] = ()

    def update_step(self, gradient, variable, learning_rate):
        if self.lr_scales:
            scale = self.lr_scales[self._get_variable_index(variable)]
            if scale != 1.0:  # a Python constant per variable, fixed when the step is traced
                learning_rate = learning_rate * scale
        return super().update_step(gradient, variable, learning_rate)


def cell_lr_scales(model: Classifier, variables: Sequence[tf.Variable], scale: float) -> tuple[float, ...]:
    """``scale`` for each of ``variables`` that belongs to ``model.cell``, 1.0 for the others, in order."""
    in_cell = {id(v) for v in model.cell.trainable_variables}
    return tuple(scale if id(v) in in_cell else 1.0 for v in variables)


class FusedAdamUpdate:
    """Adam's update as TensorFlow's one fused kernel, ``ResourceApplyAdam``, for a Keras Adam or AdamW.

    The maths is Keras' own (Kingma & Ba 2015, Algorithm 1, bias corrections
    folded into the step size), per variable ``w`` with gradient ``g`` at step ``t``::

        m <- m + (1 - beta_1) (g - m)
        v <- v + (1 - beta_2) (g^2 - v)
        w <- w - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon)

    Keras runs it as about ten whole-table elementwise ops and, for an
    embedding's sparse gradient, makes ``g`` dense twice. Here ``g`` is made dense
    once and the rest is one pass over the table: 1.5x faster on a 20,000 x 64
    embedding, 2.3x on the 100,003 x 64 n-gram table and 3.3x on a 1,000,003 x 64
    one on a 2-core CPU (``benchmarks/adam_update.py``), equal to Keras' update within
    float32 rounding (tests/test_training.py). AMSGrad, and backends other than
    TensorFlow, keep Keras' own update.

    With ``lazy = True`` (LazyAdam, as in TensorFlow Addons and PyTorch's
    ``SparseAdam``), a sparse gradient ``[rows, dim]`` updates only its rows of
    ``w``, ``m`` and ``v``, by the same three lines: the cost follows the batch's
    distinct tokens, not the table's size. Rows absent from a batch keep their
    moments instead of decaying them, so this is a different optimiser from Adam
    for those rows (dense gradients are updated exactly as Adam). The rows must
    be distinct, as :class:`TrainStep` makes them (:func:`deduplicate`): a
    scatter with a repeated row keeps only one of its updates.

    With ``use_ema`` as well (and no weight decay), the moving average of a
    lazily updated table is kept lazily too, and exactly: a row outside the batch does not move, so
    the ``k`` steps since its average was last brought up fold into one,
    ``average <- m^k * average + (1 - m^k) * row``, done when the row is next
    updated, or for all rows by :meth:`sync_averages`. Keras' own average
    would rewrite the whole table every step, which doubled the time of a
    step on the 1.2M-row n-gram table.
    """

    lazy = False
    lazy_average = True  # False: Keras' own whole-table moving average (the tests' reference)

    @property
    def updates_only_gradient_rows(self) -> bool:
        """Whether an update leaves every row outside a sparse gradient's ``indices`` unchanged.

        True for the lazy update without weight decay (decay shrinks every row).
        """
        return self.lazy and not self.weight_decay

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad or keras.backend.backend() != "tensorflow":
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        beta_1_power, beta_2_power = tf.pow(beta_1, step), tf.pow(beta_2, step)
        learning_rate, epsilon = tf.cast(learning_rate, dtype), tf.cast(self.epsilon, dtype)
        index = self._get_variable_index(variable)
        momentum, velocity = self._momentums[index], self._velocities[index]
        if self.lazy and isinstance(gradient, tf.IndexedSlices):
            # Resource ops on the handles: reading a whole variable to gather from it would make the
            # scatters copy the whole table (copy-on-write), which costs what the lazy update saves.
            rows, grad = gradient.indices, tf.cast(gradient.values, dtype)
            averaged = self._averages_lazily(index)
            if averaged:
                self._bring_up_averages(index, rows)
            first_moment = beta_1 * gather_rows(momentum, rows) + (1 - beta_1) * grad
            second_moment = beta_2 * gather_rows(velocity, rows) + (1 - beta_2) * tf.square(grad)
            step_size = learning_rate * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
            tf.raw_ops.ResourceScatterUpdate(resource=momentum.handle, indices=rows, updates=first_moment)
            tf.raw_ops.ResourceScatterUpdate(resource=velocity.handle, indices=rows, updates=second_moment)
            tf.raw_ops.ResourceScatterSub(resource=variable.handle, indices=rows,
                                          updates=step_size * first_moment / (tf.sqrt(second_moment) + epsilon))
            if averaged:  # this step's own term, as Keras' average takes it (the first step copies the weights)
                average = self._model_variables_moving_average[index]
                momentum = tf.cast(self.ema_momentum, dtype) * tf.cast(self.iterations > 0, dtype)
                tf.raw_ops.ResourceScatterUpdate(
                    resource=average.handle, indices=rows,
                    updates=momentum * gather_rows(average, rows) + (1 - momentum) * gather_rows(variable, rows))
                tf.raw_ops.ResourceScatterUpdate(resource=self._synced_steps[index].handle, indices=rows,
                                                 updates=tf.fill(tf.shape(rows), self.iterations + 1))
            return
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=momentum.handle, v=velocity.handle,
            beta1_power=beta_1_power, beta2_power=beta_2_power, lr=learning_rate,
            beta1=beta_1, beta2=beta_2, epsilon=epsilon, grad=tf.cast(tf.convert_to_tensor(gradient), dtype))

    def build(self, variables):
        super().build(variables)
        self._lazily_averaged: set[int] = set()  # filled as the step is traced
        self._synced_steps = []  # per table row: the steps its average holds
        # Weight decay moves every row every step: then the whole-table average of Keras is the exact one.
        if self.use_ema and self.updates_only_gradient_rows and self.lazy_average:
            for variable, average in zip(variables, self._model_variables_moving_average):
                # A row no step has touched averages to itself; Keras' zeros are overwritten by the first step.
                average.assign(variable)
            self._synced_steps = [tf.Variable(tf.zeros([v.shape[0] if v.shape.rank else 1], tf.int64),
                                              trainable=False, name="synced_steps") for v in variables]

    def _averages_lazily(self, index: int) -> bool:
        if not self._synced_steps:
            return False
        self._lazily_averaged.add(index)
        return True

    def _bring_up_averages(self, index: int, rows=None) -> None:
        """Folds the steps that left ``rows`` (None: every row) unchanged into their moving average."""
        variable, average = self._trainable_variables[index], self._model_variables_moving_average[index]
        synced = self._synced_steps[index]
        dtype = variable.dtype
        if rows is None:
            missed = tf.cast(self.iterations - synced, dtype)[:, None]
            decay = tf.pow(tf.cast(self.ema_momentum, dtype), missed)
            average.assign(decay * average + (1 - decay) * variable)
            synced.assign(tf.fill(tf.shape(synced), tf.cast(self.iterations, tf.int64)))
            return
        missed = tf.cast(self.iterations - gather_rows(synced, rows), dtype)[:, None]
        decay = tf.pow(tf.cast(self.ema_momentum, dtype), missed)
        tf.raw_ops.ResourceScatterUpdate(
            resource=average.handle, indices=rows,
            updates=decay * gather_rows(average, rows) + (1 - decay) * gather_rows(variable, rows))

    def _update_model_variables_moving_average(self, trainable_variables):
        if not self._lazily_averaged:
            return super()._update_model_variables_moving_average(trainable_variables)
        momentum = self.ema_momentum * tf.cast(self.iterations > 0, tf.float32)
        for index, (variable, average) in enumerate(zip(trainable_variables, self._model_variables_moving_average)):
            if index not in self._lazily_averaged:  # the dense ones, as Keras does
                average.assign(momentum * average + (1 - momentum) * variable)

    def sync_averages(self) -> None:
        """Brings every row of the lazily kept moving averages up to the last step (see the class docstring)."""
        for index in sorted(self._lazily_averaged):
            self._bring_up_averages(index)


def gather_rows(variable, rows: tf.Tensor) -> tf.Tensor:
    """``variable[rows]`` read through the resource handle, without reading the whole variable.

    Args:
        variable: A TensorFlow resource variable (or a Keras variable over one), ``[n, ...]``.
        rows: int32 or int64 ``[k]``.

    Returns:
        ``[k, ...]``, in ``variable``'s dtype.
    """
    return tf.raw_ops.ResourceGather(resource=variable.handle, indices=rows, dtype=variable.dtype)


class FusedAdam(ScaledLearningRates, FusedAdamUpdate, keras.optimizers.Adam):
    """``keras.optimizers.Adam`` with :class:`FusedAdamUpdate`'s one-kernel update."""


class FusedAdamW(ScaledLearningRates, FusedAdamUpdate, keras.optimizers.AdamW):
    """``keras.optimizers.AdamW`` (decoupled weight decay, Loshchilov & Hutter 2019) with the one-kernel update."""


class LazyAdam(FusedAdam):
    """:class:`FusedAdam` whose sparse (embedding) gradients update only their own rows (see :class:`FusedAdamUpdate`)."""

    lazy = True


class LazyAdamW(FusedAdamW):
    """:class:`FusedAdamW` with the lazy sparse update; the decay still shrinks every row."""

    lazy = True


class SGD(ScaledLearningRates, keras.optimizers.SGD):
    """``keras.optimizers.SGD`` whose learning rate may be scaled per variable (:class:`ScaledLearningRates`)."""


class RMSprop(ScaledLearningRates, keras.optimizers.RMSprop):
    """``keras.optimizers.RMSprop`` whose learning rate may be scaled per variable (:class:`ScaledLearningRates`)."""


def make_optimizer(config: TrainConfig, total_steps: int | None = None) -> keras.optimizers.Optimizer:
    """The Keras optimizer ``config`` names, with decoupled weight decay when asked for.

    Clipping is not delegated to the optimizer: the training step clips by
    global norm itself, because it also needs the norm to catch non-finite
    gradients.

    Args:
        config: The training settings.
        total_steps: Updates in the whole run; needed by a decaying ``lr_schedule``.
    """
    decay = config.weight_decay or None
    # Keras keeps the moving average of the weights (``use_ema``); :func:`averaged_weights` reads it.
    common = {"learning_rate": learning_rate(config, total_steps), "use_ema": config.ema_momentum > 0,
              "ema_momentum": config.ema_momentum}
    if config.optimizer in ("adam", "lazy-adam"):
        lazy = config.optimizer == "lazy-adam"
        if decay:
            return (LazyAdamW if lazy else FusedAdamW)(weight_decay=decay, **common)
        return (LazyAdam if lazy else FusedAdam)(**common)
    if config.optimizer == "sgd":
        return SGD(weight_decay=decay, **common)
    if config.optimizer == "rmsprop":
        return RMSprop(weight_decay=decay, **common)
    raise ValueError(f"unknown optimizer {config.optimizer!r}")


class TrainStep:
    """A compiled training step that can undo its last update.

    Calling it with ``(ids, mask, labels)`` returns ``(loss, prob_positive,
    grad_norm, applied)``. The update is applied only when the loss and the
    gradients are finite, and undone at once when it leaves a weight non-finite
    (an overflowing learning rate); ``applied`` says whether it stands.

    Args:
        model: The classifier to train.
        optimizer: A built Keras optimizer over ``model.trainable_variables``.
        run: Supplies the mask setting, ``clip_norm`` and the XLA flag.
    """

    def __init__(self, model: Classifier, optimizer: keras.optimizers.Optimizer, run: RunSpec):
        self.variables = model.trainable_variables
        # The weights before the latest update, to undo one that overflows. When the optimiser leaves the rows
        # outside a sparse gradient unchanged (lazy Adam), only the updated rows are saved and checked: copying a
        # 1,000,003 x 64 n-gram table every step would cost more than the update.
        self.backup = [tf.Variable(v, trainable=False, name="backup", shape=tf.TensorShape(None)) for v in self.variables]
        self.backup_rows = [tf.Variable(tf.zeros([0], tf.int64), trainable=False, name="backup_rows",
                                        shape=tf.TensorShape([None])) for _ in self.variables]
        self.row_backed = [False] * len(self.variables)  # which backups hold rows only, fixed when traced
        # XLA cannot resize a variable, so a compiled step backs up whole variables.
        rows_only = getattr(optimizer, "updates_only_gradient_rows", False) and not run.train.jit
        use_mask = run.data.mask
        clip_norm = run.train.clip_norm

        @tf.function(input_signature=BATCH_SIGNATURE, jit_compile=run.train.jit)
        def step(ids, mask, labels):
            with tf.GradientTape() as tape:
                logits = model(ids, mask if use_mask else None, training=True)
                loss = model.loss(labels, logits)
            grads = [deduplicate(g) for g in tape.gradient(loss, self.variables)]
            if clip_norm > 0:
                grads, norm = tf.clip_by_global_norm(grads, clip_norm)
            else:
                norm = tf.linalg.global_norm(grads)
            applied = tf.logical_and(tf.math.is_finite(loss), tf.math.is_finite(norm))
            if applied:
                changed = []  # what the update can change: whole variables, or the gathered rows
                for i, (grad, variable) in enumerate(zip(grads, self.variables)):
                    self.row_backed[i] = rows_only and isinstance(grad, tf.IndexedSlices)
                    if self.row_backed[i]:
                        rows = tf.cast(grad.indices, tf.int64)
                        self.backup_rows[i].assign(rows)
                        self.backup[i].assign(gather_rows(variable, rows))
                        changed.append(rows)
                    else:
                        self.backup[i].assign(variable)
                        changed.append(None)
                optimizer.apply_gradients(zip(grads, self.variables))
                applied = all_finite(variable if rows is None else gather_rows(variable, rows)
                                     for variable, rows in zip(self.variables, changed))
                if not applied:
                    self.undo_last_update()
            return loss, model.head.prob_positive(logits), norm, applied

        self.function = step

    def __call__(self, ids, mask, labels):
        return self.function(ids, mask, labels)

    def undo_last_update(self) -> None:
        """Restores the weights from before the latest applied update.

        After a non-finite loss, those are the last weights known to give a
        finite loss (the latest update's inputs).
        """
        for saved, rows, row_backed, variable in zip(self.backup, self.backup_rows, self.row_backed, self.variables):
            if row_backed:
                variable.scatter_update(tf.IndexedSlices(saved, rows))
            else:
                variable.assign(saved)


def deduplicate(grad):
    """Sums the rows of a sparse (gathered) gradient that share an index.

    An embedding's gradient holds one row per token occurrence; the global norm
    of those rows is not the norm of the summed gradient, so clipping must see
    each row index once.
    """
    if not isinstance(grad, tf.IndexedSlices):
        return grad
    rows, positions = tf.unique(grad.indices)
    values = tf.math.unsorted_segment_sum(grad.values, positions, tf.shape(rows)[0])
    return tf.IndexedSlices(values, rows, grad.dense_shape)


def all_finite(tensors: Iterable[tf.Tensor]) -> tf.Tensor:
    """Whether every element of every tensor is finite (a scalar bool tensor)."""
    return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(t)) for t in tensors]))


# One compiled evaluation step per (model, mask, jit), reused across epochs and by predict(). A memo, not
# state: the compiled function gives what tracing it again would, and the weak keys free it with its model.
_EVAL_STEPS: "weakref.WeakKeyDictionary[Classifier, dict]" = weakref.WeakKeyDictionary()


def _eval_step(model: Classifier, use_mask: bool, jit: bool) -> Callable:
    steps = _EVAL_STEPS.setdefault(model, {})
    if (use_mask, jit) not in steps:

        @tf.function(input_signature=BATCH_SIGNATURE, jit_compile=jit)
        def eval_step(ids, mask, labels):
            logits = model(ids, mask if use_mask else None, training=False)
            return model.loss(labels, logits), model.head.prob_positive(logits)

        steps[(use_mask, jit)] = eval_step
    return steps[(use_mask, jit)]


def evaluate(model: Classifier, split, run: RunSpec, should_stop: StopCheck = _never) -> dict[str, float]:
    """Accuracy, mean loss and AUC of ``model`` on ``split`` (NaN for an empty split).

    The reviews are scored as :meth:`zoo_core.data.Split.scoring_batches`
    batches them, so the metrics do not depend on the order of the reviews.

    Args:
        model: The classifier.
        split: A :class:`zoo_core.data.Split` (anything with ``scoring_batches`` and ``__len__``).
        run: Supplies the mask setting, the batch size and the XLA flag.
        should_stop: Checked before each batch.

    Raises:
        Stopped: ``should_stop()`` was true before a batch.
    """
    if len(split) == 0:
        return {"accuracy": math.nan, "loss": math.nan, "auc": math.nan}
    step = _eval_step(model, run.data.mask, run.train.jit)
    accuracy = keras.metrics.BinaryAccuracy()
    loss_sum, count = 0.0, 0
    labels, scores = [], []
    for _, batch in split.scoring_batches(max(run.train.batch_size, MIN_EVAL_BATCH)):
        if should_stop():
            raise Stopped
        loss, probs = step(batch.ids, batch.mask, batch.labels)
        accuracy.update_state(batch.labels, probs)
        loss_sum += float(loss) * len(batch.labels)
        count += len(batch.labels)
        labels.append(np.asarray(batch.labels).reshape(-1))
        scores.append(np.asarray(probs, np.float64).reshape(-1))
    labels, scores = np.concatenate(labels), np.concatenate(scores)
    # Exact, from the scores (Keras' AUC bins them); NaN with one class, and with a non-finite score.
    auc = roc_auc(labels, scores) if np.isfinite(scores).all() else math.nan
    return {"accuracy": float(accuracy.result()), "loss": loss_sum / count, "auc": auc}


def predict(model: Classifier, split, run: RunSpec) -> np.ndarray:
    """P(positive) of every review of ``split``, in the split's order, scored as :func:`evaluate` scores them.

    Each review's score depends only on the review (see
    :meth:`zoo_core.data.Split.scoring_batches`), not on the others in ``split``.

    Returns:
        float32 ``[len(split)]``.
    """
    step = _eval_step(model, run.data.mask, run.train.jit)
    probs = np.zeros([len(split)], np.float32)
    for rows, batch in split.scoring_batches(max(run.train.batch_size, MIN_EVAL_BATCH)):
        probs[rows] = step(batch.ids, batch.mask, batch.labels)[1].numpy()
    return probs


def _improved(value: float, best: float | None, monitor: str) -> bool:
    # Without validation data every score is NaN: each epoch replaces the last,
    # so the final weights are kept and early stopping never fires.
    if best is None or math.isnan(best):
        return True
    if math.isnan(value):
        return False
    return value > best if monitor == "val_accuracy" else value < best


def training_batches(split, run: RunSpec) -> Iterator:
    """The training split's batches, pass after pass, without end.

    Pass ``p`` (from 1) is shuffled with the seed that one-pass epoch ``p``
    uses, so shorter epochs (``train.steps_per_epoch``) see the same batches in
    the same order, only validated more often.

    Returns:
        An endless iterator of :class:`zoo_core.data.batching.Batch`.
    """
    for data_pass in itertools.count(1):
        yield from _one_pass(split, run, data_pass)


def _one_pass(split, run: RunSpec, data_pass: int) -> Iterator:
    return split.batches(run.train.batch_size, shuffle=True, seed=run.seed * 100_003 + data_pass)


def _run_epoch(train_step: TrainStep, split, run: RunSpec, epoch: int, progress: Progress,
               should_stop: StopCheck = _never, reports: _StepReports | None = None,
               stream: Iterator | None = None) -> dict[str, float]:
    """One epoch: a pass over the training split, or the next ``train.steps_per_epoch`` batches of ``stream``.

    ``tokens_per_sec`` counts real tokens from the second step on, so the
    first step's tracing and graph optimisation do not distort it. With
    ``reports``, each applied step is counted there and the due reports made.

    Args:
        stream: The run's :func:`training_batches`, shared by its epochs;
            needed when ``train.steps_per_epoch`` is set.

    Raises:
        NonFiniteLoss: naming the epoch and step; that step's update was not kept.
        Stopped: ``should_stop()`` was true before a step.
    """
    accuracy = keras.metrics.BinaryAccuracy()
    loss_sum, examples, tokens = 0.0, 0, 0
    reported_correct = 0  # this epoch's correct predictions already handed to `reports`

    def hand_over_correct() -> None:
        nonlocal reported_correct
        # The metric is a float32 mean of 0/1 matches: times the count, it rounds to the exact number correct.
        correct = round(float(accuracy.result()) * examples)
        reports.correct += correct - reported_correct
        reported_correct = correct

    started = time.perf_counter()
    steady_since, steady_tokens = started, 0  # throughput clock, restarted after step 1
    if run.train.steps_per_epoch:
        batches = itertools.islice(stream, run.train.steps_per_epoch)
        # Counted as full batches, so the bar ends at its length though a pass's last batch may be short.
        length = run.train.steps_per_epoch * run.train.batch_size
    else:
        batches, length = _one_pass(split, run, epoch), len(split)
    with progress(length, f"epoch {epoch}/{run.train.epochs}") as bar:
        for step, batch in enumerate(batches, start=1):
            if should_stop():
                raise Stopped
            loss, probs, norm, applied = train_step(batch.ids, batch.mask, batch.labels)
            loss, norm = float(loss), float(norm)
            if not bool(applied):
                if not math.isfinite(loss):
                    # The current weights gave it; the ones before the last update did not.
                    train_step.undo_last_update()
                    what = f"loss ({loss})"
                elif not math.isfinite(norm):
                    what = f"gradient (global norm {norm})"
                else:
                    what = f"weights after the update (loss {loss:.4g})"
                raise NonFiniteLoss(
                    f"non-finite {what} at epoch {epoch}, step {step}; stopped, keeping the last weights "
                    f"that gave a finite loss (try a lower --lr or --set train.clip_norm=1)"
                )
            accuracy.update_state(batch.labels, probs)
            size, real_tokens = len(batch.labels), int(np.count_nonzero(batch.mask))
            loss_sum += loss * size
            examples += size
            tokens += real_tokens
            if reports is not None and reports.add(loss, size, norm):
                hand_over_correct()
                reports.report()
            if step == 1:
                steady_since = time.perf_counter()
            else:
                steady_tokens += real_tokens
            rate = steady_tokens / max(time.perf_counter() - steady_since, 1e-9)
            bar.update(run.train.batch_size if run.train.steps_per_epoch else size,
                       f"loss {loss_sum / examples:.4f}  acc {float(accuracy.result()):.4f}  {rate / 1000:.1f}k tok/s")
    finished = time.perf_counter()
    if reports is not None and examples:
        hand_over_correct()  # the steps since the last report carry over into the next epoch
    if steady_tokens == 0:  # a single step: only the whole epoch's time is known
        steady_tokens, steady_since = tokens, started
    return {
        "train_loss": loss_sum / max(examples, 1),
        "train_accuracy": float(accuracy.result()),
        "seconds": finished - started,
        "tokens_per_sec": steady_tokens / max(finished - steady_since, 1e-9),
    }


def _snapshot(variables: Iterable[tf.Variable]) -> list[np.ndarray]:
    return [v.numpy() for v in variables]


def _restore(variables: Iterable[tf.Variable], values: list[np.ndarray]) -> None:
    for variable, value in zip(variables, values):
        variable.assign(value)


@contextlib.contextmanager
def averaged_weights(optimizer: keras.optimizers.Optimizer, variables: Sequence[tf.Variable]):
    """Within the block, ``variables`` hold the optimizer's moving average of them; after it, their own values.

    The average is Keras' ``use_ema`` (Polyak & Juditsky 1992): after each
    update, ``average <- m * average + (1 - m) * weights``, the first update
    copying the weights. Without ``use_ema`` the block changes nothing.

    Args:
        optimizer: A built Keras optimizer over ``variables``.
        variables: The variables it updates, in the order it was built with.
    """
    if not optimizer.use_ema:
        yield
        return
    weights = _snapshot(variables)
    _restore(variables, _averages(optimizer))
    try:
        yield
    finally:
        _restore(variables, weights)


def _averages(optimizer: keras.optimizers.Optimizer) -> list[np.ndarray]:
    """The optimizer's moving averages of its variables (``use_ema``), every row up to the last step."""
    if hasattr(optimizer, "sync_averages"):
        optimizer.sync_averages()
    # Keras keeps the averages in this list, aligned with the variables it was built with.
    return [average.numpy() for average in optimizer._model_variables_moving_average]


def train(run: RunSpec, registry: Registry, dataset, *, progress: Progress | None = None, echo: Echo | None = None,
          should_stop: StopCheck = _never, observer: TrainObserver | None = None,
          score_test: bool = True) -> tuple[Classifier, TrainResult]:
    """Trains the model of ``run`` on ``dataset``.

    Args:
        run: What to train and how.
        registry: Where the model's components are looked up.
        dataset: A :class:`zoo_core.data.Dataset` (``vocab``, ``train``, ``val``, ``test``).
        progress: Draws a bar per epoch (:data:`zoo_core.progress.Progress`,
            advanced by reviews, its text the running loss, accuracy and
            tokens/s); None: none.
        echo: Receives a line per epoch (losses, accuracies, time) and notes
            (why the run stopped early); None: silent.
        should_stop: Checked before every training and evaluation batch; once
            it is true the run ends with status ``"interrupted"`` and skips
            whatever evaluation is left (its scores are NaN). The caller
            decides what sets it (the CLI: SIGINT or SIGTERM).
        observer: Told about the run every ``observer.every_steps`` steps
            and after each epoch (see :class:`TrainObserver`), e.g. a
            :class:`zoo_core.tensorboard.EventLogger`. Its exceptions end the
            run as they would end any caller's code: they are not caught here,
            but for :class:`EndRun`, which ends the run like early stopping.
        score_test: Evaluate the kept weights on the test split. False (a
            tuning trial, which must never see the test split) leaves
            ``dataset.test`` untouched (it may be None) and ``result.test`` empty.

    Returns:
        The classifier holding the kept weights (the best epoch's, or the last
        good ones after a non-finite loss or a stop; with ``train.ema_momentum``
        the moving average's, but after a non-finite loss) and its :class:`TrainResult`.
    """
    started = time.perf_counter()
    progress, echo = progress_or_silent(progress), echo_or_silent(echo)
    if run.train.deterministic and determinism_enabled() is False:
        raise ZooError("this run asks for deterministic ops (train.deterministic): call "
                       "zoo_core.training.enable_determinism() once, before training anything in this process")
    keras.utils.set_random_seed(run.seed)
    model = Classifier(run.model, registry, len(dataset.vocab))
    if note := model.encoder.adapt(dataset.train):
        echo(note)
    variables = model.trainable_variables
    # Splits serve every review once a pass in batches of batch_size, the last maybe smaller.
    pass_steps = -(-len(dataset.train) // run.train.batch_size)
    steps_per_epoch = run.train.steps_per_epoch or pass_steps
    optimizer = make_optimizer(run.train, run.train.epochs * steps_per_epoch)
    optimizer.build(variables)  # slot variables must exist before the step is traced
    if run.train.cell_lr_scale != 1.0:
        optimizer.lr_scales = cell_lr_scales(model, variables, run.train.cell_lr_scale)
    train_step = TrainStep(model, optimizer, run)
    passes_per_epoch = run.train.steps_per_epoch / pass_steps if pass_steps else 0.0
    if passes_per_epoch > 1:
        echo(f"note: train.steps_per_epoch={run.train.steps_per_epoch} is {passes_per_epoch:.3g} passes over the "
             f"{len(dataset.train)} training reviews: each epoch sees each review more than once")
    if run.train.jit and run.data.batching == "bucket":
        echo("note: XLA compiles once per batch shape, so bucketed batches of many lengths "
             "compile many times; padded batches compile at most twice")

    reports = None
    if observer is not None:
        reports = _StepReports(observer, lambda: float(optimizer.learning_rate))
    history: list[dict] = []
    best_epoch, best_score, best_weights, best_val = 0, None, None, {}
    status, message = "completed", ""
    epoch = 0
    stream = training_batches(dataset.train, run)
    try:
        for epoch in range(1, run.train.epochs + 1):
            stats = _run_epoch(train_step, dataset.train, run, epoch, progress, should_stop, reports, stream)
            with averaged_weights(optimizer, variables):
                val = evaluate(model, dataset.val, run, should_stop)
                # The average is in the variables only within this block: copied now if it is the best so far.
                score = val[run.train.monitor.removeprefix("val_")]
                averaged = _snapshot(variables) if optimizer.use_ema and _improved(
                    score, best_score, run.train.monitor) else None
            history.append({"epoch": epoch, **stats, "val_loss": val["loss"], "val_accuracy": val["accuracy"],
                            "val_auc": val["auc"]})
            echo(f"epoch {epoch}: loss {stats['train_loss']:.4f} acc {stats['train_accuracy']:.4f}  "
                 f"{'averaged weights: ' if optimizer.use_ema else ''}"
                 f"val_loss {val['loss']:.4f} val_acc {val['accuracy']:.4f} val_auc {val['auc']:.4f}  "
                 f"({stats['seconds']:.1f} s, {stats['tokens_per_sec'] / 1000:.1f}k tok/s)")
            if observer is not None:  # after the epoch's line: an observer may end the run here (EndRun)
                observer.on_epoch(epoch, {**history[-1], "learning_rate": float(optimizer.learning_rate),
                                          "step": reports.step})
            if _improved(score, best_score, run.train.monitor):
                best_epoch, best_score, best_val = epoch, score, val
                best_weights = averaged if optimizer.use_ema else _snapshot(variables)
            elif run.train.patience and epoch - best_epoch >= run.train.patience:
                status = "early-stopped"
                message = (f"{run.train.monitor} did not improve for {run.train.patience} epoch(s) "
                           f"after epoch {best_epoch}")
                break
    except EndRun as end:  # the observer's verdict on the epoch just finished (and recorded in history)
        status, message = end.status, end.message
    except NonFiniteLoss as err:
        status, message = "nan", str(err)
    except (Stopped, KeyboardInterrupt):
        status, message = "interrupted", f"interrupted during epoch {epoch}; kept the last good weights"
    # An interruption is reported once, by the caller (its status line); the others as they happen.
    if message and status != "interrupted":
        echo(message)

    if status not in ("nan", "interrupted") and best_weights is not None:
        _restore(variables, best_weights)
        val = best_val
    elif status == "interrupted" and optimizer.use_ema:
        # The run's model is the average; a diverged run keeps its last finite weights, which the average may not be.
        _restore(variables, _averages(optimizer))
        best_epoch, val = len(history), {}
    else:
        # The weights go on from the last finished epoch; they are what is kept.
        best_epoch, val = len(history), {}
    val, test, stopped = _final_evaluation(model, dataset, run, val, should_stop, score_test)
    if stopped and status != "interrupted":
        status = "interrupted"
        message = f"interrupted during the final evaluation; kept epoch {best_epoch}'s weights, not fully scored"
        echo(message)
    epoch_rates = [h["tokens_per_sec"] for h in history]
    result = TrainResult(
        run=run,
        params=model.count_params(),
        history=history,
        best_epoch=best_epoch,
        val=val,
        test=test,
        wall_time=time.perf_counter() - started,
        tokens_per_sec=statistics.median(epoch_rates) if epoch_rates else math.nan,
        status=status,
        message=message,
    )
    return model, result


def enable_determinism() -> None:
    """Makes TensorFlow's ops deterministic for the rest of the process.

    Runs with ``train.deterministic`` need it; :func:`train` refuses them
    without it. It is process-wide and cannot be undone
    (``tf.config.experimental.enable_op_determinism``), and TensorFlow asks for
    it before any op runs, so the program calls it once at its start, never the
    library per run: ``zoo train`` and ``zoo rank`` call it before loading any
    data when their runs ask for it (``zoo rank`` refuses a plan that mixes
    both, :func:`zoo_core.specs.deterministic_ops`). A notebook calls it in its
    first cell. Runs without ``train.deterministic`` still train after it,
    deterministically and slower.
    """
    tf.config.experimental.enable_op_determinism()


def determinism_enabled() -> bool | None:
    """Whether :func:`enable_determinism` has taken effect in this process; None if TensorFlow cannot tell."""
    try:
        from tensorflow.python.framework import config as tf_config  # no public reader as of TF 2.21

        return bool(tf_config.is_op_determinism_enabled())
    except (ImportError, AttributeError):
        return None


def _final_evaluation(model: Classifier, dataset, run: RunSpec, val: dict,
                      should_stop: StopCheck, score_test: bool = True) -> tuple[dict, dict, bool]:
    """Evaluates the kept weights on validation (unless already known) and, with ``score_test``, test.

    Returns:
        ``(val, test, stopped)``; ``test`` is empty without ``score_test``. A
        stop request or ``KeyboardInterrupt`` ends the evaluation, leaving NaN
        for what it did not score.
    """
    missing = {"accuracy": math.nan, "loss": math.nan, "auc": math.nan}
    try:
        if not val:
            val = evaluate(model, dataset.val, run, should_stop)
        if not score_test:
            return val, {}, False
        return val, evaluate(model, dataset.test, run, should_stop), False
    except (Stopped, KeyboardInterrupt):
        return val or dict(missing), dict(missing) if score_test else {}, True
